"""Deduplication before selection (METHODS.md §17): exact (a hash of the canonical text), MinHash-LSH near
duplicates (data-juicer's settings; datasketch's signatures and bands, computed in numpy), and SemDeDup (k-means on
unit embeddings, within-cluster cosine above ``1 - eps`` removed, the member farthest from the centroid kept first).

Every function takes the texts or vectors of the candidates, in pool order, and returns a :class:`Duplicates`:
for each dropped position the position of the sample kept in its place. What is kept is always the first of a
group in pool order (exact, MinHash) or the one SemDeDup keeps; nothing is ever an ``N x N`` matrix but one
cluster's block.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from tunesift.errors import ConfigError
from tunesift.options import is_number

METHODS = ("exact", "minhash", "semantic")
MINHASH_THRESHOLD = 0.7  # data-juicer's Jaccard threshold: datasketch picks 25 bands x 10 rows for it
NUM_PERM = 256
SHINGLE_WORDS = 5
SEMANTIC_THRESHOLD = 0.99  # cosine above which SemDeDup removes (1 - eps, eps = 0.01: NeMo Curator's default)
_NON_CHARACTER = re.compile(r"\s+|\d+|[" + re.escape(string.punctuation) + "]")


@dataclass
class Duplicates:
    """The outcome over ``n`` candidates: ``kept_for[p]`` is the position kept in place of the dropped ``p``."""

    n: int
    method: str
    kept_for: dict[int, int] = field(default_factory=dict)
    details: dict[str, float | int] = field(default_factory=dict)

    @property
    def kept(self) -> list[int]:
        return [p for p in range(self.n) if p not in self.kept_for]


def check_threshold(method: str, threshold: float | None) -> float | None:
    """The threshold for ``method`` (its default when None); refused outside (0, 1] or for exact dedup."""
    if method not in METHODS:
        raise ConfigError("method", f"unknown dedup method {method!r}; choose one of {', '.join(METHODS)}")
    if threshold is None:
        return {"exact": None, "minhash": MINHASH_THRESHOLD, "semantic": SEMANTIC_THRESHOLD}[method]
    if method == "exact":
        raise ConfigError("threshold", "exact dedup has no threshold (it compares hashes); drop --threshold")
    if not is_number(threshold) or not 0.0 < threshold <= 1.0:
        raise ConfigError("threshold", f"must be a number in (0, 1], got {threshold!r}")
    return float(threshold)


# ----- exact -----


def normalise(text: str) -> str:
    """data-juicer's two options together: lower case, then whitespace, digits and ASCII punctuation deleted."""
    return _NON_CHARACTER.sub("", text.lower())


def exact_keys(texts: Sequence[str], *, normalised: bool = False) -> np.ndarray:
    """The first 16 bytes of each canonical text's SHA-256 (optionally :func:`normalise`-d), as (n, 2) uint64."""
    digests = b"".join(hashlib.sha256((normalise(t) if normalised else t).encode("utf-8")).digest()[:16] for t in texts)
    return np.frombuffer(digests, dtype=np.uint64).reshape(len(texts), 2)


def first_of_equal(keys: np.ndarray) -> np.ndarray:
    """For each row of ``keys``, the first row with the same key (itself where it is the first)."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(len(keys)), *keys.T[::-1]))  # by key, then by position
    ordered = keys[order]
    starts = np.concatenate([[True], np.any(ordered[1:] != ordered[:-1], axis=1)])
    firsts = order[np.flatnonzero(starts)]
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = np.repeat(firsts, np.diff(np.append(np.flatnonzero(starts), len(keys))))
    return out


def exact_duplicates(texts: Sequence[str], *, normalised: bool = False) -> Duplicates:
    """Equal canonical texts (optionally :func:`normalise`-d) grouped by their SHA-256; the first is kept."""
    return duplicates_from(first_of_equal(exact_keys(texts, normalised=normalised)), np.arange(len(texts)), len(texts),
                          "exact")  # fmt: skip


def duplicates_from(roots: np.ndarray, positions: np.ndarray, n: int, method: str,
                   details: dict[str, float | int] | None = None) -> Duplicates:  # fmt: skip
    """Rows whose root is another row, as positions: dropped -> kept."""
    moved = np.flatnonzero(roots != np.arange(len(roots)))
    kept_for = dict(zip(positions[moved].tolist(), positions[roots[moved]].tolist(), strict=True))
    return Duplicates(n, method, kept_for, dict(details or {}))


# ----- MinHash-LSH -----


def shingles(text: str, window: int = SHINGLE_WORDS) -> list[str]:
    """Word ``window``-grams of the lower-cased text split on whitespace (``len - window + 1`` of them); a text
    shorter than the window is one shingle of all its words; an empty text has none."""
    words = text.lower().split()
    if not words:
        return []
    if len(words) < window:
        return [" ".join(words)]
    return [" ".join(words[i : i + window]) for i in range(len(words) - window + 1)]


#: The 32-bit affine scheme of datasketch (>= 2.0, its default): each shingle's SHA-1 (first 4 bytes, little endian)
#: mixed by the MurmurHash3 finalizer, then h -> a * h + b mod 2^32 per permutation, a odd.
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_FMIX64 = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(33), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33))
#: Shingles whose permuted hashes are held at once (x 256 permutations x 4 bytes: 8 MiB).
_SHINGLE_BLOCK = 8192


def _fmix(h: np.ndarray, constants: tuple[np.unsignedinteger, ...]) -> np.ndarray:
    s1, m1, s2, m2, s3 = constants
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


def minhash_permutations(num_perm: int = NUM_PERM, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` as datasketch draws them for ``MinHash(num_perm, seed)`` (scheme affine32)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def minhash_signatures(texts: Sequence[str], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each text's MinHash over its word shingles, equal value for value to datasketch's ``update_batch``:
    ``(signatures (m, num_perm) uint32, has)`` where ``has`` marks the texts with a shingle (the m rows)."""
    import hashlib

    counts = np.zeros(len(texts), dtype=np.int64)
    digests = []
    for i, text in enumerate(texts):
        grams = shingles(text)
        counts[i] = len(grams)
        digests.extend(hashlib.sha1(g.encode("utf-8")).digest()[:4] for g in grams)
    hashed = _fmix(np.frombuffer(b"".join(digests), dtype="<u4").astype(np.uint32), _FMIX32)
    has = counts > 0
    starts = np.concatenate([[0], np.cumsum(counts[has])[:-1]]).astype(np.int64)
    out = np.empty((int(has.sum()), len(a)), dtype=np.uint32)
    row = 0
    while row < len(starts):  # whole texts, about _SHINGLE_BLOCK shingles at a time
        first = starts[row]
        last = int(np.searchsorted(starts, first + _SHINGLE_BLOCK, side="right"))
        last = max(last, row + 1)
        stop = starts[last] if last < len(starts) else len(hashed)
        permuted = a[:, None] * hashed[None, first:stop] + b[:, None]  # wraps mod 2^32, as datasketch's
        out[row:last] = np.minimum.reduceat(permuted, starts[row:last] - first, axis=1).T
        row = last
    return out, has


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band of ``rows`` values (the LSH bucket): (m, bands) uint64. Two signatures share a key
    exactly when the band's values are equal, but for a 64-bit collision (about 1e-19 a pair and band)."""
    keys = np.empty((len(signatures), bands), dtype=np.uint64)
    values = signatures.astype(np.uint64)
    for j in range(bands):
        key = np.full(len(signatures), ((j + 1) * 0x9E3779B97F4A7C15) % (1 << 64), dtype=np.uint64)
        for c in range(j * rows, (j + 1) * rows):
            key = _fmix(key ^ values[:, c], _FMIX64)
        keys[:, j] = key
    return keys


def chunk_keys(texts: Sequence[str], a: np.ndarray, b: np.ndarray, bands: int, rows: int
               ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The band keys of the texts that have a shingle, and which those are."""
    signatures, has = minhash_signatures(texts, a, b)
    return band_keys(signatures, bands, rows), has


def lsh_parameters(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """``(bands, rows)`` that datasketch's ``MinHashLSH(threshold, num_perm)`` chooses (equal weights on false
    positives and negatives)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def band_edges(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One band's candidate pairs: its equal keys are neighbours once sorted, so each is chained to the next."""
    order = np.argsort(column, kind="stable")
    same = column[order[1:]] == column[order[:-1]]
    return order[:-1][same], order[1:][same]


def components_of(keys: np.ndarray, map_bands: Any = None) -> np.ndarray:
    """For rows whose keys collide in any band (the LSH candidates, joined transitively), the row each is kept
    for: the first row of its connected component; a row that is its own root maps to itself. ``map_bands``
    (an executor's ``map_chunks``) groups the bands elsewhere, one task a band; the components are joined here."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(keys)
    columns = (np.ascontiguousarray(keys[:, j]) for j in range(keys.shape[1]))
    pairs = list(map_bands(band_edges, columns) if map_bands is not None else map(band_edges, columns))
    i = np.concatenate([p[0] for p in pairs] or [np.zeros(0, np.int64)])
    k = np.concatenate([p[1] for p in pairs] or [np.zeros(0, np.int64)])
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, k)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return first[labels]


def minhash_duplicates(texts: Sequence[str], *, threshold: float = MINHASH_THRESHOLD, num_perm: int = NUM_PERM,
                       seed: int = 1) -> Duplicates:  # fmt: skip
    """Near duplicates by MinHash-LSH: datasketch's signatures and banding, computed in numpy; samples whose
    bands collide are joined and each connected component keeps its first sample in pool order."""
    finder = MinHashGroups(threshold, num_perm, seed)
    finder.add(texts)
    return finder.duplicates()


class MinHashGroups:
    """MinHash-LSH over texts given a chunk at a time: only each text's band keys are kept (``bands`` x 8 bytes),
    so a pool streams through in memory that grows by some 200 bytes a record."""

    def __init__(self, threshold: float = MINHASH_THRESHOLD, num_perm: int = NUM_PERM, seed: int = 1) -> None:
        self.threshold = threshold
        self.bands, self.rows = lsh_parameters(threshold, num_perm)
        self.a, self.b = minhash_permutations(num_perm, seed)
        self.n = 0
        self._keys: list[np.ndarray] = []
        self._positions: list[np.ndarray] = []

    def add(self, texts: Sequence[str]) -> None:
        """The next texts, in pool order (a text with no word has no shingle: it is never a duplicate)."""
        self.add_keys(*chunk_keys(texts, self.a, self.b, self.bands, self.rows))

    def add_keys(self, keys: np.ndarray, has: np.ndarray) -> None:
        """The band keys of the next ``len(has)`` texts (of those ``has`` marks), in pool order."""
        self._keys.append(keys)
        self._positions.append(self.n + np.flatnonzero(has))
        self.n += len(has)

    def add_all(self, chunks: Iterable[Sequence[str]], workers: int = 1, map_chunks: Any = None) -> None:
        """Every chunk of texts, in order; with ``workers`` > 1 the signatures are computed in that many processes
        (a few chunks in flight), with ``map_chunks`` (an executor's: Ray Data tasks on a cluster) wherever it
        runs them; the keys are still added in pool order."""
        work = partial(chunk_keys, a=self.a, b=self.b, bands=self.bands, rows=self.rows)
        if map_chunks is not None:
            for keys, has in map_chunks(work, (list(texts) for texts in chunks)):
                self.add_keys(keys, has)
            return
        if workers <= 1:
            for texts in chunks:
                self.add(texts)
            return
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads (torch, Ray)
        with ProcessPoolExecutor(workers, mp_context=context) as processes:
            pending: deque[Any] = deque()
            for texts in chunks:
                pending.append(processes.submit(work, list(texts)))
                while len(pending) > 2 * workers:
                    self.add_keys(*pending.popleft().result())
            while pending:
                self.add_keys(*pending.popleft().result())

    def duplicates(self, map_bands: Any = None) -> Duplicates:
        """The groups: each band's keys grouped (here, or by ``map_bands`` on a cluster), components joined here."""
        details = {"threshold": self.threshold, "bands": self.bands, "rows": self.rows}
        if not self._keys:
            return Duplicates(self.n, "minhash", details=details)
        keys = np.concatenate(self._keys)
        roots = components_of(keys, map_bands)
        return duplicates_from(roots, np.concatenate(self._positions), self.n, "minhash", details)


# ----- SemDeDup -----


def default_clusters(n: int) -> int:
    """tunesift's cap: about 100 samples a cluster, at most 1,000 clusters (a small pool: one cluster)."""
    return min(1000, max(1, n // 100))


def semantic_duplicates_in(x: np.ndarray, members: Sequence[int], threshold: float, keep: str = "hard",
                           block: int = 1024) -> dict[int, int]:  # fmt: skip
    """SemDeDup within one cluster: members sorted by cosine distance to the re-normalised centroid (farthest
    first for ``hard``, nearest first for ``easy``; ties by position), and a member removed when its cosine to
    any earlier one (even a removed one) is above ``threshold``. Returns removed -> the kept sample in its place
    (its most similar earlier member, followed to a kept one)."""
    members = np.asarray(members)
    if len(members) < 2:
        return {}
    vectors = x[members].astype(np.float32)
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    distance = 1.0 - vectors @ (centroid / norm if norm > 0 else centroid)
    sign = -1.0 if keep == "hard" else 1.0
    order = sorted(range(len(members)), key=lambda i: (sign * float(distance[i]), int(members[i])))
    ordered = vectors[order]
    twin: dict[int, int] = {}
    for begin in range(1, len(order), block):  # column j against rows i < j, a block of columns at a time
        end = min(begin + block, len(order))
        sims = ordered[:end] @ ordered[begin:end].T
        for c, j in enumerate(range(begin, end)):
            earlier = sims[:j, c]
            i = int(np.argmax(earlier))
            if earlier[i] > threshold:
                twin[j] = i
    removed: dict[int, int] = {}
    for j, i in twin.items():
        while i in twin:  # an earlier point that was itself removed: its own kept twin stands in
            i = twin[i]
        removed[int(members[order[j]])] = int(members[order[i]])
    return removed


def semantic_duplicates(x: np.ndarray, *, threshold: float = SEMANTIC_THRESHOLD, clusters: int | None = None,
                        keep: str = "hard", random_state: int = 0) -> Duplicates:  # fmt: skip
    """SemDeDup over unit embeddings ``x`` (rows in pool order): k-means, then :func:`semantic_duplicates_in`
    per cluster."""
    from tunesift.selectors.clusters import kmeans_labels

    n = len(x)
    k = clusters or default_clusters(n)
    if k > n:
        raise ConfigError("clusters", f"{k} clusters is more than the {n} records to deduplicate")
    labels = kmeans_labels(x, k, random_state=random_state) if k > 1 else np.zeros(n, dtype=np.int64)
    out = Duplicates(n, "semantic", details={"threshold": threshold, "clusters": len(set(labels.tolist()))})
    for label in np.unique(labels):
        out.kept_for.update(semantic_duplicates_in(x, np.flatnonzero(labels == label), threshold, keep))
    return out
