"""Pools that live in Python: a list of dicts, a pandas ``DataFrame`` or a Hugging Face ``datasets.Dataset``.

Each is written once as JSONL into a temporary folder (pandas and datasets write their own, so numpy values and
nested lists of messages survive), read as a pool like any file, and the results go back onto the same kind:
the input's columns (or keys) plus the score columns, one row per input row, in the input's order (scores) or in
rank order (a selection). An invalid row is an error naming the row and the column, not the temporary file.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tunesift.errors import InputError

KINDS = ("list", "pandas", "datasets")


def frame_kind(data: Any) -> str | None:
    """``list``, ``pandas`` or ``datasets`` for a pool held in Python; None for a path or a Pool."""
    if isinstance(data, list):
        return "list"
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "to_json") and hasattr(data, "columns"):  # a DataFrame, not a Series
        return "pandas"
    if module == "datasets" and hasattr(data, "to_json") and hasattr(data, "column_names"):
        return "datasets"
    return None


@contextlib.contextmanager
def _quiet(kind: str) -> Iterator[None]:
    """datasets' progress bars off while it converts (a library's bars are not the user's work), then as before."""
    if kind != "datasets":
        yield
        return
    import datasets

    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def check_data(data: Any) -> None:
    """Refuse, in one line, what is neither a pool file, a :class:`Pool`, nor a pool held in Python, saying what
    to give instead (a tuple or generator of dicts, a DatasetDict, a Series, a number)."""
    from tunesift.data.pools import Pool
    from tunesift.errors import ConfigError

    if frame_kind(data) is not None or isinstance(data, (str, Path, Pool)):
        return
    name = type(data).__name__
    if name in ("DatasetDict", "IterableDatasetDict"):
        hint = f"it holds several splits ({', '.join(data)}): give one, e.g. data[{next(iter(data))!r}]"
    elif name == "Series":
        hint = "a Series is one column: give the DataFrame (or series.to_frame())"
    elif isinstance(data, (tuple, set)) or hasattr(data, "__next__"):
        hint = "give it as a list (list(data))"
    else:
        hint = "give a path, a Pool, a list of dicts, a pandas DataFrame or a datasets.Dataset"
    raise ConfigError("data", f"cannot read a pool from a {name}: {hint}")


def _write_jsonl(data: Any, kind: str, path: Path) -> None:
    if kind == "list":
        with open(path, "w", encoding="utf-8") as handle:
            for number, record in enumerate(data):
                if not isinstance(record, dict):
                    raise InputError(f"expected a dict, got {type(record).__name__}", path="<list of dicts>",
                                     record=number)  # fmt: skip
                try:
                    line = json.dumps(_clean(record), ensure_ascii=False, allow_nan=False, default=_plain)
                except (TypeError, ValueError) as err:
                    field = next((k for k, v in record.items() if not _serialisable(v)), None)
                    raise InputError(f"cannot be written as JSON: {err}", path="<list of dicts>", record=number,
                                     field=field) from None  # fmt: skip
                handle.write(line + "\n")
    elif kind == "pandas":
        twice = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
        if twice:
            raise InputError(f"has duplicate columns {twice}: a record holds one value per field; rename or drop "
                             "them", path="<DataFrame>")  # fmt: skip
        data.to_json(path, orient="records", lines=True, force_ascii=False, date_format="iso")
    else:
        with _quiet(kind):
            data.to_json(str(path), lines=True, force_ascii=False)


def _clean(value: Any) -> Any:
    """A NaN or infinity (a missing value, as pandas writes it) as null, wherever it is in the record."""
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, dates and times as JSON can hold them (ISO 8601, as pandas writes them)."""
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _serialisable(value: Any) -> bool:
    try:
        json.dumps(_clean(value), allow_nan=False, default=_plain)
    except (TypeError, ValueError):
        return False
    return True


@contextlib.contextmanager
def as_pool_file(data: Any) -> Iterator[Path]:
    """A pool held in Python as a JSONL file for the length of the block; errors about it name the object."""
    kind = frame_kind(data)
    if kind is None:
        raise TypeError(f"not a pool held in Python: {type(data).__name__}")
    with tempfile.TemporaryDirectory(prefix="tunesift-") as folder:
        path = Path(folder) / "pool.jsonl"
        _write_jsonl(data, kind, path)
        try:
            yield path
        except InputError as err:
            if err.path == str(path):
                where = {"list": "<list of dicts>", "pandas": "<DataFrame>", "datasets": "<Dataset>"}[kind]
                raise InputError(err.message.replace(str(path), where), path=where, record=err.record,
                                 field=err.field) from None  # fmt: skip
            raise


def with_columns(data: Any, columns: dict[str, Sequence[Any]]) -> Any:
    """``data`` (same kind) with ``columns`` added, one value per row (an existing column of that name replaced)."""
    kind = frame_kind(data)
    if kind == "list":
        return [{**record, **{name: values[i] for name, values in columns.items()}} for i, record in enumerate(data)]
    if kind == "pandas":
        return data.assign(**{name: list(values) for name, values in columns.items()})
    out = data
    with _quiet("datasets"):
        for name, values in columns.items():
            if name in out.column_names:
                out = out.remove_columns(name)
            out = out.add_column(name, list(values))
    return out


def take(data: Any, indices: Sequence[int]) -> Any:
    """The rows at ``indices``, in that order, of the same kind."""
    kind = frame_kind(data)
    if kind == "list":
        return [data[i] for i in indices]
    if kind == "pandas":
        return data.iloc[list(indices)].reset_index(drop=True)
    with _quiet("datasets"):
        return data.select(list(indices)).flatten_indices()


def redacted(data: Any, kinds: tuple[str, ...]) -> tuple[Any, dict[str, int]]:
    """Every string of every row with its personal data replaced by placeholders (:mod:`tunesift.data.pii`), same
    kind of rows, and the counts per kind."""
    from collections import Counter

    from tunesift.data.pii import redact_record

    found: Counter = Counter()

    def one(value: Any) -> Any:
        clean, counts = redact_record(value, kinds)
        found.update(counts)
        return clean

    kind = frame_kind(data)
    if kind == "list":
        return [one(row) for row in data], dict(found)
    if kind == "pandas":
        out = data.copy()
        for column in out.columns:
            out[column] = out[column].map(one)
        return out, dict(found)
    with _quiet("datasets"):  # a Dataset's row is a mapping, not a dict
        return data.map(lambda row: one(dict(row))), dict(found)
