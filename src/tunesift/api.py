"""The public Python API; the CLI is a thin shell over these functions.

from tunesift import score_ifd, select, write_subset, read_pool, Budget
pool = read_pool("alpaca.json")
scores = score_ifd(pool)                       # cached: a second call does not touch the model
chosen = select(scores, rule="cherry", budget=Budget(rate=0.05))
write_subset("subset.json", pool, scores, chosen)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift import __version__
from tunesift.atomic import atomic_open
from tunesift.data.pools import Pool, detect_format, read_pool, write_records
from tunesift.data.sample import Sample
from tunesift.errors import InputError
from tunesift.models.registry import DEFAULT_MODEL, cache_root, resolve_model
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


def _unique_missing(samples: Sequence[Sample], cached: dict[str, Any]) -> list[Sample]:
    seen: set[str] = set()
    missing = []
    for sample in samples:
        key = sample.content_id
        if key not in cached and key not in seen:
            seen.add(key)
            missing.append(sample)
    return missing


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
    store = ScoreStore(Path(store_dir) if store_dir else cache_root() / "scores", config)
    cached = store.load()
    missing = _unique_missing(pool.samples, cached)
    if missing:
        if scorer is None:
            from tunesift.models.causal_lm import CausalLM

            scorer = IFDScorer(CausalLM.load(model, device=device), cfg, token_budget=token_budget)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(missing), unit="sample", desc=f"IFD ({cfg.variant})", dynamic_ncols=True)
        done = 0
        for begin in range(0, len(missing), chunk_size):
            chunk = missing[begin : begin + chunk_size]
            tick = (lambda n: bar.update(n / 2)) if bar is not None else None
            results = scorer.score(chunk, on_progress=tick)
            rows = [{"id": s.content_id, **r.to_dict()} for s, r in zip(chunk, results, strict=True)]
            store.append(rows)
            cached.update((row["id"], row) for row in rows)
            done += len(chunk)
            if bar is not None:
                bar.n = done
                bar.refresh()
        if bar is not None:
            bar.close()
    rows = []
    for sample in pool.samples:
        hit = cached[sample.content_id]
        rows.append({"index": sample.index, "id": sample.content_id, **{k: hit[k] for k in SCORE_ROW_KEYS[2:]}})
    return ScoreTable(config=config, rows=rows)


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


def read_scores(path: str | Path, pool: Pool, score_field: str = "ifd") -> ScoreTable:
    """Read a SCORES file and check that it belongs to ``pool`` record by record."""
    path = Path(path)
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
    config: dict[str, Any] = {}
    config_path = scores_config_path(path)
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8")).get("config", {})
    return ScoreTable(config=config, rows=rows, score_field=score_field)


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


RECIPES: dict[str, dict[str, str]] = {
    "cherry": {
        "variant": "cherry",
        "rule": "cherry",
        "description": "Cherry LLM: IFD with the alpaca template; drop IFD > 1; keep the top rate of the rest",
    },
    "superfiltering": {
        "variant": "superfilter",
        "rule": "superfilter",
        "description": "Superfiltering: IFD (perplexity ratio, no template) from a small model; keep < 1; top rate",
    },
}


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
    """Score and select in one go with a named method (``cherry``, ``superfiltering``)."""
    from tunesift.errors import ConfigError

    if name not in RECIPES:
        raise ConfigError("method", f"unknown method {name!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    pool = _as_pool(data)
    table = score_ifd(pool, variant=recipe["variant"], **score_options)
    if scores_out is not None:
        write_scores(scores_out, table)
    selection = select(table, recipe["rule"], budget)
    manifest = write_subset(out, pool, table, selection, budget)
    return RunResult(scores=table, selection=selection, manifest=manifest)
