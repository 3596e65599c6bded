"""``advice.md``: what the proxy is, the leaderboards, the recommendation, its stability and trade-offs, as a user
reads them."""

from __future__ import annotations

from typing import Any

from tunesift.eval.advise.config import DEFAULT_PROXY, AdviseConfig, metric_of
from tunesift.eval.advise.plan import contamination_text
from tunesift.eval.advise.rule import Advice, shown
from tunesift.eval.evaluation.suite import HIGHER_IS_BETTER


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
        lines += [f"## Budget {a.budget}", "", head + " | cut at max length | selection s (proxy) | projected s "
                  "(whole pool) |" + (" contaminated selected |" if held else ""),
                  "|---" * (len(metrics) + 4 + held) + "|"]  # fmt: skip
        for b in sorted(a.leaderboard, key=lambda b: b["metrics"].get(primary, {}).get("diff", 0.0)
                        * (-1 if HIGHER_IS_BETTER.get(primary) else 1)):  # fmt: skip
            cells = [shown(b["metrics"][m], verdict=True) if m in b["metrics"] else "–" for m in metrics]
            extra = f" {b.get('contaminated_selected', 0)} |" if held else ""
            cut = "–" if b.get("truncated_frac") is None else f"{b['truncated_frac']:.0%}"
            lines.append(f"| {b['method']} | " + " | ".join(cells) + f" | {cut} | {b['select_s'] or 0:.1f} | "
                         f"{b['projected_pool_s']:.0f} |" + extra)  # fmt: skip
        cut = sorted(b["method"] for b in a.leaderboard if (b.get("truncated_frac") or 0) > 0.5)
        if cut:
            lines += ["", f"Warning: most samples {', '.join(cut)} selected are longer than the training length: the "
                      "race learned and judged their beginnings only (METHODS.md §25.8); race again with "
                      "--train max_length=N at the traces' length where you can afford it."]  # fmt: skip
        verdict = f"**Recommendation: {a.recommendation}**" if a.recommendation else "**No method beat random.**"
        lines += ["", f"{verdict}: {a.reason}.", "", f"    {a.command}", ""]
        best = [b for b in a.leaderboard if "vs_best" in b]
        if best:
            lines += [f"Against the best arm on {primary} ({best[0]['vs_best']['best']}): " + "; ".join(
                f"{b['method']} {shown(b['vs_best'], verdict=True)}" for b in best) + ".", ""]  # fmt: skip
        if a.whole_pool is not None:
            lines += [whole_pool_text(a.whole_pool, primary), ""]
        if a.stability is not None:
            if a.stability["holds"]:
                lines += [f"**Stability**: the verdict holds at {', '.join(a.stability['settings'])}.", ""]
            else:
                lines += ["**Stability**: the verdict does not hold: " + "; ".join(
                    f"at {f['setting']} the race recommends {f['recommended'] or 'random'} ({f['reason']})"
                    for f in a.stability["flipped_by"]) + ".", ""]  # fmt: skip
            for s in a.stability.get("seen", []):
                said = f"At {s['setting']} ({s['recommended'] or 'no method'} recommended), {primary} against random: "
                lines += [said + "; ".join(f"{m} {shown(d, verdict=True)}" for m, d in s["arms"].items()) + ".", ""]
        if a.tradeoff:
            lines += [f"**Trade-off**: {a.tradeoff['text']}. To apply it anyway:", "", f"    {a.tradeoff['command']}",
                      ""]  # fmt: skip
    return "\n".join(lines)


def whole_pool_text(whole: dict[str, Any], primary: str) -> str:
    """The seeds' headline tested on this pool: does the selection beat all of the data at equal steps?"""
    d = whole["metrics"].get(primary)
    against = shown(d, verdict=True) if d else "not measured"
    text = (f"**All of the data** ({whole['records']} records in the same {whole['steps']} optimizer steps, more "
            f"records a step): against random on {primary} {against}")  # fmt: skip
    versus = whole.get("recommended_vs_whole")
    if versus is None:
        return text + "."
    said = {"better": "beats all of the data", "worse": "does not beat all of the data",
            "not distinguishable": "cannot be told apart from all of the data"}[versus["verdict"]]  # fmt: skip
    return f"{text}; {versus['method']} against it {shown(versus)}: on this pool the selection {said} on {primary}."
