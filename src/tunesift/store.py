"""The score cache: results keyed by (sample content hash, scorer configuration hash).

One append-only JSONL file per scorer configuration, with the configuration beside it. Results are
appended a chunk at a time in a single ``write`` and fsynced, so a run killed at any point loses at most
the chunk in flight; a torn last line is cut off when the store is opened again. A line-oriented file was
chosen over parquet because appending and recovering from a torn write are trivial with it; the store is
small (a few numbers per sample) and a later change can swap the format behind this class.

Several processes may share a store (two commands on one pool, a Ray driver and a local run): an append
holds an exclusive ``flock`` on the file for its write, a load holds a shared one while it reads, so a
reader never sees another writer's line in flight, and a torn last line is cut only under the exclusive
lock, after checking it is still the last one. ``flock`` needs a file system that honours it (local
disks, NFSv4, Lustre and most cluster file systems do).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tunesift.atomic import atomic_open
from tunesift.errors import StorageError


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


class ScoreStore:
    """Cached results of one scorer configuration under ``root``."""

    def __init__(self, root: str | Path, config: dict[str, Any]) -> None:
        self.root = Path(root)
        self.config = config
        self.key = config_hash(config)
        stem = f"{config.get('scorer', 'scores')}-{self.key}"
        self.path = self.root / f"{stem}.jsonl"
        self.config_path = self.root / f"{stem}.config.json"
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

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows (each with an ``id``) durably, in one write."""
        payload = "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows).encode("utf-8")
        if not payload:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(self.root, err) from None
        if not self.config_path.exists():
            with atomic_open(self.config_path) as handle:
                json.dump(self.config, handle, indent=2, sort_keys=True)
        try:
            with _locked(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, fcntl.LOCK_EX) as fd:
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

    # ----- shards: what distributed workers computed, waiting for the driver to merge it -----

    def write_shard(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Write one batch's results as ``shard_dir/name.jsonl``, atomically (a retried batch rewrites the same
        name, so a retry never duplicates anything)."""
        with atomic_open(self.shard_dir / f"{name}.jsonl") as handle:
            for row in rows:
                handle.write(json.dumps(row, allow_nan=False) + "\n")

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
