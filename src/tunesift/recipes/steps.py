"""The step engine of recipes and the selection rules built on it (they never call a model).

A rule (``cherry``, ``superfilter``, ``top``, ``bottom``, ``alpagasus``) is its built-in recipe's steps run
over one column, so ``tunesift select --rule cherry`` and ``tunesift run cherry`` share one implementation.
Ties are broken by pool position (earlier first), so a selection is deterministic.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from tunesift.errors import ConfigError
from tunesift.selectors.base import Budget, Selection

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}  # fmt: skip

Value = Callable[[int, str], "float | None"]
SelectFn = Callable[[dict[str, Any], list[int], int], list[int]]
CleanFn = Callable[[str, dict[str, Any], list[int]], list[int]]


def apply_steps(
    steps: Sequence[dict[str, Any]],
    candidates: list[int],
    n_pool: int,
    budget: Budget | None,
    value: Value,
    select: SelectFn | None = None,
    clean: CleanFn | None = None,
    text: Callable[[int, str], str | None] | None = None,
) -> tuple[list[int], list[int]]:
    """Run a recipe's steps over candidate pool indices: the one implementation of every selection rule.

    ``filter`` keeps candidates whose column passes (an unscored sample never does; a text column's value, read
    by ``text``, must be in or out of the filter's words); ``rank`` orders the
    scored ones (ties: pool order; unscored ones are dropped); ``cut`` keeps an intermediate budget; the
    final ``select`` takes ``budget`` of ``pool`` (the whole pool's size) or of the ``candidates`` left,
    by ``top`` here or by ``select(body, candidates, size)`` for set-level methods; ``dedup``, ``decontaminate``
    and ``per_question`` keep the candidates ``clean(kind, body, candidates)`` returns (the first of each group
    of duplicates; those no evaluation item covers; one response per question). Returns the chosen indices in rank
    order and the candidates the final select saw.
    """
    chosen: list[int] = []
    for step in steps:
        kind, body = next(iter(step.items()))
        if kind in ("dedup", "decontaminate", "per_question"):
            if clean is None:
                raise ConfigError(kind, f"a {kind} step needs the recipe executor (the pool's texts)")
            kept = set(clean(kind, body, candidates))
            candidates = [i for i in candidates if i in kept]
        elif kind == "filter" and body["op"] in ("in", "not in"):  # a text column against words
            if text is None:
                raise ConfigError("filter", f"a filter over the text column {body['column']!r} needs its values")
            inside, words, column = body["op"] == "in", set(body["value"]), body["column"]
            candidates = [i for i in candidates if (t := text(i, column)) is not None and (t in words) == inside]
        elif kind == "filter":
            op = OPERATORS[body["op"]]
            candidates = [i for i in candidates if (v := value(i, body["column"])) is not None and op(v, body["value"])]
        elif kind == "rank":
            sign = -1.0 if body.get("order", "desc") == "desc" else 1.0
            scored = [i for i in candidates if value(i, body["by"]) is not None]
            candidates = sorted(scored, key=lambda i: (sign * value(i, body["by"]), i))
        elif kind == "cut":
            base = n_pool if body.get("of", "pool") == "pool" else len(candidates)
            cut = Budget(rate=body.get("rate"), count=body.get("count"))
            candidates = candidates[: cut.size(base=base, available=len(candidates))]
        else:
            base = n_pool if body.get("of", "pool") == "pool" else len(candidates)
            size = budget.size(base=base, available=len(candidates)) if budget else len(candidates)
            if body["method"] == "top":
                chosen = candidates[:size]
            elif select is None:
                raise ConfigError("method", f"select {body['method']!r} needs the recipe executor")
            else:
                chosen = select(body, candidates, size)
    return chosen, candidates


# A rule is a built-in recipe's steps, run over any one score column: the recipe's own column is renamed.
RULE_RECIPES = {"cherry": "cherry", "superfilter": "superfiltering", "top": "selectit", "alpagasus": "alpagasus",
                "bottom": "instructmining", "self-curation": "self-curation"}  # fmt: skip


def rule_steps(rule: str, column: str = "score") -> list[dict[str, Any]]:
    """The steps of a rule, over ``column``: those of its built-in recipe (``RULE_RECIPES``)."""
    from tunesift.recipes.load import load_recipe

    if rule not in RULE_RECIPES:
        raise ConfigError("rule", f"unknown rule {rule!r}; choose one of {', '.join(RULE_RECIPES)}")
    recipe = load_recipe(RULE_RECIPES[rule])
    own = [body.get("by") or body.get("column") for step in recipe.steps for body in step.values()]
    renamed = {c: column for c in own if c}

    def rename(body: dict[str, Any]) -> dict[str, Any]:
        return {k: renamed.get(v, v) if k in ("by", "column") else v for k, v in body.items()}

    return [{kind: rename(body) for kind, body in step.items()} for step in recipe.steps]


def why_empty(score_field: str, skipped: dict[str, int], n_scored: int, candidates: list[int],
              steps: Sequence[dict[str, Any]]) -> str:  # fmt: skip
    """One line saying why a selection came out empty."""
    if n_scored == 0:
        return f"no record has a score in {score_field}" + (f" (skipped: {skipped})" if skipped else "")
    if not candidates:
        filters = [f"{b['column']} {b['op']} {b['value'] if isinstance(b['value'], list) else format(b['value'], 'g')}"
                   for s in steps for k, b in s.items() if k == "filter"]  # fmt: skip
        return "no scored record passed " + (" and ".join(filters) if filters else "the steps")
    return f"the budget keeps 0 of the {len(candidates)} candidates"


def select_by_rule(rule: str, scores: Sequence[float | None], budget: Budget) -> Selection:
    """Apply a rule to one score column (never calls a model)."""
    steps = rule_steps(rule)

    def value(i: int, column: str) -> float | None:
        v = scores[i]
        return v if v is not None and math.isfinite(v) else None

    n_scored = sum(1 for i in range(len(scores)) if value(i, "score") is not None)
    chosen, candidates = apply_steps(steps, list(range(len(scores))), len(scores), budget, value)
    empty = None if chosen else why_empty("score", {}, n_scored, candidates, steps)
    return Selection(chosen, len(scores), n_scored, len(candidates), rule, tuple(steps), empty)


def select_cherry(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Cherry: drop IFD > 1 (exactly 1 is kept), rank the rest highest first, keep ``int(rate * survivors)``."""
    return select_by_rule("cherry", scores, budget)


def select_superfilter(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Superfiltering: keep IFD < 1 strictly, highest first, ``int(rate * pool size)`` as the authors' code.

    The rate counts the whole pool (their script uses the Alpaca size, 52002), not the survivors.
    """
    return select_by_rule("superfilter", scores, budget)


def select_top(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Rank every scored sample highest first, no threshold; ``int(rate * pool size)`` (SelectIT)."""
    return select_by_rule("top", scores, budget)


def select_bottom(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Rank every scored sample lowest first (a predicted loss: InstructMining); ``int(rate * pool size)``."""
    return select_by_rule("bottom", scores, budget)


def select_alpagasus(scores: Sequence[float | None], budget: Budget) -> Selection:
    """AlpaGasus: keep judge scores >= 4.5, highest first; ``int(rate * pool size)``."""
    return select_by_rule("alpagasus", scores, budget)


def select_self_curation(scores: Sequence[float | None], budget: Budget) -> Selection:
    """Self-curation (Humpback): keep ratings >= 4.5 (the paper's A5, the 5s), highest first."""
    return select_by_rule("self-curation", scores, budget)


RULES: dict[str, Callable[[Sequence[float | None], Budget], Selection]] = {
    "cherry": select_cherry,
    "superfilter": select_superfilter,
    "top": select_top,
    "bottom": select_bottom,
    "alpagasus": select_alpagasus,
    "self-curation": select_self_curation,
}
