"""The verdict of a race: per budget, every arm against random and against the best, and one recommendation by
the size of the gain on the target, under the guards; whether it holds under other settings; the command that
applies it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tunesift.eval.advise.arms import BALANCED
from tunesift.eval.advise.config import AdviseConfig, metric_of
from tunesift.options import split_list


def shown(d: dict[str, Any], verdict: bool = False) -> str:
    """An interval as the advice writes it, ``+0.1234 [+0.1000, +0.1500]``, with its verdict when asked."""
    text = f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
    return f"{text} {d['verdict']}" if verdict else text


@dataclass
class Advice:
    budget: str
    leaderboard: list[dict[str, Any]]
    recommendation: str | None
    reason: str
    command: str
    tradeoff: dict[str, Any] | None = None  # the best arm for the target alone, when a guard excluded it
    stability: dict[str, Any] | None = None  # whether the verdict holds under the other settings raced
    whole_pool: dict[str, Any] | None = None  # the whole proxy at equal steps, against random and the recommendation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_guard(config: AdviseConfig, metrics: Sequence[str]) -> list[str]:
    """The metrics an arm must not be worse on: ``all`` (every other metric), ``none``, or the ones named."""
    guard = config.guard
    if guard in (None, "all"):
        return [m for m in metrics if m != metric_of(config.target)]
    if guard == "none":
        return []
    return [m for m in split_list(guard) if m != metric_of(config.target)]


def advise_from(results: dict[str, Any], config: AdviseConfig, methods: dict[str, dict[str, Any]],
                pool_size: int, pool_path: str) -> list[Advice]:  # fmt: skip
    """Per budget: each method's intervals against random and against the best arm, its cost, and the
    recommendation by effect: among the arms better than random on the target's metric and not worse on a guarded
    one, the largest gain; a cheaper arm takes its place only when the paired interval between the two on the
    target holds zero. An arm a guard excluded that would have won is named with what it costs and where."""
    from tunesift.eval.compare.intervals import Between

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
            cut = [r["truncated_frac"] for r in rows if r["arm"] == name and r.get("truncated_frac") is not None]
            board.append({"method": name, "select_s": select_s or 0.0, "select_s_per_sample": per_sample,
                          "truncated_frac": sum(cut) / len(cut) if cut else None,
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
        whole = whole_pool(found, rows, chosen, primary, between)
        out.append(Advice(label, board, name, reason, command, tradeoff, whole_pool=whole))
    return out


def whole_pool(found: list[dict[str, Any]], rows: list[dict[str, Any]], chosen: dict[str, Any] | None, primary: str,
               between: Any) -> dict[str, Any] | None:  # fmt: skip
    """The whole proxy at the budget's number of steps (``--with-full``): its intervals against random, and the
    recommended arm against it on the target: does the selection beat all of the data?"""
    from tunesift.eval.compare.config import WHOLE_POOL

    mine = [r for r in rows if r["arm"] == WHOLE_POOL]
    if not mine:
        return None
    summary: dict[str, Any] = {
        "records": mine[0]["n"], "steps": mine[0]["train_steps"],
        "metrics": {i["metric"]: {k: i[k] for k in ("diff", "low", "high", "verdict")}
                    for i in found if i["method"] == WHOLE_POOL},
    }  # fmt: skip
    if chosen is not None:
        iv = between([r for r in rows if r["arm"] == chosen["method"]], mine, primary)
        summary["recommended_vs_whole"] = {"method": chosen["method"], "diff": iv.diff, "low": iv.low,
                                           "high": iv.high, "verdict": iv.verdict}  # fmt: skip
    return summary


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
        from tunesift.eval.evaluation.suite import HIGHER_IS_BETTER

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
        gained = f"({d['diff']:+.4f}, 95 % interval [{d['low']:+.4f}, {d['high']:+.4f}])"
        if chosen is best:
            reason = f"the largest gain over random on {self.primary} {gained}"
        else:
            reason = (f"better than random on {self.primary} {gained} and not distinguishable from {best['method']} "
                      f"(their paired interval holds zero), at {chosen['select_s']:.1f} s against "
                      f"{best['select_s']:.1f} s")  # fmt: skip
        reason += f", not worse on {', '.join(self.guard)}" if self.guard else ""
        paid = [(m, d) for m, d in chosen["metrics"].items() if m != self.primary and d["verdict"] == "worse"]
        if paid:  # unguarded costs are said with the recommendation, not left to the table
            reason += "; at a cost on " + ", ".join(f"{m} ({shown(d)}, worse than random)" for m, d in paid)
        others = [b["method"] for b in allowed if b is not chosen]
        return chosen, reason + (f"; also better than random: {', '.join(others)}" if others else "")

    def tradeoff(self, chosen: dict[str, Any] | None) -> dict[str, Any] | None:
        """The arm a guard excluded that would have gained more on the target, with what it costs where."""
        excluded = [b for b in self.better if self.costs(b) and (chosen is None or self.gain(b) > self.gain(chosen))]
        if not excluded:
            return None
        alone = max(excluded, key=self.gain)
        d = alone["metrics"][self.primary]
        what = "; ".join(f"{m} {shown(alone['metrics'][m])}" for m in self.costs(alone))
        text = (f"{alone['method']} is the best for {self.primary} alone ({d['diff']:+.4f}, [{d['low']:+.4f}, "
                f"{d['high']:+.4f}]) but worse on {what}; the guard (--guard) excluded it")  # fmt: skip
        return {"method": alone["method"], "gain": d, "worse_on": self.costs(alone), "text": text}


def stability(advice: Advice, others: list[tuple[str, Advice]], primary: str) -> dict[str, Any]:
    """Whether a budget's verdict holds under every other setting: the recommended arm is better than random on
    ``primary`` there and not worse than that setting's best (with no recommendation: none appears there either).
    Each setting that flips it is named with what it recommended instead."""
    flips, seen = [], []
    for name, other in others:
        board = {b["method"]: b["metrics"][primary] for b in other.leaderboard if primary in b["metrics"]}
        seen.append({"setting": name, "recommended": other.recommendation, "arms": board})
        if advice.recommendation is None:
            holds = other.recommendation is None
        else:
            row = next((b for b in other.leaderboard if b["method"] == advice.recommendation), None)
            holds = (row is not None and row["metrics"].get(primary, {}).get("verdict") == "better"
                     and row.get("vs_best", {}).get("verdict") != "worse")  # fmt: skip
        if not holds:
            flips.append({"setting": name, "recommended": other.recommendation, "reason": other.reason})
    return {"holds": not flips, "settings": [name for name, _ in others], "flipped_by": flips, "seen": seen}


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
