"""A race's proxy and its decontamination: the seeded sample of the pool, and every record that holds an item
of an evaluation set the race scores on (METHODS.md §23) found and, unless kept, dropped before any arm is drawn."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesift.errors import ConfigError
from tunesift.eval.compare.config import CompareConfig
from tunesift.eval.compare.keys import file_sha, short_key


def eval_sets(config: CompareConfig) -> list[str]:
    """Every evaluation set the race scores on: its suite's, the target file, the judge's test set."""
    from tunesift.eval.evaluation.suite import METRIC_SETS, SUITES

    names: list[str] = []
    for metric in SUITES[config.suite]:
        name = config.eval.get("target_file") if metric == "target_loss" else METRIC_SETS[metric]
        if name and name not in names:
            names.append(str(name))
    if config.judge is not None:
        names.append(config.judge.get("testset", "vicuna"))
    return names


def race_cleaner(config: CompareConfig) -> Any:
    """The decontamination of a race: every evaluation set it scores on, by the §23 rule."""
    from tunesift.recipes.decontaminate import Decontaminator

    return Decontaminator(eval_sets(config), data_dir=config.eval.get("data_dir"))


def check_queries(tasks: Any, cleaner: Any) -> None:
    """A query example that is an evaluation item the race scores on (``cleaner``: :func:`race_cleaner`) is
    refused, naming both: a targeted arm would be ranked towards the test itself."""
    for task in tasks:
        found = cleaner.scan(task.samples)
        if found.dropped:
            first = found.dropped[0]
            raise ConfigError(
                "query",
                f"{task.path}: example {first['index']} is {first['set']} item {first['item']} "
                f"(coverage {first['coverage']:g}); {len(found.dropped)} of its {len(task.samples)} "
                "examples are evaluation items the race scores on: it would measure the leak",
            )


def proxy_key(config: CompareConfig) -> str:
    """The proxy's cache key: its source, size, seed and whether its contaminated records were dropped."""
    clean = None if config.keep_contaminated else eval_sets(config)
    return short_key({"source": file_sha(config.pool), "size": config.pool_size, "seed": config.pool_seed,
                 **({"decontaminated": clean} if clean else {})})  # fmt: skip


def proxy_records(config: CompareConfig, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """The proxy drawn from ``records`` (``pool_size`` of them, seeded), and what decontamination finds in it
    against every set the race scores on (METHODS.md §23): the drops carry proxy positions."""
    from tunesift.data.schemas import record_to_sample

    if config.pool_size is not None and config.pool_size < len(records):
        keep = sorted(np.random.default_rng(config.pool_seed).choice(len(records), config.pool_size, replace=False))
        records = [records[i] for i in keep]
    return records, race_cleaner(config).scan(record_to_sample(r, i, config.pool) for i, r in enumerate(records))


def race_size(config: CompareConfig, records: list[dict[str, Any]], found: Any) -> int:
    """How many proxy records the race trains on: all of them, or those without evaluation items."""
    return len(records) - (0 if config.keep_contaminated else len(found.dropped))


def contamination_line(found: Any, kept: bool) -> str:
    sets = ", ".join(f"{name} {v['items_in_pool']} items" for name, v in found.sets.items() if v["items_in_pool"])
    what = "kept in the race (--keep-contaminated)" if kept else "dropped from the race"
    return f"decontamination: {len(found.dropped)} proxy records hold evaluation items ({sets}): {what}"
