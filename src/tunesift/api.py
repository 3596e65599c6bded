"""The public Python API; the CLI is a thin shell over these functions.

from tunesift import score_ifd, select, write_subset, read_pool, Budget
pool = read_pool("alpaca.json")
scores = score_ifd(pool)                       # cached: a second call does not touch the model
chosen = select(scores, rule="cherry", budget=Budget(rate=0.05))
write_subset("subset.json", pool, scores, chosen)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift.data.pools import Pool, read_pool
from tunesift.errors import ConfigError
from tunesift.outputs import (
    manifest_path,
    read_scores,
    rejects_path,
    scores_config_path,
    write_rejects,
    write_scores,
    write_subset,
)
from tunesift.scoring import ScoreTable, as_pool, score_ifd, score_selectit
from tunesift.selectors.rules import Budget, Selection, select_by_rule

__all__ = [
    "METHODS",
    "RECIPES",
    "Budget",
    "Pool",
    "Recipe",
    "RunResult",
    "ScoreTable",
    "Selection",
    "manifest_path",
    "read_pool",
    "read_scores",
    "rejects_path",
    "run_recipe",
    "run_set_method",
    "run_superfiltering_d",
    "score_ifd",
    "score_selectit",
    "scores_config_path",
    "select",
    "write_rejects",
    "write_scores",
    "write_subset",
]


def select(table: ScoreTable, rule: str, budget: Budget) -> Selection:
    """Apply a selection rule to a score table (never calls a model)."""
    return select_by_rule(rule, table.values(), budget)


@dataclass(frozen=True)
class Recipe:
    """A published method: a scorer with fixed options, then a selection rule."""

    scorer: str
    options: dict[str, Any]
    rule: str
    description: str
    default_rate: float | None = None


RECIPES: dict[str, Recipe] = {
    "cherry": Recipe(
        "ifd", {"variant": "cherry"}, "cherry",
        "Cherry LLM: IFD with the alpaca template; drop IFD > 1; keep the top rate of the rest",
    ),
    "superfiltering": Recipe(
        "ifd", {"variant": "superfilter"}, "superfilter",
        "Superfiltering: IFD (perplexity ratio, no template) from a small model; keep < 1; top rate of the pool",
    ),
    "selectit": Recipe(
        "selectit", {}, "top",
        "SelectIT: the raters' uncertainty-aware self-ratings (token/sentence/model level); top 20 % by default",
        default_rate=0.2,
    ),
}  # fmt: skip
# Every method `tunesift run` knows, with what it does (recipes plus the multi-stage superfiltering-d).
METHODS: dict[str, str] = {
    **{name: recipe.description for name, recipe in RECIPES.items()},
    "superfiltering-d": "Superfiltering.D: IFD < 1, top 20 % of the pool, then facility location on MiniLM "
    "embeddings down to the budget (2 % by default)",
    "deita-style": "IFD (Cherry) as the quality score, then DEITA's filter: cosine to every admitted sample < tau",
    "kcenter": "k-center greedy on all-MiniLM-L6-v2 embeddings (coverage, no quality score)",
    "random": "a seeded uniform sample: the baseline every comparison includes",
    "longest": "the longest responses (characters): the length baseline",
}
SCORERS: dict[str, Callable[..., ScoreTable]] = {"ifd": score_ifd, "selectit": score_selectit}
DEFAULT_RULES = {"ifd": "cherry", "selectit": "top"}


@dataclass
class RunResult:
    scores: ScoreTable
    selection: Selection
    manifest: Path


def run_recipe(
    name: str,
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget,
    *,
    scores_out: str | Path | None = None,
    **score_options: Any,
) -> RunResult:
    """Score and select in one go with a named method (``cherry``, ``superfiltering``, ``selectit``)."""
    if name not in RECIPES:
        raise ConfigError("method", f"unknown method {name!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    pool = as_pool(data)
    table = SCORERS[recipe.scorer](pool, **recipe.options, **score_options)
    if scores_out is not None:
        write_scores(scores_out, table)
    selection = select(table, recipe.rule, budget)
    manifest = write_subset(out, pool, table, selection, budget)
    write_rejects(out, pool)
    return RunResult(scores=table, selection=selection, manifest=manifest)


def run_superfiltering_d(
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget,
    *,
    k1_rate: float = 0.2,
    scores_out: str | Path | None = None,
    device: str | None = None,
    **score_options: Any,
) -> RunResult:
    """Superfiltering.D (METHODS.md §2): IFD < 1 ranked, top ``k1_rate`` of the pool, then greedy facility
    location on all-MiniLM-L6-v2 embeddings down to the budget (the authors: 20 % then 2 %), in pick order.
    """
    from tunesift.data.sample import Sample
    from tunesift.embeddings import MiniLMEmbedder
    from tunesift.selectors.diversity import facility_location
    from tunesift.selectors.rules import select_superfilter

    pool = as_pool(data)
    table = score_ifd(pool, variant="superfilter", device=device, **score_options)
    if scores_out is not None:
        write_scores(scores_out, table)
    first = select_superfilter(table.values(), Budget(rate=k1_rate))
    wanted = set(first.indices)
    by_index = {s.index: s for s in pool if isinstance(s, Sample) and s.index in wanted}
    size = budget.size(base=len(pool), available=len(first.indices))
    chosen: list[int] = []
    if size:
        embeddings = MiniLMEmbedder(device=device).embed_samples([by_index[i] for i in first.indices])
        chosen = [first.indices[p] for p in facility_location(embeddings, size)]
    selection = Selection(chosen, first.n_pool, first.n_scored, first.n_candidates, "superfiltering-d")
    manifest = write_subset(out, pool, table, selection, budget)
    write_rejects(out, pool)
    return RunResult(scores=table, selection=selection, manifest=manifest)


SET_METHODS = ("random", "longest", "kcenter", "deita-style")


def run_set_method(
    name: str,
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget,
    *,
    random_state: int = 0,
    tau: float = 0.9,
    device: str | None = None,
    **score_options: Any,
) -> RunResult:
    """Baselines and embedding selectors, all to ``int(rate x pool size)`` or a count:

    ``random`` (seeded), ``longest`` (response characters; model-free), ``kcenter`` (k-center greedy on
    MiniLM embeddings), ``deita-style`` (IFD, Cherry variant, as the quality score, then DEITA's filter on
    MiniLM embeddings: cosine to every admitted sample below ``tau``).
    """
    from tunesift.data.sample import Sample
    from tunesift.selectors import diversity

    if name not in SET_METHODS:
        raise ConfigError("method", f"unknown method {name!r}; choose one of {', '.join(SET_METHODS)}")
    pool = as_pool(data)
    samples = {s.index: s for s in pool if isinstance(s, Sample)}
    valid = sorted(samples)
    size = budget.size(base=len(pool), available=len(valid))
    if name == "deita-style":
        table = score_ifd(pool, variant="cherry", device=device, **score_options)
    else:  # no model score: the subset and manifest carry each record's response length instead
        rows = [{"index": i, "id": samples[i].content_id if i in samples else None,
                 "response_chars": float(len(samples[i].output)) if i in samples else None,
                 "skip_reason": None if i in samples else "invalid_record"} for i in range(len(pool))]  # fmt: skip
        table = ScoreTable({"method": name}, rows, score_field="response_chars", columns=("response_chars",))
    if name == "random":
        chosen = [valid[p] for p in diversity.random_select(len(valid), size, random_state=random_state)]
    elif name == "longest":
        chosen = [valid[p] for p in diversity.longest([len(samples[i].output) for i in valid], size)]
    else:
        from tunesift.embeddings import MiniLMEmbedder

        embeddings = MiniLMEmbedder(device=device).embed_samples([samples[i] for i in valid])
        if name == "kcenter":
            chosen = [valid[p] for p in diversity.kcenter_greedy(embeddings, size, random_state=random_state)]
        else:
            scores = [table.rows[i]["ifd"] for i in valid]
            chosen = [valid[p] for p in diversity.deita_filter(scores, embeddings, size, tau=tau)]
    selection = Selection(chosen, len(pool), len(valid), len(valid), name)
    manifest = write_subset(out, pool, table, selection, budget)
    write_rejects(out, pool)
    return RunResult(scores=table, selection=selection, manifest=manifest)
