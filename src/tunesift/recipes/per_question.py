"""One response per question (METHODS.md §25.5): pools often hold several traces per question (several samples,
several teachers); a ``per_question`` step keeps one of each group.

Records are grouped by the normalised question (instruction and input, whitespace collapsed, case kept). Per group:

* ``shortest-correct``: the traces whose final answer is verified (``verified == 1``), the one with the fewest
  thinking tokens (``length``'s count), ties to the lower index; a group with no correct trace is dropped and counted;
* ``best:COLUMN``: the highest value of COLUMN (the recipe's own score column, else a column of another method,
  scored with its defaults through the same store: ``best:grape`` is the response the model to be tuned finds most
  probable, GRAPE's rule), ties to the lower index; a group with no value is dropped and counted;
* ``all``: every record (the step records the groups and changes nothing).

The records kept stay in the order the steps before gave them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunesift.errors import ConfigError

MODES = ("shortest-correct", "best:COLUMN", "all")
Score = Callable[[str, str, dict[str, Any]], list[float | None]]


def question_key(sample: Any) -> str:
    """The group of a record: its instruction and input, whitespace collapsed, case kept."""
    return " ".join(f"{sample.instruction}\n{sample.input}".split())


def check_keep(keep: Any) -> str:
    """The mode, checked before any work: ``shortest-correct``, ``best:COLUMN`` or ``all``."""
    if keep in ("shortest-correct", "all") or (isinstance(keep, str) and keep.startswith("best:") and keep[5:].strip()):
        return str(keep).strip()
    raise ConfigError("per-question", f"choose one of {', '.join(MODES)}, got {keep!r}")


@dataclass
class PerQuestion:
    """What a ``per_question`` step kept: the indices, and the counts a manifest reports."""

    keep: str
    kept: list[int]
    groups: int
    dropped: int
    groups_dropped: int
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"keep": self.keep, "questions": self.groups, "kept": len(self.kept), "dropped": self.dropped,
                "questions_dropped": self.groups_dropped, **self.details}  # fmt: skip


def choose(groups: dict[str, list[int]], value: Callable[[int], float | None],
           eligible: Callable[[int], bool] = lambda i: True,
           lower_first: bool = False) -> tuple[set[int], int]:  # fmt: skip
    """Per group, the eligible member with the best value (highest, or lowest with ``lower_first``), ties to the lower
    index; returns the chosen and how many groups had none."""
    chosen: set[int] = set()
    empty = 0
    sign = 1.0 if lower_first else -1.0
    for members in groups.values():
        scored = [(sign * v, i) for i in members if eligible(i) and (v := value(i)) is not None]
        if scored:
            chosen.add(min(scored)[1])
        else:
            empty += 1
    return chosen, empty


def per_question(pool: Any, candidates: Sequence[int], keep: str, value: Callable[[int, str], float | None],
                 columns: Sequence[str], score: Score) -> PerQuestion:  # fmt: skip
    """The step over ``candidates`` (pool indices): ``value(i, column)`` reads the recipe's own table, ``score(method,
    column, options)`` another method's column for the whole pool (cached in the store)."""
    keep = check_keep(keep)
    wanted = set(candidates)
    groups: dict[str, list[int]] = {}
    for sample in pool:
        if sample.index in wanted and hasattr(sample, "instruction"):
            groups.setdefault(question_key(sample), []).append(sample.index)
    if keep == "all":
        return PerQuestion(keep, list(candidates), len(groups), 0, 0)
    if keep == "shortest-correct":
        correct = score("verified", "verified", {})
        tokens = score("length", "length", {})
        chosen, empty = choose(groups, lambda i: tokens[i], lambda i: correct[i] == 1.0, lower_first=True)
        details = {"no_correct_trace": empty}
    else:
        column = keep[5:].strip()
        if column in columns:
            chosen, empty = choose(groups, lambda i: value(i, column))
        else:
            from tunesift.scorers import discover

            owner = next((name for name, m in discover().items() if column in m.columns), None)
            if owner is None:
                raise ConfigError("per-question", f"best:{column}: no such column in this recipe's scores ("
                                  f"{', '.join(columns)}) nor in any method's")  # fmt: skip
            values = score(owner, column, {})
            chosen, empty = choose(groups, lambda i: values[i])
        details = {"by": column, "no_value": empty}
    kept = [i for i in candidates if i in chosen]
    return PerQuestion(keep, kept, len(groups), len(candidates) - len(kept), empty, details)
