"""Threshold-and-rank selection rules over one score column (they never call a model).

Ties are broken by pool position (earlier first), so a selection is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tunesift.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    """How many to keep: a ``rate`` of the base count the rule defines, or an exact ``count``."""

    rate: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.count is None):
            raise ConfigError("rate/count", "give exactly one of --rate or --count")
        if self.rate is not None and not 0.0 < self.rate <= 1.0:
            raise ConfigError("rate", f"must be in (0, 1], got {self.rate}")
        if self.count is not None and self.count < 1:
            raise ConfigError("count", f"must be a positive number, got {self.count}")

    def size(self, base: int, available: int) -> int:
        wanted = int(self.rate * base) if self.rate is not None else self.count
        return min(wanted, available)


@dataclass(frozen=True)
class Selection:
    """Chosen pool indices in rank order, with the counts a manifest reports."""

    indices: list[int]
    n_pool: int
    n_scored: int
    n_candidates: int
    rule: str


def _rank(scores: Sequence[float | None], keep: Callable[[float], bool]) -> list[int]:
    candidates = [i for i, s in enumerate(scores) if s is not None and math.isfinite(s) and keep(s)]
    return sorted(candidates, key=lambda i: (-scores[i], i))


def _n_scored(scores: Sequence[float | None]) -> int:
    return sum(1 for s in scores if s is not None and math.isfinite(s))


def select_cherry(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Cherry: drop IFD > 1 (exactly 1 is kept), rank the rest highest first, keep ``int(rate * survivors)``."""
    ranked = _rank(scores, lambda s: s <= 1.0)
    size = budget.size(base=len(ranked), available=len(ranked))
    return Selection(ranked[:size], len(scores), _n_scored(scores), len(ranked), "cherry")


def select_superfilter(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Superfiltering: keep IFD < 1 strictly, highest first, ``int(rate * pool size)`` as the authors' code.

    The rate counts the whole pool (their script uses the Alpaca size, 52002), not the survivors.
    """
    ranked = _rank(scores, lambda s: s < 1.0)
    size = budget.size(base=len(scores), available=len(ranked))
    return Selection(ranked[:size], len(scores), _n_scored(scores), len(ranked), "superfilter")


def select_top(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Rank every scored sample highest first, no threshold; ``int(rate * pool size)`` (SelectIT)."""
    ranked = _rank(scores, lambda s: True)
    size = budget.size(base=len(scores), available=len(ranked))
    return Selection(ranked[:size], len(scores), _n_scored(scores), len(ranked), "top")


def select_bottom(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Rank every scored sample lowest first (a predicted loss: InstructMining); ``int(rate * pool size)``."""
    candidates = [i for i, s in enumerate(scores) if s is not None and math.isfinite(s)]
    ranked = sorted(candidates, key=lambda i: (scores[i], i))
    size = budget.size(base=len(scores), available=len(ranked))
    return Selection(ranked[:size], len(scores), _n_scored(scores), len(ranked), "bottom")


def select_alpagasus(scores: Sequence[float | None], budget: Budget) -> Selection:
    """AlpaGasus: keep judge scores >= 4.5, highest first; ``int(rate * pool size)``."""
    ranked = _rank(scores, lambda s: s >= 4.5)
    size = budget.size(base=len(scores), available=len(ranked))
    return Selection(ranked[:size], len(scores), _n_scored(scores), len(ranked), "alpagasus")


RULES: dict[str, Callable[[Sequence[float | None], Budget], Selection]] = {
    "cherry": select_cherry,
    "superfilter": select_superfilter,
    "top": select_top,
    "bottom": select_bottom,
    "alpagasus": select_alpagasus,
}


def select_by_rule(rule: str, scores: Sequence[float | None], budget: Budget) -> Selection:
    try:
        return RULES[rule](scores, budget)
    except KeyError:
        raise ConfigError("rule", f"unknown rule {rule!r}; choose one of {', '.join(RULES)}") from None
