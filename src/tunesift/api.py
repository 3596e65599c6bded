"""The public Python API; the CLI is a thin shell over these functions.

from tunesift import score_ifd, select, write_subset, read_pool, Budget
pool = read_pool("alpaca.json")
scores = score_ifd(pool)                       # cached: a second call does not touch the model
chosen = select(scores, rule="cherry", budget=Budget(rate=0.05))
write_subset("subset.json", pool, scores, chosen)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift import __version__
from tunesift.atomic import atomic_open
from tunesift.data.pools import Pool, detect_format, read_pool, write_records
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError, InputError
from tunesift.models.registry import DEFAULT_MODEL, ResolvedModel, cache_root, resolve_model
from tunesift.scorers.ifd import SCORER_VERSION, IFDConfig, IFDScorer
from tunesift.selectors.rules import Budget, Selection, select_by_rule
from tunesift.store import ScoreStore

SCORE_ROW_KEYS = ("index", "id", "ifd", "loss_cond", "loss_direct", "n_tokens", "skip_reason")


@dataclass
class ScoreTable:
    """One row per pool record, in pool order, plus the configuration that produced the scores."""

    config: dict[str, Any]
    rows: list[dict[str, Any]]
    score_field: str = "ifd"
    columns: tuple[str, ...] = ("ifd", "loss_cond", "loss_direct", "n_tokens")

    def values(self) -> list[float | None]:
        return [row[self.score_field] for row in self.rows]

    def skipped(self) -> dict[str, int]:
        """Count of skipped samples by reason."""
        return dict(Counter(row["skip_reason"] for row in self.rows if row["skip_reason"] is not None))


def _as_pool(data: Pool | str | Path) -> Pool:
    return data if isinstance(data, Pool) else read_pool(data)


def _ifd_config(model: str, config: IFDConfig, dtype: str) -> dict[str, Any]:
    resolved = resolve_model(model)
    return {
        "scorer": "ifd",
        "version": SCORER_VERSION,
        "variant": config.variant,
        "template": config.template,
        "max_length": config.max_length,
        "model": resolved.name,
        "model_fingerprint": resolved.fingerprint,
        "dtype": dtype,
    }


def _fill_store(
    store: ScoreStore,
    cached: dict[str, dict[str, Any]],
    items: Sequence[tuple[str, Any]],
    compute: Callable[[list[Any], Callable[[float], None] | None], list[dict[str, Any]]],
    *,
    chunk_size: int,
    progress: bool,
    desc: str,
    units_per_item: int = 1,
    unit: str = "sample",
) -> None:
    """Compute the ``(key, item)`` pairs the store lacks, a chunk at a time, appending each chunk.

    ``compute`` gets a chunk of items (and a progress callback counting finished texts) and returns one
    result row per item. A killed run loses at most the chunk in flight.
    """
    seen: set[str] = set()
    missing = []
    for key, item in items:
        if key not in cached and key not in seen:
            seen.add(key)
            missing.append((key, item))
    if not missing:
        return
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(missing), unit=unit, desc=desc, dynamic_ncols=True)
    done = 0
    texts = 0

    def tick(n: float) -> None:
        # texts finished -> whole samples finished, so the bar never shows half a sample
        nonlocal texts
        texts += n
        bar.update(min(done + int(texts // units_per_item), len(missing)) - bar.n)

    for begin in range(0, len(missing), chunk_size):
        chunk = missing[begin : begin + chunk_size]
        texts = 0
        results = compute([item for _, item in chunk], tick if bar is not None else None)
        rows = [{"id": key, **result} for (key, _), result in zip(chunk, results, strict=True)]
        store.append(rows)
        cached.update((row["id"], row) for row in rows)
        done += len(chunk)
        if bar is not None:
            bar.n = done
            bar.refresh()
    if bar is not None:
        bar.close()


def _store_root(store_dir: str | Path | None) -> Path:
    return Path(store_dir) if store_dir else cache_root() / "scores"


def score_ifd(
    data: Pool | str | Path,
    *,
    model: str = DEFAULT_MODEL,
    variant: str = "cherry",
    template: str | None = None,
    max_length: int | None = None,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 128,
    device: str | None = None,
    lm: Any = None,
    progress: bool = False,
) -> ScoreTable:
    """IFD for every record of a pool, computing only what the score store does not hold yet.

    Results are appended to the store every ``chunk_size`` samples, so a killed run resumes where it
    stopped. ``lm`` may be a loaded :class:`~tunesift.models.CausalLM` (then ``model`` is ignored).
    """
    pool = _as_pool(data)
    cfg = IFDConfig(variant=variant, template=template, max_length=max_length).resolved()
    if lm is not None:
        scorer = IFDScorer(lm, cfg, token_budget=token_budget)
        config = scorer.describe()
    else:
        scorer = None
        config = _ifd_config(model, cfg, dtype="float32")
    store = ScoreStore(_store_root(store_dir), config)
    cached = store.load()

    def compute(samples: list[Sample], tick: Callable[[float], None] | None) -> list[dict[str, Any]]:
        nonlocal scorer
        if scorer is None:
            from tunesift.models.causal_lm import CausalLM

            scorer = IFDScorer(CausalLM.load(model, device=device), cfg, token_budget=token_budget)
        return [r.to_dict() for r in scorer.score(samples, on_progress=tick)]

    items = [(s.content_id, s) for s in pool.samples]
    _fill_store(
        store, cached, items, compute, chunk_size=chunk_size, progress=progress, desc=f"IFD ({cfg.variant})",
        units_per_item=2,
    )  # fmt: skip
    rows = []
    for sample in pool.samples:
        hit = cached[sample.content_id]
        rows.append({"index": sample.index, "id": sample.content_id, **{k: hit[k] for k in SCORE_ROW_KEYS[2:]}})
    return ScoreTable(config=config, rows=rows)


def _rater_ratings(
    pool: Pool,
    sentences: Sequence[str],
    rater_model: ResolvedModel,
    store_dir: str | Path | None,
    token_budget: int,
    chunk_size: int,
    device: str | None,
    progress: bool,
) -> dict[str, Any]:
    """One rater's ratings of every (sample, sentence), by ``content_id:prompt_id``; loads it only if needed."""
    from tunesift.scorers.selectit import SCORER_VERSION, Rating, SelectITRater, prompt_id

    store = ScoreStore(
        _store_root(store_dir),
        {
            "scorer": "selectit-rater",
            "version": SCORER_VERSION,
            "model": rater_model.name,
            "model_fingerprint": rater_model.fingerprint,
            "dtype": "float32",
        },
    )
    cached = store.load()
    rater: SelectITRater | None = None

    def compute(pairs: list[tuple[Sample, str]], tick: Callable[[float], None] | None) -> list[dict[str, Any]]:
        nonlocal rater
        if rater is None:
            from tunesift.models.causal_lm import CausalLM

            rater = SelectITRater(CausalLM.load(rater_model.name, device=device), token_budget)
        return [{"p": r.probs, "skip_reason": r.skip_reason} for r in rater.rate(pairs, on_progress=tick)]

    items = [(f"{s.content_id}:{prompt_id(t)}", (s, t)) for s in pool.samples for t in sentences]
    _fill_store(
        store, cached, items, compute, chunk_size=chunk_size * len(sentences), progress=progress,
        desc=f"SelectIT ({rater_model.name})", unit="rating",
    )  # fmt: skip
    return {
        key: Rating(None if row["p"] is None else tuple(row["p"]), row["skip_reason"]) for key, row in cached.items()
    }


def score_selectit(
    data: Pool | str | Path,
    *,
    models: Sequence[str] = (DEFAULT_MODEL,),
    k: int = 5,
    alpha: float = 0.2,
    level: str | None = None,
    token_prompt: int = 0,
    token_rule: str = "paper",
    prompts_file: str | Path | None = None,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 128,
    device: str | None = None,
    progress: bool = False,
) -> ScoreTable:
    """SelectIT scores (METHODS.md §3) for every record, every level kept.

    Each rater's five renormalised probabilities are cached per (sample, rating sentence), so changing
    ``alpha``, the level or the raters' mix recomputes nothing; raters are loaded one at a time.
    """
    from tunesift.models.registry import count_parameters
    from tunesift.scorers.selectit import (
        SCORER_VERSION as SELECTIT_VERSION,
    )
    from tunesift.scorers.selectit import SelectITConfig, combine, load_prompts, prompt_id

    pool = _as_pool(data)
    if not models:
        raise ConfigError("models", "give at least one rater")
    prompts = load_prompts(prompts_file)
    cfg = SelectITConfig(k, alpha, level, token_prompt, token_rule).resolved(len(models), len(prompts))
    sentences = [prompts[i] for i in cfg.prompt_indices()]
    resolved = [resolve_model(m) for m in models]
    n_parameters = [count_parameters(r) for r in resolved]
    ratings = [
        _rater_ratings(pool, sentences, r, store_dir, token_budget, chunk_size, device, progress) for r in resolved
    ]
    names = [r.name for r in resolved]
    rows = []
    for sample in pool.samples:
        per_rater = [[by_key[f"{sample.content_id}:{prompt_id(t)}"] for t in sentences] for by_key in ratings]
        rows.append({"index": sample.index, "id": sample.content_id, **combine(per_rater, names, n_parameters, cfg)})
    config = {
        "scorer": "selectit",
        "version": SELECTIT_VERSION,
        "raters": [
            {"model": r.name, "model_fingerprint": r.fingerprint, "n_parameters": n}
            for r, n in zip(resolved, n_parameters, strict=True)
        ],
        "prompts": sentences,
        "prompts_sha256": hashlib.sha256("\n".join(sentences).encode("utf-8")).hexdigest(),
        "k": cfg.k,
        "alpha": cfg.alpha,
        "level": cfg.level,
        "token_prompt": cfg.token_prompt if cfg.level == "token" else None,
        "token_rule": cfg.token_rule,
        "dtype": "float32",
    }
    return ScoreTable(config=config, rows=rows, score_field="selectit", columns=("selectit",))


def scores_config_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".config.json")


def write_scores(path: str | Path, table: ScoreTable) -> None:
    """SCORES.jsonl: one line per input record, in input order; the configuration goes beside it."""
    with atomic_open(path) as handle:
        for row in table.rows:
            handle.write(json.dumps(row, allow_nan=False) + "\n")
    with atomic_open(scores_config_path(path)) as handle:
        json.dump({"score_field": table.score_field, "config": table.config}, handle, indent=2)


def read_scores(path: str | Path, pool: Pool, score_field: str | None = None) -> ScoreTable:
    """Read a SCORES file and check that it belongs to ``pool`` record by record.

    The score column is ``score_field``, else the one named in the configuration written beside the
    file, else ``ifd``.
    """
    path = Path(path)
    config: dict[str, Any] = {}
    config_path = scores_config_path(path)
    if config_path.exists():
        meta = json.loads(config_path.read_text(encoding="utf-8"))
        config = meta.get("config", {})
        score_field = score_field or meta.get("score_field")
    score_field = score_field or "ifd"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    rows = []
    for number, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"not valid JSON: {err}", path=path, record=number) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path=path, record=number)
        value = row.get(score_field)
        if score_field not in row or not (value is None or isinstance(value, (int, float))):
            raise InputError("missing or not a number", path=path, record=number, field=score_field)
        rows.append(row)
    if len(rows) != len(pool):
        raise InputError(
            f"has {len(rows)} score lines but {pool.path} has {len(pool)} records: scores are from another pool",
            path=path,
        )
    for number, (row, sample) in enumerate(zip(rows, pool.samples, strict=True)):
        if row.get("index") != sample.index:
            raise InputError(f"expected index {sample.index}", path=path, record=number, field="index")
        if "id" in row and row["id"] != sample.content_id:
            raise InputError(
                f"does not match record {sample.index} of {pool.path}: the pool changed since scoring",
                path=path,
                record=number,
                field="id",
            )
        row.setdefault("skip_reason", None if row[score_field] is not None else "missing_score")
    return ScoreTable(config=config, rows=rows, score_field=score_field, columns=(score_field,))


def select(table: ScoreTable, rule: str, budget: Budget) -> Selection:
    """Apply a selection rule to a score table (never calls a model)."""
    return select_by_rule(rule, table.values(), budget)


def manifest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".manifest.json")


def write_subset(
    path: str | Path, pool: Pool, table: ScoreTable, selection: Selection, budget: Budget | None = None
) -> Path:
    """Write the chosen records in rank order, as the user's own records with score fields added.

    The file is a JSON list or JSONL as ``path``'s extension says, else as the pool was.

    Also writes ``<name>.manifest.json``: rule, budget, counts, skipped samples with reasons, configuration.
    Returns the manifest's path.
    """
    records = []
    for index in selection.indices:
        row = table.rows[index]
        records.append({**pool.samples[index].record, **{c: row.get(c) for c in table.columns if c in row}})
    suffix = Path(path).suffix.lower()
    fmt = detect_format(Path(path)) if suffix in {".json", ".jsonl", ".ndjson"} else pool.format
    write_records(path, records, fmt)
    chosen = [table.rows[i][table.score_field] for i in selection.indices]
    manifest = {
        "tunesift_version": __version__,
        "data": str(pool.path),
        "rule": selection.rule,
        "budget": None if budget is None else {"rate": budget.rate, "count": budget.count},
        "score_field": table.score_field,
        "counts": {
            "pool": selection.n_pool,
            "scored": selection.n_scored,
            "skipped": selection.n_pool - selection.n_scored,
            "candidates": selection.n_candidates,
            "selected": len(selection.indices),
        },
        "skipped_by_reason": table.skipped(),
        "skipped": [{"index": row["index"], "reason": row["skip_reason"]} for row in table.rows if row["skip_reason"]],
        "selected_score_range": [min(chosen), max(chosen)] if chosen else None,
        "selected_indices": selection.indices,
        "scorer_config": table.config,
    }
    target = manifest_path(path)
    with atomic_open(target) as handle:
        json.dump(manifest, handle, indent=2, allow_nan=False)
    return target


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
    pool = _as_pool(data)
    table = SCORERS[recipe.scorer](pool, **recipe.options, **score_options)
    if scores_out is not None:
        write_scores(scores_out, table)
    selection = select(table, recipe.rule, budget)
    manifest = write_subset(out, pool, table, selection, budget)
    return RunResult(scores=table, selection=selection, manifest=manifest)
