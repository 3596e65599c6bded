"""Each point's nearest neighbours, for the sparse kernels of facility location and QDIT on large pools, and their
lazy greedy: the objective of :func:`~tunesift.selectors.facility_location.greedy_coverage` with each point's
similarities kept only to its ``k`` nearest neighbours (itself included), so no pool ever needs its ``N x N`` kernel.

Neighbours come from faiss where it is installed (``pip install faiss-cpu``; exact search up to
``EXACT_UP_TO`` points, an inverted-file index beyond), else from exact blocked matrix products here.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tunesift.options import Option

#: Candidates up to which the dense exact greedy runs unless ``--neighbours`` is given (its kernel: 1.6 GB).
DENSE_UP_TO = 20_000
#: Neighbours per point of the sparse kernel unless ``--neighbours`` says.
DEFAULT_NEIGHBOURS = 64
#: Points up to which faiss searches exactly (a flat index); beyond, an inverted file (IVF) with ``nprobe`` lists.
EXACT_UP_TO = 50_000
#: Inverted lists an approximate search visits per query.
PROBES = 8
#: Training of the inverted lists' centres: points drawn per list, and k-means iterations.
TRAIN_PER_LIST, TRAIN_ITERATIONS = 40, 5


NEIGHBOURS = Option("neighbours", int | None, None, f"Keep each candidate's similarity to its K nearest only, and "
                    f"pick by lazy greedy (default: the exact dense greedy up to {DENSE_UP_TO:,} candidates, "
                    f"{DEFAULT_NEIGHBOURS} nearest beyond; neighbours from faiss where installed).",
                    at_least=1)  # fmt: skip


def neighbours_for(n: int, given: int | None) -> int | None:
    """The neighbours a greedy over ``n`` points keeps: ``given``, else none (the dense kernel) up to
    ``DENSE_UP_TO`` points and ``DEFAULT_NEIGHBOURS`` beyond."""
    if given is None and n > DENSE_UP_TO:
        return DEFAULT_NEIGHBOURS
    return given


def faiss_module() -> Any:
    """faiss where it is installed (``tunesift[scale]``), else None."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def nearest(x: np.ndarray, k: int, *, metric: str = "ip", exact: bool | None = None,
            block: int = 1024) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(ids, scores)`` (n, k): each row's ``k`` nearest rows of ``x`` (itself among them), by inner product
    (``ip``, largest first: cosine for unit vectors) or squared Euclidean distance (``l2``, smallest first). ``ids``
    is -1 where an approximate index found fewer. ``exact``: None lets the pool's size decide."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    k = min(k, n)
    faiss = faiss_module()
    if faiss is None:
        return _blocked(x, k, metric, block)
    inner = metric == "ip"
    if exact or (exact is None and n <= EXACT_UP_TO):
        index = faiss.IndexFlatIP(d) if inner else faiss.IndexFlatL2(d)
    else:
        lists = int(min(4 * math.sqrt(n), n // 39))  # faiss' guidance: 4-16 sqrt(n) lists, 39 points per list to train
        quantizer = faiss.IndexFlatIP(d) if inner else faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_INNER_PRODUCT if inner else faiss.METRIC_L2)
        index.cp.seed, index.cp.niter = 0, TRAIN_ITERATIONS
        # the lists' centres from a sample (faiss' own default would train on 256 points a list, 25 iterations)
        sample = x[np.sort(np.random.default_rng(0).choice(n, min(n, TRAIN_PER_LIST * lists), replace=False))]
        index.train(sample)
        index.nprobe = min(lists, PROBES)
    index.add(x)
    scores, ids = index.search(x, k)
    return ids.astype(np.int64), scores.astype(np.float32)


def _blocked(x: np.ndarray, k: int, metric: str, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours a block of rows at a time (the products of one block against every row, never N x N)."""
    n = len(x)
    norms = np.einsum("ij,ij->i", x, x)
    ids = np.empty((n, k), dtype=np.int64)
    scores = np.empty((n, k), dtype=np.float32)
    for begin in range(0, n, block):
        rows = slice(begin, min(begin + block, n))
        products = x[rows] @ x.T
        key = -products if metric == "ip" else norms[rows, None] - 2.0 * products + norms[None, :]
        part = np.argpartition(key, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(products), 1))
        order = np.take_along_axis(key, part, axis=1).argsort(axis=1, kind="stable")
        ids[rows] = np.take_along_axis(part, order, axis=1)
        value = products if metric == "ip" else key
        scores[rows] = np.take_along_axis(value, ids[rows], axis=1)
    return ids, scores


def sparse_greedy(ids: np.ndarray, similarity: np.ndarray, k: int, *, weight: float = 1.0,
                  bonus: np.ndarray | None = None) -> list[int]:  # fmt: skip
    """Lazy greedy maximisation of ``weight * sum_i max(0, max_{j in S, j in N(i)} s_ij) + sum_{j in S} bonus_j``,
    where row ``i`` knows ``s_ij`` for its neighbours ``N(i)`` (``ids[i]``, -1 for none) and 0 elsewhere.

    Submodular, so a stale gain is an upper bound: the candidate on top of the heap is re-evaluated (over the rows
    that list it) and taken when it still beats every other bound (ties: the lower index, as the dense greedy).
    Returns the pick order."""
    n = len(ids)
    rows = np.repeat(np.arange(n, dtype=np.int32), ids.shape[1])  # 32-bit: some 12 bytes a neighbour in all
    cols = ids.ravel().astype(np.int32)
    values = np.maximum(similarity.ravel().astype(np.float32), 0.0)
    keep = (cols >= 0) & (values > 0)
    rows, cols, values = rows[keep], cols[keep], values[keep]
    order = np.argsort(cols, kind="stable")
    listed_by, listed_value = rows[order], values[order]  # for column j: the rows whose lists hold j, and s_ij
    start = np.searchsorted(cols[order], np.arange(n + 1))
    extra = np.zeros(n) if bonus is None else np.asarray(bonus, dtype=np.float64)
    gains = weight * np.bincount(cols, weights=values, minlength=n) + extra
    covered = np.zeros(n, dtype=np.float32)

    def gain(j: int) -> float:
        who = slice(start[j], start[j + 1])
        lost = np.maximum(listed_value[who] - covered[listed_by[who]], 0.0)
        return float(weight * lost.sum(dtype=np.float64) + extra[j])

    heap = [(-float(g), j) for j, g in enumerate(gains)]
    heapq.heapify(heap)
    chosen: list[int] = []
    k = min(k, n)
    while len(chosen) < k and heap:
        _, j = heapq.heappop(heap)
        fresh = gain(j)
        if heap and (-heap[0][0] > fresh or (-heap[0][0] == fresh and heap[0][1] < j)):
            heapq.heappush(heap, (-fresh, j))  # another candidate's bound is higher: look again later
            continue
        chosen.append(j)
        who = slice(start[j], start[j + 1])
        np.maximum.at(covered, listed_by[who], listed_value[who])
    return chosen


def coverage_value(kernel_rows: Callable[[np.ndarray], np.ndarray], n: int, chosen: list[int], *,
                   weight: float = 1.0, bonus: np.ndarray | None = None, block: int = 1024) -> float:  # fmt: skip
    """The dense objective of a pick set: ``weight * sum_i max(0, max_{j in S} s_ij) + sum_{j in S} bonus_j``, the
    kernel's rows for the picks computed a block at a time (how the sparse greedy is judged against the dense)."""
    covered = np.zeros(n, dtype=np.float64)
    picks = np.asarray(chosen)
    for begin in range(0, len(picks), block):
        rows = np.maximum(kernel_rows(picks[begin : begin + block]), 0.0)
        covered = np.maximum(covered, rows.max(axis=0))
    extra = 0.0 if bonus is None else float(np.asarray(bonus, dtype=np.float64)[picks].sum())
    return float(weight * covered.sum() + extra)
