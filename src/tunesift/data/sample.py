"""The one canonical sample every scorer sees, tied to its record and position in the pool."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """An instruction/response pair read from a pool.

    ``index`` is the 0-based position of the record in its file: every score is written against it,
    so a result can never drift onto another sample. ``record`` is the record exactly as read, so the
    output keeps the user's own fields.
    """

    index: int
    instruction: str
    output: str
    input: str = ""
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def has_input(self) -> bool:
        """METHODS.md: an ``input`` field that is present and non-empty."""
        return bool(self.input)

    @property
    def content_id(self) -> str:
        """Hash of the texts a scorer reads: the key of the score cache (identical samples share it)."""
        payload = json.dumps([self.instruction, self.input, self.output], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]
