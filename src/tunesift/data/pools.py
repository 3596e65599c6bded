"""Read and write instruction pools in the formats users have, streaming, keeping every record as it came.

Two things are detected separately: the *container* (JSON list, JSONL, parquet, a Hugging Face dataset
saved to disk) from the path, and the *schema* (:mod:`tunesift.data.schemas`: Alpaca, ShareGPT, messages, the
reasoning column layouts) from each record's keys, unless ``--format`` names it for all or ``--fields`` maps the
columns.

Records are streamed: reading a pool keeps one record at a time (plus the reasons of rejected ones).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from tunesift.atomic import atomic_open
from tunesift.data.sample import Rejected, Sample
from tunesift.data.schemas import LAYOUTS, SCHEMAS, FieldMap, detect_schema, record_to_sample
from tunesift.errors import ConfigError, InputError

#: What --format may name: a schema, or a reasoning column layout.
FORMATS: tuple[str, ...] = (*SCHEMAS, *LAYOUTS)

Container = Literal["json", "jsonl", "parquet", "hf", "hub"]
CONTAINERS: tuple[str, ...] = ("json", "jsonl", "parquet", "hf", "hub")
HUB_PREFIX = "hf:"  # a pool named hf:org/name[:split] is a hub dataset
OnError = Literal["raise", "skip"]


# ----- containers -----


def detect_container(path: Path) -> Container:
    """From the path: hf:org/name a hub dataset; a folder a saved HF dataset; .parquet; .jsonl/.ndjson;
    anything else JSON."""
    if str(path).startswith(HUB_PREFIX):
        return "hub"
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    return "jsonl" if suffix in {".jsonl", ".ndjson"} else "json"


_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON escape of a surrogate: valid only as a high-low pair (an emoji written as escapes).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """The field (``a.b[2]``) of the first text in ``value`` that holds a lone surrogate, which no UTF-8 file
    can hold and a JSON writer would turn into ``?``; None if there is none."""
    if isinstance(value, str):
        return where or "(record)" if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for key, v in items if (found := lone_surrogate(v, key))), None)


def _holds_surrogate(value: Any) -> bool:
    """A fast yes/no first (an ASCII text holds none): the field is named only for the rare record that does."""
    if isinstance(value, str):
        return not value.isascii() and _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_surrogate(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_surrogate(v) for v in value)
    return False


def refuse_surrogate(record: Any, path: Path, index: int) -> None:
    if not _holds_surrogate(record):
        return
    field = lone_surrogate(record)
    if field is not None:
        raise InputError("holds a lone surrogate escape (half of a \\uD8xx-\\uDFxx pair): not valid Unicode text; "
                         "fix the text or drop the record", path=path, record=index, field=field)  # fmt: skip


@functools.lru_cache(maxsize=64)
def _has_surrogate_escape(path: Path, size: int, mtime_ns: int) -> bool:
    """Whether the file holds a JSON escape of a surrogate anywhere (one pass over its bytes, a block at a time):
    ijson's C parser turns a lone one into ``?``, so such a rare file is parsed by the standard library."""
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 18):
            if _SURROGATE_ESCAPE.search(tail + chunk):
                return True
            tail = chunk[-6:]
    return False


def _iter_json_list(path: Path) -> Iterator[tuple[int, Any]]:
    import ijson

    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head:
            raise InputError("file is empty", path=path)
        if not head.startswith(b"["):
            raise InputError(
                "expected a JSON list of records (for one record per line, name the file .jsonl)", path=path
            )
        handle.seek(0)
        if handle.read(3) != b"\xef\xbb\xbf":
            handle.seek(0)
        index = 0
        try:
            stat = path.stat()
            if _has_surrogate_escape(path, stat.st_size, stat.st_mtime_ns):  # rare: parsed as written, so a lone
                try:  # surrogate is refused by its record alone (--on-error skip leaves just that record out)
                    records = json.loads(path.read_bytes().decode("utf-8-sig"))
                except ValueError as err:
                    raise InputError(f"not valid JSON: {err}", path=path) from None
                yield from enumerate(records)
                return
            for record in ijson.items(handle, "item", use_float=True):
                yield index, record
                index += 1
        except ijson.JSONError as err:
            raise InputError(_ijson_message(err), path=path, record=index) from None
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", path=path, record=index) from None


def _ijson_message(err: Exception) -> str:
    """yajl's multi-line message (sometimes bytes) as one line."""
    raw = err.args[0] if err.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    if "UTF8" in first:
        return "not UTF-8 text"
    return f"not valid JSON: {first}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # one decoder for every line (json.loads makes one each)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    index = 0
    seen_any = False
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"line {line_no} is not UTF-8 (byte {err.start})", path=path, record=index) from None
            if not line.strip():
                continue
            seen_any = True
            try:
                record = _DECODER.decode(line)
            except (json.JSONDecodeError, ValueError) as err:
                raise InputError(f"line {line_no} is not valid JSON: {err}", path=path, record=index) from None
            yield index, record
            index += 1
    if not seen_any:
        raise InputError("file is empty", path=path)


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not parquet
        raise InputError(f"not a parquet file: {err}", path=path) from None
    index = 0
    for batch in parquet.iter_batches(batch_size=512):
        for record in batch.to_pylist():
            yield index, record
            index += 1


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "format", "Hugging Face dataset folders need the 'datasets' package: pip install 'tunesift[hf]'"
        ) from None
    return datasets


def _iter_hf(path: Path) -> Iterator[tuple[int, Any]]:
    datasets = _datasets()
    Dataset, load_from_disk = datasets.Dataset, datasets.load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise InputError(f"not a Hugging Face dataset saved with save_to_disk: {err}", path=path) from None
    if not isinstance(dataset, Dataset):
        raise InputError(f"holds several splits ({', '.join(dataset)}): give one split's folder", path=path)
    yield from enumerate(dataset)  # memory-mapped Arrow: rows are read as they are needed


def _iter_hub(path: Path) -> Iterator[tuple[int, Any]]:
    """``hf:org/name[:split]`` (default split: train) through ``datasets``, from the hub cache offline."""
    from tunesift import hub

    repo_id, _, split = str(path).removeprefix(HUB_PREFIX).partition(":")
    if not hub.is_hub_id(repo_id):
        raise InputError("expected hf:org/name or hf:org/name:split", path=path)
    folder, _ = hub.snapshot(repo_id, repo_type="dataset", option="data")
    datasets = _datasets()
    try:
        dataset = datasets.load_dataset(str(folder), split=split or "train")
    except (ValueError, FileNotFoundError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"cannot load the dataset: {first}", path=path) from None
    yield from enumerate(dataset)


def iter_records(path: Path, container: Container) -> Iterator[tuple[int, Any]]:
    """Stream ``(index, record)`` pairs; a broken file raises :class:`InputError` naming where."""
    if container == "hub":
        return _iter_hub(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if container != "hf" and path.is_dir():
        raise InputError("is a directory, expected a pool file", path=path)
    readers = {"json": _iter_json_list, "jsonl": _iter_jsonl, "parquet": _iter_parquet, "hf": _iter_hf}
    return readers[container](path)


# ----- pools -----


@dataclass
class Pool:
    """A pool file: read lazily, as many times as needed, one record at a time.

    ``rejects`` lists records that are not valid samples (only under ``on_error="skip"``); they keep their
    index, so every other record keeps its own.
    """

    path: Path
    container: Container
    schema: str
    n_records: int
    rejects: list[Rejected] = field(default_factory=list)
    on_error: OnError = "raise"
    forced_schema: str | None = None  # --format; otherwise each record's schema comes from its keys
    fields: FieldMap | None = None  # --fields: which column holds which part, for every record

    @property
    def format(self) -> Container:  # the container a subset is written in by default
        return self.container

    def __len__(self) -> int:
        return self.n_records

    def __iter__(self) -> Iterator[Sample | Rejected]:
        rejected = {r.index: r for r in self.rejects}
        for index, record in iter_records(self.path, self.container):
            if index in rejected:
                yield rejected[index]
            else:
                yield record_to_sample(record, index, self.path, self.forced_schema, self.fields)

    @cached_property
    def samples(self) -> list[Sample]:
        """Every sample in memory, for what needs random access (reports, tests); rejects are an error."""
        if self.rejects:
            first = self.rejects[0]
            raise InputError(first.reason, path=self.path, record=first.index, field=first.field)
        return [s for s in self if isinstance(s, Sample)]


def read_pool(
    path: str | Path,
    fmt: str | None = None,
    on_error: OnError = "raise",
    container: Container | None = None,
    fields: Any = None,
) -> Pool:
    """Check a pool from end to end (streaming) and return it; nothing is kept but the rejects.

    ``fmt`` names the schema (``alpaca``, ``sharegpt``, ``messages``, or a reasoning layout: ``s1k``, ``math``,
    ``gsm8k``, ...) when detection should not decide; ``fields`` maps the columns instead
    (``instruction=problem,output=solution,reference=answer``, :class:`~tunesift.data.schemas.FieldMap`).
    With ``on_error="raise"`` the first invalid record raises :class:`InputError` naming file, record and
    field; with ``"skip"`` invalid records are listed in ``Pool.rejects`` with their reasons.
    """
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError("format", f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    fields = FieldMap.parse(fields)
    if fields is not None and fmt is not None:
        raise ConfigError("fields", "give --fields or --format, not both")
    if on_error not in ("raise", "skip"):
        raise ConfigError("on-error", f"choose raise or skip, got {on_error!r}")
    container = container or detect_container(path)
    schemas: set[str] = set()
    rejects: list[Rejected] = []
    count = 0
    for index, record in iter_records(path, container):
        count += 1
        schemas.add(f"fields {fields.describe()}" if fields else fmt or detect_schema(record))
        try:
            record_to_sample(record, index, path, fmt, fields)
        except InputError as err:
            if on_error == "raise":
                raise
            rejects.append(Rejected(index, record, err.field, err.message))
    if count == 0:
        raise InputError("holds no records", path=path)
    schema = next(iter(schemas)) if len(schemas) == 1 else "mixed"
    return Pool(path=path, container=container, schema=schema, n_records=count, rejects=rejects,
                on_error=on_error, forced_schema=fmt, fields=fields)  # fmt: skip


# ----- writing -----


def output_container(path: Path, default: Container) -> Container:
    """The container a file name asks for (.json, .jsonl, .parquet), else ``default`` (a hub dataset's
    subset is written as a dataset folder)."""
    default = "hf" if default == "hub" else default
    suffix = path.suffix.lower()
    if suffix in {".json", ".jsonl", ".ndjson", ".parquet"}:
        return detect_container(path) if not path.is_dir() else default
    return default


def _arrow_table(records: list[dict[str, Any]], path: Path) -> Any:
    import pyarrow as pa

    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputError(f"these records cannot be stored in Arrow ({err}); write .json or .jsonl instead",
                         path=path) from None  # fmt: skip


def write_records(path: str | Path, records: Iterable[dict[str, Any]], container: Container) -> None:
    """Write records atomically: a JSON list (indent 2), JSONL, parquet, or an HF dataset folder."""
    path = Path(path)
    records = list(records) if container in ("parquet", "hf") else records
    if container == "json":
        with atomic_open(path) as handle:
            handle.write("[")
            for k, record in enumerate(records):
                handle.write(",\n  " if k else "\n  ")
                handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False))
            handle.write("\n]\n")
    elif container == "jsonl":
        with atomic_open(path) as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False))
                handle.write("\n")
    elif container == "parquet":
        import pyarrow.parquet as pq

        table = _arrow_table(records, path)
        with atomic_open(path, "wb", encoding=None) as handle:
            pq.write_table(table, handle)
    elif container == "hf":
        import os
        import shutil
        import tempfile

        from tunesift.atomic import on_commit

        Dataset = _datasets().Dataset
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            Dataset(_arrow_table(records, path)).save_to_disk(str(tmp / "data"))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

        def commit() -> None:
            try:
                if path.exists():
                    shutil.rmtree(path)
                os.replace(tmp / "data", path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        on_commit(commit, lambda: shutil.rmtree(tmp, ignore_errors=True))
    else:  # pragma: no cover - guarded by the Literal
        raise ValueError(container)
