"""Facility location with the cosine kernel (Superfiltering.D's second stage, METHODS.md §2); the kernel
is computed a block of rows at a time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunesift.selectors.base import Candidates, Selector, as_matrix, check_budget
from tunesift.selectors.neighbours import NEIGHBOURS, nearest, neighbours_for, sparse_greedy


def _kernel_rows(x: np.ndarray, norms: np.ndarray, rows: np.ndarray, scale: float) -> np.ndarray:
    """``exp(-||x_i - x_j||_2 / scale)`` for i in ``rows`` and every j (Superfiltering.D's kernel)."""
    d2 = np.maximum(norms[rows, None] - 2.0 * (x[rows] @ x.T) + norms[None, :], 0.0)
    return np.exp(-np.sqrt(d2) / scale)


def facility_location(
    x: np.ndarray,
    k: int,
    *,
    scale: float | None = None,
    block: int = 512,
    max_kernel_bytes: int = 2 << 30,
    neighbours: int | None = None,
) -> list[int]:
    """Greedy facility location, ``f(S) = sum_i max_{j in S} s_ij`` with ``s_ij = exp(-||x_i - x_j|| / d)``
    (``scale`` defaults to the embedding dimension d). Returns the pick order (see :func:`greedy_coverage`); with
    ``neighbours`` (and by default beyond 20,000 points) the lazy greedy over each point's nearest."""
    x = as_matrix(x)
    n, d = x.shape
    scale = float(scale or d)
    neighbours = neighbours_for(n, neighbours)
    if neighbours is not None:
        ids, d2 = nearest(x, neighbours + 1, metric="l2")
        return sparse_greedy(ids, np.exp(-np.sqrt(np.maximum(d2, 0.0)) / scale), k)
    norms = np.einsum("ij,ij->i", x, x)
    return greedy_coverage(lambda rows: _kernel_rows(x, norms, rows, scale), n, k, block=block,
                           max_kernel_bytes=max_kernel_bytes)  # fmt: skip


def greedy_coverage(
    kernel_rows: Callable[[np.ndarray], np.ndarray],
    n: int,
    k: int,
    *,
    weight: float = 1.0,
    bonus: np.ndarray | None = None,
    block: int = 512,
    max_kernel_bytes: int = 2 << 30,
) -> list[int]:
    """Greedy maximisation of ``weight * sum_i max(0, max_{j in S} s_ij) + sum_{j in S} bonus_j`` over a symmetric
    kernel ``s`` whose rows ``kernel_rows(rows)`` gives (``(len(rows), n)``): facility location, and QDIT's
    quality-diversity objective with the bonus.

    Exact greedy (each step adds the largest gain; ties to the lowest index), with every gain kept up to
    date incrementally: adding a centre c raises the coverage of the points it now covers best, and only
    their kernel rows change anyone's gain, so step m touches about N/m rows instead of all N x N pairs.
    The kernel is held when it fits ``max_kernel_bytes`` (20,000 candidates: 1.6 GB, as the method's own dense
    kernel); beyond that its rows are computed on demand in blocks, so memory stays O(block x N). This gives
    the picks of lazy greedy (the same optimum each step) without its worst case, which random
    high-dimensional data hits. Returns the pick order.
    """
    k = check_budget(k, n)
    kernel = np.empty((n, n), dtype=np.float32) if n * n * 4 <= max_kernel_bytes else None
    coverage = np.zeros(n, dtype=np.float64)
    for begin in range(0, n, block):
        rows = np.maximum(kernel_rows(np.arange(begin, min(begin + block, n))), 0.0)
        coverage += rows.sum(axis=0)
        if kernel is not None:
            kernel[begin : begin + block] = rows
    gains = weight * coverage + (0.0 if bonus is None else np.asarray(bonus, dtype=np.float64))

    def rows_of(rows: np.ndarray) -> np.ndarray:
        return kernel[rows] if kernel is not None else np.maximum(kernel_rows(rows), 0.0)

    covered = np.zeros(n, dtype=np.float32)  # max similarity of each point to the chosen set (at least 0)
    available = np.ones(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < k:
        j = int(np.argmax(np.where(available, gains, -np.inf)))
        chosen.append(j)
        available[j] = False
        column = rows_of(np.array([j]))[0]  # s_ij for every i (the kernel is symmetric)
        better = np.flatnonzero(column > covered)
        for begin in range(0, len(better), block):
            rows = better[begin : begin + block]
            low, high = covered[rows, None], column[rows, None]
            # max(0, s - low) - max(0, s - high) == clip(s, low, high) - low, for high > low: one pass
            clipped = np.clip(rows_of(rows), low, high)
            gains -= weight * (clipped.sum(axis=0, dtype=np.float64) - float(low.sum(dtype=np.float64)))
        covered[better] = column[better]
    return chosen


class FacilityLocation(Selector):
    """Facility location (cosine kernel) on the candidates' embeddings: Superfiltering.D's second stage."""

    name = "facility-location"
    embeds = True
    options = (NEIGHBOURS,)

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return facility_location(candidates.vectors(), size, neighbours=self.params["neighbours"])
