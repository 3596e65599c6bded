"""Run a recipe: score the pool (cached), then the steps over the candidate records, the last one a selector."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesift.data.table import ScoreTable
from tunesift.errors import ConfigError
from tunesift.execution.driver import default_executor, embed_pool, score
from tunesift.recipes.load import Recipe
from tunesift.recipes.steps import apply_steps, why_empty
from tunesift.scorers import check_options, get_method
from tunesift.selectors.base import Budget, Candidates, Selection, get_selector

if TYPE_CHECKING:
    from tunesift.execution import Executor


@dataclass
class RecipeRun:
    scores: Any  # ScoreTable
    selection: Selection


def execute(
    recipe: Recipe,
    pool: Any,
    budget: Budget | None,
    *,
    score_options: dict[str, Any] | None = None,
    select_options: dict[str, Any] | None = None,
    store_dir: str | Path | None = None,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
) -> RecipeRun:
    """Score ``pool`` as the recipe says (user ``score_options`` win over the recipe's), then run its steps.

    ``select_options`` override the final select step's options (e.g. ``random_state``, ``tau``); with no
    budget from the user or the recipe, the final select keeps every candidate. The pool is streamed: what
    is kept per record is its score row, never the record itself.
    """
    executor = default_executor(executor, device)
    steps = list(recipe.steps)
    if select_options:
        steps[-1] = {"select": {**steps[-1]["select"], **select_options}}
    final = steps[-1]["select"]
    selector = get_selector(final["method"])(**{k: v for k, v in final.items() if k not in ("method", "of")})
    selector.check(len(pool))  # options that cannot work on this pool are refused before any scoring
    _check_columns(recipe, selector.params)
    steps[-1] = {"select": {**final, **selector.params}}
    budget = budget or recipe.budget
    _check_budget(recipe, budget, len(pool))
    if recipe.scorer:
        options = {k: v for k, v in recipe.score.items() if k != "scorer"}
        options.update(score_options or {})
        check_options(recipe.scorer, options, where=recipe.name)
        _check_needs(recipe, options)
        table = score(recipe.scorer, pool, **options, store_dir=store_dir, executor=executor, progress=progress)
    else:  # no model score: the subset and manifest carry each record's response length
        if score_options:
            name = sorted(score_options)[0].replace("_", "-")
            takes = ", ".join(sorted(selector.params)) or "nothing"
            raise ConfigError(name, f"recipe {recipe.name!r} scores with no model, and its select step "
                              f"({final['method']}) has no such option; it takes {takes}")  # fmt: skip
        rows = [{"index": item.index, "id": getattr(item, "content_id", None),
                 "response_chars": float(len(item.output)) if hasattr(item, "output") else None,
                 "skip_reason": None if hasattr(item, "output") else "invalid_record"} for item in pool]  # fmt: skip
        # response_chars is the score only of 'longest'; random, dq, kcenter... rank by none (nor claim one)
        ranks = final["method"] == "longest" or any("response_chars" in (b.get("by"), b.get("column"))
                                                    for step in steps for b in step.values())  # fmt: skip
        kept = ("response_chars",) if ranks else ()
        table = ScoreTable({"method": recipe.name}, rows, score_field="response_chars", columns=kept)
    rows = table.rows
    valid = [row["index"] for row in rows if row.get("id") is not None]

    def value(i: int, column: str) -> float | None:
        v = rows[i].get(column)
        return v if v is not None and math.isfinite(v) else None

    def select(body: dict[str, Any], candidates: list[int], size: int) -> list[int]:
        if size == 0 or not candidates:
            return []
        selector.check(len(candidates))
        embed = {"embedder": selector.params.get("embedder", "minilm")}
        for key in ("model", "text", "template"):
            if selector.params.get(f"embed_{key}") is not None:
                embed[key] = selector.params[f"embed_{key}"]
        embed["minilm_text"] = selector.minilm_text

        def vectors() -> Any:
            return embed_pool(pool, indices=candidates, store_dir=store_dir, executor=executor, progress=progress,
                              **embed).vectors  # fmt: skip

        def chars() -> list[int]:
            return _response_chars(pool, candidates)

        def field(name: str) -> list[Any]:
            return _record_field(pool, candidates, name)

        def embed_texts(texts: list[str]) -> Any:
            from tunesift.models.minilm import MiniLMEmbedder

            return MiniLMEmbedder(device=device).embed(texts)

        def samples() -> list[Any]:
            return _samples(pool, candidates)

        seen = Candidates(candidates, value, rows, table.score_field, vectors, chars, field, embed_texts, samples)
        return [candidates[p] for p in selector.select(seen, size)]

    deduped: list[dict[str, Any]] = []
    decontaminated: list[dict[str, Any]] = []
    chosen_per_question: list[dict[str, Any]] = []

    def other_column(method: str, column: str, options: dict[str, Any]) -> list[float | None]:
        """Another method's column over the whole pool, through the same store (per_question's verified, length,
        grape): what the recipe's scorer already wrote is read from its own table."""
        if method == recipe.scorer and column in table.columns:
            return [value(i, column) for i in range(len(rows))]
        found = score(method, pool, **options, store_dir=store_dir, executor=executor, progress=progress)
        return [v if isinstance(v := r.get(column), float | int) and math.isfinite(v) else None for r in found.rows]

    def clean(kind: str, body: dict[str, Any], candidates: list[int]) -> list[int]:
        if kind == "per_question":
            from tunesift.recipes.per_question import per_question

            picked = per_question(pool, candidates, body["keep"], value, table.columns, other_column)
            chosen_per_question.append(picked.summary())
            return picked.kept
        if kind == "decontaminate":
            from tunesift.recipes.decontaminate import decontaminate_pool

            found = decontaminate_pool(pool, indices=candidates, **body)
            decontaminated.append(found.summary())
            return found.kept
        from tunesift.recipes.dedup import dedup_pool

        options = {k: v for k, v in body.items() if k != "method"}
        result = dedup_pool(pool, body["method"], indices=candidates, store_dir=store_dir, executor=executor,
                            progress=progress, **options)  # fmt: skip
        deduped.append(result.summary())
        return result.kept

    def text(i: int, column: str) -> str | None:
        v = rows[i].get(column)
        return v if isinstance(v, str) else None

    chosen, candidates = apply_steps(steps, valid, len(pool), budget, value, select, clean, text)
    n_scored = sum(1 for i in valid if value(i, table.score_field) is not None)
    empty = None if chosen else why_empty(table.score_field, table.skipped(), n_scored, candidates, steps)
    short = None
    if chosen and budget is not None and budget.count is not None and len(chosen) < budget.count:
        dropped = f"; dedup dropped {deduped[-1]['dropped']}" if deduped else ""
        dropped += f"; decontamination dropped {decontaminated[-1]['dropped']}" if decontaminated else ""
        short = (
            f"fewer than the {budget.count} asked for: the steps left {len(candidates)} candidates of "
            f"{len(valid)} valid records{dropped}"
        )
    selection = Selection(chosen, len(pool), n_scored, len(candidates), recipe.name, tuple(steps), empty,
                          deduped[-1] if deduped else None, getattr(selector, "details", None), short,
                          decontaminated[-1] if decontaminated else None,
                          chosen_per_question[-1] if chosen_per_question else None)  # fmt: skip
    return RecipeRun(table, selection)


def split_options(recipe: Recipe, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` given for a recipe as a whole (``-o KEY=VALUE``) as (scorer's, final select step's): a key the
    scorer does not declare and the final selector does goes to the selector, as ``tunesift run NAME --KEY``
    would; a key neither declares is refused naming both lists, before any work."""
    scorer = {o.name for o in get_method(recipe.scorer).options} if recipe.scorer else set()
    method = recipe.steps[-1]["select"]["method"]
    selector = {o.name for o in get_selector(method).options} - {"by"}
    for key in options:
        if key not in scorer | selector:
            scorer_says = "it scores with no model"
            if recipe.scorer:
                scorer_says = f"its scorer '{recipe.scorer}' takes {', '.join(sorted(scorer))}"
            takes = ", ".join(sorted(selector)) or "nothing"
            raise ConfigError(key.replace("_", "-"), f"recipe {recipe.name!r} has no such option: {scorer_says}; "
                              f"its select step ({method}) takes {takes}")  # fmt: skip
    select = {k: v for k, v in options.items() if k in selector and k not in scorer}
    return {k: v for k, v in options.items() if k not in select}, select


def _check_budget(recipe: Recipe, budget: Budget | None, n_pool: int) -> None:
    """A budget that cannot select anything, or more than there is, is refused before any work."""
    if budget is None:
        if not recipe.keep_all:
            raise ConfigError("rate/count", f"recipe {recipe.name!r} has no default budget: give --rate or --count")
        return
    budget.check(n_pool)


def _check_columns(recipe: Recipe, params: dict[str, Any]) -> None:
    """A select option that names a column (``by``, ``labels``) must name one the scorer writes: refused before
    any scoring, not after hours of it."""
    from tunesift.scorers import columns_of

    columns = columns_of(recipe.scorer)
    for option in ("by", "labels"):
        value = params.get(option)
        if value is not None and recipe.scorer and value not in columns:
            raise ConfigError(option, f"no column {value!r}: scorer {recipe.scorer!r} writes {', '.join(columns)}")


def _check_needs(recipe: Recipe, options: dict[str, Any]) -> None:
    """A step over a column that only exists with an option (InstructMining's ``rule``) needs that option."""
    needs = get_method(recipe.scorer).needs
    for step in recipe.steps:
        for body in step.values():
            for column in (body.get("by"), body.get("column")):
                option = needs.get(column) if column else None
                if option and options.get(option) is None:
                    flag = "--" + option.replace("_", "-")
                    raise ConfigError(option.replace("_", "-"), f"recipe {recipe.name!r} uses the column {column!r}, "
                                      f"which needs {flag} (e.g. a rule written by fit-indicators)")  # fmt: skip


def _record_field(pool: Any, indices: list[int], name: str) -> list[Any]:
    """The field ``name`` of the records at ``indices`` (None where absent), in that order, in one streaming pass."""
    wanted = set(indices)
    values = {item.index: item.record.get(name) if isinstance(item.record, dict) else None
              for item in pool if item.index in wanted}  # fmt: skip
    return [values[i] for i in indices]


def _samples(pool: Any, indices: list[int]) -> list[Any]:
    """The samples at ``indices``, in that order, in one streaming pass."""
    wanted = set(indices)
    found = {item.index: item for item in pool if item.index in wanted}
    return [found[i] for i in indices]


def _response_chars(pool: Any, indices: list[int]) -> list[int]:
    """Response lengths (characters) of the records at ``indices``, in that order, in one streaming pass."""
    wanted = set(indices)
    lengths = {item.index: len(item.output) for item in pool if item.index in wanted}
    return [lengths[i] for i in indices]
