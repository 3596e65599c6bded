"""What every artifact of a comparison is named by: a short hash of what produced it (a file by its content),
so a changed setting is another name and never served from the cache; and the one JSON writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesift.atomic import atomic_open


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, allow_nan=True)


def short_key(payload: Any) -> str:
    from tunesift.store import config_hash

    return config_hash(json.loads(json.dumps(payload, default=str)))[:10]


def file_sha(path: str | Path) -> str:
    """The file's content hash (read in blocks: ``hashlib.file_digest`` needs Python 3.11, tunesift 3.10)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def recipe_identity(name: str) -> Any:
    """A built-in recipe by name, a user's recipe file by its content (an edited file is another recipe)."""
    path = Path(name)
    return {"file_sha": file_sha(path)} if path.suffix and path.exists() else name


def query_identity(path: str | Path) -> str | None:
    """A query file by its content: an edited query set is another selection."""
    return file_sha(Path(path)) if Path(path).is_file() else None
