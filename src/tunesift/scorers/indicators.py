"""InstructMining's indicators and its fitted linear rule (METHODS.md §4).

Per sample: instruction / input / response length in tokens, response perplexity under a causal LM
(the response alone, after the model's BOS where it has one), MTLD lexical diversity of the response,
and kNN-i, the Euclidean distance to the i-th nearest other sample in all-MiniLM-L6-v2 space (within
the set being scored). A rule ``log(eval_loss) ~ b0 + sum b_i * indicator_i`` is fitted by least squares
on (subset, eval loss) pairs, each subset described by its indicators' means; samples are then ranked by
the rule's prediction, lowest predicted loss first.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunesift.atomic import atomic_open
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError, InputError
from tunesift.models.registry import ResolvedModel
from tunesift.options import BATCH_TOKENS, CHUNK_SIZE, LM_OPTIONS, Option
from tunesift.scorers.base import CausalLMScorer, Progress, Unit

INDICATORS = ("len_instruction", "len_input", "len_response", "ppl", "mtld", "knn")
MTLD_THRESHOLD = 0.72
MTLD_MIN_FACTOR = 10  # as the ``lexical_diversity`` package: a factor needs at least 10 words
RULE_KIND = "tunesift-indicator-rule"

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed (the usual MTLD preprocessing)."""
    return _PUNCTUATION.sub("", text).lower().split()


def _mtld_pass(tokens: Sequence[str], threshold: float, min_factor: int) -> float:
    factors = 0.0
    counted = 0
    start = 0
    types: set[str] = set()
    for x, token in enumerate(tokens):
        types.add(token)
        length = x + 1 - start
        ttr = len(types) / length
        if x + 1 == len(tokens):  # the last, partial factor counts by how far its TTR fell
            factors += (1.0 - ttr) / (1.0 - threshold)
            counted += length
        elif ttr < threshold and length >= min_factor:
            factors += 1.0
            counted += length
            start = x + 1
            types = set()
    return counted / factors if factors > 0 else math.nan


def mtld(text: str, threshold: float = MTLD_THRESHOLD, min_factor: int = MTLD_MIN_FACTOR) -> float:
    """MTLD (McCarthy & Jarvis 2010): mean length of word runs keeping TTR above ``threshold``, averaged
    over a forward and a backward pass. NaN where it is undefined: no words, or a text whose TTR never
    falls (every factor count is 0)."""
    tokens = words(text)
    if not tokens:
        return math.nan
    forward = _mtld_pass(tokens, threshold, min_factor)
    backward = _mtld_pass(tokens[::-1], threshold, min_factor)
    return (forward + backward) / 2.0


def knn_distance(x: np.ndarray, i: int = 6, block: int = 512) -> np.ndarray:
    """Euclidean distance from every row to its ``i``-th nearest *other* row (NaN when there are fewer
    than ``i`` others), a block of rows at a time so no N x N matrix is held."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    out = np.full(n, np.nan)
    if i < 1:
        raise ConfigError("knn", f"must be a positive number, got {i}")
    if n <= i:
        return out
    norms = (x * x).sum(axis=1)
    for begin in range(0, n, block):
        rows = slice(begin, min(begin + block, n))
        d2 = np.maximum(norms[rows, None] - 2.0 * (x[rows] @ x.T) + norms[None, :], 0.0)
        d2[np.arange(d2.shape[0]), np.arange(begin, rows.stop)] = np.inf  # never its own neighbour
        out[rows] = np.sqrt(np.partition(d2, i - 1, axis=1)[:, i - 1])
    return out


@dataclass(frozen=True)
class IndicatorRule:
    """A fitted InstructMining rule: predicted ``log(eval_loss) = intercept + sum coef_i * indicator_i``."""

    indicators: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    fit: dict[str, Any] = field(default_factory=dict)
    indicator_config: dict[str, Any] = field(default_factory=dict)

    def predict(self, values: dict[str, float | None]) -> float | None:
        """Predicted log eval loss of one sample (or subset); None when an indicator it uses is missing."""
        total = self.intercept
        for name, coef in zip(self.indicators, self.coefficients, strict=True):
            value = values.get(name)
            if value is None or not math.isfinite(value):
                return None
            total += coef * value
        return total

    def save(self, path: str | Path) -> None:
        with atomic_open(Path(path)) as handle:
            json.dump({"kind": RULE_KIND, **asdict(self)}, handle, indent=2)

    @classmethod
    def load(cls, path: str | Path) -> IndicatorRule:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read the indicator rule: {err}", path=path) from None
        if not isinstance(raw, dict) or raw.get("kind") != RULE_KIND:
            raise InputError(f"not a tunesift indicator rule (expected kind {RULE_KIND!r})", path=path, field="kind")
        for key in ("indicators", "coefficients", "intercept"):
            if key not in raw:
                raise InputError("missing", path=path, field=key)
        unknown = [name for name in raw["indicators"] if name not in INDICATORS]
        if unknown:
            raise InputError(
                f"unknown indicator(s) {unknown}; known: {list(INDICATORS)}", path=path, field="indicators"
            )
        if len(raw["indicators"]) != len(raw["coefficients"]):
            raise InputError("one coefficient per indicator expected", path=path, field="coefficients")
        return cls(tuple(raw["indicators"]), tuple(float(c) for c in raw["coefficients"]), float(raw["intercept"]),
                   raw.get("fit", {}), raw.get("indicator_config", {}))  # fmt: skip


def fit_rule(
    features: Sequence[dict[str, float]],
    eval_losses: Sequence[float],
    indicators: Sequence[str] = INDICATORS,
    indicator_config: dict[str, Any] | None = None,
) -> IndicatorRule:
    """Least squares of ``log(eval_loss)`` on the subsets' mean indicators (with an intercept)."""
    unknown = [name for name in indicators if name not in INDICATORS]
    if unknown:
        raise ConfigError("indicators", f"unknown indicator(s) {unknown}; choose from {', '.join(INDICATORS)}")
    n, p = len(features), len(indicators)
    if n < p + 1:
        raise ConfigError("table", f"{n} subsets cannot fit {p} indicators and an intercept: give at least {p + 1}")
    losses = np.asarray(eval_losses, dtype=np.float64)
    if np.any(~np.isfinite(losses)) or np.any(losses <= 0):
        raise ConfigError("table", "every eval loss must be a positive number")
    design = np.ones((n, p + 1))
    for row, feature in enumerate(features):
        for col, name in enumerate(indicators):
            value = feature.get(name)
            if value is None or not math.isfinite(value):
                raise ConfigError("table", f"subset {row + 1} has no finite mean for indicator {name!r}")
            design[row, col + 1] = value
    target = np.log(losses)
    coef, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    predicted = design @ coef
    total = float(((target - target.mean()) ** 2).sum())
    r2 = 1.0 - float(((target - predicted) ** 2).sum()) / total if total > 0 else math.nan
    fit = {
        "n_subsets": n,
        "r2": r2,
        "rank": int(rank),
        "residual_rmse": float(np.sqrt(((target - predicted) ** 2).mean())),
    }
    return IndicatorRule(tuple(indicators), tuple(float(c) for c in coef[1:]), float(coef[0]), fit,
                         indicator_config or {})  # fmt: skip


def subset_means(rows: Sequence[dict[str, Any]], indicators: Sequence[str] = INDICATORS) -> dict[str, float]:
    """Mean of each indicator over the rows where it is defined (NaN if nowhere)."""
    means = {}
    for name in indicators:
        values = [r[name] for r in rows if r.get(name) is not None and math.isfinite(r[name])]
        means[name] = float(np.mean(values)) if values else math.nan
    return means


# Bump when a computation changes, so cached values from older code are not reused.
INDICATOR_VERSION = 1


class IndicatorLM(CausalLMScorer):
    """The model-dependent indicators on the scorer contract: token lengths of instruction, input and
    response, and the response's mean NLL (its perplexity's log). A conversation is described by its last
    turn. MTLD and kNN-i are computed by the pool-level function (cheap, or a property of the set)."""

    method = "indicators"
    summary = "InstructMining's indicators: lengths, response perplexity, MTLD, kNN-i; with --rule, the predicted loss."
    columns = (*INDICATORS, "instructmining")
    default_rule = "bottom"
    needs: ClassVar[dict[str, str]] = {"instructmining": "rule"}
    options = (
        Option("rule", Path | None, None, "Indicator rule JSON written by fit-indicators.", flag="--rule"),
        Option("model", str, "smollm2-135m-instruct", "Model for token lengths and response perplexity."),
        Option("knn", int, 6, "kNN-i: distance to the i-th nearest other sample (MiniLM).", flag="--knn"),
        Option("max_length", int, 1024, "Tokens of the response scored for perplexity.", at_least=2),
        BATCH_TOKENS,
        CHUNK_SIZE,
        *LM_OPTIONS,
    )  # fmt: skip

    name = "indicators-lm"
    result_fields = ("len_instruction", "len_input", "len_response", "response_loss", "response_tokens",
                     "ppl_skip_reason")  # fmt: skip

    def __init__(self, model: ResolvedModel, max_length: int = 1024, batch_tokens: int = 4096,
                 chunk_size: int | None = None, knn: int = 6, rule: IndicatorRule | None = None) -> None:  # fmt: skip
        self.model = model
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.chunk_size = chunk_size or type(self).chunk_size
        self.knn = knn
        self.rule = rule
        self._embedding: dict[str, Any] = {}

    @classmethod
    def build(cls, pool: Any, executor: Any, *, rule: Any, model: Any, knn: int, max_length: int,
              batch_tokens: int, chunk_size: int | None, **where: Any) -> IndicatorLM:  # fmt: skip
        from tunesift.models.backend import model_ref

        if isinstance(rule, (str, Path)):
            rule = IndicatorRule.load(rule)
        return cls(model_ref(model, executor, **where), max_length, batch_tokens, chunk_size, knn, rule)

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        hit = results[0][0]
        loss = hit["response_loss"]
        return {
            "len_instruction": _float_or_none(hit["len_instruction"]),
            "len_input": _float_or_none(hit["len_input"]),
            "len_response": _float_or_none(hit["len_response"]),
            "ppl": math.exp(loss) if loss is not None else None,
            "mtld": _finite_or_none(mtld(sample.output)),
            "knn": None,
            "skip_reason": None,
        }

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: Any) -> None:
        """kNN-i over the pool's MiniLM vectors (a property of the set), then the rule's prediction."""
        valid = [row for row in rows if row.get("id") is not None and row["skip_reason"] is None]
        if valid:
            table = context.embed(pool)
            by_index = {row["index"]: row for row in valid}
            for index, value in zip(table.indices, knn_distance(table.vectors, self.knn), strict=True):
                if index in by_index:  # a skipped sample (an empty response) still counts as a neighbour
                    by_index[index]["knn"] = _finite_or_none(float(value))
            self._embedding = table.config
        if self.rule is None:
            return
        for row in valid:
            values = {name: row[name] for name in INDICATORS}
            row["instructmining"] = self.rule.predict(values)
            if row["instructmining"] is None:
                missing = [n for n in self.rule.indicators if values.get(n) is None]
                row["skip_reason"] = f"indicator_undefined: {', '.join(missing)}"

    def table_config(self) -> dict[str, Any]:
        config = {"scorer": "indicators", "version": INDICATOR_VERSION, "lm": self.cache_config(),
                  "embedding": self._embedding, "knn": self.knn,
                  "mtld": {"threshold": MTLD_THRESHOLD, "min_factor": MTLD_MIN_FACTOR}}  # fmt: skip
        if self.rule is not None:
            config["rule"] = {"indicators": list(self.rule.indicators), "coefficients": list(self.rule.coefficients),
                              "intercept": self.rule.intercept}  # fmt: skip
        return config

    def ranked_by(self) -> str:
        return "instructmining" if self.rule is not None else "len_response"

    def table_columns(self) -> tuple[str, ...]:
        return (*INDICATORS, *(("instructmining",) if self.rule is not None else ()))

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "indicators-lm", "version": INDICATOR_VERSION, **self.model.key(),
                "max_length": self.max_length}  # fmt: skip

    def describe(self) -> str:
        return "indicators (lengths, perplexity)"

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        from tunesift.models.causal_lm import TargetSpan

        chunk: list[Sample] = [u.payload for u in units]
        bos = len(backend.encode(""))
        spans = [TargetSpan(tuple(backend.encode(s.output)[: self.max_length]), start=bos) for s in chunk]
        nll = backend.target_nll(spans, self.batch_tokens, on_batch=on_progress)
        rows = []
        for sample, span, values in zip(chunk, spans, nll, strict=True):
            loss = float(values.mean()) if len(values) else math.nan
            reason = None
            if not math.isfinite(loss):
                reason = "no_response_tokens" if span.n_targets == 0 else "non_finite_loss"
            rows.append({"len_instruction": backend.count_tokens(sample.instruction),
                         "len_input": backend.count_tokens(sample.input),
                         "len_response": backend.count_tokens(sample.output),
                         "response_loss": loss if reason is None else None,
                         "response_tokens": span.n_targets, "ppl_skip_reason": reason})  # fmt: skip
        return rows

    def failure(self, reason: str) -> dict[str, Any]:
        return {**super().failure(reason), "ppl_skip_reason": f"error: {reason}"}


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
