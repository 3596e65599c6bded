"""Facility location with the cosine kernel (Superfiltering.D's second stage, METHODS.md §2); the kernel
is computed a block of rows at a time."""

from __future__ import annotations

import numpy as np

from tunesift.selectors.base import Candidates, Selector, as_matrix, check_budget


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
    x = as_matrix(x)
    n, d = x.shape
    k = check_budget(k, n)
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


class FacilityLocation(Selector):
    """Facility location (cosine kernel) on the candidates' embeddings: Superfiltering.D's second stage."""

    name = "facility-location"
    embeds = True

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return facility_location(candidates.vectors(), size)
