"""Set-level diversity selectors over embeddings (METHODS.md §2, §4). None of them builds an N x N matrix.

Every selector returns pool indices in pick order and is deterministic given ``random_state``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.selectors.base import SEED, Candidates, Selector

CHUNK_ROWS = 4096  # rows of a distance/similarity block computed at once


def _as_matrix(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ConfigError(name, f"expected a non-empty (n, d) matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ConfigError(name, "holds NaN or infinite values")
    return x


def _check_budget(k: int, n: int) -> int:
    if k < 1:
        raise ConfigError("count", f"must be a positive number, got {k}")
    return min(k, n)


def _sq_dist(x: np.ndarray, norms: np.ndarray, centres: np.ndarray, centre_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, m) between points and centres, clipped at 0 against rounding."""
    return np.maximum(norms[:, None] - 2.0 * (x @ centres.T) + centre_norms[None, :], 0.0)


def kcenter_greedy(
    x: np.ndarray, k: int, *, seeds: Sequence[int] = (), random_state: int = 0, sync_every: int = 64
) -> list[int]:
    """k-center greedy: repeatedly add the point farthest (Euclidean) from everything chosen so far.

    Starts from ``seeds`` (returned first), else from one point drawn with ``random_state``. Exact: the
    same picks as the plain loop. Every ``sync_every`` picks, one matrix product brings every point's
    distance to the chosen set up to date (compute-bound, unlike one matrix-vector pass per pick, which
    would stream all N x d embeddings k times). In between, that synced distance is an upper bound: exact
    values are kept only for a frontier of the points with the highest bounds, grown (by one matrix
    product) until its best point beats every bound outside it. O(N) memory beyond the embeddings.
    """
    x = _as_matrix(x)
    n = x.shape[0]
    k = _check_budget(k, n)
    norms = np.einsum("ij,ij->i", x, x)
    first = list(seeds) or [int(np.random.default_rng(random_state).integers(n))]
    chosen = [int(j) for j in first[:k]]
    nearest = _sq_dist(x, norms, x[chosen], norms[chosen]).min(axis=1)  # exact w.r.t. `chosen`
    nearest[chosen] = -1.0  # never picked again, even among duplicates
    while len(chosen) < k:
        order = np.lexsort((np.arange(n), -nearest))  # highest synced distance first, ties by index
        bounds = nearest[order]
        synced = len(chosen)
        top = np.empty(0, dtype=np.float32)  # exact values of order[:len(top)] w.r.t. every centre so far
        for _ in range(min(sync_every, k - len(chosen))):
            new = np.array(chosen[synced:], dtype=np.int64)
            if len(new) and len(top):  # the frontier catches up with the latest centre
                latest = new[-1:]
                frontier = order[: len(top)]
                top = np.minimum(top, _sq_dist(x[frontier], norms[frontier], x[latest], norms[latest])[:, 0])
            # grow the frontier until its best beats every bound outside it (ties: grow, for the lowest index)
            while len(top) < n and (len(top) == 0 or top.max() <= bounds[len(top)]):
                grow = order[len(top) : min(n, max(2 * len(top), 256))]
                values = nearest[grow].copy()
                if len(new):
                    values = np.minimum(values, _sq_dist(x[grow], norms[grow], x[new], norms[new]).min(axis=1))
                values[nearest[grow] < 0] = -1.0
                top = np.concatenate([top, values])
            best_positions = np.flatnonzero(top == top.max())
            position = best_positions[np.argmin(order[best_positions])]
            best = int(order[position])
            chosen.append(best)
            top[position] = -1.0
            nearest[best] = -1.0
        new = np.array(chosen[synced:], dtype=np.int64)
        for begin in range(0, n, 8192):
            block = slice(begin, begin + 8192)
            d2 = _sq_dist(x[block], norms[block], x[new], norms[new]).min(axis=1)
            nearest[block] = np.where(nearest[block] >= 0, np.minimum(nearest[block], d2), nearest[block])
    return chosen


def _kernel_rows(x: np.ndarray, norms: np.ndarray, rows: np.ndarray, scale: float) -> np.ndarray:
    """``exp(-||x_i - x_j||_2 / scale)`` for i in ``rows`` and every j (Superfiltering.D's kernel)."""
    d2 = np.maximum(norms[rows, None] - 2.0 * (x[rows] @ x.T) + norms[None, :], 0.0)
    return np.exp(-np.sqrt(d2) / scale)


def facility_location(
    x: np.ndarray, k: int, *, scale: float | None = None, block: int = 512, max_kernel_bytes: int = 2 << 30
) -> list[int]:
    """Greedy facility location, ``f(S) = sum_i max_{j in S} s_ij`` with ``s_ij = exp(-||x_i - x_j|| / d)``.

    Exact greedy (each step adds the largest gain; ties to the lowest index), with every gain kept up to
    date incrementally: adding a centre c raises the coverage of the points it now covers best, and only
    their kernel rows change anyone's gain, so step m touches about N/m rows instead of all N x N pairs.
    The candidates' kernel is held when it fits ``max_kernel_bytes`` (20,000 candidates: 1.6 GB, as the
    method's own dense kernel); beyond that its rows are computed on demand in blocks, so memory stays
    O(block x N). This gives the picks of lazy greedy (the same optimum each step) without its worst case,
    which random high-dimensional data hits. ``scale`` defaults to the embedding dimension d. Returns the
    pick order.
    """
    x = _as_matrix(x)
    n, d = x.shape
    k = _check_budget(k, n)
    scale = float(scale or d)
    norms = np.einsum("ij,ij->i", x, x)
    kernel = np.empty((n, n), dtype=np.float32) if n * n * 4 <= max_kernel_bytes else None
    gains = np.zeros(n, dtype=np.float64)
    for begin in range(0, n, block):
        rows = _kernel_rows(x, norms, np.arange(begin, min(begin + block, n)), scale)
        gains += rows.sum(axis=0)
        if kernel is not None:
            kernel[begin : begin + block] = rows

    def kernel_rows(rows: np.ndarray) -> np.ndarray:
        return kernel[rows] if kernel is not None else _kernel_rows(x, norms, rows, scale)

    covered = np.zeros(n, dtype=np.float32)  # max similarity of each point to the chosen set
    available = np.ones(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < k:
        j = int(np.argmax(np.where(available, gains, -np.inf)))
        chosen.append(j)
        available[j] = False
        column = kernel_rows(np.array([j]))[0]  # s_ij for every i (the kernel is symmetric)
        better = np.flatnonzero(column > covered)
        for begin in range(0, len(better), block):
            rows = better[begin : begin + block]
            low, high = covered[rows, None], column[rows, None]
            # max(0, s - low) - max(0, s - high) == clip(s, low, high) - low, for high > low: one pass
            clipped = np.clip(kernel_rows(rows), low, high)
            gains -= clipped.sum(axis=0, dtype=np.float64) - float(low.sum(dtype=np.float64))
        covered[better] = column[better]
    return chosen


def deita_filter(
    scores: Sequence[float | None], x: np.ndarray, k: int, *, tau: float = 0.9, block: int = 512
) -> list[int]:
    """DEITA's score-first diversity filter.

    Samples go highest score first (ties by index); one is admitted only if its cosine similarity to
    *every sample admitted so far* is below ``tau``; stop at ``k``. (Nearest-neighbour distance over the
    whole set, as a known port does, is a different method.) Samples without a score are never admitted.
    """
    x = _as_matrix(x)
    if len(scores) != x.shape[0]:
        raise ConfigError("scores", f"{len(scores)} scores for {x.shape[0]} embeddings")
    k = _check_budget(k, x.shape[0])
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    order = sorted((i for i, s in enumerate(scores) if s is not None and np.isfinite(s)), key=lambda i: (-scores[i], i))
    admitted: list[int] = []
    bank = np.empty((k, x.shape[1]), dtype=np.float32)
    for begin in range(0, len(order), block):
        candidates = order[begin : begin + block]
        # similarity to everything admitted before this block, at once; then in order within the block
        worst = (
            (unit[candidates] @ bank[: len(admitted)].T).max(axis=1) if admitted else np.full(len(candidates), -np.inf)
        )
        start = len(admitted)
        for c, before in zip(candidates, worst, strict=True):
            if before >= tau:
                continue
            if len(admitted) > start and float((bank[start : len(admitted)] @ unit[c]).max()) >= tau:
                continue
            bank[len(admitted)] = unit[c]
            admitted.append(c)
            if len(admitted) == k:
                return admitted
    return admitted


def random_select(n: int, k: int, *, random_state: int = 0) -> list[int]:
    """A seeded uniform sample of k of n indices (the baseline every comparison includes)."""
    k = _check_budget(k, n)
    return [int(i) for i in np.random.default_rng(random_state).choice(n, size=k, replace=False)]


def longest(lengths: Sequence[int], k: int) -> list[int]:
    """The k samples with the longest responses (ties by index)."""
    k = _check_budget(k, len(lengths))
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))[:k]


class Random(Selector):
    """A seeded uniform sample of the candidates: the baseline every method is measured against."""

    name = "random"
    options = (SEED,)

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return random_select(len(candidates.indices), size, random_state=self.params["random_state"])


class Longest(Selector):
    """The candidates with the longest responses (in characters): a strong baseline (Zhao et al. 2024)."""

    name = "longest"

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return longest(candidates.response_chars(), size)


class KCenter(Selector):
    """k-center greedy on the candidates' embeddings."""

    name = "kcenter"
    options = (SEED,)
    embeds = True

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return kcenter_greedy(candidates.vectors(), size, random_state=self.params["random_state"])


class FacilityLocation(Selector):
    """Facility location (cosine kernel) on the candidates' embeddings: Superfiltering.D's second stage."""

    name = "facility-location"
    embeds = True

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return facility_location(candidates.vectors(), size)


BY = Option("by", str | None, None, "The score column ranked by (default: the scorer's own).")


class DeitaFilter(Selector):
    """DEITA's score-first diversity filter: best first, a sample admitted only below ``tau`` cosine
    similarity to every admitted one."""

    name = "deita"
    options = (BY, Option("tau", float, 0.9, "deita: admit a sample only below this cosine similarity to every "
                          "admitted one."))  # fmt: skip
    embeds = True

    def select(self, candidates: Candidates, size: int) -> list[int]:
        by = self.params["by"] or candidates.score_field
        scores = [candidates.value(i, by) for i in candidates.indices]
        return deita_filter(scores, candidates.vectors(), size, tau=self.params["tau"])
