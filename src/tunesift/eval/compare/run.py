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

Config (YAML or JSON)::

    pool: ../shared/data/instruct/alpaca_random_9k.json
    pool_size: 2000          # drawn with pool_seed (all records when absent)
    pool_seed: 0
    budget: {rate: 0.1}      # or a sweep of rates: budgets: [0.05, 0.1, 0.2, 0.5, 1.0]
    base: gemma-3-270m
    train: {lora: true, epochs: 1, examples_per_step: 8}
    methods:                 # name -> recipe (built-in or YAML) and scorer options
      ifd: {recipe: cherry, options: {model: gemma-3-270m}}
      longest: {recipe: longest}
      rds: {recipe: rds, options: {query: gsm8k_examples.json}}   # targeted (a query set, relative to this file)
    random: {balance: dataset}   # the random arm balanced by source (omit for uniform random)
    random_seeds: [0, 1, 2]
    train_seeds: 1           # data orders per method subset (their noise joins the interval)
    full: false              # also train on the whole pool (needed for "against full" and the judge)
    full_equal_steps: false  # also train on the whole pool at each budget, for as many optimizer steps as its subsets
    floor: true              # evaluate the untuned base model
    suite: cpu
    eval: {n_alpaca: 200, n_gsm8k: 200, n_mmlu: 300}
    intervals: true          # paired bootstrap 95 % intervals and verdicts (needs >= 2 random seeds)
    judge: {model: NAME, base_url: http://localhost:8000/v1, testset: vicuna, n: 80}   # winning rate vs full
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.atomic import atomic_open
from tunesift.errors import ConfigError, InputError, TunesiftError
from tunesift.options import is_number

KEYS = {"pool", "pool_size", "pool_seed", "budget", "budgets", "base", "train", "methods", "random", "random_seeds",
        "train_seeds", "full", "full_equal_steps", "floor", "suite", "eval", "store_dir", "intervals", "n_boot",
        "judge"}  # fmt: skip
JUDGE_KEYS = {"model", "base_url", "api_key_env", "testset", "n"}
#: The arm of the whole pool trained for a budget's number of steps (``full_equal_steps``).
WHOLE_POOL = "whole-pool"
RESERVED = ("random", "full", "base", WHOLE_POOL)


@dataclass
class CompareConfig:
    pool: str
    base: str
    budget: dict[str, Any] | None = None
    budgets: list[float] | None = None
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    pool_size: int | None = None
    pool_seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    #: the random arm's options: {balance: FIELD} draws balanced-by-source random subsets (METHODS.md §16)
    random: dict[str, Any] = field(default_factory=dict)
    train_seeds: int = 1
    full: bool = False
    #: the whole pool as an arm of every budget, at the subsets' number of optimizer steps (each step holds more)
    full_equal_steps: bool = False
    floor: bool = True
    suite: str = "cpu"
    eval: dict[str, Any] = field(default_factory=dict)
    store_dir: str | None = None
    intervals: bool = True
    n_boot: int = 2000
    judge: dict[str, Any] | None = None
    #: keep the proxy's records that hold evaluation items (default: dropped before the race, METHODS.md §23)
    keep_contaminated: bool = False

    def budget_list(self) -> list[tuple[str, Any]]:
        """(label, Budget) for every budget compared."""
        from tunesift.selectors.base import Budget

        if self.budgets is not None:
            return [(f"{rate:g}", Budget(rate=float(rate))) for rate in self.budgets]
        assert self.budget is not None
        budget = Budget(**self.budget)
        return [(f"{budget.rate:g}" if budget.rate is not None else f"n{budget.count}", budget)]

    def train_config(self, seed: int, examples_per_step: int | None = None) -> Any:
        """The fine-tune of every arm; ``examples_per_step`` only for the whole pool at equal steps."""
        from tunesift.eval.training.train import TrainConfig

        given = {"template": "alpaca", **self.train, "seed": seed}
        if examples_per_step is not None:
            given["examples_per_step"] = examples_per_step
        return TrainConfig(base=self.base, **given).resolved()

    def eval_settings(self) -> Any:
        from tunesift.eval.evaluation.suite import EvalSettings

        return EvalSettings(**{"template": self.train.get("template", "alpaca"), **self.eval})


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
    for key in ("pool", "base"):
        if key not in raw:
            raise InputError("missing", path=path, field=key)
    pool = Path(raw["pool"])
    raw["pool"] = str(pool if pool.is_absolute() else (path.parent / pool))
    methods = raw.get("methods") or {}
    if not isinstance(methods, dict):
        raise ConfigError("methods", f"expected a mapping of arm name to {{recipe: NAME, options: {{...}}}}, got "
                          f"{methods!r}")  # fmt: skip
    for spec in methods.values():  # a query set, like the pool, is relative to the config
        options = spec.get("options") if isinstance(spec, dict) else None
        if isinstance(options, dict) and options.get("query") is not None:
            given = options["query"] if isinstance(options["query"], list) else [options["query"]]
            options["query"] = [str(q if Path(q).is_absolute() else path.parent / q) for q in map(Path, given)]
    return CompareConfig(**raw)


def validate(config: CompareConfig) -> None:
    """Every mistake a config can hold, found before any training: one :class:`ConfigError` naming the key."""
    from tunesift.recipes import load_recipe
    from tunesift.selectors.base import Budget

    kinds = {"full": bool, "full_equal_steps": bool, "floor": bool, "intervals": bool, "keep_contaminated": bool,
             "pool_seed": int, "suite": str, "train": dict, "eval": dict, "methods": dict}  # fmt: skip
    for key, kind in kinds.items():
        value = getattr(config, key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(key, f"expected {kind.__name__}, got {value!r}")
    if (config.budget is None) == (config.budgets is None):
        raise ConfigError("budget", "give one budget ({rate: R} or {count: N}) or a sweep (budgets: [R, ...])")
    if config.budgets is not None:
        if not isinstance(config.budgets, list) or not config.budgets:
            raise ConfigError("budgets", "a list of rates in (0, 1]")
        for rate in config.budgets:
            if not isinstance(rate, int | float) or not 0 < rate <= 1:
                raise ConfigError("budgets", f"every budget is a rate in (0, 1], got {rate!r}")
        if len(set(config.budgets)) != len(config.budgets):
            raise ConfigError("budgets", f"each budget once: {config.budgets} would train the same arms twice")
    else:
        if not isinstance(config.budget, dict) or set(config.budget) - {"rate", "count"}:
            raise ConfigError("budget", "{rate: R} with R in (0, 1], or {count: N}")
        try:
            Budget(**config.budget)
        except ConfigError as err:
            raise ConfigError(f"budget.{err.option}", err.message) from None
    cleaner = None
    for name, spec in config.methods.items():
        if name in RESERVED or name.startswith("random-"):
            raise ConfigError(f"methods.{name}", f"{name!r} names an arm of its own; call the method otherwise")
        if not isinstance(spec, dict):
            raise ConfigError(f"methods.{name}", "expected {recipe: NAME, options: {...}}")
        try:
            load_recipe(spec.get("recipe", name))
        except TunesiftError as err:
            raise ConfigError(f"methods.{name}.recipe", str(err)) from None
        query = (spec.get("options") or {}).get("query")
        if query is not None:  # a targeted method's query set, read and checked before any training
            from tunesift.data.queries import read_queries

            cleaner = cleaner or race_cleaner(config)  # the sets' index, built once for every query set
            try:
                check_queries(read_queries(query), cleaner)
            except ConfigError as err:
                raise ConfigError(f"methods.{name}.options.query", err.message) from None
    if not isinstance(config.random, dict) or set(config.random) - {"balance"}:
        raise ConfigError("random", "the random arm takes {balance: FIELD} (or nothing: uniform random)")
    if not isinstance(config.random_seeds, list) or not all(is_number(s, whole=True) for s in config.random_seeds):
        raise ConfigError("random_seeds", f"a list of whole-number seeds, e.g. [0, 1, 2], got {config.random_seeds!r}")
    if not config.random_seeds:
        raise ConfigError("random_seeds", "at least one random subset is needed to compare with")
    if len(set(config.random_seeds)) != len(config.random_seeds):
        raise ConfigError("random_seeds", f"each seed once: {config.random_seeds} draws the same random subset "
                          "more than once")  # fmt: skip
    if config.pool_size is not None and (not isinstance(config.pool_size, int) or config.pool_size < 1):
        raise ConfigError("pool_size", f"a positive number of records, got {config.pool_size!r}")
    if config.intervals and len(config.random_seeds) < 2:
        raise ConfigError("random_seeds", f"intervals pool random subsets: give at least 2 seeds, got "
                          f"{len(config.random_seeds)} (or intervals: false)")  # fmt: skip
    if not isinstance(config.train_seeds, int) or config.train_seeds < 1:
        raise ConfigError("train_seeds", f"a positive number of data orders, got {config.train_seeds!r}")
    if not is_number(config.n_boot, whole=True) or config.n_boot < 100:
        raise ConfigError("n_boot", f"at least 100 bootstrap replicates, got {config.n_boot}")
    if config.judge is not None:
        if not isinstance(config.judge, dict) or "model" not in config.judge:
            raise ConfigError("judge.model", "a judge needs a model (with base_url: the name the server serves)")
        unknown = sorted(set(config.judge) - JUDGE_KEYS)
        if unknown:
            raise ConfigError(f"judge.{unknown[0]}", f"unknown; known: {', '.join(sorted(JUDGE_KEYS))}")
        if not config.full:
            raise ConfigError("judge", "the winning rate is against the full-data model: set full: true")
    try:
        config.train_config(0)
    except TypeError as err:
        raise ConfigError("train", str(err).replace("TrainConfig.__init__()", "train")) from None
    except ConfigError as err:
        raise ConfigError(f"train.{err.option}", err.message) from None
    try:
        settings = config.eval_settings()
    except TypeError as err:
        raise ConfigError("eval", str(err).replace("EvalSettings.__init__()", "eval")) from None
    except ConfigError as err:
        raise ConfigError(f"eval.{err.option}", err.message) from None
    _check_eval_sets(config, settings)


def _check_eval_sets(config: CompareConfig, settings: Any) -> None:
    from transformers import AutoTokenizer

    from tunesift.data.templates import get_template
    from tunesift.eval.evaluation.suite import check_sets
    from tunesift.models.registry import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.base, option="base").path)
    check_sets(config.suite, settings, tokenizer, get_template(settings.template, tokenizer))


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, allow_nan=True)


def _key(payload: Any) -> str:
    from tunesift.store import config_hash

    return config_hash(json.loads(json.dumps(payload, default=str)))[:10]


def _file_sha(path: str | Path) -> str:
    """The file's content hash (read in blocks: ``hashlib.file_digest`` needs Python 3.11, tunesift 3.10)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _recipe_identity(name: str) -> Any:
    """A built-in recipe by name, a user's recipe file by its content (an edited file is another recipe)."""
    path = Path(name)
    return {"file_sha": _file_sha(path)} if path.suffix and path.exists() else name


def _query_identity(path: str | Path) -> str | None:
    """A query file by its content: an edited query set is another selection."""
    return _file_sha(Path(path)) if Path(path).is_file() else None


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


#: The evaluation set each metric reads (a target_loss reads the user's own file).
METRIC_SETS = {"alpaca_eval_loss": "alpaca_eval", "gsm8k_loss": "gsm8k", "gsm8k_accuracy": "gsm8k", "mmlu": "mmlu",
               "bbh_loss": "bbh", "bbh_accuracy": "bbh", "humaneval_loss": "humaneval",
               "humaneval_pass1": "humaneval"}  # fmt: skip


def eval_sets(config: CompareConfig) -> list[str]:
    """Every evaluation set the race scores on: its suite's, the target file, the judge's test set."""
    from tunesift.eval.evaluation.suite import SUITES

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


def _pool_key(config: CompareConfig) -> str:
    """The proxy's cache key: its source, size, seed and whether its contaminated records were dropped."""
    clean = None if config.keep_contaminated else eval_sets(config)
    return _key({"source": _file_sha(config.pool), "size": config.pool_size, "seed": config.pool_seed,
                 **({"decontaminated": clean} if clean else {})})  # fmt: skip


def proxy_records(config: CompareConfig, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """The proxy drawn from ``records`` (``pool_size`` of them, seeded), and what decontamination finds in it
    against every set the race scores on (METHODS.md §23): the drops carry proxy positions."""
    from tunesift.data.pools import record_to_sample

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
    pool_key = _pool_key(config)
    pool_path = out / f"pool-{pool_key}.json"
    if not pool_path.exists():
        write_records(pool_path, records, "json")
    pool = read_pool(pool_path)
    pool_ids = _ids_hash(pool.samples)
    settings = config.eval_settings()
    models: list[dict[str, Any]] = []
    budgets: list[dict[str, Any]] = []
    full_models = [Model("full", s, pool_path, _run_dir(out, config, "full", s, pool_ids))
                   for s in range(config.train_seeds)]  # fmt: skip
    for label, budget in config.budget_list():
        wanted = budget.size(base=len(pool), available=len(pool))
        if budget.count is not None and budget.count > len(pool):
            raise ConfigError("budget.count", f"{budget.count} records asked of a pool of {len(pool)}")
        if wanted < 1:
            raise ConfigError("budget", f"gives {wanted} records of {len(pool)}")
        arms, size, short = _subsets(config, api, pool, pool_key, wanted, label, out, device, progress, log)
        arm_models: dict[str, list[Model]] = {}
        for arm, (subset, seeds) in arms.items():
            ids = _ids_hash(read_pool(subset).samples)
            arm_models[arm] = [Model(arm if not arm.startswith("random-") else "random", s, subset,
                                     _run_dir(out, config, "full" if ids == pool_ids else arm, s, ids))
                               for s in seeds]  # fmt: skip
        if config.full_equal_steps:
            per_step = equal_steps(config, len(pool), size)
            arm_models[WHOLE_POOL] = [Model(WHOLE_POOL, s, pool_path, _run_dir(out, config, WHOLE_POOL, s, pool_ids,
                                                                              per_step), per_step)
                                      for s in range(config.train_seeds)]  # fmt: skip
        rows = [_train_and_eval(config, m, settings, label, device, progress, log) for ms in arm_models.values()
                for m in ms]  # fmt: skip
        models += rows
        held = {a: sum(s.content_id in contaminated for s in read_pool(subset).samples)
                for a, (subset, _) in arms.items()} if config.keep_contaminated else {}  # fmt: skip
        budgets.append({"budget": label, "rate": budget.rate, "requested": wanted, "size": size, "short": short,
                        "subsets": {a: str(subset) for a, (subset, _) in arms.items()},
                        "arms": {a: [str(m.run_dir) for m in ms] for a, ms in arm_models.items()},
                        **({"contaminated_selected": held} if config.keep_contaminated else {})})  # fmt: skip
    if config.full:
        models += [_train_and_eval(config, m, settings, "full", device, progress, log) for m in full_models]
    if config.floor:
        models.append(_floor(config, out, settings, device))
    results: dict[str, Any] = {"config": asdict(config), "pool": str(pool_path), "n_pool": len(pool),
                               "training": config.train_config(0).__dict__, "eval_settings": asdict(settings),
                               "budgets": budgets, "models": models,
                               "contamination": {**found.summary(),
                                                 "kept_in_race": config.keep_contaminated}}  # fmt: skip
    if config.intervals:
        results["intervals"] = intervals(results, config.n_boot)
    if config.judge is not None:
        results["winning"] = _winning(config, results, full_models, out, device, log)
    _write_json(out / "results.json", results)
    return results


def _run_dir(out: Path, config: CompareConfig, name: str, seed: int, data_ids: str,
             examples_per_step: int | None = None) -> Path:  # fmt: skip
    """A training run's folder: named by the arm, and keyed by its data and its whole training config."""
    cfg = config.train_config(seed, examples_per_step)
    return out / "runs" / f"{name}-s{seed}-{_key({'data': data_ids, 'train': cfg.__dict__})}"


def _subsets(config: CompareConfig, api: Any, pool: Any, pool_key: str, wanted: int, label: str, out: Path,
             device: str | None, progress: bool, log: Callable[[str], Any]):  # fmt: skip
    """Every arm's subset at one budget, all of one size: a method whose filter leaves fewer than
    ``wanted`` shrinks every arm to the common size (said in the log; ``short`` records who)."""
    from tunesift.data.pools import read_pool

    def method_subset(name: str, spec: dict[str, Any], size: int) -> Path:
        recipe = spec.get("recipe", name)
        path = _method_subset_path(out, pool_key, name, spec, size)
        if not path.exists():
            started = time.perf_counter()
            api.run_recipe(recipe, pool, path, api.Budget(count=size), store_dir=config.store_dir, device=device,
                           progress=progress, **spec.get("options", {}))  # fmt: skip
            _write_json(path.with_suffix(".timing"), {"select_s": round(time.perf_counter() - started, 1)})
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
        path = _random_subset_path(out, pool_key, config, seed, size)
        if not path.exists():
            api.run_recipe("random", pool, path, api.Budget(count=size),
                           select_options={**config.random, "random_state": seed})  # fmt: skip
        arms[f"random-{seed}"] = (path, [seed])
    return arms, size, short


def _method_subset_path(out: Path, pool_key: str, name: str, spec: dict[str, Any], size: int) -> Path:
    """Where a method's subset of ``size`` is kept: keyed by the pool, the recipe, its options and query files."""
    options = spec.get("options", {})
    queries = options.get("query") or []
    queries = [queries] if isinstance(queries, str) else queries
    described = {"pool": pool_key, "recipe": _recipe_identity(spec.get("recipe", name)), "options": options,
                 "size": size}  # fmt: skip
    if queries:
        described["query_sha"] = [_query_identity(q) for q in queries]
    key = _key(described)
    return out / "subsets" / f"{name}-{size}-{key}.json"


def _random_subset_path(out: Path, pool_key: str, config: CompareConfig, seed: int, size: int) -> Path:
    key = _key({"pool": pool_key, "seed": seed, "size": size, **({"random": config.random} if config.random else {})})
    return out / "subsets" / f"random-{seed}-{size}-{key}.json"


def planned_arms(config: CompareConfig, out: str | Path, n: int | None = None) -> list[dict[str, Any]]:
    """Every fine-tune the protocol needs at its asked sizes, and which are already cached (subset written,
    model trained and evaluated); a method that keeps fewer records would shrink the sizes at run time. ``n``: the
    race's proxy size, contaminated records left out (found here when not given)."""
    from tunesift.data.pools import read_pool
    from tunesift.eval.evaluation.suite import result_path
    from tunesift.eval.training.train import _ids_hash

    out = Path(out)
    pool_key = _pool_key(config)
    if n is None:
        n = race_size(config, *proxy_records(config, [s.record for s in read_pool(config.pool).samples]))
    settings = config.eval_settings()
    found = []
    for label, budget in config.budget_list():
        size = budget.size(base=n, available=n)
        wanted = [(name, _method_subset_path(out, pool_key, name, spec, size), list(range(config.train_seeds)))
                  for name, spec in config.methods.items()]  # fmt: skip
        wanted += [(f"random-{seed}", _random_subset_path(out, pool_key, config, seed, size), [seed])
                   for seed in config.random_seeds]  # fmt: skip
        per_step = {}
        if config.full_equal_steps:
            wanted.append((WHOLE_POOL, out / f"pool-{pool_key}.json", list(range(config.train_seeds))))
            per_step[WHOLE_POOL] = equal_steps(config, n, size)
        for name, subset, seeds in wanted:
            ids = _ids_hash(read_pool(subset).samples) if subset.exists() else None
            arm = "random" if name.startswith("random-") else name
            for seed in seeds:  # a random arm's folder: random-SEED
                run = _run_dir(out, config, name, seed, ids, per_step.get(name)) if ids else None
                evaluated = bool(run and result_path(run, config.suite, settings).exists())
                found.append({"budget": label, "arm": arm, "seed": seed, "size": n if name == WHOLE_POOL else size,
                              "subset": subset.exists(), "evaluated": evaluated,
                              "examples_per_step": per_step.get(name)})  # fmt: skip
    return found


def _train_and_eval(config: CompareConfig, model: Model, settings: Any, budget: str, device: str | None,
                    progress: bool, log: Callable[[str], Any]) -> dict[str, Any]:  # fmt: skip
    from tunesift.data.pools import read_pool
    from tunesift.eval.evaluation.suite import evaluate, headline, result_path
    from tunesift.eval.training.train import train

    result = train(model.subset, model.run_dir, config.train_config(model.seed, model.examples_per_step),
                   device=device, progress=progress)  # fmt: skip
    path = result_path(model.run_dir, config.suite, settings)
    if path.exists():
        scores = json.loads(path.read_text())
    else:
        scores = evaluate(model.run_dir, config.suite, settings, device, lm=_in_memory(result.model, model.run_dir))
    result.model = None  # free it before the next run trains
    timing = model.subset.with_suffix(".timing")
    select_s = json.loads(timing.read_text())["select_s"] if timing.exists() else None
    row = {"budget": budget, "arm": model.arm, "seed": model.seed, "n": len(read_pool(model.subset)),
           "train_steps": result.steps, "train_s": round(result.seconds, 1), "select_s": select_s,
           "eval_s": _eval_seconds(scores), **headline(scores), "run": str(model.run_dir),
           "eval_file": str(path)}  # fmt: skip
    log(f"[compare] {budget} {model.arm} s{model.seed}: {result.steps} steps; {headline(scores)}")
    return row


def _floor(config: CompareConfig, out: Path, settings: Any, device: str | None) -> dict[str, Any]:
    from tunesift.eval.evaluation.suite import evaluate, headline

    path = out / "base" / f"eval-{config.suite}-{_key({'base': config.base, 'eval': settings.key(config.suite)})}.json"
    if path.exists():
        scores = json.loads(path.read_text())
    else:
        scores = evaluate(config.base, config.suite, settings, device)
        _write_json(path, scores)
    return {"budget": "base", "arm": "base (untuned)", "seed": None, "n": 0, **headline(scores),
            "eval_s": _eval_seconds(scores), "eval_file": str(path)}  # fmt: skip


def _eval_seconds(scores: dict[str, Any]) -> float:
    """Seconds one evaluation took, summed over its metrics."""
    return round(sum(v["seconds"] for v in scores.values() if isinstance(v, dict) and "seconds" in v), 1)


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


def intervals(results: dict[str, Any], n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Every method against random (its seeds pooled) and against full data, per budget and metric: the
    difference, its paired-bootstrap 95 % interval over evaluation items and the verdict."""
    from tunesift.eval.evaluation.suite import HIGHER_IS_BETTER

    between = Between()
    rows = results["models"]
    full = [r for r in rows if r["budget"] == "full"]
    out = []
    for budget in results["budgets"]:
        here = [r for r in rows if r["budget"] == budget["budget"]]
        methods = [a for a in dict.fromkeys(r["arm"] for r in here) if a != "random"]
        arms = {"random": [r for r in here if r["arm"] == "random"], "full": full}
        for method in methods:
            mine = [r for r in here if r["arm"] == method]
            for against, theirs in arms.items():
                if not theirs:
                    continue
                for metric in HIGHER_IS_BETTER:
                    if metric not in mine[0]:
                        continue
                    interval = between(mine, theirs, metric, n_boot, seed)
                    out.append({"budget": budget["budget"], "method": method, "against": against, "metric": metric,
                                **interval.as_dict()})  # fmt: skip
    return out


class Between:
    """The paired-bootstrap interval of one metric between two arms' models (rows of ``results["models"]``), over
    the evaluation items both were scored on; each model's per-item results are read once."""

    def __init__(self) -> None:
        self.loaded: dict[str, dict[str, Any]] = {}

    def scores(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["eval_file"] not in self.loaded:
            self.loaded[row["eval_file"]] = json.loads(Path(row["eval_file"]).read_text())
        return self.loaded[row["eval_file"]]

    def __call__(self, mine: list[dict[str, Any]], theirs: list[dict[str, Any]], metric: str, n_boot: int = 2000,
                 seed: int = 0) -> Any:  # fmt: skip
        from tunesift.eval.evaluation.stats import paired_bootstrap
        from tunesift.eval.evaluation.suite import HIGHER_IS_BETTER, per_item

        a = [per_item(self.scores(r), metric) for r in mine]
        b = [per_item(self.scores(r), metric) for r in theirs]
        den = a[0][1]
        if any(d != den for _, d in a + b):
            raise ConfigError("eval", f"{metric}: the models were scored on different items or tokens")
        return paired_bootstrap([x for x, _ in a], [x for x, _ in b], den, higher_is_better=HIGHER_IS_BETTER[metric],
                                n_boot=n_boot, seed=seed)  # fmt: skip


def _winning(config: CompareConfig, results: dict[str, Any], full_models: list[Model], out: Path,
             device: str | None, log: Callable[[str], Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Each method's first model (and the first random one) against the first full-data model, judged in
    both orders: the survey's winning rate, cached per pair, judge and test set."""
    from tunesift.eval.evaluation.pairwise_run import MAX_TOTAL_TOKENS, run_pairwise

    judge = dict(config.judge or {})
    testset, n = judge.get("testset", "vicuna"), judge.get("n")
    template = config.train_config(0).template
    full_run = full_models[0].run_dir

    def answers_cache(run_dir: Path) -> Path:
        key = _key({"testset": testset, "n": n, "template": template, "max": MAX_TOTAL_TOKENS})
        return run_dir / f"answers-{key}.json"

    rows = []
    for row in results["models"]:
        first_random = row["arm"] == "random" and row["seed"] == config.random_seeds[0]
        if row["budget"] in ("full", "base") or not ((row["seed"] == 0 and row["arm"] != "random") or first_random):
            continue
        run_dir = Path(row["run"])
        path = run_dir / f"pairwise-{_key({'vs': full_run.name, 'judge': judge, 'template': template})}.json"
        if path.exists():
            summary = json.loads(path.read_text())
        else:
            summary = run_pairwise(str(run_dir), str(full_run), testset=testset, n=n, judge_model=judge["model"],
                                   base_url=judge.get("base_url"),
                                   api_key_env=judge.get("api_key_env", "OPENAI_API_KEY"),
                                   device=device, template=template, cache_a=answers_cache(run_dir),
                                   cache_b=answers_cache(full_run))  # fmt: skip
            _write_json(path, summary)
        log(f"[compare] {row['budget']} {row['arm']} vs full: winning score {summary['winning_score']:.3f}")
        rows.append({"budget": row["budget"], "method": row["arm"], "testset": testset,
                     **{k: summary[k] for k in ("n", "wins", "ties", "losses", "unjudged", "winning_score",
                                                 "wins_share", "ties_share", "losses_share")}})  # fmt: skip
    return rows
