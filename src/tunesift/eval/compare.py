"""The comparison protocol from one config: each method's subset vs random subsets of the same size (several
seeds, to show the spread) vs the full pool, and the untuned base model as the floor.

Every subset has the same size, ``int(rate x pool size)`` (or ``count``), so a method is compared with
random at equal size. Every step writes into ``out`` and is skipped when its result is already there, so
a killed comparison resumes.

Config (YAML or JSON)::

    pool: ../shared/data/instruct/alpaca_random_9k.json
    pool_size: 2000          # drawn with pool_seed (all records when absent)
    pool_seed: 0
    budget: {rate: 0.1}
    base: gemma-3-270m
    train: {lora: true, epochs: 1}
    methods:                 # name -> recipe (built-in or YAML) and scorer options
      ifd: {recipe: cherry, options: {model: gemma-3-270m}}
      longest: {recipe: longest}
    random_seeds: [0, 1, 2]
    full: false              # also train on the whole pool
    floor: true              # evaluate the untuned base model
    suite: cpu
    eval: {n_alpaca: 200, n_gsm8k: 200, n_mmlu: 300}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.atomic import atomic_open
from tunesift.errors import ConfigError, InputError

KEYS = {"pool", "pool_size", "pool_seed", "budget", "base", "train", "methods", "random_seeds", "full", "floor",
        "suite", "eval", "store_dir"}  # fmt: skip


@dataclass
class CompareConfig:
    pool: str
    base: str
    budget: dict[str, Any]
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    pool_size: int | None = None
    pool_seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    full: bool = False
    floor: bool = True
    suite: str = "cpu"
    eval: dict[str, Any] = field(default_factory=dict)
    store_dir: str | None = None


def load_config(path: str | Path) -> CompareConfig:
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read the comparison config: {err}", path=path) from None
    if not isinstance(raw, dict):
        raise InputError("expected a mapping", path=path)
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise InputError(f"unknown key; known: {', '.join(sorted(KEYS))}", path=path, field=unknown[0])
    for key in ("pool", "base", "budget"):
        if key not in raw:
            raise InputError("missing", path=path, field=key)
    pool = Path(raw["pool"])
    raw["pool"] = str(pool if pool.is_absolute() else (path.parent / pool))
    return CompareConfig(**raw)


def _write_json(path: Path, payload: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, allow_nan=True)


def compare(config: CompareConfig, out: str | Path, *, device: str | None = None, progress: bool = False,
            log: Any = print) -> dict[str, Any]:  # fmt: skip
    """Run the protocol; returns (and writes to ``out/results.json``) one row per trained or evaluated model."""
    from tunesift import api
    from tunesift.data.pools import read_pool, write_records
    from tunesift.eval.suite import EvalSettings, evaluate, headline
    from tunesift.eval.train import TrainConfig, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pool_path = out / "pool.json"
    source = read_pool(config.pool)
    records = [s.record for s in source.samples]
    if config.pool_size is not None and config.pool_size < len(records):
        keep = sorted(np.random.default_rng(config.pool_seed).choice(len(records), config.pool_size, replace=False))
        records = [records[i] for i in keep]
    if not pool_path.exists():
        write_records(pool_path, records, "json")
    pool = read_pool(pool_path)
    budget = api.Budget(**config.budget)
    size = budget.size(base=len(pool), available=len(pool))
    if size < 1:
        raise ConfigError("budget", f"gives {size} records of {len(pool)}")
    settings = EvalSettings(template=config.train.get("template", "alpaca"), **config.eval)
    subsets: dict[str, Path] = {}
    timings: dict[str, dict[str, float]] = {}
    for name, spec in config.methods.items():
        subset = out / "subsets" / f"{name}.json"
        if not subset.exists():
            started = time.perf_counter()
            api.run_recipe(spec.get("recipe", name), pool, subset, api.Budget(count=size),
                           store_dir=config.store_dir, device=device, progress=progress,
                           **spec.get("options", {}))  # fmt: skip
            timings.setdefault(name, {})["select_s"] = round(time.perf_counter() - started, 1)
            log(f"[compare] {name}: selected {size} -> {subset}")
        subsets[name] = subset
    for seed in config.random_seeds:
        subset = out / "subsets" / f"random-{seed}.json"
        if not subset.exists():
            api.run_recipe("random", pool, subset, api.Budget(count=size), select_options={"random_state": seed})
        subsets[f"random-{seed}"] = subset
    if config.full:
        subsets["full"] = pool_path
    rows = []
    base_cfg = {"template": "alpaca", **config.train}
    for name, subset in subsets.items():
        run_dir = out / "runs" / name
        started = time.perf_counter()
        result = train(subset, run_dir, TrainConfig(base=config.base, **base_cfg), device=device, progress=progress)
        train_s = time.perf_counter() - started
        scores = _cached_eval(run_dir, config.suite,
                              lambda r=run_dir, m=result.model: evaluate(r, config.suite, settings, device,
                                                                         lm=_in_memory(m, r)))  # fmt: skip
        result.model = None  # free it before the next run trains
        eval_s = sum(v.get("seconds", 0) for v in scores.values() if isinstance(v, dict))
        rows.append({"method": name, "n": len(read_pool(subset)), "train_steps": result.steps,
                     "train_s": round(result.seconds, 1), **timings.get(name, {}), **headline(scores),
                     "eval_s": round(eval_s, 1)})  # fmt: skip
        log(f"[compare] {name}: trained {result.steps} steps in {train_s:.0f} s; {headline(scores)}")
    if config.floor:
        floor_dir = out / "runs" / "base"
        floor_dir.mkdir(parents=True, exist_ok=True)
        scores = _cached_eval(floor_dir, config.suite, lambda: evaluate(config.base, config.suite, settings, device))
        eval_s = sum(v.get("seconds", 0) for v in scores.values() if isinstance(v, dict))
        rows.append({"method": "base (untuned)", "n": 0, **headline(scores), "eval_s": round(eval_s, 1)})
    results = {"config": config.__dict__, "size": size, "pool": str(pool_path), "rows": rows}
    _write_json(out / "results.json", results)
    return results


def _in_memory(model: Any, run_dir: Path) -> Any:
    """The model ``train`` just wrote, as a CausalLM without reading it back (None: load from disk)."""
    if model is None:
        return None
    from transformers import AutoTokenizer

    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.registry import resolve_model

    resolved = resolve_model(str(run_dir / "model"))
    device = next(model.parameters()).device
    return CausalLM(model=model, tokenizer=AutoTokenizer.from_pretrained(resolved.path), name=resolved.name,
                    fingerprint=resolved.fingerprint, device=device)  # fmt: skip


def _cached_eval(folder: Path, suite: str, run: Any) -> dict[str, Any]:
    path = folder / f"eval-{suite}.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = run()
    _write_json(path, scores)
    return scores


def table(results: dict[str, Any]) -> str:
    """A Markdown table of the rows, random seeds summarised as mean ± std beside them."""
    from tunesift.eval.suite import HIGHER_IS_BETTER

    rows = results["rows"]
    metrics = [m for m in HIGHER_IS_BETTER if any(m in r for r in rows)]
    randoms = [r for r in rows if r["method"].startswith("random-")]
    lines = ["| method | n | " + " | ".join(metrics) + " | select s | train s | eval s |",
             "|---|---|" + "---|" * (len(metrics) + 3)]  # fmt: skip
    for r in rows:
        cells = [f"{r[m]:.4f}" if m in r else "" for m in metrics]
        times = " | ".join(str(r.get(k, "")) for k in ("select_s", "train_s", "eval_s"))
        lines.append(f"| {r['method']} | {r['n']} | " + " | ".join(cells) + f" | {times} |")
    if len(randoms) > 1:
        cells = [f"{np.mean([r[m] for r in randoms]):.4f} ± {np.std([r[m] for r in randoms], ddof=1):.4f}"
                 for m in metrics]  # fmt: skip
        lines.append(f"| random (mean ± sd of {len(randoms)}) | {randoms[0]['n']} | " + " | ".join(cells) + " | | | |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: str | Path) -> Path:
    """One panel per metric: each method's value, random's seeds as dots with their mean, the floor as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunesift.eval.suite import HIGHER_IS_BETTER

    rows = results["rows"]
    metrics = [m for m in HIGHER_IS_BETTER if any(m in r for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    methods = [r for r in rows if not r["method"].startswith("random-") and r["n"] > 0]
    randoms = [r for r in rows if r["method"].startswith("random-")]
    floor = next((r for r in rows if r["n"] == 0), None)
    for ax, metric in zip(axes[0], metrics, strict=True):
        names = [r["method"] for r in methods] + (["random"] if randoms else [])
        values = [r[metric] for r in methods]
        ax.bar(range(len(methods)), values, color="#4C72B0")
        if randoms:
            rv = [r[metric] for r in randoms]
            ax.bar(len(methods), np.mean(rv), color="#999999")
            ax.scatter([len(methods)] * len(rv), rv, color="black", zorder=3, s=12)
        if floor is not None and metric in floor:
            ax.axhline(floor[metric], color="#C44E52", linestyle="--", label="untuned base")
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
        ax.set_title(f"{metric} ({better} is better)", fontsize=10)
        every = values + ([r[metric] for r in randoms] if randoms else []) + ([floor[metric]] if floor else [])
        low, high = min(every), max(every)
        pad = (high - low) * 0.3 or abs(high) * 0.05 or 0.1
        ax.set_ylim(low - pad, high + pad)
    fig.suptitle(f"fine-tuned on {results['size']} records each (random: one dot per seed)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
