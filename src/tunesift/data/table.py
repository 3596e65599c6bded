"""A pool's scores: one row per record, in pool order, with the configuration that produced them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass
class ScoreTable:
    """One row per pool record, in pool order, plus the configuration that produced the scores.

    A row holds ``index``, ``id`` (the sample's content hash; None for a rejected record), the score
    fields and ``skip_reason``; conversations also hold ``turns``. ``score_field`` is the column ranked by,
    ``columns`` the fields a subset record gets (no method's columns are a default: a table says its own).
    """

    config: dict[str, Any]
    rows: list[dict[str, Any]]
    score_field: str
    columns: tuple[str, ...]

    def values(self) -> list[float | None]:
        return [row.get(self.score_field) for row in self.rows]

    def skipped(self) -> dict[str, int]:
        """Count of skipped samples by reason (a rejected record counts as ``invalid_record``)."""
        return dict(Counter(_reason_kind(row["skip_reason"]) for row in self.rows if row.get("skip_reason")))

    def duplicates(self) -> int:
        ids = [row["id"] for row in self.rows if row.get("id")]
        return len(ids) - len(set(ids))


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0] if reason.startswith(("invalid_record", "no_turn_scored", "error")) else reason
