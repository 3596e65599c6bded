"""The score cache: results keyed by (sample content hash, scorer configuration hash).

One append-only JSONL file per scorer configuration, with the configuration beside it. Results are
appended a chunk at a time in a single ``write`` and fsynced, so a run killed at any point loses at most
the chunk in flight; a torn last line is cut off when the store is opened again. A line-oriented file was
chosen over parquet because appending and recovering from a torn write are trivial with it; the store is
small (a few numbers per sample) and a later change can swap the format behind this class.

Vectors (embeddings, hidden-state representations) are not JSON: a scorer that names a ``vector_field``
stores each vector as a row of a binary little-endian float32 file beside the JSONL (``<stem>.f32``, its width
in ``<stem>.vectors.json``), and the JSON line keeps the row number. :meth:`ScoreStore.vectors` maps the file
into memory, so a million vectors are read a block at a time, never parsed. Vectors are appended (and
fsynced) before the lines that point at them, under the same lock: a kill leaves at most unreferenced bytes,
cut off by the next append.

Several processes may share a store (two commands on one pool, a Ray driver and a local run): an append
holds an exclusive ``flock`` on the file for its write, a load holds a shared one while it reads, so a
reader never sees another writer's line in flight, and a torn last line is cut only under the exclusive
lock, after checking it is still the last one. ``flock`` needs a file system that honours it (local
disks, NFSv4, Lustre and most cluster file systems do).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.atomic import atomic_open
from tunesift.errors import StorageError


def cache_root() -> Path:
    """Where tunesift keeps what it computed or fetched: ``$TUNESIFT_CACHE``, else ``$XDG_CACHE_HOME/tunesift``,
    else ``~/.cache/tunesift``."""
    if env := os.environ.get("TUNESIFT_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tunesift"


def is_result(row: dict[str, Any]) -> bool:
    """Whether a unit's row is a result the store may keep. Anything that stands in place of a value is not:
    an exception (``error``), a transient failure (``transient``), or a ``skip_reason`` of any kind (a request
    that failed, a reply that was not JSON or held no readable score, a sample the method could not score).
    Only results are cached, so whatever failed is asked again by the next run, never remembered as an answer."""
    return not (row.get("error") or row.get("transient") or row.get("skip_reason"))


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of a scorer configuration (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path, flags: int, lock: int) -> Iterator[int]:
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, lock)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _read_rows(handle: Any, results: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Read whole lines into ``results``, skipping any that cannot be read (a bad sector, an interrupted copy);
    return the byte offset after the last whole line and how many lines were skipped. Only a last line
    without its newline is left out of the offset: a write cut by a kill."""
    end = handle.tell()
    skipped = 0
    for line in handle:
        if not line.endswith(b"\n"):
            break
        end += len(line)
        try:
            row = json.loads(line)
            results[row["id"]] = row
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError):
            skipped += line.strip() != b""
    return end, skipped


VECTOR_DTYPE = np.dtype("<f4")


def encode_vector(vector: Any) -> str:
    """A vector as base64 little-endian float32: how it crosses a process boundary (a Ray batch, a shard)."""
    return base64.b64encode(np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=VECTOR_DTYPE)


class ScoreStore:
    """Cached results of one scorer configuration under ``root``; ``vector_field``: the result field that holds
    a vector (kept in the binary file; its JSON value is the row number)."""

    def __init__(self, root: str | Path, config: dict[str, Any], vector_field: str | None = None) -> None:
        self.root = Path(root)
        self.config = config
        self.key = config_hash(config)
        self.vector_field = vector_field
        stem = f"{config.get('scorer', 'scores')}-{self.key}"
        self.path = self.root / f"{stem}.jsonl"
        self.config_path = self.root / f"{stem}.config.json"
        self.vector_path = self.root / f"{stem}.f32"
        self.vector_meta_path = self.root / f"{stem}.vectors.json"
        # Per-batch result files of distributed workers, merged into the store by the driver.
        self.shard_dir = self.root / f"{stem}.shards"

    def load(self) -> dict[str, dict[str, Any]]:
        """All cached results by sample content id. A line that cannot be read is skipped, wherever it is, and
        every other result kept (counted in ``self.skipped_lines`` and said once on stderr); only a torn last
        line, left by a killed run, is cut off."""
        self.skipped_lines = 0
        if not self.path.exists():
            return {}
        results: dict[str, dict[str, Any]] = {}
        with _locked(self.path, os.O_RDONLY, fcntl.LOCK_SH) as fd, os.fdopen(os.dup(fd), "rb") as handle:
            good_end, self.skipped_lines = _read_rows(handle, results)
            torn = good_end != os.fstat(fd).st_size
        if torn:
            with _locked(self.path, os.O_RDWR, fcntl.LOCK_EX) as fd, os.fdopen(os.dup(fd), "r+b") as handle:
                handle.seek(good_end)
                good_end, more = _read_rows(handle, results)  # lines a writer finished meanwhile
                self.skipped_lines += more
                if good_end != os.fstat(fd).st_size:
                    handle.truncate(good_end)
        if self.skipped_lines:
            print(f"tunesift: warning: {self.path}: skipped {self.skipped_lines} unreadable line(s); every other "
                  "cached result is kept, and the skipped samples are computed again", file=sys.stderr)  # fmt: skip
        return results

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append the rows (each with an ``id``) that are results (:func:`is_result`; the others are refused
        here, whoever computed them) durably, in one write; returns how many. A vector field's value (an array,
        a list or base64 float32) goes to the binary file, and the row given is changed in place to hold its
        row number."""
        rows = [row for row in rows if is_result(row)]
        if not rows:
            return 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(self.root, err) from None
        if not self.config_path.exists():
            with atomic_open(self.config_path) as handle:
                json.dump(self.config, handle, indent=2, sort_keys=True)
        try:
            with _locked(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, fcntl.LOCK_EX) as fd:
                if self.vector_field is not None:
                    self._append_vectors(rows)
                payload = "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows).encode("utf-8")
                start = os.fstat(fd).st_size
                try:
                    rest = memoryview(payload)
                    while rest:  # a short write is followed by one that says why (no space, file too large)
                        rest = rest[os.write(fd, rest) :]
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)  # the store ends on its last whole line, as before this chunk
                    raise
        except OSError as err:
            raise StorageError(self.path, err, "every result stored before this chunk is kept") from None
        return len(rows)

    def _append_vectors(self, rows: list[dict[str, Any]]) -> None:
        """Write the rows' vectors to the binary file (under the store's lock) and put their row numbers in."""
        field = self.vector_field
        held = [row for row in rows if row.get(field) is not None and not isinstance(row[field], int)]
        if not held:
            return
        block = np.stack([decode_vector(v) if isinstance(v, str) else np.asarray(v, VECTOR_DTYPE)
                          for v in (row[field] for row in held)]).astype(VECTOR_DTYPE, copy=False)  # fmt: skip
        width = self.vector_width()
        if width is None:
            width = block.shape[1]
            with atomic_open(self.vector_meta_path) as handle:
                json.dump({"dtype": VECTOR_DTYPE.str, "width": width}, handle)
        if block.shape[1] != width:
            raise StorageError(self.vector_path, OSError(f"a vector of width {block.shape[1]}, the store's is {width}"))
        record = width * VECTOR_DTYPE.itemsize
        fd = os.open(self.vector_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            whole = os.fstat(fd).st_size // record
            os.ftruncate(fd, whole * record)  # bytes a killed append left, which no line points at
            os.lseek(fd, whole * record, os.SEEK_SET)
            rest = memoryview(np.ascontiguousarray(block).tobytes())
            while rest:
                rest = rest[os.write(fd, rest) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        for offset, row in enumerate(held):
            row[field] = whole + offset

    def vector_width(self) -> int | None:
        if not self.vector_meta_path.exists():
            return None
        return int(json.loads(self.vector_meta_path.read_text())["width"])

    def vectors(self) -> np.ndarray:
        """Every stored vector, memory-mapped read-only: row ``r`` is the vector of a result whose vector field
        holds ``r``. An empty (0, 0) array before any is stored."""
        width = self.vector_width()
        if width is None or not self.vector_path.exists():
            return np.zeros((0, 0), dtype=VECTOR_DTYPE)
        n = self.vector_path.stat().st_size // (width * VECTOR_DTYPE.itemsize)
        if n == 0:
            return np.zeros((0, width), dtype=VECTOR_DTYPE)
        return np.memmap(self.vector_path, dtype=VECTOR_DTYPE, mode="r", shape=(n, width))

    # ----- shards: what distributed workers computed, waiting for the driver to merge it -----

    def write_shard(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Write one batch's results (:func:`is_result`: failures never) as ``shard_dir/name.jsonl``, atomically
        (a retried batch rewrites the same name, so a retry never duplicates anything)."""
        with atomic_open(self.shard_dir / f"{name}.jsonl") as handle:
            for row in filter(is_result, rows):
                handle.write(json.dumps(self.portable(row), allow_nan=False) + "\n")

    def portable(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` as JSON can carry it: a vector (an array) as base64 float32."""
        value = row.get(self.vector_field) if self.vector_field else None
        if value is None or isinstance(value, (str, int)):
            return row
        return {**row, self.vector_field: encode_vector(value)}

    def shards(self) -> list[Path]:
        return sorted(self.shard_dir.glob("*.jsonl")) if self.shard_dir.is_dir() else []

    def read_shard(self, path: Path) -> list[dict[str, Any]]:
        with open(path, "rb") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def merge_shards(self) -> int:
        """Append what finished shards hold (a driver died before merging them) and drop them; returns how
        many results were recovered. A shard cut short by a kill is dropped: its batch is computed again."""
        recovered = 0
        for path in self.shards():
            try:
                rows = self.read_shard(path)
            except (json.JSONDecodeError, UnicodeDecodeError):
                rows = []
            self.append(rows)
            recovered += len(rows)
            self.drop_shard(path.stem)
        return recovered

    def drop_shard(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.shard_dir / f"{name}.jsonl").unlink()
