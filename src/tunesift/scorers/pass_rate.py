"""``pass-rate`` (METHODS.md §25.3): the share of a question's sampled solutions whose final answer is verified
against its reference; ``difficulty_pr = 1 - pass_rate``.

The samples come from a column already in the pool (``--samples FIELD``, a list per record: the user's own
rollouts, as ``code`` in ``reasoning/math_cot_100.jsonl``), or from a solver (:mod:`tunesift.scorers.solve`): the
local model (default the packaged SmolLM2) or an endpoint (``--base-url``), ``k`` samples (default 8) at temperature
0.7, each kept in the score store as it is written. Each sample is checked as ``verified`` checks a trace (math-verify,
else the fallback). ``r_j`` in {1.0, 0.0, None}; ``pass_rate = mean(r_j not None)``, None when the reference is
missing or every ``r_j`` is None; a question any of whose requests failed is None with the reason (a failure is never
a sample). The recipes select by mode: ``pass-rate`` (window, Open-R1: ``0.1 < p < 0.9``), ``pass-rate-unsolved``
(s1: ``p == 0``) and ``pass-rate-rare`` (LIMO: ``0 < p <= 3/32``), the hardest first.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError, InputError
from tunesift.models.solver import SolverSpec
from tunesift.options import CHAT_OPTIONS, Option
from tunesift.scorers.base import PoolContext, Progress, Scorer, Unit
from tunesift.scorers.solve import Solve, texts_or_failure
from tunesift.scorers.verified import VERIFIERS, Verified

VERSION = 1
#: LIMO's rule: solved by at most 3 of 32 samples; below 11 samples no count meets 0 < p <= 3/32.
RARE = 3 / 32
K = 8  # samples a question when a solver writes them (§25.3)
TEMPERATURE = 0.7


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
               "messages/records with the text under 'content', 'response' or 'output'); without it a solver writes "
               "them (--model, --base-url)."),
        Option("k", int | None, None, "Samples a record's rate is taken over: the first k of --samples (default: all "
               "present; a record with fewer is null with its reason), or how many the solver writes (default 8).",
               at_least=1),
        Option("verifier", str, "auto", "auto (math-verify where installed, else the fallback), math-verify or "
               "fallback."),
        Option("workers", int | None, None, "Processes math-verify runs in (default: every core).", at_least=1),
        Option("model", str | None, None, "Solver (without --samples): with --base-url, the model the endpoint serves; "
               "without, a local model (packaged name or checkpoint dir; default smollm2-135m-instruct)."),
        Option("temperature", float, TEMPERATURE, "The solver's sampling temperature.", at_least=0),
        Option("max_tokens", int, 1024, "Longest solution the solver writes, in tokens.", at_least=1),
        *CHAT_OPTIONS,
    )  # fmt: skip

    name = "pass_rate"
    result_fields = ("pass_rate", "difficulty_pr", "n_samples", "n_correct", "skip_reason")
    chunk_size = 256

    def __init__(self, samples: str | None, k: int | None = None, verifier: str = "auto", workers: int | None = None,
                 solver: SolverSpec | None = None) -> None:  # fmt: skip
        self.samples = samples
        self.k = k if k is not None or solver is None else K
        self.checker = Verified(verifier, workers)
        self.solver = solver
        self.solve = Solve(solver, self.k or K, needs_reference=True) if solver is not None else None

    @classmethod
    def build(cls, pool: Any, executor: Any, *, samples: str | None, k: int | None, verifier: str,
              workers: int | None, model: str | None, temperature: float, max_tokens: int,
              **where: Any) -> PassRate:  # fmt: skip
        if verifier not in VERIFIERS:
            raise ConfigError("verifier", f"choose one of {', '.join(VERIFIERS)}, got {verifier!r}")
        solver = None
        if samples is None:
            from tunesift.models.chat import chat_ref

            solver = SolverSpec(chat_ref(model, executor, **where), temperature, max_tokens)
        elif model is not None or where.get("base_url"):
            raise ConfigError("samples", "give --samples FIELD (samples already in the pool) or a solver (--model, "
                              "--base-url), not both")  # fmt: skip
        scorer = cls(samples, k, verifier, workers, solver)
        scorer.check_pool(pool)
        return scorer

    def stages(self) -> Sequence[Scorer]:
        return (self,) if self.solve is None else (self.solve,)

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        """Over a samples column, the unit's result; from a solver, the texts until :meth:`finish` checks them all."""
        if self.solve is None:
            return self.combine(sample, results[0])
        if not results[0]:
            return self._empty("no_reference", 0)
        texts, failed = texts_or_failure(results[0])
        if failed:
            return self._empty(failed, len(texts))
        return {**self._empty("unchecked", len(texts)), "_check": (sample.reference, texts)}

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        """A solver's samples checked in one batch (math-verify's process pool is started once, not per row)."""
        owners = [row for row in rows if "_check" in row]
        if not owners:
            return
        units = [Unit(str(i), row.pop("_check")) for i, row in enumerate(owners)]
        for row, result in zip(owners, self.compute(units, self.load_backend()), strict=True):
            row.update(result)

    def table_config(self) -> dict[str, Any]:
        if self.solve is None:
            return self.cache_config()
        return {**self.solve.cache_config(), "scorer": self.name, "version": VERSION,
                "verifier": self.checker.verifier, "k": self.k}  # fmt: skip

    def check_pool(self, pool: Any) -> None:
        """Before any work: the field is a list of texts in every record that has it; one line naming the first that
        is not; a warning where ``rare`` cannot be met."""
        fewest = self.k if self.samples is None else None
        for sample in pool if self.samples is not None else ():
            if not isinstance(sample, Sample):
                continue
            texts = self.texts(sample, getattr(pool, "path", None))
            if texts:  # a record without samples is a skip of its own (no_samples), not the fewest
                fewest = len(texts) if fewest is None else min(fewest, len(texts))
        if fewest is not None and (self.k or fewest) < 11:
            print(f"tunesift: pass-rate: {self.k or fewest} samples a question at the fewest: LIMO's rare window "
                  "(0 < p <= 3/32) needs at least 11 to be met", file=sys.stderr)  # fmt: skip

    def texts(self, sample: Sample, path: Any = None) -> list[str]:
        assert self.samples is not None
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
        source = f"{self.samples!r}" if self.solve is None else f"{self.k} solver samples"
        return f"pass-rate over {source} ({self.checker.verifier})"
