"""Pipelines: methods that are more than one scoring pass and one selection.

InstructMining's rule is fitted from subsets whose evaluation loss the user measured (each subset's mean
indicators against the log of its loss); it is then applied by ``tunesift score indicators --rule``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesift.data.pools import read_pool
from tunesift.errors import ConfigError, InputError
from tunesift.execution.driver import score
from tunesift.models.registry import DEFAULT_MODEL, resolve_model
from tunesift.scorers.indicators import INDICATORS, IndicatorRule, fit_rule, subset_means


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
        scores = score("indicators", read_pool(subset), model=model, knn=knn, max_length=max_length,
                       store_dir=store_dir, device=device, progress=progress)  # fmt: skip
        features.append(subset_means(scores.rows, indicators))
    config = {"model": resolve_model(model).name, "knn": knn, "max_length": max_length}
    try:
        return fit_rule(features, [loss for _, loss in pairs], indicators, config)
    except ConfigError as err:
        raise InputError(str(err), path=table) from None
