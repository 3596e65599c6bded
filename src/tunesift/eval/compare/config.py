"""What a comparison runs (:class:`CompareConfig`), read from one YAML or JSON file, and every check that needs
no training (before any work).

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
    keep_contaminated: false # keep the proxy's records that hold evaluation items (default: dropped, METHODS.md §23)
    judge: {model: NAME, base_url: http://localhost:8000/v1, testset: vicuna, n: 80}   # winning rate vs full
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError, InputError, TunesiftError
from tunesift.options import is_number

KEYS = {"pool", "pool_size", "pool_seed", "budget", "budgets", "base", "train", "methods", "random", "random_seeds",
        "train_seeds", "full", "full_equal_steps", "floor", "suite", "eval", "store_dir", "intervals", "n_boot",
        "judge", "keep_contaminated"}  # fmt: skip


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

    from tunesift.yamltext import load_yaml

    path = Path(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
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
    from tunesift.eval.compare.clean import check_queries, race_cleaner  # clean reads the config: imported here
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
