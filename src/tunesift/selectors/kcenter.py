"""k-center greedy on embeddings (METHODS.md §2): repeatedly the point farthest from everything chosen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesift.selectors.base import SEED, Candidates, Selector, as_matrix, check_budget, sq_dist

BLOCK = 8192  # rows per matrix product when bringing many points up to date


def kcenter_greedy(
    x: np.ndarray, k: int, *, seeds: Sequence[int] = (), random_state: int = 0, window: int = 256
) -> list[int]:
    """k-center greedy: repeatedly add the point farthest (Euclidean) from everything chosen so far.

    Starts from ``seeds`` (returned first), else from one point drawn with ``random_state``. Exact: the
    same picks as the plain loop (ties to the lowest index). Lazy, because a point's distance to the chosen
    set only shrinks: each point keeps an upper bound, exact with respect to the first ``counted`` centres,
    and is brought up to date only when its bound could still win. Every ``window`` picks, the points whose
    bound lies above where the picks are heading are brought up to date in one matrix product each (compute-
    bound); within a window, a frontier of the highest bounds is grown until its exact best beats every bound
    outside it, and only the head of that frontier is refreshed at each pick. Points that fall far behind
    are never compared with later centres: on 1M clustered vectors a quarter of the N x k distances are
    computed. O(N) memory beyond the embeddings.
    """
    x = as_matrix(x)
    n = x.shape[0]
    k = check_budget(k, n)
    norms = np.einsum("ij,ij->i", x, x)
    first = list(seeds) or [int(np.random.default_rng(random_state).integers(n))]
    chosen = [int(j) for j in first[:k]]
    nearest = np.full(n, np.inf, dtype=np.float32)  # upper bound of each point's squared distance to `chosen`
    counted = np.zeros(n, dtype=np.int64)  # nearest[i] is exact with respect to chosen[:counted[i]]
    _bring_up_to_date(x, norms, chosen, nearest, counted, np.arange(n))
    nearest[chosen] = -1.0  # never picked again, even among duplicates
    values: list[float] = []  # each pick's squared distance, to see where the picks are heading
    while len(chosen) < k:
        # bring up to date every point that could still be picked in this window (all of them at first)
        floor = -np.inf
        if len(values) > window:
            floor = values[-1] - 2.0 * (values[-1 - window] - values[-1])
        ahead = nearest > floor
        _bring_up_to_date(x, norms, chosen, nearest, counted, np.flatnonzero(ahead))
        ahead = nearest > floor
        order = np.flatnonzero(ahead)
        order = order[np.lexsort((order, -nearest[order]))]  # highest bound first, ties by index
        behind = float(nearest[~ahead].max()) if len(order) < n else -np.inf  # the best bound not in `order`
        top = np.empty(0, dtype=np.float32)  # bounds of the frontier order[:len(top)]...
        seen = np.empty(0, dtype=np.int64)  # ...exact with respect to chosen[:seen]
        for _ in range(min(window, k - len(chosen))):
            while True:
                position = _frontier_best(x, norms, chosen, order, top, seen) if len(top) else -1
                if len(top) == n:
                    break
                if len(top) == len(order):  # the picks went further than foreseen: order the rest too
                    rest = np.flatnonzero(~ahead)
                    order = np.concatenate([order, rest[np.lexsort((rest, -nearest[rest]))]])
                    behind = -np.inf
                outside = max(float(nearest[order[len(top)]]), behind)
                if position >= 0 and top[position] > outside:  # ties: grow, for the lowest index
                    break
                grow = order[len(top) : min(len(order), max(2 * len(top), 256))]
                _bring_up_to_date(x, norms, chosen, nearest, counted, grow)
                top = np.concatenate([top, nearest[grow]])
                seen = np.concatenate([seen, np.full(len(grow), len(chosen))])
            best = int(order[position])
            values.append(float(top[position]))
            chosen.append(best)
            top[position] = -1.0
            nearest[best] = -1.0
        nearest[order[: len(top)]] = top
        counted[order[: len(top)]] = seen
    return chosen


def _bring_up_to_date(
    x: np.ndarray, norms: np.ndarray, chosen: list[int], nearest: np.ndarray, counted: np.ndarray, idx: np.ndarray
) -> None:
    """Lower ``nearest[idx]`` by the centres each point has not yet been compared with (grouped by its count)."""
    idx = idx[nearest[idx] >= 0]
    if len(idx) == 0:
        return
    total = len(chosen)
    marks = counted[idx]
    by_mark = np.argsort(marks, kind="stable")
    idx, marks = idx[by_mark], marks[by_mark]
    starts = np.flatnonzero(np.r_[True, marks[1:] != marks[:-1]])
    centres = np.asarray(chosen, dtype=np.int64)
    for begin, end in zip(starts, np.r_[starts[1:], len(idx)], strict=True):
        new = centres[int(marks[begin]) :]
        if len(new) == 0:
            continue
        scaled, centre_norms = -2.0 * x[new], norms[new]
        for row in range(begin, end, BLOCK):
            rows = idx[row : min(end, row + BLOCK)]
            products = x[rows] @ scaled.T  # |x|^2 - 2 x.c + |c|^2, with |x|^2 added after the minimum
            products += centre_norms
            d2 = np.maximum(products.min(axis=1) + norms[rows], 0.0)
            nearest[rows] = np.minimum(nearest[rows], d2)
    counted[idx] = total


def _frontier_best(
    x: np.ndarray, norms: np.ndarray, chosen: list[int], order: np.ndarray, top: np.ndarray, seen: np.ndarray
) -> int:
    """Position of the frontier's exact best (ties: lowest index), refreshing only the head of its bounds."""
    total = len(chosen)
    head = 64
    while True:
        candidates = np.arange(len(top)) if len(top) <= head else np.argpartition(-top, head)[:head]
        stale = candidates[(seen[candidates] < total) & (top[candidates] >= 0)]
        if len(stale):
            since = int(seen[stale].min())
            new = np.asarray(chosen[since:], dtype=np.int64)
            rows = order[stale]
            d2 = sq_dist(x[rows], norms[rows], x[new], norms[new])
            d2[np.arange(len(new))[None, :] < (seen[stale] - since)[:, None]] = np.inf  # already counted
            top[stale] = np.minimum(top[stale], d2.min(axis=1))
            seen[stale] = total
        best = top[candidates].max()
        if len(candidates) == len(top):
            break
        rest = np.ones(len(top), dtype=bool)
        rest[candidates] = False
        if best > top[rest].max():  # ties: widen, for the lowest index
            break
        head *= 2
    tied = candidates[top[candidates] == best]
    return int(tied[np.argmin(order[tied])])


class KCenter(Selector):
    """k-center greedy on the candidates' embeddings."""

    name = "kcenter"
    options = (SEED,)
    embeds = True

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return kcenter_greedy(candidates.vectors(), size, random_state=self.params["random_state"])
