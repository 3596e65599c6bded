"""``pass-rate`` (METHODS.md §25.3): the share of a question's sampled solutions whose final answer is verified
against its reference; ``difficulty_pr = 1 - pass_rate``.

The solver here is a column of samples already in the pool (``--samples FIELD``, a list per record: the user's own
rollouts, as ``code`` in ``reasoning/math_cot_100.jsonl``); each is checked as ``verified`` checks a trace
(math-verify, else the fallback). ``r_j`` in {1.0, 0.0, None}; ``pass_rate = mean(r_j not None)``, None when the
reference is missing or every ``r_j`` is None. The recipes select by mode: ``pass-rate`` (window, Open-R1:
``0.1 < p < 0.9``), ``pass-rate-unsolved`` (s1: ``p == 0``) and ``pass-rate-rare`` (LIMO: ``0 < p <= 3/32``), the
hardest first. A local-model or endpoint solver is not built yet: ``--samples`` is required.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError, InputError
from tunesift.options import Option
from tunesift.scorers.base import Progress, Scorer, Unit
from tunesift.scorers.verified import VERIFIERS, Verified

VERSION = 1
#: LIMO's rule: solved by at most 3 of 32 samples; below 11 samples no count meets 0 < p <= 3/32.
RARE = 3 / 32


def pass_rate(rewards: Sequence[float | None]) -> float | None:
    """The mean of the rewards that are not None; None when every one is (§25.7: [1,0,None,0,1,0,1,0] -> 3/7)."""
    known = [r for r in rewards if r is not None]
    return sum(known) / len(known) if known else None


class PassRate(Scorer):
    """The share of each record's sampled solutions (a list field) whose final answer equals its reference."""

    method = "pass-rate"
    summary = (
        "Pass rate (reasoning pools): the share of a question's sampled solutions (--samples FIELD, a list "
        "per record) whose final answer is verified against the reference; difficulty_pr = 1 - pass_rate."
    )
    columns = ("pass_rate", "difficulty_pr", "n_samples", "n_correct")
    default_rule = "top"
    needs_response = False  # a pool of questions alone: the samples are the responses
    options = (
        Option("samples", str | None, None, "The record field holding the sampled solutions, a list of texts (or of "
               "messages/records with the text under 'content', 'response' or 'output')."),
        Option("k", int | None, None, "Samples a record's rate is taken over: the first k (default: all present); a "
               "record with fewer is null with its reason.", at_least=1),
        Option("verifier", str, "auto", "auto (math-verify where installed, else the fallback), math-verify or "
               "fallback."),
        Option("workers", int | None, None, "Processes math-verify runs in (default: every core).", at_least=1),
    )  # fmt: skip

    name = "pass_rate"
    result_fields = ("pass_rate", "difficulty_pr", "n_samples", "n_correct", "skip_reason")
    chunk_size = 256

    def __init__(self, samples: str, k: int | None = None, verifier: str = "auto", workers: int | None = None) -> None:
        self.samples = samples
        self.k = k
        self.checker = Verified(verifier, workers)

    @classmethod
    def build(cls, pool: Any, executor: Any, *, samples: str | None, k: int | None, verifier: str,
              workers: int | None) -> PassRate:  # fmt: skip
        if samples is None:
            raise ConfigError(
                "samples",
                "pass-rate needs a solver: give --samples FIELD, the record field holding "
                "each question's sampled solutions (a local-model or endpoint solver is not built yet)",
            )
        if verifier not in VERIFIERS:
            raise ConfigError("verifier", f"choose one of {', '.join(VERIFIERS)}, got {verifier!r}")
        scorer = cls(samples, k, verifier, workers)
        scorer.check_pool(pool)
        return scorer

    def check_pool(self, pool: Any) -> None:
        """Before any work: the field is a list of texts in every record that has it; one line naming the first that
        is not; a warning where ``rare`` cannot be met."""
        fewest = None
        for sample in pool:
            if not isinstance(sample, Sample):
                continue
            texts = self.texts(sample, getattr(pool, "path", None))
            fewest = len(texts) if fewest is None else min(fewest, len(texts))
        if fewest is not None and (self.k or fewest) < 11:
            print(f"tunesift: pass-rate: {self.k or fewest} samples a question at the fewest: LIMO's rare window "
                  "(0 < p <= 3/32) needs at least 11 to be met", file=sys.stderr)  # fmt: skip

    def texts(self, sample: Sample, path: Any = None) -> list[str]:
        value = sample.record.get(self.samples) if isinstance(sample.record, dict) else None
        if value is None:
            return []
        if not isinstance(value, list):
            raise InputError(f"field {self.samples!r} is {type(value).__name__}, not a list of sampled solutions",
                             path=path, record=sample.index)  # fmt: skip
        out = []
        for item in value:
            text = next((item.get(f) for f in ("content", "response", "output") if isinstance(item, dict)
                         and isinstance(item.get(f), str)), item if isinstance(item, str) else None)  # fmt: skip
            if text is None:
                raise InputError(f"field {self.samples!r} holds a {type(item).__name__} with no text",
                                 path=path, record=sample.index)  # fmt: skip
            out.append(text)
        return out

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": VERSION, "verifier": self.checker.verifier, "k": self.k}

    def units(self, sample: Sample) -> list[Unit]:
        """Keyed by the question, its reference and its samples: another sample is another result."""
        texts = self.texts(sample)
        key = hashlib.sha256(json.dumps([sample.content_id, sample.reference, texts]).encode()).hexdigest()[:32]
        return [Unit(key, (sample.reference, texts))]

    def load_backend(self, device: str | None = None) -> Any:
        return self.checker.load_backend(device)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(units)
        pairs, owners = [], []
        for row, unit in enumerate(units):
            reference, texts = unit.payload
            if not (reference or "").strip():
                out[row] = self._empty("no_reference", len(texts))
            elif not texts:
                out[row] = self._empty("no_samples", 0)
            elif self.k is not None and len(texts) < self.k:
                out[row] = self._empty("fewer_samples_than_k", len(texts))
            else:
                for text in texts[: self.k]:
                    pairs.append((reference, text))
                    owners.append(row)
        checked = self.checker.verify_all(pairs, backend) if pairs else []
        rewards: dict[int, list[float | None]] = {}
        for row, result in zip(owners, checked, strict=True):
            rewards.setdefault(row, []).append(result["verified"])
        for row, found in rewards.items():
            rate = pass_rate(found)
            out[row] = self._empty("no_verifiable_sample", len(found)) if rate is None else {
                "pass_rate": rate, "difficulty_pr": 1 - rate, "n_samples": len(found),
                "n_correct": sum(r == 1.0 for r in found), "skip_reason": None}  # fmt: skip
        if on_progress is not None:
            on_progress(len(units))
        assert all(row is not None for row in out)
        return [row for row in out if row is not None]

    def _empty(self, reason: str, n: int) -> dict[str, Any]:
        return {"pass_rate": None, "difficulty_pr": None, "n_samples": n, "n_correct": None, "skip_reason": reason}

    def describe(self) -> str:
        return f"pass-rate over {self.samples!r} ({self.checker.verifier})"
