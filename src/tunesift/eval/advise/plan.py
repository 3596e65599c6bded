"""The plan said before any work: the arms, what is cached, and what each stage should cost on this machine,
measured on a few of the pool's records."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesift.eval.advise.config import DEFAULT_PROXY, AdviseConfig, metric_of


def plan(config: AdviseConfig, compare_cfg: Any, out: Path, measure: bool = True,
         scratch: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The arms, what is cached, and the time each stage should take here (measured on a few samples, in
    ``scratch`` when given: a dry run's probes leave nothing in ``out`` or the score store)."""
    from tunesift.data.pools import read_pool
    from tunesift.eval.compare.clean import proxy_records, race_size
    from tunesift.eval.compare.plan import planned_arms

    records, found = proxy_records(compare_cfg, [s.record for s in read_pool(compare_cfg.pool).samples])
    arms_here = planned_arms(compare_cfg, out, race_size(compare_cfg, records, found))
    estimate = measure_costs(config, compare_cfg, scratch or out, scratch=scratch is not None) if measure else {}
    contamination = {"records": len(found.dropped), "kept_in_race": config.keep_contaminated, "sets": found.sets}
    return {"arms": arms_here, "estimate": estimate, "contamination": contamination}


def measure_costs(config: AdviseConfig, compare_cfg: Any, out: Path, probe: int = 8,
                  scratch: bool = False) -> dict[str, Any]:  # fmt: skip
    """Seconds per sample of each scoring method (two small runs on the pool's first records, so the model's
    load is apart), and of one optimizer step of the race's fine-tune (the trainer itself, two steps); the evaluation
    is taken as a third of a fine-tune, at least 30 s a model."""
    from tunesift import api
    from tunesift.data.pools import read_pool
    from tunesift.recipes import load_recipe

    cfg = compare_cfg.train_config(0)
    proxy = read_pool(config.pool).samples[: max(3 * probe, 2 * cfg.examples_per_step)]
    folder = out / "probe"
    store_dir = str(out / "scores") if scratch else config.store_dir
    folder.mkdir(parents=True, exist_ok=True)
    costs: dict[str, Any] = {"scoring": {}}
    for name, spec in compare_cfg.methods.items():
        recipe = load_recipe(spec["recipe"])
        if not recipe.scorer:
            costs["scoring"][name] = {"load_s": 0.0, "per_sample_s": 0.0}
            continue
        seconds = []
        for part, records in (("a", proxy[:probe]), ("b", proxy[probe : 3 * probe])):
            path = folder / f"{name}-{part}.json"
            path.write_text(json.dumps([s.record for s in records]))
            options = {**{k: v for k, v in recipe.score.items() if k != "scorer"}, **spec.get("options", {})}
            started = time.perf_counter()
            api.score(recipe.scorer, path, store_dir=store_dir, **options)
            seconds.append(time.perf_counter() - started)
        per_sample = (seconds[1] - seconds[0]) / probe
        if per_sample <= 0:  # the load's own variation hid the samples' cost: take the upper bound
            per_sample = seconds[1] / (2 * probe)
        load = max(0.0, seconds[0] - probe * per_sample)
        if recipe.scorer == "less":  # the probes warmed up on every record: the race warms up on 5 % (at least 64)
            from tunesift.scorers.less import race_cost

            load, per_sample = race_cost(per_sample, load, config.proxy_size or DEFAULT_PROXY, options)
        costs["scoring"][name] = {"load_s": load, "per_sample_s": per_sample}
    costs["train_step_s"] = _train_step_seconds(compare_cfg, proxy, folder)
    return costs


def _train_step_seconds(compare_cfg: Any, samples: Sequence[Any], folder: Path) -> float:
    """One optimizer step of the race's own fine-tune (LoRA, the response-only loss), timed on the second of two
    steps over the pool's first records. The trainer itself, not a plain forward: a forward with labels builds the
    logits of every position over Gemma's 262k-row vocabulary (4 GB a direction at 8 x 512 tokens), which is what
    made the plan peak at 8.6 GB."""
    import shutil

    from tunesift.eval.training.train import train

    cfg = compare_cfg.train_config(0)
    path = folder / "train-probe.json"
    path.write_text(json.dumps([s.record for s in samples[: 2 * cfg.examples_per_step]]))
    run_dir = folder / "train-probe"
    shutil.rmtree(run_dir, ignore_errors=True)
    marks: list[float] = []
    started = time.perf_counter()
    try:
        train(path, run_dir, cfg, stop_after=2, save_every=10**9, on_step=lambda *_: marks.append(time.perf_counter()))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return marks[1] - marks[0] if len(marks) > 1 else (marks[0] - started if marks else 0.0)


def contamination_text(found: dict[str, Any]) -> str:
    """One line on what the proxy holds of the evaluation sets the race scores on, and what was done with it."""
    sets = ", ".join(f"{name}: {v['items_in_pool']} of {v['items']} items" for name, v in found["sets"].items())
    if not found["records"]:
        return f"decontamination: no proxy record holds an evaluation item ({sets})"
    what = ("kept in the race (--keep-contaminated): each arm's row counts its own" if found["kept_in_race"]
            else "dropped from the race")  # fmt: skip
    return f"decontamination: {found['records']} proxy records hold evaluation items ({sets}); {what}"


def plan_lines(config: AdviseConfig, compare_cfg: Any, found: dict[str, Any]) -> list[str]:
    """The plan as a user reads it: arms, cached parts, estimated minutes per stage."""
    lines = [f"advise: {config.proxy_size} records of {config.pool} (seed 0), budgets {config.budgets}, target "
             f"{config.target} ({metric_of(config.target)}), base {config.base}"]  # fmt: skip
    arms_here = found["arms"]
    lines.append("arms: " + ", ".join(dict.fromkeys(a["arm"] for a in arms_here)))
    cached = [a for a in arms_here if a["evaluated"]]
    lines.append(f"cached: {len(cached)} of {len(arms_here)} fine-tunes already trained and evaluated")
    if config.learning_rates:
        lines.append(f"stability: {len(arms_here) * len(config.learning_rates)} more fine-tunes, every arm again at "
                     f"learning rate {', '.join(f'{lr:g}' for lr in config.learning_rates)}")  # fmt: skip
    if found.get("contamination") is not None:
        lines.append(contamination_text(found["contamination"]))
    estimate = found.get("estimate") or {}
    if estimate:
        n = config.proxy_size
        scoring = sum(c["load_s"] + c["per_sample_s"] * n for c in estimate["scoring"].values())
        per_step = compare_cfg.train_config(0).examples_per_step
        fine_tunes = [a for a in arms_here if not a["evaluated"]]
        train = evaluate = 0.0
        for a in fine_tunes:  # the whole pool (--with-full) takes as many steps, each with more records
            wide = a.get("examples_per_step") or per_step
            steps = math.ceil(a["size"] / wide)
            train += steps * wide / per_step * estimate["train_step_s"]
            evaluate += max(30.0, steps * estimate["train_step_s"] / 3)
        lines.append(f"estimate on this machine: scoring {scoring / 60:.1f} min ("
                     + ", ".join(f"{k} {v['load_s'] + v['per_sample_s'] * n:.0f} s"
                                 for k, v in estimate["scoring"].items()) +
                     f"); training {train / 60:.1f} min ({len(fine_tunes)} fine-tunes, "
                     f"{estimate['train_step_s']:.1f} s a step); evaluation about {evaluate / 60:.1f} min")  # fmt: skip
    return lines
