"""Read and write Alpaca-style instruction pools (JSON list or JSONL), keeping every record as it came."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunesift.atomic import atomic_open
from tunesift.data.sample import Sample
from tunesift.errors import InputError

PoolFormat = Literal["json", "jsonl"]
OUTPUT_FIELDS = ("output", "response")


@dataclass
class Pool:
    """A pool file read into samples; ``format`` is how it is written back."""

    path: Path
    format: PoolFormat
    samples: list[Sample]

    def __len__(self) -> int:
        return len(self.samples)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    # NaN / Infinity are not JSON; Python's json accepts them unless told not to.
    return json.loads(text, parse_constant=_reject_constant)


def detect_format(path: Path) -> PoolFormat:
    """JSONL by extension (.jsonl/.ndjson), else JSON."""
    return "jsonl" if path.suffix.lower() in {".jsonl", ".ndjson"} else "json"


def _iter_records(path: Path, fmt: PoolFormat) -> Iterable[tuple[int, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a JSON or JSONL file", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text (byte offset {err.start})", path=path) from None
    if not text.strip():
        raise InputError("file is empty", path=path)
    if fmt == "json":
        try:
            data = _loads(text)
        except (json.JSONDecodeError, ValueError) as err:
            raise InputError(f"not valid JSON: {err}", path=path) from None
        if not isinstance(data, list):
            raise InputError(
                f"expected a JSON list of records, found {type(data).__name__} "
                "(for one record per line, name the file .jsonl)",
                path=path,
            )
        yield from enumerate(data)
        return
    index = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield index, _loads(line)
        except (json.JSONDecodeError, ValueError) as err:
            raise InputError(f"line {line_no} is not valid JSON: {err}", path=path, record=index) from None
        index += 1


def _text_field(record: dict[str, Any], name: str, path: Path, index: int, required: bool) -> str:
    if name not in record or record[name] is None:
        if required:
            raise InputError("missing (a string is required)", path=path, record=index, field=name)
        return ""
    value = record[name]
    if not isinstance(value, str):
        raise InputError(f"expected a string, found {type(value).__name__}", path=path, record=index, field=name)
    return value


def record_to_sample(record: Any, index: int, path: Path) -> Sample:
    """Validate one Alpaca-style record (``instruction``, optional ``input``, ``output`` or ``response``)."""
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, found {type(record).__name__}", path=path, record=index)
    output_field = next((name for name in OUTPUT_FIELDS if name in record), "output")
    return Sample(
        index=index,
        instruction=_text_field(record, "instruction", path, index, required=True),
        input=_text_field(record, "input", path, index, required=False),
        output=_text_field(record, output_field, path, index, required=True),
        record=record,
    )


def read_pool(path: str | Path, fmt: PoolFormat | None = None) -> Pool:
    """Read a pool; raise :class:`InputError` naming file, record and field on the first bad record."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    samples = [record_to_sample(record, index, path) for index, record in _iter_records(path, fmt)]
    if not samples:
        raise InputError("holds no records", path=path)
    return Pool(path=path, format=fmt, samples=samples)


def write_records(path: str | Path, records: Sequence[dict[str, Any]], fmt: PoolFormat) -> None:
    """Write records atomically in the pool's own format (JSON list, indent 2, or JSONL)."""
    with atomic_open(path) as handle:
        if fmt == "json":
            json.dump(list(records), handle, ensure_ascii=False, indent=2, allow_nan=False)
            handle.write("\n")
        else:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False))
                handle.write("\n")
