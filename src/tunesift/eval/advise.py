"""``tunesift advise``: race the selection methods on a proxy of the user's own pool, at their budget, against
random, and recommend one, with intervals.

The race is :func:`tunesift.eval.compare.compare` (equal sizes, equal optimizer steps, paired-bootstrap intervals,
every artifact cached under the hash of what produced it): a second run, one more method or one more budget
computes only what is new. Before any work the plan is said: the arms, what is cached, and the time each stage
should take on this machine, measured on a few samples. The advice: per budget, a leaderboard of each method's
difference from random on every metric (95 % interval, verdict), its selection cost, and one recommendation: the
cheapest method better than random on the target's metric and not worse on any other; else, plainly, that no
method beat random, and the baseline to use.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError

#: The default menu: baselines and the model methods that need no endpoint (their recipes, by arm name).
MENU: dict[str, dict[str, Any]] = {
    "longest": {"recipe": "longest"},
    "ifd": {"recipe": "cherry"},
    "superfiltering": {"recipe": "superfiltering"},
    # the token level (one rating prompt): sentence level rates with five, five times the cost on a CPU
    "selectit": {"recipe": "selectit", "options": {"level": "token"}},
    "kcenter": {"recipe": "kcenter"},
}
#: The targeted methods, on the menu when a query set is given.
TARGETED: dict[str, dict[str, Any]] = {"rds": {"recipe": "rds"}, "embed": {"recipe": "embed"},
                                       "bm25": {"recipe": "bm25"}}  # fmt: skip
BALANCED = "balanced"  # random, balanced by the pool's source field: on the menu where the pool has one
DISTILL = "distill:"  # distill:NAME races a head distilled from the method NAME (the teacher)
#: A distill arm's teacher labels a quarter of the proxy (distill labels a sample of a larger pool; so does the race).
DISTILL_SHARE = 4
TARGETS = {"alpaca_eval": "alpaca_eval_loss", "gsm8k": "gsm8k_loss", "mmlu": "mmlu"}
METHODS_WITH_A_SCORER_MODEL = ("cherry", "superfiltering", "selectit", "rds")


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
    #: the options of a distill:NAME arm's teacher (KEY=VALUE strings, or a mapping)
    teacher_options: Any = field(default_factory=list)


DEFAULT_PROXY = 2000  # records raced when the user gives no --proxy-size (the whole pool where it is smaller)


def metric_of(target: str) -> str:
    return TARGETS.get(target, "target_loss")


def _source_field(pool: Any) -> str | None:
    from tunesift.selectors.random import SOURCE_FIELDS

    for sample in pool:
        record = getattr(sample, "record", None)
        if isinstance(record, dict):
            found = next((f for f in SOURCE_FIELDS if record.get(f) is not None), None)
            if found:
                return found
    return None


def arms(config: AdviseConfig, pool: Any, out: Path) -> dict[str, dict[str, Any]]:
    """The method arms (name -> compare's {recipe, options}), every name checked; random is compare's own arm."""
    from tunesift.recipes import builtin_names

    source = _source_field(pool)
    if config.methods is None:
        names = [*MENU, *([BALANCED] if source else []), *(TARGETED if config.query else [])]
    else:
        names = config.methods
    known = {*MENU, *TARGETED, BALANCED, *builtin_names()}
    chosen: dict[str, dict[str, Any]] = {}
    for name in names:
        if Path(name).suffix in (".yaml", ".yml") and Path(name).is_file():  # a recipe of the user's own
            chosen[Path(name).stem] = {"recipe": str(Path(name).resolve())}
            continue
        if name.startswith(DISTILL):
            chosen[name] = distill_arm(name, config)
            continue
        if name not in known:
            raise ConfigError("methods", f"unknown method {name!r}; choose from {', '.join(sorted(known))} or give a "
                              "recipe file (.yaml)")  # fmt: skip
        if name == "random":
            continue  # every race has its random arm
        if name == BALANCED:
            if source is None:
                raise ConfigError("methods", "balanced random needs a dataset or source field in the pool's records")
            recipe = out / "recipes" / "balanced.yaml"
            recipe.parent.mkdir(parents=True, exist_ok=True)
            recipe.write_text(f"name: balanced\ndescription: random, balanced by {source}\nsteps:\n"
                              f"  - select: {{method: random, balance: {source}, of: pool}}\n")  # fmt: skip
            chosen[name] = {"recipe": str(recipe)}
            continue
        spec = dict({**MENU, **TARGETED}.get(name, {"recipe": name}))
        options: dict[str, Any] = dict(spec.get("options", {}))
        if spec["recipe"] in TARGETED or name in TARGETED:
            if not config.query:
                raise ConfigError("query", f"method {name!r} ranks the pool against a query set: give --query FILE")
            options["query"] = list(config.query)
        if config.scorer_model and spec["recipe"] in METHODS_WITH_A_SCORER_MODEL:
            options["models" if spec["recipe"] == "selectit" else "model"] = (
                [config.scorer_model] if spec["recipe"] == "selectit" else config.scorer_model
            )
        if options:
            spec["options"] = options
        chosen[name] = spec
    return chosen


def distill_arm(name: str, config: AdviseConfig) -> dict[str, Any]:
    """The arm ``distill:TEACHER``: the teacher labels a quarter of the proxy (at least 50 records), the head scores
    the rest. ``force``: the race is the judge of a weak head, so its gate does not stop the race (its figures are
    in the arm's score configuration)."""
    from tunesift.scorers import check_options

    teacher = name[len(DISTILL) :]
    if not teacher:
        raise ConfigError("methods", f"{name!r}: name the teacher, e.g. distill:alpagasus")
    proxy = config.proxy_size or DEFAULT_PROXY
    n_label = max(50, proxy // DISTILL_SHARE)
    options = {"teacher": teacher, "teacher_options": config.teacher_options, "n_label": n_label, "force": True}
    given = check_options("distill", options, where=f"advise arm {name!r}")["teacher_options"]
    if proxy < 2 * 50:
        raise ConfigError("methods", f"{name}: a distilled head needs 50 labelled records and as many more to score; "
                          f"the proxy has {proxy}")  # fmt: skip
    options["teacher_options"] = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
    return {"recipe": "distill", "options": options}


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
    rates = config.learning_rates or []
    if any(not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0 for lr in rates) or (
            len(set(rates)) != len(rates) or config.train.get("learning_rate") in rates):  # fmt: skip
        raise ConfigError("learning-rates", f"positive rates, each once and other than the race's own, got {rates}")
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
            raise ConfigError("target", f"alpaca_eval, gsm8k, mmlu or a file of held-out examples; {path} does not "
                              "exist")  # fmt: skip
        from tunesift.data.pools import read_pool
        from tunesift.errors import TunesiftError

        try:
            read_pool(path)
        except TunesiftError as err:
            raise ConfigError("target", str(err)) from None
    if config.query:
        from tunesift.eval.compare import check_queries, race_cleaner

        check_queries(read_queries(config.query), race_cleaner(compare_config(config, {})))


def compare_config(config: AdviseConfig, methods: dict[str, dict[str, Any]]) -> Any:
    from tunesift.eval.compare import CompareConfig

    eval_settings = dict(config.eval)
    suite = "cpu"
    if config.target not in TARGETS:
        suite = "target"
        eval_settings["target_file"] = str(Path(config.target).resolve())
    return CompareConfig(
        pool=config.pool, base=config.base, budgets=list(config.budgets), methods=methods,
        pool_size=config.proxy_size, pool_seed=0, train=dict(config.train), random_seeds=list(config.random_seeds),
        train_seeds=config.train_seeds, full=False, floor=False, suite=suite, eval=eval_settings,
        store_dir=config.store_dir, intervals=True, keep_contaminated=config.keep_contaminated,
    )  # fmt: skip


# ----- the plan -----


def plan(config: AdviseConfig, compare_cfg: Any, out: Path, measure: bool = True,
         scratch: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The arms, what is cached, and the time each stage should take here (measured on a few samples, in
    ``scratch`` when given: a dry run's probes leave nothing in ``out`` or the score store)."""
    from tunesift.data.pools import read_pool
    from tunesift.eval.compare import planned_arms, proxy_records, race_size

    records, found = proxy_records(compare_cfg, [s.record for s in read_pool(compare_cfg.pool).samples])
    arms_here = planned_arms(compare_cfg, out, race_size(compare_cfg, records, found))
    estimate = measure_costs(config, compare_cfg, scratch or out, scratch=scratch is not None) if measure else {}
    contamination = {"records": len(found.dropped), "kept_in_race": config.keep_contaminated, "sets": found.sets}
    return {"arms": arms_here, "estimate": estimate, "contamination": contamination}


def measure_costs(config: AdviseConfig, compare_cfg: Any, out: Path, probe: int = 8,
                  scratch: bool = False) -> dict[str, Any]:  # fmt: skip
    """Seconds per sample of each scoring method (two small runs on the pool's first records, so the model's
    load is apart), and of one optimizer step of the base model (its forward and backward); the evaluation is
    taken as a third of a training step a token, at least 30 s a model."""
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
        costs["scoring"][name] = {"load_s": max(0.0, seconds[0] - probe * per_sample), "per_sample_s": per_sample}
    costs["train_step_s"] = _train_step_seconds(compare_cfg, proxy, folder)
    return costs


def _train_step_seconds(compare_cfg: Any, samples: Sequence[Any], folder: Path) -> float:
    """One optimizer step of the race's own fine-tune (LoRA, the response-only loss), timed on the second of two
    steps over the pool's first records. The trainer itself, not a plain forward: a forward with labels builds the
    logits of every position over Gemma's 262k-row vocabulary (4 GB a direction at 8 x 512 tokens), which is what
    made the plan peak at 8.6 GB."""
    import shutil

    from tunesift.eval.train import train

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
        steps = sum(max(1, int(rate * n) // compare_cfg.train_config(0).examples_per_step) for rate in config.budgets)
        fine_tunes = [a for a in arms_here if not a["evaluated"]]
        per_run = steps / max(1, len(config.budgets)) * estimate["train_step_s"]
        train = per_run * len(fine_tunes)
        evaluate = len(fine_tunes) * max(30.0, per_run / 3)
        lines.append(f"estimate on this machine: scoring {scoring / 60:.1f} min ("
                     + ", ".join(f"{k} {v['load_s'] + v['per_sample_s'] * n:.0f} s"
                                 for k, v in estimate["scoring"].items()) +
                     f"); training {train / 60:.1f} min ({len(fine_tunes)} fine-tunes, "
                     f"{estimate['train_step_s']:.1f} s a step); evaluation about {evaluate / 60:.1f} min")  # fmt: skip
    return lines


# ----- the advice -----


@dataclass
class Advice:
    budget: str
    leaderboard: list[dict[str, Any]]
    recommendation: str | None
    reason: str
    command: str
    tradeoff: dict[str, Any] | None = None  # the best arm for the target alone, when a guard excluded it
    stability: dict[str, Any] | None = None  # whether the verdict holds under the other settings raced

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_guard(config: AdviseConfig, metrics: Sequence[str]) -> list[str]:
    """The metrics an arm must not be worse on: ``all`` (every other metric), ``none``, or the ones named."""
    guard = config.guard
    if guard in (None, "all"):
        return [m for m in metrics if m != metric_of(config.target)]
    if guard == "none":
        return []
    return [m for m in (guard.split(",") if isinstance(guard, str) else guard) if m != metric_of(config.target)]


def advise_from(results: dict[str, Any], config: AdviseConfig, methods: dict[str, dict[str, Any]],
                pool_size: int, pool_path: str) -> list[Advice]:  # fmt: skip
    """Per budget: each method's intervals against random and against the best arm, its cost, and the
    recommendation by effect: among the arms better than random on the target's metric and not worse on a guarded
    one, the largest gain; a cheaper arm takes its place only when the paired interval between the two on the
    target holds zero. An arm a guard excluded that would have won is named with what it costs and where."""
    from tunesift.eval.compare import Between

    primary = metric_of(config.target)
    between = Between()
    out = []
    for budget in results["budgets"]:
        label = budget["budget"]
        found = [i for i in results.get("intervals", []) if i["budget"] == label and i["against"] == "random"]
        rows = [r for r in results["models"] if r["budget"] == label]
        board = []
        for name in methods:
            mine = [i for i in found if i["method"] == name]
            if not mine:
                continue
            select_s = next((r["select_s"] for r in rows if r["arm"] == name and r.get("select_s") is not None), 0.0)
            per_sample = (select_s or 0.0) / max(1, results["n_pool"])
            held = budget.get("contaminated_selected", {}).get(name)
            board.append({"method": name, "select_s": select_s or 0.0, "select_s_per_sample": per_sample,
                          "projected_pool_s": per_sample * pool_size,
                          **({"contaminated_selected": held} if held is not None else {}),
                          "metrics": {i["metric"]: {k: i[k] for k in ("diff", "low", "high", "verdict")} for i in mine},
                          })  # fmt: skip
        metrics = list(dict.fromkeys(m for b in board for m in b["metrics"]))
        race = Race(board, rows, primary, resolve_guard(config, metrics), between)
        chosen, reason = race.recommend()
        rate = budget["rate"]
        if chosen is not None:
            name, command = chosen["method"], _command(methods[chosen["method"]], pool_path, rate, config)
        else:
            source = any(n == BALANCED for n in methods)
            name = None
            baseline = "balanced random (--balance-by auto)" if source else "random"
            reason = f"{reason}: use {baseline}"
            command = (f"tunesift run random {pool_path} --rate {rate:g} --out subset.json"
                       + (" --balance-by auto" if source else ""))  # fmt: skip
        tradeoff = race.tradeoff(chosen)
        if tradeoff is not None:
            tradeoff["command"] = _command(methods[tradeoff["method"]], pool_path, rate, config)
        out.append(Advice(label, board, name, reason, command, tradeoff))
    return out


@dataclass
class Race:
    """One budget's arms (``board``, their models in ``rows``) and the rule that picks one: by the size of the gain
    on the ``primary`` metric, not worse on a ``guard`` metric, a cheaper arm only where the two are not
    distinguishable on the target (``between``: the paired interval of two arms' models)."""

    board: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    primary: str
    guard: list[str]
    between: Any

    def gain(self, b: dict[str, Any]) -> float:
        from tunesift.eval.suite import HIGHER_IS_BETTER

        return (1.0 if HIGHER_IS_BETTER.get(self.primary, False) else -1.0) * b["metrics"][self.primary]["diff"]

    def costs(self, b: dict[str, Any]) -> list[str]:
        return [m for m in self.guard if b["metrics"].get(m, {}).get("verdict") == "worse"]

    def interval(self, a: dict[str, Any], b: dict[str, Any]) -> Any:
        return self.between([r for r in self.rows if r["arm"] == a["method"]],
                            [r for r in self.rows if r["arm"] == b["method"]], self.primary)  # fmt: skip

    @property
    def better(self) -> list[dict[str, Any]]:
        return [b for b in self.board if b["metrics"].get(self.primary, {}).get("verdict") == "better"]

    def recommend(self) -> tuple[dict[str, Any] | None, str]:
        """The arm, and why (or None and why none); every arm gets its interval against the best one."""
        scored = [b for b in self.board if self.primary in b["metrics"]]
        top = max(scored, key=lambda b: (self.gain(b), -b["select_s"]), default=None)
        for b in scored:
            if b is not top:
                iv = self.interval(b, top)
                b["vs_best"] = {"best": top["method"], "diff": iv.diff, "low": iv.low, "high": iv.high,
                                "verdict": iv.verdict}  # fmt: skip
        allowed = [b for b in self.better if not self.costs(b)]
        if not allowed:
            guarded = " without losing on a guarded metric" if self.better else ""
            return None, f"no method beat random on {self.primary} on this pool at this budget{guarded}"
        best = max(allowed, key=lambda b: (self.gain(b), -b["select_s"], b["method"]))
        chosen = best
        for cheaper in sorted((b for b in allowed if b["select_s"] < best["select_s"]),
                              key=lambda b: (b["select_s"], b["method"])):  # fmt: skip
            iv = self.interval(cheaper, best)
            if iv.low <= 0 <= iv.high:
                chosen = cheaper
                break
        d = chosen["metrics"][self.primary]
        shown = f"({d['diff']:+.4f}, 95 % interval [{d['low']:+.4f}, {d['high']:+.4f}])"
        if chosen is best:
            reason = f"the largest gain over random on {self.primary} {shown}"
        else:
            reason = (f"better than random on {self.primary} {shown} and not distinguishable from {best['method']} "
                      f"(their paired interval holds zero), at {chosen['select_s']:.1f} s against "
                      f"{best['select_s']:.1f} s")  # fmt: skip
        reason += f", not worse on {', '.join(self.guard)}" if self.guard else ""
        others = [b["method"] for b in allowed if b is not chosen]
        return chosen, reason + (f"; also better than random: {', '.join(others)}" if others else "")

    def tradeoff(self, chosen: dict[str, Any] | None) -> dict[str, Any] | None:
        """The arm a guard excluded that would have gained more on the target, with what it costs where."""
        excluded = [b for b in self.better if self.costs(b) and (chosen is None or self.gain(b) > self.gain(chosen))]
        if not excluded:
            return None
        alone = max(excluded, key=self.gain)
        d = alone["metrics"][self.primary]
        what = "; ".join(f"{m} {alone['metrics'][m]['diff']:+.4f} [{alone['metrics'][m]['low']:+.4f}, "
                         f"{alone['metrics'][m]['high']:+.4f}]" for m in self.costs(alone))  # fmt: skip
        text = (f"{alone['method']} is the best for {self.primary} alone ({d['diff']:+.4f}, [{d['low']:+.4f}, "
                f"{d['high']:+.4f}]) but worse on {what}; the guard (--guard) excluded it")  # fmt: skip
        return {"method": alone["method"], "gain": d, "worse_on": self.costs(alone), "text": text}


def stability(advice: Advice, others: list[tuple[str, Advice]], primary: str) -> dict[str, Any]:
    """Whether a budget's verdict holds under every other setting: the recommended arm is better than random on
    ``primary`` there and not worse than that setting's best (with no recommendation: none appears there either).
    Each setting that flips it is named with what it recommended instead."""
    flips = []
    for name, other in others:
        if advice.recommendation is None:
            holds = other.recommendation is None
        else:
            row = next((b for b in other.leaderboard if b["method"] == advice.recommendation), None)
            holds = (row is not None and row["metrics"].get(primary, {}).get("verdict") == "better"
                     and row.get("vs_best", {}).get("verdict") != "worse")  # fmt: skip
        if not holds:
            flips.append({"setting": name, "recommended": other.recommendation, "reason": other.reason})
    return {"holds": not flips, "settings": [name for name, _ in others], "flipped_by": flips}


def _command(spec: dict[str, Any], pool_path: str, rate: float, config: AdviseConfig) -> str:
    recipe = spec["recipe"]
    words = ["tunesift", "run", *(["recipe", recipe] if recipe.endswith(".yaml") else [recipe]), pool_path,
             "--rate", f"{rate:g}", "--out", "subset.json"]  # fmt: skip
    for key, value in spec.get("options", {}).items():
        if key == "teacher_options":  # distill's: one --teacher-option KEY=VALUE each
            words += [w for k, v in value.items() for w in ("--teacher-option", f"{k}={v}")]
        elif isinstance(value, bool):
            words += [f"--{key.replace('_', '-')}"] if value else []
        else:
            for item in value if isinstance(value, list) else [value]:
                words += [f"--{key.replace('_', '-')}", str(item)]
    if config.store_dir:
        words += ["--store", config.store_dir]
    return " ".join(words)


def advice_markdown(advice: list[Advice], config: AdviseConfig, seconds: float,
                    contamination: dict[str, Any] | None = None) -> str:  # fmt: skip
    primary = metric_of(config.target)
    lines = [f"# tunesift advise: {config.pool}", "",
             f"Proxy: {config.proxy_size} records (seed 0); target {config.target} ({primary}); base {config.base}; "
             f"random seeds {config.random_seeds}; wall time {seconds / 60:.1f} min.", ""]  # fmt: skip
    n = config.proxy_size or DEFAULT_PROXY
    sizes = ", ".join(f"{int(rate * n)} records at budget {rate:g}" for rate in config.budgets)
    lines += [
        f"What the proxy is: {config.base} fine-tuned on subsets of a {config.proxy_size}-record sample of "
        f"your pool ({sizes}). Rankings from a small proxy pick the better of two datasets for a larger model "
        "only about 80 % of the time (DataDecide, ICML 2025) and can flip with one hyperparameter: treat the "
        "winner as a candidate to confirm at your model's scale (--learning-rates tests the last risk).",
        "",
    ]
    if contamination is not None:
        lines += [contamination_text(contamination).replace("decontamination: ", "Decontamination: ", 1) + ".", ""]
    for a in advice:
        metrics = list(dict.fromkeys(m for b in a.leaderboard for m in b["metrics"]))
        held = any("contaminated_selected" in b for b in a.leaderboard)
        head = "| method | " + " | ".join(f"{m} vs random" for m in metrics)
        lines += [f"## Budget {a.budget}", "", head + " | selection s (proxy) | projected s (whole pool) |"
                  + (" contaminated selected |" if held else ""),
                  "|---" * (len(metrics) + 3 + held) + "|"]  # fmt: skip
        for b in sorted(a.leaderboard, key=lambda b: b["metrics"].get(primary, {}).get("diff", 0.0)
                        * (-1 if primary == "mmlu" else 1)):  # fmt: skip
            cells = [f"{b['metrics'][m]['diff']:+.4f} [{b['metrics'][m]['low']:+.4f}, {b['metrics'][m]['high']:+.4f}] "
                     f"{b['metrics'][m]['verdict']}" if m in b["metrics"] else "–" for m in metrics]  # fmt: skip
            extra = f" {b.get('contaminated_selected', 0)} |" if held else ""
            lines.append(f"| {b['method']} | " + " | ".join(cells) + f" | {b['select_s'] or 0:.1f} | "
                         f"{b['projected_pool_s']:.0f} |" + extra)  # fmt: skip
        verdict = f"**Recommendation: {a.recommendation}**" if a.recommendation else "**No method beat random.**"
        lines += ["", f"{verdict}: {a.reason}.", "", f"    {a.command}", ""]
        best = [b for b in a.leaderboard if "vs_best" in b]
        if best:
            lines += [f"Against the best arm on {primary} ({best[0]['vs_best']['best']}): " + "; ".join(
                f"{b['method']} {b['vs_best']['diff']:+.4f} [{b['vs_best']['low']:+.4f}, {b['vs_best']['high']:+.4f}] "
                f"{b['vs_best']['verdict']}" for b in best) + ".", ""]  # fmt: skip
        if a.stability is not None:
            if a.stability["holds"]:
                lines += [f"**Stability**: the verdict holds at {', '.join(a.stability['settings'])}.", ""]
            else:
                lines += ["**Stability**: the verdict does not hold: " + "; ".join(
                    f"at {f['setting']} the race recommends {f['recommended'] or 'random'} ({f['reason']})"
                    for f in a.stability["flipped_by"]) + ".", ""]  # fmt: skip
        if a.tradeoff:
            lines += [f"**Trade-off**: {a.tradeoff['text']}. To apply it anyway:", "", f"    {a.tradeoff['command']}",
                      ""]  # fmt: skip
    return "\n".join(lines)


def advise(config: AdviseConfig, out: str | Path, *, dry_run: bool = False, measure: bool = True,
           device: str | None = None, progress: bool = False,
           log: Callable[[str], Any] = print) -> dict[str, Any]:  # fmt: skip
    """Check, plan, race and advise; writes ``out/advice.md``, ``advice.json`` and ``report.html``."""
    from tunesift.data.pools import read_pool
    from tunesift.eval.compare import compare, validate
    from tunesift.eval.compare_view import html

    out = Path(out)
    pool = read_pool(config.pool)
    check(config, pool)
    if dry_run:  # the plan and its measured estimate, with nothing written: probes go to a scratch folder
        with tempfile.TemporaryDirectory(prefix="tunesift-advise-") as scratch:
            methods = arms(config, pool, Path(scratch))
            compare_cfg = compare_config(config, methods)
            validate(compare_cfg)
            found = plan(config, compare_cfg, out, measure=measure, scratch=Path(scratch))
        for line in plan_lines(config, compare_cfg, found):
            log(line)
        return {"plan": found}
    methods = arms(config, pool, out)
    compare_cfg = compare_config(config, methods)
    validate(compare_cfg)
    found = plan(config, compare_cfg, out, measure=measure)
    for line in plan_lines(config, compare_cfg, found):
        log(line)
    started = time.perf_counter()
    results = compare(compare_cfg, out, device=device, progress=progress, log=log)
    advice = advise_from(results, config, methods, len(pool), str(config.pool))
    settings = []
    for lr in config.learning_rates or []:  # the same race again under another learning rate: does it hold?
        log(f"stability: the race again at learning rate {lr:g}")
        again = replace(compare_cfg, train={**compare_cfg.train, "learning_rate": lr})
        other = compare(again, out, device=device, progress=progress, log=log)
        settings.append((f"learning rate {lr:g}", advise_from(other, config, methods, len(pool), str(config.pool))))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))  # the main setting's
    for k, a in enumerate(advice):
        if settings:
            a.stability = stability(a, [(name, other[k]) for name, other in settings], metric_of(config.target))
    seconds = time.perf_counter() - started
    summary = {"config": asdict(config), "plan": found, "advice": [a.as_dict() for a in advice],
               "wall_s": round(seconds, 1), "results": str(out / "results.json")}  # fmt: skip
    found = results.get("contamination") or {}
    contamination = {"records": found.get("dropped", 0), "kept_in_race": config.keep_contaminated,
                     "sets": found.get("sets", {})}  # fmt: skip
    summary["contamination"] = contamination
    (out / "advice.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "advice.md").write_text(advice_markdown(advice, config, seconds, contamination))
    (out / "report.html").write_text(html(results))
    for a in advice:
        log(f"budget {a.budget}: {a.recommendation or 'no method beat random'}: {a.reason}")
    if advice:
        log(advice[-1].command)
    return summary
