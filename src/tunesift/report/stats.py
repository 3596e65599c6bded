"""The numbers behind a report: pool vs selections, score distributions, agreement between methods.

Everything here is plain data (JSON-ready); plotting and rendering read it and compute nothing new.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesift.data.pools import Pool

# A "calculation" sample (SelectIT's and Cherry's figures): its instruction holds a number together with
# an arithmetic expression between numbers or a math word. "Add 5 and 3" is one; "Add a comma" and
# "Write 5 lines" are not.
CALCULATION_DEFINITION = (
    "the instruction (or its input) contains a digit and either an arithmetic expression between numbers "
    "(such as 3+4, 12 / 4, 5 - 2, 2^8, 15%; a minus only with spaces around it) or a math word "
    "(calculate, compute, sum, product, multiply, divide, add, subtract, solve, equation, percent, average, ...)"
)
# A minus counts only with spaces around it ("5 - 3"), so dates and ranges (2020-01-01, 3-4) do not.
_ARITHMETIC = re.compile(r"\d\s*(?:[+*/×÷^=]\s*\d|%)|\d\s+-\s+\d")
_MATH_WORDS = re.compile(
    r"\b(?:calculate|calculation|compute|sum|total|product|difference|quotient|multiply|multiplied|times|"
    r"divide|divided|add|plus|subtract|minus|solve|equation|percent|percentage|average|mean|median|"
    r"square root|cube|factorial|fraction|ratio|area|perimeter|volume|convert)\b",
    re.IGNORECASE,
)
SOURCE_FIELDS = ("source", "dataset", "category")


def is_calculation(text: str) -> bool:
    """True if ``text`` is a calculation task by :data:`CALCULATION_DEFINITION`."""
    return bool(re.search(r"\d", text)) and bool(_ARITHMETIC.search(text) or _MATH_WORDS.search(text))


@dataclass(frozen=True)
class ScoreColumn:
    """One score column to report: a label, the values by pool index (None = skipped) and its config."""

    label: str
    field: str
    values: Sequence[float | None]
    skip_reasons: Sequence[str | None]
    config: dict[str, Any]
    tags: Sequence[Sequence[str] | None] | None = None  # INSTAG's normalised tags by pool index, where kept


@dataclass(frozen=True)
class SelectionSet:
    """A selection to report: pool indices in rank order and the score column it was cut from (if known)."""

    label: str
    indices: Sequence[int]
    score_field: str | None = None
    #: From the subset's manifest, where its scores counted tokens (``length``): the share longer than the
    #: training length, and that length.
    truncation: dict[str, Any] | None = None


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "p25": None, "p75": None, "min": None, "max": None}
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "p25": float(np.percentile(a, 25)),
        "p75": float(np.percentile(a, 75)),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def _source_field(pool: Pool) -> str | None:
    for name in SOURCE_FIELDS:
        if any(name in s.record for s in pool.samples):
            return name
    return None


TEACHER_FIELDS = ("teacher", "generator", "model", "source", "dataset")


def reasoning_sources(pool: Pool, count_tokens: Callable[[str], int], verifier: str = "auto") -> dict[str, Any] | None:
    """For a reasoning pool (a trace or a reference in some record) with a teacher/source field: per value, rows,
    questions, verified rate (over the rows with a reference; math-verify where installed) and median thinking
    tokens (METHODS.md §25.5). None for any other pool."""
    from tunesift.data.schemas import split_trace
    from tunesift.recipes.per_question import question_key
    from tunesift.scorers.verified import Verified

    samples = pool.samples
    field = next((f for f in TEACHER_FIELDS if any(f in s.record for s in samples)), None)
    traces = [split_trace(s.output) for s in samples]
    if field is None or not any(s.reference or t.thinking != t.final for s, t in zip(samples, traces, strict=True)):
        return None
    checker = Verified(verifier)
    owners = [k for k, s in enumerate(samples) if (s.reference or "").strip()]
    checked = checker.verify_all([(samples[k].reference, samples[k].output) for k in owners], checker.load_backend())
    verdicts = {k: r["verified"] for k, r in zip(owners, checked, strict=True)}
    rows = [{"source": str(s.record.get(field, "(none)")), "question": question_key(s), "verified": verdicts.get(k),
             "length": count_tokens(t.thinking) if t.thinking.strip() else None}
            for k, (s, t) in enumerate(zip(samples, traces, strict=True))]  # fmt: skip
    return {"field": field, "verifier": checker.verifier, "table": source_table(rows)}


def source_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table per teacher/source: rows, questions, verified rate, median thinking tokens. ``rows`` hold ``source``,
    ``question``, and where known ``verified`` and ``length``."""
    by: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by.setdefault(str(row["source"]), []).append(row)
    table = []
    for source, members in sorted(by.items()):
        checked = [r["verified"] for r in members if r.get("verified") is not None]
        lengths = [r["length"] for r in members if r.get("length") is not None]
        table.append({"source": source, "rows": len(members), "questions": len({r["question"] for r in members}),
                      "verified_rate": sum(checked) / len(checked) if checked else None,
                      "median_thinking_tokens": float(np.median(lengths)) if lengths else None})  # fmt: skip
    return table


def group_stats(pool: Pool, indices: Sequence[int], count_tokens: Callable[[str], int]) -> dict[str, Any]:
    """Lengths (characters and tokens), share with an input, share of calculations, source mix."""
    samples = [pool.samples[i] for i in indices]
    instruction_text = [s.instruction + ("\n" + s.input if s.input else "") for s in samples]
    response_text = [s.output for s in samples]
    n = len(samples)
    source = _source_field(pool)
    mix = Counter(str(s.record.get(source, "(none)")) for s in samples) if source else None
    lengths = {
        "instruction_chars": [len(t) for t in instruction_text],
        "response_chars": [len(t) for t in response_text],
        "instruction_tokens": [count_tokens(t) for t in instruction_text],
        "response_tokens": [count_tokens(t) for t in response_text],
    }
    return {
        "n": n,
        **{name: _summary(v) for name, v in lengths.items()},
        "share_with_input": sum(s.has_input for s in samples) / n if n else None,
        "share_calculation": sum(is_calculation(t) for t in instruction_text) / n if n else None,
        "source_field": source,
        "source_mix": None if mix is None else {k: v / n for k, v in sorted(mix.items())},
        "_lengths": lengths,  # raw values for the plots; dropped from the JSON
    }


def _spearman(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[float | None, int]:
    from scipy.stats import spearmanr

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if _finite(x) and _finite(y)]
    if len(pairs) < 3:
        return None, len(pairs)
    xs, ys = zip(*pairs, strict=True)
    rho = spearmanr(xs, ys).statistic
    return (None if not math.isfinite(rho) else float(rho)), len(pairs)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _examples(pool: Pool, column: ScoreColumn, indices: Sequence[int], max_chars: int) -> list[dict[str, Any]]:
    def clip(text: str) -> str:
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    return [
        {
            "index": i,
            "score": column.values[i],
            "instruction": clip(pool.samples[i].instruction),
            "input": clip(pool.samples[i].input),
            "output": clip(pool.samples[i].output),
        }
        for i in indices
    ]


def build_stats(
    pool: Pool,
    scores: Sequence[ScoreColumn],
    selections: Sequence[SelectionSet],
    count_tokens: Callable[[str], int],
    n_examples: int = 3,
    bins: int = 30,
    example_chars: int = 400,
) -> dict[str, Any]:
    """Every statistic of the report as one JSON-ready dict (plus ``_lengths`` lists for plotting)."""
    groups = [{"label": "pool", **group_stats(pool, range(len(pool)), count_tokens)}]
    groups += [{"label": s.label, **group_stats(pool, s.indices, count_tokens)} for s in selections]

    score_stats = []
    for column in scores:
        scored = [(i, v) for i, v in enumerate(column.values) if _finite(v)]
        values = [v for _, v in scored]
        ranked = sorted(scored, key=lambda iv: (-iv[1], iv[0]))
        hist = np.histogram(values, bins=bins) if values else (np.array([]), np.array([]))
        cuts = []
        for sel in selections:
            if sel.score_field == column.field and sel.indices:
                chosen = [column.values[i] for i in sel.indices if _finite(column.values[i])]
                if chosen:
                    cuts.append({"selection": sel.label, "cut": min(chosen), "top": max(chosen)})
        score_stats.append(
            {
                "label": column.label,
                "field": column.field,
                "config": column.config,
                "n_scored": len(values),
                "n_skipped": len(column.values) - len(values),
                "skipped_by_reason": dict(Counter(r for r in column.skip_reasons if r)),
                "summary": _summary(values),
                "histogram": {"counts": hist[0].tolist(), "edges": hist[1].tolist()},
                "cuts": cuts,
                "top": _examples(pool, column, [i for i, _ in ranked[:n_examples]], example_chars),
                "bottom": _examples(pool, column, [i for i, _ in ranked[::-1][:n_examples]], example_chars),
                "_values": values,
                **({"tags": tag_stats(column.tags, selections)} if column.tags is not None else {}),
                **({"distill": distill_facts(column.config)} if column.config.get("method") == "distill" else {}),
            }
        )

    labels = [c.label for c in scores]
    rho = [[None] * len(scores) for _ in scores]
    n_common = [[0] * len(scores) for _ in scores]
    for a, ca in enumerate(scores):
        for b, cb in enumerate(scores):
            rho[a][b], n_common[a][b] = _spearman(ca.values, cb.values)

    sel_labels = [s.label for s in selections]
    sets = [set(s.indices) for s in selections]
    intersection = [[len(x & y) for y in sets] for x in sets]
    jaccard = [[(len(x & y) / len(x | y)) if x | y else None for y in sets] for x in sets]
    unique = {}
    for k, (label, own) in enumerate(zip(sel_labels, sets, strict=True)):
        others = set().union(*(s for j, s in enumerate(sets) if j != k)) if len(sets) > 1 else set()
        unique[label] = (len(own - others) / len(own)) if own and len(sets) > 1 else None

    return {
        "pool": {"path": str(pool.path), "n": len(pool)},
        "definitions": {
            "calculation": CALCULATION_DEFINITION,
            "tokens": "tokens of the report's tokenizer (see 'tokenizer'), no special tokens",
            "cut": "the lowest score among the samples a selection kept",
        },
        "groups": groups,
        "scores": score_stats,
        "agreement": {"labels": labels, "spearman": rho, "n_common": n_common},
        "overlap": {"labels": sel_labels, "intersection": intersection, "jaccard": jaccard, "unique_share": unique},
    }


def tag_stats(tags: Sequence[Sequence[str] | None], selections: Sequence[SelectionSet], top: int = 20) -> dict:
    """INSTAG's tags: distinct tags and the most frequent ones in the pool, with how often each selection
    has them (the share of its tagged samples)."""

    def count(indices: Sequence[int]) -> tuple[Counter[str], int]:
        tagged = [tags[i] for i in indices if tags[i] is not None]
        return Counter(t for ts in tagged for t in set(ts)), len(tagged)

    pool_counts, pool_tagged = count(range(len(tags)))
    groups = [("pool", pool_counts, pool_tagged)] + [(s.label, *count(s.indices)) for s in selections]
    rows = []
    for tag, _ in sorted(pool_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
        rows.append({"tag": tag, **{label: {"n": c[tag], "share": c[tag] / n if n else None}
                                    for label, c, n in groups}})  # fmt: skip
    return {"groups": [g[0] for g in groups], "distinct": {label: len(c) for label, c, _ in groups},
            "tagged": {label: n for label, _, n in groups}, "top": rows}  # fmt: skip


def public(stats: Any) -> Any:
    """The stats without the raw lists kept for plotting (keys starting with '_')."""
    if isinstance(stats, dict):
        return {k: public(v) for k, v in stats.items() if not k.startswith("_")}
    if isinstance(stats, list):
        return [public(v) for v in stats]
    return stats


def _num(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def distill_facts(config: dict[str, Any]) -> list[str]:
    """A distilled judge's held-out figures and cost, one sentence each (METHODS.md §22), from its configuration."""
    ev, labelled, cost = config.get("evaluation") or {}, config.get("labelled") or {}, config.get("cost") or {}
    if not ev:
        return []
    failed = labelled.get("failed_by_reason") or {}
    facts = [f"Distilled from {config['teacher']}: {labelled.get('asked')} records labelled, {labelled.get('scored')} "
             f"used" + (f" ({labelled.get('failed')} the teacher failed on: {failed})" if failed else "")
             + f"; {config['head']} head on MiniLM vectors of the {config['features']['text']}."]  # fmt: skip
    facts.append(f"Out of fold: Spearman {_num(ev.get('spearman'))}, Pearson {_num(ev.get('pearson'))}.")
    binary = ev.get("at_threshold")
    if binary:
        flag = "" if binary["reliable"] else f" Unreliable: only {binary['positives']} positives."
        facts.append(f"At {binary['threshold']:g} ({ev.get('threshold_source')}): precision "
                     f"{_num(binary['precision'])}, recall {_num(binary['recall'])}, F1 {_num(binary['f1'])}, "
                     f"ROC-AUC {_num(binary['roc_auc'])}.{flag}")  # fmt: skip
    facts.append("Top-k precision: " + ", ".join(f"{k} {_num(v['topk_precision'])} (random {_num(v['random'])})"
                                                 for k, v in ev.get("top_k", {}).items()) + ".")  # fmt: skip
    if ev.get("learning_curve"):
        curve = ", ".join(f"{c['labelled']}: {_num(c['spearman'])}" for c in ev["learning_curve"])
        facts.append(f"Learning curve (labelled: Spearman): {curve}.")
    if cost:
        projected = cost.get("teacher_projected_seconds_for_pool")
        facts.append(f"Cost: {cost.get('teacher_units_computed')} teacher units computed, "
                     f"{cost.get('teacher_units_reused')} reused; {cost.get('distilled_seconds')} s in all"
                     + ("" if projected is None else f", against ~{projected:.0f} s for the teacher on all "
                        f"{cost.get('pool')} records") + ".")  # fmt: skip
    return facts
