"""INSTAG's complexity-first diverse sampling (the paper's Algorithm 1) over the normalised tags."""

from __future__ import annotations

from collections.abc import Sequence

from tunesift.selectors.base import Candidates, Selector


def coverage_select(tags: Sequence[Sequence[str] | None], k: int) -> list[int]:
    """Complexity-first diverse sampling (the paper's Algorithm 1): positions in order of tag count (most
    first; ties: earliest), a pass keeping each one that adds a tag the pass has not covered; passes repeat
    over what is left, each with an empty cover, until ``k`` are kept or a pass keeps none."""
    order = sorted((p for p, t in enumerate(tags) if t), key=lambda p: (-len(tags[p]), p))
    chosen: list[int] = []
    while len(chosen) < k and order:
        covered: set[str] = set()
        left = []
        for p in order:
            if len(chosen) < k and not set(tags[p]) <= covered:
                chosen.append(p)
                covered |= set(tags[p])
            else:
                left.append(p)
        if len(left) == len(order):
            break
        order = left
    return chosen


class InsTagCoverage(Selector):
    """Most tags first, each sample kept only where it adds a tag the pass has not covered."""

    name = "instag"

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return coverage_select([candidates.rows[i].get("instag_tags") for i in candidates.indices], size)
