"""A query set: a few examples of the task a user tunes for, which targeted methods (RDS+, embed, BM25) rank
the pool against.

One task per file (``--query gsm.jsonl --query chat.json``, tasks in the order given, each named by its file's
stem); a file is any pool tunesift reads. Every problem with a query file is one :class:`ConfigError` naming
``--query`` and the file, raised before any work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift.data.pools import read_pool
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError, TunesiftError

QUERY_HELP = (
    "A query set: examples of the target task (any pool format tunesift reads). Repeat for several tasks, one "
    "task per file, in the order given; the selection then takes each task's best in turn."
)


@dataclass(frozen=True)
class QueryTask:
    """One task's query examples, read from ``path``; ``name`` is the file's stem."""

    name: str
    path: Path
    samples: tuple[Sample, ...]

    def describe(self, pool_ids: set[str] | None = None) -> dict[str, Any]:
        """What a manifest says of the task: its file, size and how many of its examples are pool samples."""
        out: dict[str, Any] = {"task": self.name, "file": str(self.path), "n": len(self.samples)}
        if pool_ids is not None:
            out["in_pool"] = sum(s.content_id in pool_ids for s in self.samples)
        return out


def read_queries(paths: Sequence[str | Path] | str | Path | None) -> list[QueryTask]:
    """The query tasks of ``--query`` files, checked: each file exists, reads as a pool with no invalid record,
    holds at least one example, and names a task no other file names."""
    if paths is None or (not isinstance(paths, (str, Path)) and not paths):
        raise ConfigError(
            "query",
            "this method ranks the pool against a query set: give one (--query FILE on "
            "'run NAME' and 'score NAME'; in a recipe, query: FILE under score, or -o query=FILE)",
        )
    tasks: list[QueryTask] = []
    for raw in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(raw)
        try:
            pool = read_pool(path)
            samples = tuple(s for s in pool if isinstance(s, Sample))
        except TunesiftError as err:  # an InputError already names the file: once is enough
            raise ConfigError("query", str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
        except OSError as err:
            raise ConfigError("query", f"{path}: {err.strerror or err}") from None
        name = path.stem
        if any(t.name == name for t in tasks):
            raise ConfigError("query", f"{path}: the task name {name!r} is given twice (one task per file)")
        tasks.append(QueryTask(name, path, samples))
    return tasks


def query_config(tasks: Sequence[QueryTask]) -> list[dict[str, Any]]:
    """The query set as a score table records it: each task's name, file, size and a hash of its examples'
    content ids, so a changed file is a changed configuration."""
    return [{"task": t.name, "file": str(t.path), "n": len(t.samples),
             "ids_sha256": hashlib.sha256("\n".join(s.content_id for s in t.samples).encode()).hexdigest()[:16]}
            for t in tasks]  # fmt: skip
