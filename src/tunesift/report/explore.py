"""The pool as one parquet file for an embedding explorer (Apple's Embedding Atlas, or any that reads parquet).

One row a valid record, in pool order: its index, text (instruction, input and response; and each apart), every
score column given (null where the method skipped the record), one boolean column per selection, the 2-D
coordinates (``x``, ``y``) and the stored all-MiniLM-L6-v2 vector (``vector``, 384 float32). This is the layout
``embedding-atlas FILE --text text --x x --y y --vector vector`` reads. Rows are written in row groups, so nothing
but the vectors and the pool itself is held for the whole pool.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROW_GROUP = 10_000


def atlas_available() -> bool:
    """Whether Embedding Atlas is installed (``pip install 'tunesift[explore]'``)."""
    return importlib.util.find_spec("embedding_atlas") is not None


def atlas_command(path: str | Path, *, host: str = "127.0.0.1", port: int = 5055) -> list[str]:
    """The command that serves ``path`` in Embedding Atlas, columns named as :func:`write_explore` writes them."""
    import sys

    return [sys.executable, "-m", "embedding_atlas.cli", str(path), "--text", "text", "--x", "x", "--y", "y",
            "--vector", "vector", "--host", host, "--port", str(port), "--no-auto-port"]  # fmt: skip


def column_name(label: str, taken: set[str]) -> str:
    """A parquet column name for a score or selection label: its characters kept where plain, unique."""
    name = re.sub(r"[^0-9A-Za-z_.-]+", "_", label).strip("_") or "column"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def write_explore(
    data: Any,
    scores: Sequence[str | Path] = (),
    selections: Sequence[str | Path] = (),
    out: str | Path = "explore.parquet",
    *,
    store_dir: str | Path | None = None,
    projection: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``out`` (parquet, written whole then moved into place) and return what it holds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tunesift.atomic import atomic_open
    from tunesift.data.pools import Pool, read_pool
    from tunesift.data.sample import Sample
    from tunesift.execution.driver import embed_pool
    from tunesift.report import load_selection, score_column
    from tunesift.report.map import check_projection, finite_or_none, project

    check_projection(projection)
    pool = data if isinstance(data, Pool) else read_pool(data)
    columns = [score_column(p, pool) for p in scores]
    chosen = [load_selection(p, pool) for p in selections]
    valid = [s.index for s in pool if isinstance(s, Sample)]
    table = embed_pool(pool, indices=valid, store_dir=store_dir)
    vectors = np.ascontiguousarray(table.vectors, dtype=np.float32)
    xy, method, _ = project(vectors, projection, seed)
    taken = {"index", "text", "instruction", "input", "output", "x", "y", "vector"}
    score_names = [column_name(c.label, taken) for c in columns]
    selection_names = [column_name(f"selected_{s.label}", taken) for s in chosen]
    members = [set(s.indices) for s in chosen]
    dim = vectors.shape[1]
    fields = [pa.field("index", pa.int64()), pa.field("text", pa.string()), pa.field("instruction", pa.string()),
              pa.field("input", pa.string()), pa.field("output", pa.string()),
              *[pa.field(name, pa.float64()) for name in score_names],
              *[pa.field(name, pa.bool_()) for name in selection_names],
              pa.field("x", pa.float32()), pa.field("y", pa.float32()),
              pa.field("vector", pa.list_(pa.float32(), dim))]  # fmt: skip
    schema = pa.schema(fields, metadata={b"tunesift.projection": method.encode()})
    indices = list(table.indices)
    with atomic_open(out, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        for begin in range(0, len(indices), ROW_GROUP):
            rows = indices[begin : begin + ROW_GROUP]
            samples = [pool.samples[i] for i in rows]
            block = vectors[begin : begin + len(rows)]
            values: list[Any] = [
                rows,
                ["\n".join(p for p in (s.instruction, s.input, s.output) if p) for s in samples],
                [s.instruction for s in samples],
                [s.input for s in samples],
                [s.output for s in samples],
                *[[finite_or_none(c.values[i]) for i in rows] for c in columns],
                *[[i in m for i in rows] for m in members],
                xy[begin : begin + len(rows), 0].astype(np.float32),
                xy[begin : begin + len(rows), 1].astype(np.float32),
                pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), dim),
            ]
            writer.write_table(pa.Table.from_arrays([pa.array(v, type=f.type) for v, f in zip(values, fields,
                                                     strict=True)], schema=schema))  # fmt: skip
    return {"rows": len(indices), "projection": method, "scores": score_names, "selections": selection_names,
            "out": str(out)}  # fmt: skip
