"""What a comparison shows a person: Markdown tables with intervals and verdicts, the per-budget bar plot,
the data-efficiency curve of a sweep, and one self-contained HTML page with all of them. The training
recipe is printed beside every table: a result means little without it."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.eval.evaluation.suite import HIGHER_IS_BETTER


def _metrics(rows: list[dict[str, Any]]) -> list[str]:
    return [m for m in HIGHER_IS_BETTER if any(m in r for r in rows)]


def recipe_line(results: dict[str, Any]) -> str:
    """The training recipe in one line: LoRA or full, lr, epochs, examples per step, lengths, seeds."""
    t = results["training"]
    kind = f"LoRA r={t['lora_r']} alpha={t['lora_alpha']}" if t["lora"] else "full fine-tune"
    seeds = results["config"]["train_seeds"]
    return (f"Training: base {t['base']}, {kind}, lr {t['learning_rate']:g}, {t['epochs']} epoch(s), "
            f"{t['examples_per_step']} examples per optimizer step, max length {t['max_length']}, template "
            f"{t['template']}; each method subset trained with {seeds} data order(s), each random subset "
            "with one.")  # fmt: skip


def _arm_table(rows: list[dict[str, Any]], metrics: list[str]) -> list[str]:
    lines = ["| model | n | steps | " + " | ".join(metrics) + " | cut at max length | select s | train s | eval s |",
             "|---|---|---|" + "---|" * (len(metrics) + 4)]  # fmt: skip
    for r in rows:
        name = r["arm"] if r["seed"] is None else f"{r['arm']} (seed {r['seed']})"
        cells = [f"{r[m]:.4f}" if m in r else "" for m in metrics]
        times = " | ".join("" if r.get(k) is None else str(r[k]) for k in ("select_s", "train_s", "eval_s"))
        cut = "" if r.get("truncated_frac") is None else f"{r['truncated_frac']:.0%}"
        lines.append(f"| {name} | {r['n']} | {r.get('train_steps', '')} | " + " | ".join(cells)
                     + f" | {cut} | {times} |")  # fmt: skip
    randoms = [r for r in rows if r["arm"] == "random"]
    if len(randoms) > 1:
        cells = [f"{np.mean([r[m] for r in randoms]):.4f} ± {np.std([r[m] for r in randoms], ddof=1):.4f}"
                 for m in metrics]  # fmt: skip
        head = f"| random (mean ± sd of {len(randoms)}) | {randoms[0]['n']} | | "
        lines.append(head + " | ".join(cells) + " | | | | |")
    return lines


def _interval_table(found: list[dict[str, Any]], against: str, metrics: list[str]) -> list[str]:
    mine = [i for i in found if i["against"] == against]
    if not mine:
        return []
    level = round(mine[0]["level"] * 100)
    pooled = "random seeds pooled" if against == "random" else "full-data seeds pooled"
    items = {i["metric"]: i["n_items"] for i in mine}
    lines = [f"\nAgainst {against}: difference (method - {against}) [{level} % paired bootstrap interval over the "
             f"evaluation items, {pooled}], verdict\n",
             "| method | " + " | ".join(f"{m} (n={items.get(m, 0)})" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]  # fmt: skip
    for method in dict.fromkeys(i["method"] for i in mine):
        cells = []
        for metric in metrics:
            hit = next((i for i in mine if i["method"] == method and i["metric"] == metric), None)
            cells.append("" if hit is None else f"{hit['diff']:+.4f} [{hit['low']:+.4f}, {hit['high']:+.4f}] "
                         f"**{hit['verdict']}**")  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def table(results: dict[str, Any]) -> str:
    """Markdown: the training recipe, then per budget the models' metrics and each method's intervals and
    verdicts against random and against full data, then the winning rates against full data."""
    rows = results["models"]
    metrics = _metrics(rows)
    recipe = recipe_line(results)
    lines = [recipe]
    contamination = results.get("contamination")
    if contamination and contamination.get("dropped"):
        held = ", ".join(f"{k} {v['items_in_pool']} items" for k, v in contamination["sets"].items()
                         if v["items_in_pool"])  # fmt: skip
        what = "kept in the race" if contamination.get("kept_in_race") else "dropped before the race"
        lines.append(f"\nDecontamination: {contamination['dropped']} pool records hold evaluation items ({held}): "
                     f"{what}.")  # fmt: skip
    found = results.get("intervals", [])
    for budget in results["budgets"]:
        label = budget["budget"]
        head = f"\n### Budget {label}: {budget['size']} of {results['n_pool']} records per arm"
        if budget["short"]:
            head += f" (asked {budget['requested']}; {', '.join(f'{k} kept {v}' for k, v in budget['short'].items())})"
        lines += [head, "", f"_{recipe}_", "", *_arm_table([r for r in rows if r["budget"] == label], metrics)]
        if budget.get("contaminated_selected"):
            lines += [
                "",
                "Evaluation items among each arm's selected records: "
                + ", ".join(f"{arm} {n}" for arm, n in budget["contaminated_selected"].items()),
            ]
        here = [i for i in found if i["budget"] == label]
        lines += _interval_table(here, "random", metrics) + _interval_table(here, "full", metrics)
    others = [r for r in rows if r["budget"] in ("full", "base")]
    if others:
        lines += ["\n### Full data and the untuned base", "", *_arm_table(others, metrics)]
    winning = results.get("winning")
    if winning:
        lines += [f"\n### Winning rate against the full-data model ({winning[0]['testset']}, judged in both orders)",
                  "", "| budget | model | winning score | wins | ties | losses | unjudged |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for w in winning:
            shares = " | ".join(f"{w[k]} ({w[k + '_share']:.0%})" for k in ("wins", "ties", "losses"))
            lines.append(f"| {w['budget']} | {w['method']} | {w['winning_score']:.3f} | {shares} | {w['unjudged']} |")
    return "\n".join(lines)


def _figure_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def bars(results: dict[str, Any], budget: str) -> bytes:
    """One panel per metric at one budget: each method (mean over its data orders), random's seeds as dots
    with their mean, full data and the untuned base as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["models"] if r["budget"] == budget]
    metrics = _metrics(results["models"])
    methods = [a for a in dict.fromkeys(r["arm"] for r in rows) if a != "random"]
    randoms = [r for r in rows if r["arm"] == "random"]
    floor = next((r for r in results["models"] if r["budget"] == "base"), None)
    full = [r for r in results["models"] if r["budget"] == "full"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = [float(np.mean([r[metric] for r in rows if r["arm"] == m])) for m in methods]
        ax.bar(range(len(methods)), values, color="#4C72B0")
        rv = [r[metric] for r in randoms]
        if rv:
            ax.bar(len(methods), np.mean(rv), color="#999999")
            ax.scatter([len(methods)] * len(rv), rv, color="black", zorder=3, s=12)
        every = values + rv
        marks = ((floor, "#C44E52", "untuned base"), (full[0] if full else None, "#55A868", "full data"))
        for line, color, name in marks:
            if line is not None and metric in line:
                ax.axhline(line[metric], color=color, linestyle="--", label=name)
                every.append(line[metric])
        if floor is not None or full:
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(methods) + 1), [*methods, "random"], rotation=30, ha="right")
        ax.set_title(f"{metric} ({'higher' if HIGHER_IS_BETTER[metric] else 'lower'} is better)", fontsize=10)
        low, high = min(every), max(every)
        pad = (high - low) * 0.3 or abs(high) * 0.05 or 0.1
        ax.set_ylim(low - pad, high + pad)
    size = next(b["size"] for b in results["budgets"] if b["budget"] == budget)
    fig.suptitle(f"fine-tuned on {size} records each (random: one dot per seed)", fontsize=10)
    fig.tight_layout()
    return _figure_bytes(fig)


def curve(results: dict[str, Any]) -> bytes:
    """The data-efficiency curve of a sweep: each metric against the budget, one line per method, random's
    seeds as a shaded band (min to max) around their mean, full data as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = _metrics(results["models"])
    budgets = [b for b in results["budgets"] if b["rate"] is not None]
    x = [b["rate"] for b in budgets]
    rows = results["models"]
    methods = [a for a in dict.fromkeys(r["arm"] for r in rows if r["budget"] not in ("full", "base")) if a != "random"]
    full = [r for r in rows if r["budget"] == "full"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rand = [[r[metric] for r in rows if r["budget"] == b["budget"] and r["arm"] == "random"] for b in budgets]
        ax.fill_between(x, [min(v) for v in rand], [max(v) for v in rand], color="#999999", alpha=0.3,
                        label="random (min-max)")  # fmt: skip
        ax.plot(x, [np.mean(v) for v in rand], color="#666666", marker="o", label="random (mean)")
        for method in methods:
            y = [np.mean([r[metric] for r in rows if r["budget"] == b["budget"] and r["arm"] == method])
                 for b in budgets]  # fmt: skip
            ax.plot(x, y, marker="o", label=method)
        if full:
            ax.axhline(np.mean([r[metric] for r in full]), color="#55A868", linestyle="--", label="full data")
        ax.set_xscale("log")
        ax.set_xlabel("budget (share of the pool)")
        ax.set_title(f"{metric} ({'higher' if HIGHER_IS_BETTER[metric] else 'lower'} is better)", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("data efficiency: metric against budget", fontsize=10)
    fig.tight_layout()
    return _figure_bytes(fig)


def plot(results: dict[str, Any], path: str | Path) -> Path:
    """``path``: the curve of a sweep, else the bars of the one budget."""
    path = Path(path)
    budgets = results["budgets"]
    path.write_bytes(curve(results) if len(budgets) > 1 else bars(results, budgets[0]["budget"]))
    return path


def html(results: dict[str, Any]) -> str:
    """One self-contained page: the recipe, the tables with intervals and verdicts, the plots inline."""
    import markdown_it

    images = [bars(results, b["budget"]) for b in results["budgets"]]
    if len([b for b in results["budgets"] if b["rate"] is not None]) > 1:
        images.insert(0, curve(results))
    body = markdown_it.MarkdownIt("commonmark").enable("table").render(table(results))
    pictures = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p).decode()}" alt="comparison plot">'
                       for p in images)  # fmt: skip
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tunesift comparison</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:24px}"
            "table{border-collapse:collapse;font-size:.9em;margin:8px 0 14px}th,td{border:1px solid #d7dbe0;"
            "padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%}"
            "</style></head><body><h1>tunesift comparison</h1>" + pictures + body + "</body></html>")  # fmt: skip
