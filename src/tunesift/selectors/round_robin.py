"""Round-robin across tasks (Ivison et al. 2025, ``get_top_aggregated_influences.py`` with ``round_robin``): each
task in turn takes its best sample not yet taken, so every target task gets its share of the budget.

Each task's list is sorted by its score, highest first, ties by pool position (earlier first). A sample that
another task already took is not added again, and the task's turn is spent (it pops again only next round).
With one task this is the top of that task's ranking.
"""

from __future__ import annotations

import numpy as np

from tunesift.options import Option
from tunesift.selectors.base import Candidates, Selector, check_budget


def round_robin(scores: np.ndarray, k: int) -> list[int]:
    """Rows of ``scores`` (n samples x K tasks, higher is better), in pick order, at most ``k`` distinct."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    n, tasks = scores.shape
    if n == 0:
        return []
    k = check_budget(k, n)
    # stable sort of the negated score: ties keep pool order; no task needs more than k + (its turns spent) heads
    orders = [np.argsort(-scores[:, t], kind="stable") for t in range(tasks)]
    taken: set[int] = set()
    picked: list[int] = []
    heads = [0] * tasks
    while len(picked) < k:
        moved = False
        for t in range(tasks):
            if len(picked) >= k:
                break
            if heads[t] >= n:
                continue
            i = int(orders[t][heads[t]])
            heads[t] += 1
            moved = True
            if i not in taken:
                taken.add(i)
                picked.append(i)
        if not moved:
            break
    return picked


class RoundRobin(Selector):
    """Each task's best in turn, over a targeted method's per-task column (``<by>_by_query``); with one task,
    the top of ``by``. Candidates with no score are left out."""

    name = "round-robin"
    options = (Option("by", str | None, None, "The targeted score column (default: the method's own)."),)

    def select(self, candidates: Candidates, size: int) -> list[int]:
        by = self.params["by"] or candidates.score_field
        per_task = f"{by}_by_query"
        positions, rows = [], []
        for pos, index in enumerate(candidates.indices):
            row = candidates.rows[index]
            several = row.get(per_task)
            if several is not None:
                positions.append(pos)
                rows.append(several)
            elif (value := candidates.value(index, by)) is not None:
                positions.append(pos)
                rows.append([value])
        if not rows:
            return []
        return [positions[p] for p in round_robin(np.array(rows, dtype=np.float64), size)]
