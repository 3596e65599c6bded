"""Methods as data: a YAML recipe names a scorer and the selection steps after it.

A recipe is checked whole before anything runs (unknown scorer, option, step or column is an error naming
it), then executed in-process: score the pool (cached), then apply the steps in order to the list of
candidate records::

    name: cherry
    description: Cherry LLM ...
    budget: {rate: 0.05}              # optional default when the user gives none ("all": keep every candidate)
    score: {scorer: ifd, variant: cherry}
    steps:
      - filter: "ifd <= 1"            # COLUMN OP NUMBER; unscored samples never pass
      - rank: {by: ifd, order: desc}  # ties: pool order
      - cut: {rate: 0.2, of: pool}    # an intermediate budget (Superfiltering.D's k1)
      - select: {method: top, of: candidates}   # the last step, to the run's budget

``select`` methods: top, random, longest, kcenter, facility-location, deita, cluster-top, dq, instag (each with its
own options; ``embedder: minilm | lm``). ``of`` says what a rate counts: the whole ``pool`` or the
``candidates`` left by the steps before. The built-in recipes are the YAML files beside this module.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesift.errors import ConfigError, InputError
from tunesift.scorers.registry import SCORERS, Option, check_options, columns_of, get_scorer
from tunesift.selectors.rules import Budget, Selection, apply_steps

if TYPE_CHECKING:
    from tunesift.execution import Executor

BUILTIN_DIR = Path(__file__).parent
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}  # fmt: skip
_FILTER = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(<=|>=|==|!=|<|>)\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*$")
SELECT_OPTIONS: dict[str, set[str]] = {
    "top": set(),
    "random": {"random_state"},
    "longest": set(),
    "kcenter": {"embedder", "random_state"},
    "facility-location": {"embedder"},
    "deita": {"embedder", "by", "tau"},
    "cluster-top": {"embedder", "by", "clusters", "per_cluster", "random_state"},
    "dq": {"embedder", "bins", "random_state"},
    "instag": set(),
}
EMBEDDER_OPTIONS = {"embedder", "embed_model", "embed_text", "embed_template"}
STEP_KINDS = ("filter", "rank", "cut", "select")
EXECUTOR_KEYS = {"name", "ray_address", "actors", "gpus_per_actor", "cpus_per_actor"}

# Options of a run that change the recipe's final selection or its cut (default: the recipe's own values).
SELECT_OVERRIDES: dict[str, Option] = {
    "random_state": Option(
        "random_state",
        int | None,
        None,
        "Seed of the random, k-center or k-means selection (default: the recipe's, 0).",
        flag="--seed",
    ),
    "tau": Option(
        "tau",
        float | None,
        None,
        "deita: admit a sample only below this cosine similarity to every admitted one (default: the recipe's, 0.9).",
    ),
    "clusters": Option("clusters", int | None, None, "k-means clusters on the embeddings (default: the recipe's)."),
    "per_cluster": Option("per_cluster", int | None, None, "Samples taken per cluster (default: budget / clusters)."),
    "bins": Option(
        "bins", int | None, None, "dq: bins the pool is split into before sampling (default: the recipe's, 10)."
    ),
}
CUT_RATE = Option("cut_rate", float | None, None, "Share of the pool kept by the cut before the final selection "
                  "(Superfiltering.D's k1; default: the recipe's, 0.2).", flag="--k1-rate")  # fmt: skip
THRESHOLD = Option("threshold", float | None, None, "The value the recipe's filter compares against (default: the "
                   "recipe's own, e.g. 4.5 for alpagasus and self-curation, 1 for cherry).")  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """A checked recipe: ``score`` holds the scorer name under ``scorer`` and its options."""

    name: str
    description: str
    steps: tuple[dict[str, Any], ...]
    score: dict[str, Any] = field(default_factory=dict)
    budget: Budget | None = None
    source: str = ""
    keep_all: bool = False  # with no budget from the user, keep every candidate (AlpaGasus keeps all >= 4.5)
    executor: dict[str, Any] | None = None  # where it runs unless the user says: {name: ray, actors: 2, ...}

    @property
    def scorer(self) -> str | None:
        return self.score.get("scorer")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name, or a user's YAML file, checked whole."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix and (BUILTIN_DIR / f"{name_or_path}.yaml").exists():
        path = BUILTIN_DIR / f"{name_or_path}.yaml"
    elif not path.exists():
        known = ", ".join(builtin_names())
        raise ConfigError("recipe", f"no recipe {str(name_or_path)!r}: give a YAML file or one of {known}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read the recipe: {err}", path=path) from None
    return parse_recipe(raw, source=str(path))


def parse_recipe(raw: Any, source: str = "<recipe>") -> Recipe:
    """Check a recipe's structure, scorer, options, steps and columns before anything runs."""

    def bad(message: str, key: str | None = None) -> InputError:
        return InputError(message, path=source, field=key)

    if not isinstance(raw, dict):
        raise bad("a recipe is a mapping with name, description, score and steps")
    unknown = set(raw) - {"name", "description", "budget", "score", "steps", "executor"}
    if unknown:
        raise bad(f"unknown key(s) {sorted(unknown)}", sorted(unknown)[0])
    name = raw.get("name") or Path(source).stem
    score = dict(raw.get("score") or {})
    scorer = score.get("scorer")
    if score and scorer not in SCORERS:
        raise bad(f"unknown scorer {scorer!r}; choose one of {', '.join(SCORERS)}", "score.scorer")
    if scorer:
        check_options(scorer, {k: v for k, v in score.items() if k != "scorer"}, where=f"{source}: score")
    budget = None
    keep_all = raw.get("budget") == "all"
    if raw.get("budget") is not None and not keep_all:
        try:
            budget = Budget(**raw["budget"])
        except (TypeError, ConfigError) as err:
            raise bad(f"bad budget: {err}", "budget") from None
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise bad("needs a non-empty list of steps", "steps")
    columns = columns_of(scorer)
    checked = []
    for number, step in enumerate(steps):
        where = f"steps[{number}]"
        if not isinstance(step, dict) or len(step) != 1 or next(iter(step)) not in STEP_KINDS:
            raise bad(f"each step is one of {', '.join(STEP_KINDS)}", where)
        kind, body = next(iter(step.items()))
        if kind == "filter":
            match = _FILTER.match(str(body))
            if not match or match.group(1) not in columns:
                raise bad(f"filter {body!r}: expected 'COLUMN OP NUMBER' over {', '.join(columns)}", where)
            body = {"column": match.group(1), "op": match.group(2), "value": float(match.group(3))}
        elif kind == "rank":
            body = {"by": body} if isinstance(body, str) else dict(body or {})
            if body.get("by") not in columns or body.get("order", "desc") not in ("asc", "desc"):
                raise bad(f"rank needs by: one of {', '.join(columns)} and order: asc|desc", where)
        elif kind == "cut":
            body = dict(body or {})
            if body.get("of", "pool") not in ("pool", "candidates"):
                raise bad("cut: 'of' is pool or candidates", where)
            try:
                Budget(rate=body.get("rate"), count=body.get("count"))
            except ConfigError as err:
                raise bad(f"cut: {err}", where) from None
        else:
            body = dict(body or {})
            method = body.get("method")
            if method not in SELECT_OPTIONS:
                raise bad(f"select needs method: one of {', '.join(SELECT_OPTIONS)}", where)
            allowed = {"method", "of"} | SELECT_OPTIONS[method]
            if "embedder" in allowed:
                allowed |= EMBEDDER_OPTIONS
            extra = set(body) - allowed
            if extra:
                raise bad(f"select {method}: unknown option(s) {sorted(extra)}", where)
            if body.get("of", "pool") not in ("pool", "candidates"):
                raise bad("select: 'of' is pool or candidates", where)
            if "by" in SELECT_OPTIONS[method] and body.get("by", scorer and columns[0]) not in columns:
                raise bad(f"select {method}: by must be one of {', '.join(columns)}", where)
            if number != len(steps) - 1:
                raise bad("select must be the last step", where)
        checked.append({kind: body})
    if "select" not in checked[-1]:
        raise bad("the last step must be a select", f"steps[{len(steps) - 1}]")
    executor = raw.get("executor")
    if executor is not None:
        executor = {"name": executor} if isinstance(executor, str) else executor
        if (
            not isinstance(executor, dict)
            or executor.get("name") not in ("local", "ray")
            or set(executor) - EXECUTOR_KEYS
        ):
            raise bad(f"executor is local or ray, or a mapping of {sorted(EXECUTOR_KEYS)}", "executor")
    return Recipe(name, str(raw.get("description", "")), tuple(checked), score, budget, source, keep_all, executor)


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
    from tunesift.scoring import ScoreTable, default_executor

    executor = default_executor(executor, device)
    if recipe.scorer:
        options = {k: v for k, v in recipe.score.items() if k != "scorer"}
        options.update(score_options or {})
        check_options(recipe.scorer, options, where=recipe.name)
        _check_needs(recipe, options)
        table = get_scorer(recipe.scorer).load()(pool, **options, store_dir=store_dir, executor=executor,
                                                 progress=progress)  # fmt: skip
    else:  # no model score: the subset and manifest carry each record's response length
        rows = [{"index": item.index, "id": getattr(item, "content_id", None),
                 "response_chars": float(len(item.output)) if hasattr(item, "output") else None,
                 "skip_reason": None if hasattr(item, "output") else "invalid_record"} for item in pool]  # fmt: skip
        table = ScoreTable({"method": recipe.name}, rows, score_field="response_chars", columns=("response_chars",))
    budget = budget or recipe.budget
    if budget is not None and budget.count is not None and budget.count > len(pool):
        raise ConfigError("count", f"{budget.count} is more than the pool's {len(pool)} records")
    if budget is None and not recipe.keep_all:
        raise ConfigError("rate/count", f"recipe {recipe.name!r} has no default budget: give --rate or --count")
    rows = table.rows
    valid = [row["index"] for row in rows if row.get("id") is not None]

    def value(i: int, column: str) -> float | None:
        v = rows[i].get(column)
        return v if v is not None and math.isfinite(v) else None

    steps = list(recipe.steps)
    if select_options:
        steps[-1] = {"select": {**steps[-1]["select"], **select_options}}

    def select(body: dict[str, Any], candidates: list[int], size: int) -> list[int]:
        return _select(body, candidates, size, value, table, pool, store_dir, executor, progress)

    chosen, candidates = apply_steps(steps, valid, len(pool), budget, value, select)
    n_scored = sum(1 for i in valid if value(i, table.score_field) is not None)
    selection = Selection(chosen, len(pool), n_scored, len(candidates), recipe.name)
    return RecipeRun(table, selection)


def _check_needs(recipe: Recipe, options: dict[str, Any]) -> None:
    """A step over a column that only exists with an option (InstructMining's ``rule``) needs that option."""
    needs = get_scorer(recipe.scorer).needs
    for step in recipe.steps:
        for body in step.values():
            for column in (body.get("by"), body.get("column")):
                option = needs.get(column) if column else None
                if option and options.get(option) is None:
                    flag = "--" + option.replace("_", "-")
                    raise ConfigError(option.replace("_", "-"), f"recipe {recipe.name!r} uses the column {column!r}, "
                                      f"which needs {flag} (e.g. a rule written by fit-indicators)")  # fmt: skip


def _response_chars(pool: Any, indices: list[int]) -> list[int]:
    """Response lengths (characters) of the records at ``indices``, in that order, in one streaming pass."""
    wanted = set(indices)
    lengths = {item.index: len(item.output) for item in pool if item.index in wanted}
    return [lengths[i] for i in indices]


def _select(body, candidates, size, value, table, pool, store_dir, executor, progress) -> list[int]:
    """The final set-level selection over ``candidates`` (pool indices, in their current order)."""
    from tunesift.selectors import clusters, diversity

    method = body["method"]
    if size == 0 or not candidates:
        return []
    if method == "top":
        return candidates[:size]
    if method == "random":
        return [candidates[p] for p in diversity.random_select(len(candidates), size,
                                                               random_state=body.get("random_state", 0))]  # fmt: skip
    if method == "longest":
        return [candidates[p] for p in diversity.longest(_response_chars(pool, candidates), size)]
    if method == "instag":  # complexity-first diverse sampling over the normalised tags
        from tunesift.scorers.instag import coverage_select

        return [candidates[p] for p in coverage_select([table.rows[i].get("instag_tags") for i in candidates], size)]
    from tunesift.embeddings import embed_pool

    embed = {"embedder": body.get("embedder", "minilm")}
    for key in ("model", "text", "template"):
        if f"embed_{key}" in body:
            embed[key] = body[f"embed_{key}"]
    vectors = embed_pool(pool, indices=candidates, store_dir=store_dir, executor=executor, progress=progress,
                         **embed).vectors  # fmt: skip
    by = body.get("by", table.score_field)
    if method == "kcenter":
        picks = diversity.kcenter_greedy(vectors, size, random_state=body.get("random_state", 0))
    elif method == "facility-location":
        picks = diversity.facility_location(vectors, size)
    elif method == "dq":
        from tunesift.selectors.dq import DEFAULT_BINS, dq_select

        picks = dq_select(vectors, size, bins=body.get("bins", DEFAULT_BINS), random_state=body.get("random_state", 0))
    elif method == "deita":
        picks = diversity.deita_filter([value(i, by) for i in candidates], vectors, size, tau=body.get("tau", 0.9))
    else:  # cluster-top
        labels = clusters.kmeans_labels(vectors, body.get("clusters", 100), random_state=body.get("random_state", 0))
        n_clusters = len(set(labels.tolist()))
        per_cluster = body.get("per_cluster") or max(1, math.ceil(size / n_clusters))
        picks = clusters.cluster_top_k(labels, [value(i, by) for i in candidates], per_cluster)
        picks = sorted(picks, key=lambda p: (-value(candidates[p], by), candidates[p]))[:size]
    return [candidates[p] for p in picks]
