"""The one canonical sample every scorer sees, tied to its record and position in the pool."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Turn:
    """One exchange: the user's message (with an optional ``input``, Alpaca's context) and the reply."""

    user: str
    assistant: str
    input: str = ""


@dataclass(frozen=True)
class Sample:
    """An instruction/response pair, or a conversation, read from a pool.

    ``turns`` holds every exchange in order; the last one is also ``instruction``/``input``/``output``.
    ``index`` is the 0-based position of the record in its file: every score is written against it,
    so a result can never drift onto another sample. ``record`` is the record exactly as read, so the
    output keeps the user's own fields.
    """

    index: int
    turns: tuple[Turn, ...]
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    system: str = ""
    #: The reference answer a response is checked against (``verified``), where the record names one.
    reference: str | None = field(default=None, compare=False)

    @property
    def instruction(self) -> str:
        return self.turns[-1].user

    @property
    def input(self) -> str:
        return self.turns[-1].input

    @property
    def output(self) -> str:
        return self.turns[-1].assistant

    @property
    def has_input(self) -> bool:
        """METHODS.md: an ``input`` field that is present and non-empty."""
        return bool(self.input)

    @property
    def is_conversation(self) -> bool:
        return len(self.turns) > 1

    @cached_property  # read several times per sample (its units' keys, its row): hashed once
    def content_id(self) -> str:
        """Hash of the texts a scorer reads: the key of the score cache (identical samples share it)."""
        if len(self.turns) == 1 and not self.system:
            payload: Any = [self.instruction, self.input, self.output]
        else:
            payload = [self.system, [[t.user, t.input, t.assistant] for t in self.turns]]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Rejected:
    """A record that could not be read as a sample (kept under ``--on-error skip``, with the reason)."""

    index: int
    record: Any
    field: str | None
    reason: str


def prompt_text(sample: Sample) -> str:
    """A sample's prompt as one text: the instruction, and the input on the next line where there is one (MoDS's
    question, QDIT's embedded prompt)."""
    return f"{sample.instruction}\n{sample.input}" if sample.input else sample.instruction


def sample_text(sample: Sample) -> str:
    """A sample as one text (instruction, input where present, output), as Superfiltering.D embeds it."""
    parts = [sample.instruction, sample.input, sample.output] if sample.input else [sample.instruction, sample.output]
    return "\n".join(parts)
