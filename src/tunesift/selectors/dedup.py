"""Deduplication before selection (METHODS.md §17): exact (a hash of the canonical text), MinHash-LSH near
duplicates (data-juicer's settings on ``datasketch``), and SemDeDup (k-means on unit embeddings, within-cluster
cosine above ``1 - eps`` removed, the member farthest from the centroid kept first).

Every function takes the texts or vectors of the candidates, in pool order, and returns a :class:`Duplicates`:
for each dropped position the position of the sample kept in its place. What is kept is always the first of a
group in pool order (exact, MinHash) or the one SemDeDup keeps; nothing is ever an ``N x N`` matrix but one
cluster's block.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

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


def exact_duplicates(texts: Sequence[str], *, normalised: bool = False) -> Duplicates:
    """Equal canonical texts (optionally :func:`normalise`-d) grouped by their SHA-256; the first is kept."""
    first: dict[bytes, int] = {}
    out = Duplicates(len(texts), "exact")
    for pos, text in enumerate(texts):
        key = hashlib.sha256((normalise(text) if normalised else text).encode("utf-8")).digest()
        if key in first:
            out.kept_for[pos] = first[key]
        else:
            first[key] = pos
    return out


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


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller position is the root: each component keeps its first sample
            self.parent[max(ra, rb)] = min(ra, rb)


def minhash_duplicates(texts: Sequence[str], *, threshold: float = MINHASH_THRESHOLD, num_perm: int = NUM_PERM,
                       seed: int = 1) -> Duplicates:  # fmt: skip
    """Near duplicates by MinHash-LSH (``datasketch``): samples whose bands collide are joined (union-find) and
    each connected component keeps its first sample in pool order."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    template = MinHash(num_perm=num_perm, seed=seed)  # the permutations are drawn once, then shared
    groups = _UnionFind(len(texts))
    for pos, text in enumerate(texts):
        grams = shingles(text)
        if not grams:
            continue
        signature = MinHash(num_perm=num_perm, seed=seed, permutations=template.permutations, scheme=template.scheme)
        signature.update_batch([g.encode("utf-8") for g in grams])
        for other in lsh.query(signature):
            groups.union(pos, int(other))
        lsh.insert(pos, signature, check_duplication=False)
    out = Duplicates(len(texts), "minhash", details={"threshold": threshold, "bands": lsh.b, "rows": lsh.r})
    for pos in range(len(texts)):
        root = groups.find(pos)
        if root != pos:
            out.kept_for[pos] = root
    return out


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
