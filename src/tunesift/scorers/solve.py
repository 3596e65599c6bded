"""The solving stage that ``pass-rate`` and ``length --length-of generated`` share: sample ``j`` of a question is
one unit, keyed by the question and ``j`` under the solver's configuration (never by ``k``), so every sample a solver
wrote stays in the score store: k = 8 after k = 4 asks only for samples 4-7, a killed run resumes without asking
again, and a failed request (its reason kept) is never stored and never counted as a sample.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import Sample
from tunesift.models.solver import SolverSpec, draw_seed, question_messages
from tunesift.scorers.base import Progress, Scorer, Unit

VERSION = 1
FAILED = "solver_failed"


def question_of(sample: Sample) -> str:
    """What the solver is asked: the instruction, and its input on the next line where there is one."""
    return f"{sample.instruction}\n{sample.input}" if sample.input else sample.instruction


class Solve(Scorer):
    """``k`` sampled solutions to each record's question by a :class:`SolverSpec`."""

    name = "solve"
    result_fields = ("text", "skip_reason", "transient")
    unit_name = "solution"
    chunk_size = 32

    def __init__(self, solver: SolverSpec, k: int, needs_reference: bool = False) -> None:
        self.solver = solver
        self.k = k
        self.needs_reference = needs_reference  # pass-rate: a question with no reference is not worth solving

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": VERSION, **self.solver.key()}

    def units(self, sample: Sample) -> list[Unit]:
        if self.needs_reference and not (sample.reference or "").strip():
            return []
        question = question_of(sample)
        return [Unit(hashlib.sha256(json.dumps([question, j]).encode()).hexdigest()[:32],
                     (question_messages(question), draw_seed(question, j))) for j in range(self.k)]  # fmt: skip

    def check_ready(self) -> None:
        self.solver.probe()

    def load_backend(self, device: str | None = None) -> Any:
        return self.solver.load(device)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        replies = backend.solve([unit.payload for unit in units])
        if on_progress is not None:
            on_progress(len(units))
        return [{"text": text, "skip_reason": None, "transient": False} if text is not None else
                {"text": None, "skip_reason": f"{FAILED}: {error}", "transient": transient}
                for text, error, transient in replies]  # fmt: skip

    def describe(self) -> str:
        return f"solving (k={self.k})"


def texts_or_failure(results: Sequence[dict[str, Any]]) -> tuple[list[str], str | None]:
    """A question's sampled texts, or the first failed request's reason (then the row is null: a failure is never a
    sample, and a rate over fewer samples than asked would not be the rate asked for)."""
    failed = next((r["skip_reason"] or "error" for r in results if r.get("text") is None), None)
    return ([] if failed else [r["text"] for r in results]), failed
