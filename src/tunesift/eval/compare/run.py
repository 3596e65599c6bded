"""The comparison protocol from one config: each method's subset vs random subsets of the same size (several
seeds) vs the full pool, and the untuned base model as the floor; at one budget or a sweep of budgets.

Fair by construction: every arm of a budget has the same number of records (a filter that leaves a method
short shrinks every arm to the common size, said in the log and the results), and training takes the
same number of optimizer steps for equal sizes (``train.examples_per_step``). Whether a gap is real comes
from a paired bootstrap over evaluation items (:mod:`tunesift.eval.evaluation.stats`), random seeds and the method's
own data orders (``train_seeds``) pooled. Every artifact (sampled pool, subset, training run, evaluation,
pairwise answers and verdicts) is cached under a name holding the hash of what produced it, so a killed
comparison resumes, a changed setting is recomputed and never served from the cache, and adding a budget
to a sweep costs only that budget.

The rooms: :mod:`.config` (the config and its checks), :mod:`.keys` (artifact names), :mod:`.clean` (the proxy's
decontamination), :mod:`.plan` (arms and subsets), :mod:`.training` (one arm's model), :mod:`.intervals`
(intervals and winning rates), :mod:`.view` (tables and plots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError, TunesiftError
from tunesift.eval.compare.clean import contamination_line, proxy_key, proxy_records
from tunesift.eval.compare.config import WHOLE_POOL, CompareConfig, validate
from tunesift.eval.compare.intervals import intervals, winning_rates
from tunesift.eval.compare.keys import write_json
from tunesift.eval.compare.plan import Model, arm_subsets, equal_steps, run_folder
from tunesift.eval.compare.training import evaluate_floor, train_and_eval


def compare(config: CompareConfig, out: str | Path, *, device: str | None = None, progress: bool = False,
            log: Callable[[str], Any] = print) -> dict[str, Any]:  # fmt: skip
    """Run the protocol; returns (and writes to ``out/results.json``) every model's metrics, the intervals
    and verdicts per budget, and the winning rates against full data when a judge is given."""
    from tunesift.data.pools import read_pool

    validate(config)
    out = Path(out)
    source = read_pool(config.pool)
    records = [s.record for s in source.samples]
    if config.pool_size is not None and config.pool_size > len(records):
        raise ConfigError("pool_size", f"{config.pool_size} is more than the {len(records)} valid records of "
                          f"{config.pool}")  # fmt: skip
    n = min(config.pool_size or len(records), len(records))
    for _, budget in config.budget_list():  # before anything is written: a refused budget leaves nothing behind
        if budget.count is not None and budget.count > n:
            raise ConfigError("budget.count", f"{budget.count} records asked of a pool of {n}")
        if budget.size(base=n, available=n) < 1:
            raise ConfigError("budget", f"gives {budget.size(base=n, available=n)} records of {n}")
    created = not out.exists()
    try:
        return _compare(config, out, records, device=device, progress=progress, log=log)
    except TunesiftError:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a config refused before anything was written leaves no folder behind
        raise


def _compare(config: CompareConfig, out: Path, records: list[dict[str, Any]], *,
             device: str | None, progress: bool, log: Callable[[str], Any]) -> dict[str, Any]:  # fmt: skip
    from tunesift import api
    from tunesift.data.pools import read_pool, write_records
    from tunesift.eval.training.train import _ids_hash

    records, found = proxy_records(config, records)
    if found.dropped:
        log(contamination_line(found, config.keep_contaminated))
    contaminated = {d["id"] for d in found.dropped}
    if not config.keep_contaminated:
        kept = {d["index"] for d in found.dropped}
        records = [r for i, r in enumerate(records) if i not in kept]
    out.mkdir(parents=True, exist_ok=True)
    pool_key = proxy_key(config)
    pool_path = out / f"pool-{pool_key}.json"
    if not pool_path.exists():
        write_records(pool_path, records, "json")
    pool = read_pool(pool_path)
    pool_ids = _ids_hash(pool.samples)
    settings = config.eval_settings()
    models: list[dict[str, Any]] = []
    budgets: list[dict[str, Any]] = []
    full_models = [Model("full", s, pool_path, run_folder(out, config, "full", s, pool_ids))
                   for s in range(config.train_seeds)]  # fmt: skip
    for label, budget in config.budget_list():
        wanted = budget.size(base=len(pool), available=len(pool))
        if budget.count is not None and budget.count > len(pool):
            raise ConfigError("budget.count", f"{budget.count} records asked of a pool of {len(pool)}")
        if wanted < 1:
            raise ConfigError("budget", f"gives {wanted} records of {len(pool)}")
        arms, size, short = arm_subsets(config, api, pool, pool_key, wanted, label, out, device, progress, log)
        arm_models: dict[str, list[Model]] = {}
        for arm, (subset, seeds) in arms.items():
            ids = _ids_hash(read_pool(subset).samples)
            arm_models[arm] = [Model(arm if not arm.startswith("random-") else "random", s, subset,
                                     run_folder(out, config, "full" if ids == pool_ids else arm, s, ids))
                               for s in seeds]  # fmt: skip
        if config.full_equal_steps:
            per_step = equal_steps(config, len(pool), size)
            arm_models[WHOLE_POOL] = [Model(WHOLE_POOL, s, pool_path, run_folder(out, config, WHOLE_POOL, s, pool_ids,
                                                                              per_step), per_step)
                                      for s in range(config.train_seeds)]  # fmt: skip
        rows = [train_and_eval(config, m, settings, label, device, progress, log) for ms in arm_models.values()
                for m in ms]  # fmt: skip
        models += rows
        held = {a: sum(s.content_id in contaminated for s in read_pool(subset).samples)
                for a, (subset, _) in arms.items()} if config.keep_contaminated else {}  # fmt: skip
        budgets.append({"budget": label, "rate": budget.rate, "requested": wanted, "size": size, "short": short,
                        "subsets": {a: str(subset) for a, (subset, _) in arms.items()},
                        "arms": {a: [str(m.run_dir) for m in ms] for a, ms in arm_models.items()},
                        **({"contaminated_selected": held} if config.keep_contaminated else {})})  # fmt: skip
    if config.full:
        models += [train_and_eval(config, m, settings, "full", device, progress, log) for m in full_models]
    if config.floor:
        models.append(evaluate_floor(config, out, settings, device))
    results: dict[str, Any] = {"config": asdict(config), "pool": str(pool_path), "n_pool": len(pool),
                               "training": config.train_config(0).__dict__, "eval_settings": asdict(settings),
                               "budgets": budgets, "models": models,
                               "contamination": {**found.summary(),
                                                 "kept_in_race": config.keep_contaminated}}  # fmt: skip
    if config.intervals:
        results["intervals"] = intervals(results, config.n_boot)
    if config.judge is not None:
        results["winning"] = winning_rates(config, results, full_models, out, device, log)
    write_json(out / "results.json", results)
    return results
