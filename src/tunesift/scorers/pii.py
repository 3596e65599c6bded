"""Personal data (``pii``): how many e-mail addresses, phone numbers, IP addresses, payment card numbers (Luhn
checked) and secret-looking keys a sample's texts hold, and which kinds (:mod:`tunesift.data.pii`).

Every message counts (system, user turns with their input, replies): personal data in a reply is trained on as
much as in a prompt. As a filter: the ``pii`` recipe keeps the samples with none (``pii == 0``); ``tunesift
redact`` writes a new pool with placeholders instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from tunesift.data.pii import KINDS, find_pii
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.scorers.base import Progress, Scorer, Unit

VERSION = 1


def sample_texts(sample: Sample) -> str:
    """Every text of a sample, one per line: the system prompt, then each turn's user message, input and reply."""
    parts = [sample.system] if sample.system else []
    for turn in sample.turns:
        parts += [turn.user, turn.input, turn.assistant]
    return "\n".join(p for p in parts if p)


class PII(Scorer):
    """Counts of personal data and secrets in each sample's texts."""

    method = "pii"
    summary = (
        "Personal data: e-mail addresses, phone numbers, IP addresses, card numbers (Luhn checked) and "
        "secret-looking keys per sample; the pii recipe keeps the samples with none (redact: placeholders)."
    )
    columns = ("pii", "pii_kinds")
    subset_columns = ("pii", "pii_kinds")
    column_kinds: ClassVar[dict[str, str]] = {"pii_kinds": "list"}
    default_rule = "bottom"
    needs_response = False
    options = (Option("kinds", list[str] | None, None, f"What to look for (default all: {', '.join(KINDS)}).",
                      split=True),)  # fmt: skip

    name = "pii"
    result_fields = ("pii", "pii_kinds", "skip_reason")
    chunk_size = 2048

    def __init__(self, kinds: Sequence[str] | None = None) -> None:
        self.kinds = tuple(k for k in KINDS if k in set(kinds)) if kinds else KINDS

    @classmethod
    def build(cls, pool: Any, executor: Any, *, kinds: Sequence[str] | None) -> PII:
        unknown = sorted(set(kinds or ()) - set(KINDS))
        if unknown:
            raise ConfigError("kinds", f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        return cls(kinds)

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": VERSION, "kinds": list(self.kinds)}

    def load_backend(self, device: str | None = None) -> Any:
        return None

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        rows = []
        for unit in units:
            found = find_pii(sample_texts(unit.payload), self.kinds)
            rows.append({"pii": float(sum(found.values())), "pii_kinds": sorted(found), "skip_reason": None})
        if on_progress is not None:
            on_progress(len(units))
        return rows

    def describe(self) -> str:
        return "personal data"
