"""The arms of a comparison: each budget's subsets (a method's, the random seeds', the whole pool at equal steps),
all of one size, each training run's folder keyed by its data and config, and which are already cached."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError
from tunesift.eval.compare.clean import proxy_key, proxy_records, race_size
from tunesift.eval.compare.config import WHOLE_POOL, CompareConfig
from tunesift.eval.compare.keys import query_identity, recipe_identity, short_key, write_json


@dataclass
class Model:
    """One fine-tune of one arm: its subset, data-order seed and run folder."""

    arm: str
    seed: int
    subset: Path
    run_dir: Path
    examples_per_step: int | None = None  # the whole pool at equal steps: more samples a step


def equal_steps(config: CompareConfig, n_pool: int, size: int) -> int:
    """Samples a step for the whole pool to take as many optimizer steps as a subset of ``size``: one pass over
    every record in ``ceil(size / examples_per_step)`` updates (the subsets' learning-rate schedule, more data a
    step)."""
    steps = math.ceil(size / config.train_config(0).examples_per_step)
    return math.ceil(n_pool / steps)


def run_folder(out: Path, config: CompareConfig, name: str, seed: int, data_ids: str,
             examples_per_step: int | None = None) -> Path:  # fmt: skip
    """A training run's folder: named by the arm, and keyed by its data and its whole training config."""
    cfg = config.train_config(seed, examples_per_step)
    return out / "runs" / f"{name}-s{seed}-{short_key({'data': data_ids, 'train': cfg.__dict__})}"


def arm_subsets(config: CompareConfig, api: Any, pool: Any, pool_key: str, wanted: int, label: str, out: Path,
             device: str | None, progress: bool, log: Callable[[str], Any]):  # fmt: skip
    """Every arm's subset at one budget, all of one size: a method whose filter leaves fewer than
    ``wanted`` shrinks every arm to the common size (said in the log; ``short`` records who)."""
    from tunesift.data.pools import read_pool

    def method_subset(name: str, spec: dict[str, Any], size: int) -> Path:
        recipe = spec.get("recipe", name)
        path = method_subset_path(out, pool_key, name, spec, size)
        if not path.exists():
            started = time.perf_counter()
            api.run_recipe(recipe, pool, path, api.Budget(count=size), store_dir=config.store_dir, device=device,
                           progress=progress, **spec.get("options", {}))  # fmt: skip
            write_json(path.with_suffix(".timing"), {"select_s": round(time.perf_counter() - started, 1)})
            log(f"[compare] {name}: selected {len(read_pool(path))} of {size} asked -> {path}")
        return path

    sizes = {name: len(read_pool(method_subset(name, spec, wanted))) for name, spec in config.methods.items()}
    size = min([wanted, *sizes.values()])
    short = {name: n for name, n in sizes.items() if n < wanted}
    if short:
        log(f"[compare] budget {label}: {', '.join(f'{k} kept {v}' for k, v in short.items())} of {wanted}; every "
            f"arm is compared at the common size {size}")  # fmt: skip
    if size < 1:
        raise ConfigError("budget", f"a method kept no record at budget {label} ({short})")
    arms: dict[str, tuple[Path, list[int]]] = {}
    for name, spec in config.methods.items():
        arms[name] = (method_subset(name, spec, size), list(range(config.train_seeds)))
    for seed in config.random_seeds:
        path = random_subset_path(out, pool_key, config, seed, size)
        if not path.exists():
            api.run_recipe("random", pool, path, api.Budget(count=size),
                           select_options={**config.random, "random_state": seed})  # fmt: skip
        arms[f"random-{seed}"] = (path, [seed])
    return arms, size, short


def method_subset_path(out: Path, pool_key: str, name: str, spec: dict[str, Any], size: int) -> Path:
    """Where a method's subset of ``size`` is kept: keyed by the pool, the recipe, its options and query files."""
    options = spec.get("options", {})
    queries = options.get("query") or []
    queries = [queries] if isinstance(queries, str) else queries
    described = {"pool": pool_key, "recipe": recipe_identity(spec.get("recipe", name)), "options": options,
                 "size": size}  # fmt: skip
    if queries:
        described["query_sha"] = [query_identity(q) for q in queries]
    key = short_key(described)
    return out / "subsets" / f"{name}-{size}-{key}.json"


def random_subset_path(out: Path, pool_key: str, config: CompareConfig, seed: int, size: int) -> Path:
    random = {"random": config.random} if config.random else {}
    key = short_key({"pool": pool_key, "seed": seed, "size": size, **random})
    return out / "subsets" / f"random-{seed}-{size}-{key}.json"


def planned_arms(config: CompareConfig, out: str | Path, n: int | None = None) -> list[dict[str, Any]]:
    """Every fine-tune the protocol needs at its asked sizes, and which are already cached (subset written,
    model trained and evaluated); a method that keeps fewer records would shrink the sizes at run time. ``n``: the
    race's proxy size, contaminated records left out (found here when not given)."""
    from tunesift.data.pools import read_pool
    from tunesift.eval.evaluation.suite import result_path
    from tunesift.eval.training.train import _ids_hash

    out = Path(out)
    pool_key = proxy_key(config)
    if n is None:
        n = race_size(config, *proxy_records(config, [s.record for s in read_pool(config.pool).samples]))
    settings = config.eval_settings()
    found = []
    for label, budget in config.budget_list():
        size = budget.size(base=n, available=n)
        wanted = [(name, method_subset_path(out, pool_key, name, spec, size), list(range(config.train_seeds)))
                  for name, spec in config.methods.items()]  # fmt: skip
        wanted += [(f"random-{seed}", random_subset_path(out, pool_key, config, seed, size), [seed])
                   for seed in config.random_seeds]  # fmt: skip
        per_step = {}
        if config.full_equal_steps:
            wanted.append((WHOLE_POOL, out / f"pool-{pool_key}.json", list(range(config.train_seeds))))
            per_step[WHOLE_POOL] = equal_steps(config, n, size)
        for name, subset, seeds in wanted:
            ids = _ids_hash(read_pool(subset).samples) if subset.exists() else None
            arm = "random" if name.startswith("random-") else name
            for seed in seeds:  # a random arm's folder: random-SEED
                run = run_folder(out, config, name, seed, ids, per_step.get(name)) if ids else None
                evaluated = bool(run and result_path(run, config.suite, settings).exists())
                found.append({"budget": label, "arm": arm, "seed": seed, "size": n if name == WHOLE_POOL else size,
                              "subset": subset.exists(), "evaluated": evaluated,
                              "examples_per_step": per_step.get(name)})  # fmt: skip
    return found
