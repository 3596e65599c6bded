"""What the targeted methods share (RDS+, embed, BM25): the query set, each pool sample's best similarity to
each task's examples, and the columns a targeted selection reads.

A targeted method writes ``<method>`` (the best similarity to any query example) and, with several tasks,
``<method>_by_query`` (each task's best, in the order the files were given); the ``round-robin`` selector
(:mod:`tunesift.selectors.round_robin`) takes each task's best in turn. Vector methods keep the pool's vectors in
the store (binary, memory-mapped): a new query set costs its own forward passes and one blockwise
``N x Q`` product, never another pass over the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunesift.data.queries import QUERY_HELP, QueryTask, query_config
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.scorers.base import Method, PoolContext, Scorer

QUERY = Option("query", list[Path] | None, None, QUERY_HELP)
#: Pool rows whose similarities are computed at once: memory is BLOCK_ROWS x (width + query points) floats.
BLOCK_ROWS = 32_768
_VEC = "_vector_row"  # a row's place in the stage's vector file, between row() and finish()


def max_similarity(
    vectors: np.ndarray, queries: np.ndarray, task_sizes: Sequence[int], rows: np.ndarray | None = None
) -> np.ndarray:
    """``(n, K)`` float32: for each pool vector (``vectors[rows]``, or every row), the highest dot product with
    any query point of each task. ``queries`` holds the tasks' points one task after another, ``task_sizes``
    how many each has. Computed a block of rows at a time (``vectors`` may be a memory map); nothing is
    ``n x n``."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(task_sizes)[:-1]]).astype(np.intp)
    n = len(rows) if rows is not None else vectors.shape[0]
    out = np.empty((n, len(task_sizes)), dtype=np.float32)
    for begin in range(0, n, BLOCK_ROWS):
        end = min(begin + BLOCK_ROWS, n)
        block = vectors[rows[begin:end]] if rows is not None else vectors[begin:end]
        sims = np.asarray(block, dtype=np.float32) @ queries.T
        out[begin:end] = np.maximum.reduceat(sims, starts, axis=1)
    return out


class Targeted(Method):
    """A method that ranks the pool against a query set (``tasks``): the columns, the table's record of the
    query set, and how many query examples are pool samples."""

    needs_response = False
    #: the subset columns are (method, method_by_query): set by each subclass from its name
    tasks: Sequence[QueryTask]

    def __init__(self, tasks: Sequence[QueryTask]) -> None:
        self.tasks = tuple(tasks)
        self._in_pool: list[int] | None = None

    @property
    def by_query(self) -> str:
        return f"{self.method}_by_query"

    def table_columns(self) -> tuple[str, ...]:
        return (self.method, self.by_query) if len(self.tasks) > 1 else (self.method,)

    def empty_row(self, reason: str | None = None) -> dict[str, Any]:
        return {**dict.fromkeys(self.table_columns()), "skip_reason": reason}

    def set_scores(self, rows: list[dict[str, Any]], positions: Sequence[int], by_task: np.ndarray,
                   overall: np.ndarray | None = None) -> None:  # fmt: skip
        """Write each task's score (``by_task``, ``(len(positions), K)``) and the overall one (default: the best
        task's) into the rows at ``positions``; a non-finite value leaves the row null with the reason."""
        best = overall if overall is not None else by_task.max(axis=1) if len(by_task) else np.zeros(0)
        several = len(self.tasks) > 1
        for pos, value, per_task in zip(positions, best.tolist(), by_task.tolist(), strict=True):
            row = rows[pos]
            if not np.isfinite(value):
                row.update(self.empty_row("non_finite_similarity"))
                continue
            row[self.method] = float(value)
            if several:
                row[self.by_query] = [float(v) for v in per_task]

    def count_in_pool(self, rows: Sequence[dict[str, Any]]) -> None:
        """How many of each task's examples are samples of the pool (allowed; the manifest says so)."""
        ids = {row["id"] for row in rows if row.get("id") is not None}
        self._in_pool = [sum(s.content_id in ids for s in task.samples) for task in self.tasks]

    def query_record(self) -> list[dict[str, Any]]:
        record = query_config(self.tasks)
        if self._in_pool is not None:
            for entry, n in zip(record, self._in_pool, strict=True):
                entry["in_pool"] = n
        return record


class VectorTargeted(Targeted):
    """A targeted method over a vector index: ``index`` (a scorer with a ``vector_field`` whose vectors are unit
    length) embeds the pool and, the same way, the query set; the score is the best cosine."""

    index: Scorer
    #: what a query example that cannot be embedded is called in the error (the index's skip reason follows)
    vector_name: ClassVar[str] = "vector"

    def stages(self) -> Sequence[Scorer]:
        return (self.index,)

    def table_config(self) -> dict[str, Any]:
        return {**self.index.cache_config(), "method": self.method, "query": self.query_record()}

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        found = results[0][0]
        field = self.index.vector_field
        assert field is not None
        return {**self.empty_row(found.get("skip_reason")), _VEC: found.get(field)}

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        assert context.compute is not None and context.vectors is not None
        field = self.index.vector_field
        queries = [s for task in self.tasks for s in task.samples]
        found = context.compute(self.index, queries)
        points = []
        for task in self.tasks:
            for sample in task.samples:
                result = found[self.index.units(sample)[0].key]
                if result.get(field) is None:
                    raise ConfigError("query", f"{task.path}: record {sample.index}: its {self.vector_name} could not "
                                      f"be computed ({result.get('skip_reason')})")  # fmt: skip
                points.append(result[field])
        matrix = context.vectors(self.index)
        query_vectors = np.asarray(matrix[np.asarray(points, dtype=np.int64)], dtype=np.float32)
        positions = [pos for pos, row in enumerate(rows) if row.get(_VEC) is not None]
        index_rows = np.fromiter((rows[pos][_VEC] for pos in positions), dtype=np.int64, count=len(positions))
        for row in rows:
            row.pop(_VEC, None)
        sizes = [len(task.samples) for task in self.tasks]
        by_task = max_similarity(matrix, query_vectors, sizes, index_rows) if positions else np.zeros((0, len(sizes)))
        self.set_scores(rows, positions, by_task)
        self.count_in_pool(rows)
