"""DEITA (Liu et al., ICLR 2024): a rater's expected complexity and quality scores, turn by turn; EVOL is
``sum_t c_t * q_t`` (METHODS.md §6).

Followed from hkust-nlp/deita: the two prompts of ``src/deita/selection/scorer/llama_scorer.py`` (plain text,
no chat template, byte for byte), the expectation over the six digit tokens of ``scorer/base.py``
(``softmax`` of the next-token logits at the ids of ``"1"``..``"6"``, then ``sum d * p_d``), turn by turn as
``pipeline/score_pipeline.py`` scores ShareGPT data (each turn on its own, no history), and EVOL as
``selection/filter/combined_filter.py`` combines them. Where the reference returns 3.0 on a failure,
tunesift records null with the reason. Any causal LM can rate (a DEITA scorer checkpoint where the user has
one; a weak model rates weakly); a server backend rates through its prompt log-probabilities.

A unit is one rating text (keyed by the text itself, so equal turns share a rating); a sample's row holds
``deita_complexity`` and ``deita_quality`` (the sums over its rated turns), ``deita`` (EVOL), and the
per-turn parts under ``turns``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.models.causal_lm import TargetSpan
from tunesift.options import BATCH_TOKENS, CHUNK_SIZE, LM_OPTIONS, MODEL_HELP, model_option
from tunesift.scorers.base import TOO_LONG, CausalLMScorer, Progress, Unit

if TYPE_CHECKING:
    from tunesift.models.backend import LMBackend

# Bump when a prompt or the reading of the scores changes.
DEITA_VERSION = 1
DIGITS = ("1", "2", "3", "4", "5", "6")
COMPLEXITY_PROMPT = (
    "You are a helpful assistant. Please identify the complexity score of the following user query. \n"
    "##Query: {instruction}  \n##Complexity: "
)
QUALITY_PROMPT = (
    "You are a helpful assistant. Please identify the quality score of the Response corresponding to the "
    "Question. \n #Question#:\n{instruction}\n#Response#:\n{output} \n##Quality: "
)
SKIP_TOO_LONG = TOO_LONG
DEITA_COLUMNS = ("deita", "deita_complexity", "deita_quality")


def turn_query(sample: Sample, turn: int) -> str:
    """The user's message of one turn, with Alpaca's ``input`` after it as DEITA's data conversion does."""
    t = sample.turns[turn]
    return f"{t.user}\n{t.input}" if t.input else t.user


def rating_texts(sample: Sample, turn: int) -> tuple[str, str | None]:
    """(complexity text, quality text) of one turn; no quality text for a user message without a reply."""
    query = turn_query(sample, turn)
    reply = sample.turns[turn].assistant
    quality = QUALITY_PROMPT.format(instruction=query, output=reply) if reply else None
    return COMPLEXITY_PROMPT.format(instruction=query), quality


def digit_ids(lm: LMBackend) -> list[int]:
    """The token id of each bare digit "1".."6"; a digit that is not one token is an error naming the rater."""
    ids = []
    for digit in DIGITS:
        tokens = lm.encode(digit, add_special_tokens=False)
        if len(tokens) != 1:
            raise ConfigError("model", f"rater {lm.name}: the digit {digit!r} is not one token ({tokens})")
        ids.append(tokens[0])
    return ids


def expected_score(probs: Sequence[float]) -> float:
    """``sum_d d * p_d`` over the digits 1..6 (the probabilities renormalised over those six)."""
    p = np.asarray(probs, dtype=np.float64)
    return float(np.dot(np.arange(1, len(DIGITS) + 1), p / p.sum()))


def evol(complexity: Sequence[float], quality: Sequence[float]) -> float:
    """EVOL: the sum over turns of complexity x quality."""
    return float(sum(c * q for c, q in zip(complexity, quality, strict=True)))


class DEITA(CausalLMScorer):
    """A unit per rating text (each turn's complexity, and its quality where it has a reply)."""

    method = "deita"
    summary = "DEITA: the rater's expected complexity and quality (1-6) per turn; EVOL = sum of complexity x quality."
    columns = DEITA_COLUMNS
    options = (
        model_option("Rater: any causal LM (a DEITA scorer checkpoint where you have one). " + MODEL_HELP),
        BATCH_TOKENS,
        CHUNK_SIZE,
        *LM_OPTIONS,
    )

    name = "deita"
    result_fields = ("score", "skip_reason")
    unit_name = "rating"

    def __init__(self, model: Any, batch_tokens: int = 4096, chunk_size: int | None = None) -> None:
        self.model = model
        self.batch_tokens = batch_tokens
        self.chunk_size = chunk_size or 256

    @classmethod
    def build(cls, pool: Any, executor: Any, *, model: Any, batch_tokens: int, chunk_size: int | None,
              **where: Any) -> DEITA:  # fmt: skip
        from tunesift.models.backend import model_ref

        return cls(model_ref(model, executor, **where), batch_tokens, chunk_size)

    def cache_config(self) -> dict[str, Any]:
        prompts = hashlib.sha256((COMPLEXITY_PROMPT + "\n" + QUALITY_PROMPT).encode("utf-8")).hexdigest()
        return {"scorer": "deita", "version": DEITA_VERSION, "prompts_sha256": prompts, **self.model.key()}

    def describe(self) -> str:
        return f"DEITA ({self.model.name})"

    def units(self, sample: Sample) -> list[Unit]:
        texts = [text for t in range(len(sample.turns)) for text in rating_texts(sample, t) if text is not None]
        return [Unit(_key(text), text) for text in texts]

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        candidates = digit_ids(backend)
        limit = backend.context_length
        results: list[dict[str, Any]] = [{"score": None, "skip_reason": SKIP_TOO_LONG}] * len(units)
        spans, where = [], []
        for i, unit in enumerate(units):
            ids = tuple(backend.encode(unit.payload))
            if limit is None or len(ids) <= limit:
                spans.append(TargetSpan(ids, start=len(ids)))
                where.append(i)
        probs = backend.next_token_probs(spans, candidates, self.batch_tokens, on_batch=on_progress)
        for i, row in zip(where, probs, strict=True):
            finite = bool(np.all(np.isfinite(row)))
            results[i] = {"score": expected_score(row) if finite else None,
                          "skip_reason": None if finite else "non_finite_probability"}  # fmt: skip
        return results

    def combine(self, sample: Sample, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
        by_key = {u.key: r for u, r in zip(self.units(sample), results, strict=True)}
        turns, reasons = [], []
        for t in range(len(sample.turns)):
            complexity_text, quality_text = rating_texts(sample, t)
            if quality_text is None:
                continue  # a last user message with no reply is left out
            c = by_key[_key(complexity_text)]
            q = by_key[_key(quality_text)]
            turns.append({"complexity": c["score"], "quality": q["score"]})
            reasons.extend(r["skip_reason"] for r in (c, q) if r["score"] is None and r["skip_reason"])
        if not turns or reasons:
            why = "; ".join(sorted(set(reasons))) or "no_turn_with_a_reply"
            return {"deita": None, "deita_complexity": None, "deita_quality": None, "turns": turns,
                    "skip_reason": why}  # fmt: skip
        complexity = [t["complexity"] for t in turns]
        quality = [t["quality"] for t in turns]
        return {"deita": evol(complexity, quality), "deita_complexity": float(sum(complexity)),
                "deita_quality": float(sum(quality)), "turns": turns, "skip_reason": None}  # fmt: skip


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
