"""The longest responses first: a strong baseline (Zhao et al. 2024, "Long is more for alignment")."""

from __future__ import annotations

from collections.abc import Sequence

from tunesift.selectors.base import Candidates, Selector, check_budget


def longest(lengths: Sequence[int], k: int) -> list[int]:
    """The k samples with the longest responses (ties by index)."""
    k = check_budget(k, len(lengths))
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))[:k]


class Longest(Selector):
    """The candidates with the longest responses (in characters): a strong baseline (Zhao et al. 2024)."""

    name = "longest"

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return longest(candidates.response_chars(), size)
