"""k-center greedy on embeddings (METHODS.md §2): repeatedly the point farthest from everything chosen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesift.selectors.base import SEED, Candidates, Selector, as_matrix, check_budget, sq_dist


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
    x = as_matrix(x)
    n = x.shape[0]
    k = check_budget(k, n)
    norms = np.einsum("ij,ij->i", x, x)
    first = list(seeds) or [int(np.random.default_rng(random_state).integers(n))]
    chosen = [int(j) for j in first[:k]]
    nearest = sq_dist(x, norms, x[chosen], norms[chosen]).min(axis=1)  # exact w.r.t. `chosen`
    nearest[chosen] = -1.0  # never picked again, even among duplicates
    while len(chosen) < k:
        order = np.lexsort((np.arange(n), -nearest))  # highest synced distance first, ties by index
        bounds = nearest[order]
        synced = len(chosen)
        top = np.empty(0, dtype=np.float32)  # exact values of order[:len(top)] w.r.t. every centre so far
        front = np.empty((0, x.shape[1]), dtype=x.dtype)  # their rows, gathered once (not again at every pick)
        front_norms = np.empty(0, dtype=norms.dtype)
        for _ in range(min(sync_every, k - len(chosen))):
            new = np.array(chosen[synced:], dtype=np.int64)
            if len(new) and len(top):  # the frontier catches up with the latest centre
                latest = new[-1:]
                top = np.minimum(top, sq_dist(front, front_norms, x[latest], norms[latest])[:, 0])
            # grow the frontier until its best beats every bound outside it (ties: grow, for the lowest index)
            while len(top) < n and (len(top) == 0 or top.max() <= bounds[len(top)]):
                grow = order[len(top) : min(n, max(2 * len(top), 256))]
                rows = x[grow]
                values = nearest[grow].copy()
                if len(new):
                    values = np.minimum(values, sq_dist(rows, norms[grow], x[new], norms[new]).min(axis=1))
                values[nearest[grow] < 0] = -1.0
                top = np.concatenate([top, values])
                front = np.concatenate([front, rows])
                front_norms = np.concatenate([front_norms, norms[grow]])
            best_positions = np.flatnonzero(top == top.max())
            position = best_positions[np.argmin(order[best_positions])]
            best = int(order[position])
            chosen.append(best)
            top[position] = -1.0
            nearest[best] = -1.0
        new = np.array(chosen[synced:], dtype=np.int64)
        for begin in range(0, n, 8192):
            block = slice(begin, begin + 8192)
            d2 = sq_dist(x[block], norms[block], x[new], norms[new]).min(axis=1)
            nearest[block] = np.where(nearest[block] >= 0, np.minimum(nearest[block], d2), nearest[block])
    return chosen


class KCenter(Selector):
    """k-center greedy on the candidates' embeddings."""

    name = "kcenter"
    options = (SEED,)
    embeds = True

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return kcenter_greedy(candidates.vectors(), size, random_state=self.params["random_state"])
