"""Combining the scores of a conversation's assistant turns into one sample score (METHODS.md §5)."""

from __future__ import annotations

from collections.abc import Sequence

from tunesift.errors import ConfigError

TURN_RULES = ("mean", "min", "max", "last", "wmean")


def check_turn_rule(rule: str) -> str:
    if rule not in TURN_RULES:
        raise ConfigError("turns", f"unknown rule {rule!r}; choose one of {', '.join(TURN_RULES)}")
    return rule


def aggregate(values: Sequence[float | None], weights: Sequence[float], rule: str) -> float | None:
    """One score from per-turn scores; skipped turns (None) are left out, and ``last`` takes the last turn.

    ``wmean`` weighs each turn by its number of response tokens. None when no turn counts.
    """
    check_turn_rule(rule)
    if rule == "last":
        return values[-1] if values else None
    kept = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
    if not kept:
        return None
    if rule == "mean":
        return sum(v for v, _ in kept) / len(kept)
    if rule == "min":
        return min(v for v, _ in kept)
    if rule == "max":
        return max(v for v, _ in kept)
    total = sum(w for _, w in kept)
    return sum(v * w for v, w in kept) / total if total else None
