"""What an ``advise`` race runs (:class:`AdviseConfig`), the targets it knows, the checks that need no model
(before any work), and the ``compare`` configuration underneath."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError
from tunesift.options import is_number, split_list

#: The targets a race knows by name, and the metric of the CPU suite each is judged by.
TARGETS = {"alpaca_eval": "alpaca_eval_loss", "gsm8k": "gsm8k_loss", "mmlu": "mmlu", "bbh": "bbh_loss",
           "math500": "math500_loss",
           "humaneval": "humaneval_loss"}  # fmt: skip


@dataclass
class AdviseConfig:
    """What the race runs: the pool, the budget(s), the target and the arms; the rest is ``compare``'s."""

    pool: str
    budgets: list[float]
    target: str = "alpaca_eval"
    query: list[str] = field(default_factory=list)
    methods: list[str] | None = None
    base: str = "gemma-3-270m"
    proxy_size: int | None = None  # None: 2,000 records, or the whole pool where it is smaller
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train_seeds: int = 1
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    store_dir: str | None = None
    scorer_model: str | None = None  # the model the scoring methods use (default: each recipe's own)
    keep_contaminated: bool = False  # keep proxy records that hold evaluation items (default: dropped)
    #: the metrics a recommended arm must not be worse on: "all" (every other metric), "none", or a list
    guard: str | list[str] | None = "all"
    #: the race again under each of these learning rates: the advice says whether its verdict holds
    learning_rates: list[float] | None = None
    #: the whole proxy as an arm of every budget, at the subsets' number of optimizer steps: does a selection beat it?
    with_full: bool = False
    #: the options of a distill:NAME arm's teacher (KEY=VALUE strings, or a mapping)
    teacher_options: Any = field(default_factory=list)


DEFAULT_PROXY = 2000  # records raced when the user gives no --proxy-size (the whole pool where it is smaller)


def metric_of(target: str) -> str:
    return TARGETS.get(target, "target_loss")


def check_settings(config: AdviseConfig) -> None:
    """The checks that need neither the pool nor a model: the extra learning rates and the guard."""
    rates = config.learning_rates
    own = config.train.get("learning_rate") or (5e-4 if config.train.get("lora", True) else 2e-5)  # TrainConfig's
    if rates is not None and (not rates or any(not is_number(lr) or not 0 < lr < math.inf for lr in rates)
                              or len(set(rates)) != len(rates) or own in rates):  # fmt: skip
        raise ConfigError("learning-rates", f"one or more positive finite rates, each once and other than the race's "
                          f"own ({own:g}: every arm would race twice), got {rates}")  # fmt: skip
    if config.guard not in (None, "all", "none"):
        from tunesift.eval.evaluation.suite import SUITES

        measured = [m for m in SUITES[suite_of(config)] if m != metric_of(config.target)]
        guarded = split_list(config.guard)
        unknown = [m for m in guarded if m not in measured]
        if not guarded or unknown:
            raise ConfigError("guard", f"all, none or metrics this race measures besides its target "
                              f"({', '.join(measured)}); got {config.guard!r}")  # fmt: skip


def check(config: AdviseConfig, pool: Any) -> None:
    """Everything wrong with the request that needs no model, before any scoring or training."""
    from tunesift.data.queries import read_queries

    if config.methods is not None and not config.methods:
        raise ConfigError("methods", "name at least one method to race against random (or leave --methods out "
                          "for the default menu)")  # fmt: skip
    if config.proxy_size is None:
        config.proxy_size = min(DEFAULT_PROXY, len(pool))
    elif config.proxy_size < 2 or config.proxy_size > len(pool):
        raise ConfigError("proxy-size", f"between 2 and the pool's {len(pool)} records, got {config.proxy_size}")
    if len(set(config.budgets)) != len(config.budgets):
        raise ConfigError("budget", f"each budget once: {config.budgets} would train the same arms twice")
    check_settings(config)
    for rate in config.budgets:
        if not 0 < rate <= 1:
            raise ConfigError("budget", f"a rate in (0, 1], got {rate}")
        if int(rate * config.proxy_size) < 1:
            raise ConfigError("budget", f"{rate:g} of the {config.proxy_size}-record proxy is "
                              f"{rate * config.proxy_size:g} records, fewer than 1: give a larger rate (or "
                              "--proxy-size)")  # fmt: skip
    if len(config.random_seeds) < 2:
        raise ConfigError("random-seeds", f"intervals pool the random subsets: give at least 2, got "
                          f"{len(config.random_seeds)}")  # fmt: skip
    if config.target not in TARGETS:
        path = Path(config.target)
        if not path.exists():
            raise ConfigError("target", f"{', '.join(TARGETS)} or a file of held-out examples; {path} does not "
                              "exist")  # fmt: skip
        from tunesift.data.pools import read_pool
        from tunesift.errors import TunesiftError

        try:
            read_pool(path)
        except TunesiftError as err:
            raise ConfigError("target", str(err)) from None
    if config.query:
        from tunesift.eval.compare.clean import check_queries, race_cleaner

        check_queries(read_queries(config.query), race_cleaner(compare_config(config, {})))


def suite_of(config: AdviseConfig) -> str:
    """The evaluation suite a race runs: the CPU suite, the reasoning one for a MATH500 target, or the user's
    held-out file's."""
    if config.target not in TARGETS:
        return "target"
    return "reasoning" if config.target == "math500" else "cpu"


def compare_config(config: AdviseConfig, methods: dict[str, dict[str, Any]]) -> Any:
    from tunesift.eval.compare.config import CompareConfig

    eval_settings = dict(config.eval)
    suite = suite_of(config)
    if suite == "target":
        eval_settings["target_file"] = str(Path(config.target).resolve())
    return CompareConfig(
        pool=config.pool, base=config.base, budgets=list(config.budgets), methods=methods,
        pool_size=config.proxy_size, pool_seed=0, train=dict(config.train), random_seeds=list(config.random_seeds),
        train_seeds=config.train_seeds, full=False, full_equal_steps=config.with_full, floor=False, suite=suite,
        eval=eval_settings, store_dir=config.store_dir, intervals=True, keep_contaminated=config.keep_contaminated,
    )  # fmt: skip
