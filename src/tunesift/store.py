"""The score cache: results keyed by (sample content hash, scorer configuration hash).

One append-only JSONL file per scorer configuration, with the configuration beside it. Results are
appended a chunk at a time in a single ``write`` and fsynced, so a run killed at any point loses at most
the chunk in flight; a torn last line is cut off when the store is opened again. A line-oriented file was
chosen over parquet because appending and recovering from a torn write are trivial with it; the store is
small (a few numbers per sample) and a later change can swap the format behind this class.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunesift.atomic import atomic_open


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of a scorer configuration (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()[:16]


class ScoreStore:
    """Cached results of one scorer configuration under ``root``."""

    def __init__(self, root: str | Path, config: dict[str, Any]) -> None:
        self.root = Path(root)
        self.config = config
        self.key = config_hash(config)
        stem = f"{config.get('scorer', 'scores')}-{self.key}"
        self.path = self.root / f"{stem}.jsonl"
        self.config_path = self.root / f"{stem}.config.json"

    def load(self) -> dict[str, dict[str, Any]]:
        """All cached results by sample content id; cuts a torn last line left by a killed run."""
        if not self.path.exists():
            return {}
        results: dict[str, dict[str, Any]] = {}
        good_end = 0
        with open(self.path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                results[row["id"]] = row
                good_end += len(line)
        if good_end != self.path.stat().st_size:
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
        return results

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows (each with an ``id``) durably, in one write."""
        payload = "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows).encode("utf-8")
        if not payload:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            with atomic_open(self.config_path) as handle:
                json.dump(self.config, handle, indent=2, sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
