"""Score a pool with InstructMining's indicators (cached), and fit or apply its rule.

Lengths and response perplexity are per sample and cached in the score store with the model's
fingerprint; MTLD is computed on the fly (cheap); kNN-i is a property of the set, computed on cached
MiniLM embeddings of the pool being scored. A conversation is described by its last turn.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunesift.data.pools import Pool, read_pool
from tunesift.data.sample import Rejected, Sample
from tunesift.errors import ConfigError, InputError
from tunesift.models.backend import model_ref
from tunesift.models.registry import DEFAULT_MODEL, ResolvedModel, resolve_model
from tunesift.scorers.indicators import (
    INDICATOR_VERSION,
    INDICATORS,
    IndicatorLM,
    IndicatorRule,
    fit_rule,
    knn_distance,
    mtld,
    subset_means,
)
from tunesift.scoring import ScoreTable, as_pool, compute_units, default_executor, rejected_row

if TYPE_CHECKING:
    from tunesift.execution import Executor


def score_indicators(
    data: Pool | str | Path,
    *,
    model: str | ResolvedModel = DEFAULT_MODEL,
    knn: int = 6,
    max_length: int = 1024,
    rule: IndicatorRule | str | Path | None = None,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    dtype: str | None = None,
    **server: Any,
) -> ScoreTable:
    """Every indicator for every record; with a ``rule``, also ``instructmining``, the predicted log eval
    loss (lower is better), None with the reason where an indicator the rule uses is undefined."""
    from tunesift.embeddings import embed_pool

    pool = as_pool(data)
    if isinstance(rule, (str, Path)):
        rule = IndicatorRule.load(rule)
    samples = [s for s in pool if isinstance(s, Sample)]
    executor = default_executor(executor, device)
    scorer = IndicatorLM(model_ref(model, executor, dtype=dtype, **server), max_length, token_budget)
    per_sample = compute_units(scorer, (u for s in samples for u in scorer.units(s)), store_dir=store_dir,
                               executor=executor, progress=progress, total=len(samples))  # fmt: skip
    lm_config = scorer.cache_config()
    knn_values = np.full(len(samples), np.nan)
    embed_config: dict[str, Any] = {}
    if samples:
        table = embed_pool(pool, embedder="minilm", store_dir=store_dir, executor=executor, progress=progress)
        knn_values = knn_distance(table.vectors, knn)
        embed_config = table.config
    knn_of = {s.index: float(v) for s, v in zip(samples, knn_values, strict=True)}
    columns = (*INDICATORS, *(("instructmining",) if rule else ()))
    rows: list[dict[str, Any]] = []
    for item in pool:
        if isinstance(item, Rejected):
            rows.append(rejected_row(item, columns))
            continue
        hit = per_sample[item.content_id]
        loss = hit["response_loss"]
        values: dict[str, Any] = {
            "len_instruction": _float_or_none(hit["len_instruction"]),
            "len_input": _float_or_none(hit["len_input"]),
            "len_response": _float_or_none(hit["len_response"]),
            "ppl": math.exp(loss) if loss is not None else None,
            "mtld": _finite_or_none(mtld(item.output)),
            "knn": _finite_or_none(knn_of[item.index]),
        }
        row: dict[str, Any] = {"index": item.index, "id": item.content_id, **values, "skip_reason": None}
        if rule is not None:
            row["instructmining"] = rule.predict(values)
            if row["instructmining"] is None:
                missing = [n for n in rule.indicators if values.get(n) is None]
                row["skip_reason"] = f"indicator_undefined: {', '.join(missing)}"
        rows.append(row)
    config = {"scorer": "indicators", "version": INDICATOR_VERSION, "lm": lm_config, "embedding": embed_config,
              "knn": knn, "mtld": {"threshold": 0.72, "min_factor": 10}}  # fmt: skip
    if rule is not None:
        config["rule"] = {"indicators": list(rule.indicators), "coefficients": list(rule.coefficients),
                          "intercept": rule.intercept}  # fmt: skip
        return ScoreTable(config, rows, score_field="instructmining", columns=columns)
    return ScoreTable(config, rows, score_field="len_response", columns=columns)


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def read_fit_table(path: str | Path) -> list[tuple[Path, float]]:
    """(subset file, eval loss) pairs from a .csv / .json / .jsonl table with fields ``subset`` and
    ``eval_loss``; subset paths are relative to the table's folder."""
    path = Path(path)
    try:
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                records: list[Any] = list(csv.DictReader(handle))
        elif path.suffix == ".jsonl":
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, csv.Error) as err:
        raise InputError(f"cannot read the table: {err}", path=path) from None
    if not isinstance(records, list) or not records:
        raise InputError("expected a non-empty list of {subset, eval_loss} records", path=path)
    pairs = []
    for number, record in enumerate(records):
        for key in ("subset", "eval_loss"):
            if not isinstance(record, dict) or key not in record:
                raise InputError("missing", path=path, record=number, field=key)
        try:
            loss = float(record["eval_loss"])
        except (TypeError, ValueError):
            raise InputError(
                f"not a number: {record['eval_loss']!r}", path=path, record=number, field="eval_loss"
            ) from None
        if not math.isfinite(loss) or loss <= 0:
            raise InputError(f"must be a positive number, got {loss}", path=path, record=number, field="eval_loss")
        subset = Path(record["subset"])
        pairs.append((subset if subset.is_absolute() else path.parent / subset, loss))
    return pairs


def fit_indicators(
    table: str | Path,
    *,
    indicators: Sequence[str] = INDICATORS,
    model: str = DEFAULT_MODEL,
    knn: int = 6,
    max_length: int = 1024,
    store_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = False,
) -> IndicatorRule:
    """Fit InstructMining's rule from a table of (subset file, eval loss): each subset's mean indicators
    (kNN-i within that subset) against ``log(eval_loss)``."""
    pairs = read_fit_table(table)
    features = []
    for subset, _ in pairs:
        scores = score_indicators(read_pool(subset), model=model, knn=knn, max_length=max_length,
                                  store_dir=store_dir, device=device, progress=progress)  # fmt: skip
        features.append(subset_means(scores.rows, indicators))
    config = {"model": resolve_model(model).name, "knn": knn, "max_length": max_length}
    try:
        return fit_rule(features, [loss for _, loss in pairs], indicators, config)
    except ConfigError as err:
        raise InputError(str(err), path=table) from None
