"""Decontaminate a pool (``tunesift decontaminate``, a recipe's ``decontaminate`` step, and the check ``compare`` and
``advise`` run on their proxy): every user turn of every sample against the prompts of evaluation sets, through
:mod:`tunesift.selectors.decontaminate`, each drop tied to the set and item it matched and its coverage."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesift.data.evalsets import EVAL_SETS, EvalItem, read_eval_set, turn_text
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.options import is_number
from tunesift.selectors.decontaminate import (
    DEFAULT_N,
    DEFAULT_THRESHOLD,
    MODES,
    EvalIndex,
    contaminated,
    words,
)

CHUNK = 2048  # samples looked up together (one vectorised pass)


def check_decontaminate(against: Any, mode: str = "tulu", n: Any = None, threshold: Any = None) -> tuple[
        list[str], str, int, float | None]:  # fmt: skip
    """The options checked before any work, each error naming its option; returns them resolved (the threshold is
    None in mode ``any``, which has none)."""
    given = [against] if isinstance(against, (str, Path)) else list(against or [])
    if not given or any(not isinstance(a, (str, Path)) or not str(a).strip() for a in given):
        raise ConfigError("against", "name at least one evaluation set or file to decontaminate against")
    names: list[str] = []
    seen: set[str] = set()
    for a in given:
        # a file by its normal spelling (./FILE is FILE: its items carry that name), each set or file once
        name = str(a) if str(a) in EVAL_SETS else str(Path(a))
        key = name if name in EVAL_SETS else os.path.realpath(name)
        if key not in seen:  # named twice: read once
            seen.add(key)
            names.append(name)
    if mode not in MODES:
        raise ConfigError("mode", f"choose {' or '.join(MODES)}, got {mode!r}")
    n = DEFAULT_N[mode] if n is None else n
    if not is_number(n, whole=True) or n < 1:
        raise ConfigError("n", f"a whole number of words, at least 1, got {n!r}")
    if mode == "any" and threshold is not None:
        raise ConfigError("threshold", "mode 'any' drops a sample on any shared n-gram: it takes no threshold (the "
                          "coverage threshold is mode 'tulu''s)")  # fmt: skip
    if mode == "any":
        return names, mode, n, None
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not is_number(threshold) or not 0 < threshold < 1:
        raise ConfigError("threshold", f"a coverage in (0, 1): a sample is dropped above it (1 would drop nothing, "
                          f"not even a verbatim copy), got {threshold!r}")  # fmt: skip
    return names, mode, n, float(threshold)


@dataclass
class Contamination:
    """What a decontamination found: the samples kept and dropped (pool indices), each drop with the set, item and
    coverage it matched, and per evaluation set how many of its items the pool holds."""

    options: dict[str, Any]
    kept: list[int]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_pool: int | None = None  # what a command says: the pool's records, and the rejects file it wrote
    rejects: Path | None = None

    def summary(self) -> dict[str, Any]:
        """The manifest's ``decontaminate`` section."""
        return {**self.options, "kept": len(self.kept), "dropped": len(self.dropped), "sets": self.sets,
                "samples": self.dropped}  # fmt: skip


class Decontaminator:
    """The evaluation sets' index, built once, and the rule: call :meth:`scan` on any samples."""

    def __init__(self, against: Sequence[str], mode: str = "tulu", n: int | None = None,
                 threshold: float | None = None, data_dir: str | Path | None = None) -> None:  # fmt: skip
        self.against, self.mode, self.n, self.threshold = check_decontaminate(against, mode, n, threshold)
        self.items: list[EvalItem] = [item for name in self.against for item in read_eval_set(name, data_dir)]
        self.index = EvalIndex([item.text for item in self.items], self.n)
        self.set_sizes = {name: 0 for name in self.against}
        for item in self.items:
            self.set_sizes[item.set] += 1

    @property
    def options(self) -> dict[str, Any]:
        return {"against": self.against, "mode": self.mode, "n": self.n,
                **({"threshold": self.threshold} if self.mode == "tulu" else {})}  # fmt: skip

    def scan(self, samples: Iterable[Sample]) -> Contamination:
        """Every sample's best match; those past the rule are dropped (pool order kept)."""
        kept: list[int] = []
        dropped: list[dict[str, Any]] = []
        hit_items: dict[str, set[str]] = {name: set() for name in self.against}
        chunk: list[Sample] = []

        def flush() -> None:
            turns = [[words(turn_text(t)) for t in s.turns] for s in chunk]
            flat = [t for sample_turns in turns for t in sample_turns]
            found = self.index.candidates(flat)
            at = 0
            for sample, sample_turns in zip(chunk, turns, strict=True):
                mine = found[at : at + len(sample_turns)]
                at += len(sample_turns)
                hit = self.index.best(sample_turns, mine) if any(mine) else None
                if contaminated(hit, self.mode, self.threshold):
                    item = self.items[hit.item]
                    hit_items[item.set].add(item.item)
                    dropped.append({"index": sample.index, "id": sample.content_id, "set": item.set,
                                    "item": item.item, "coverage": round(hit.coverage, 4),
                                    "turn": hit.turn})  # fmt: skip
                else:
                    kept.append(sample.index)
            chunk.clear()

        for sample in samples:
            chunk.append(sample)
            if len(chunk) >= CHUNK:
                flush()
        if chunk:
            flush()
        sets = {name: {"items": self.set_sizes[name], "items_in_pool": len(hit_items[name]),
                       "share_in_pool": round(len(hit_items[name]) / max(1, self.set_sizes[name]), 4),
                       "samples_dropped": sum(d["set"] == name for d in dropped)}
                for name in self.against}  # fmt: skip
        return Contamination(self.options, kept, dropped, sets)


def decontaminate_pool(pool: Any, against: Sequence[str], *, mode: str = "tulu", n: int | None = None,
                       threshold: float | None = None, indices: Sequence[int] | None = None,
                       data_dir: str | Path | None = None) -> Contamination:  # fmt: skip
    """Decontaminate the valid samples of ``pool`` (or those at ``indices``) against ``against``: names of
    evaluation sets or files of evaluation items."""
    wanted = None if indices is None else set(indices)
    samples = (s for s in pool if isinstance(s, Sample) and (wanted is None or s.index in wanted))
    return Decontaminator(against, mode, n, threshold, data_dir).scan(samples)
