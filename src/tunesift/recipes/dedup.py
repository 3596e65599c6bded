"""Deduplicate a pool (``tunesift dedup``, and a recipe's ``dedup`` step before selection): the texts or MiniLM
vectors of its samples through :mod:`tunesift.selectors.dedup`, each drop tied to the sample kept in its place."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.data.sample import Sample
from tunesift.data.templates import messages
from tunesift.errors import ConfigError
from tunesift.options import is_number
from tunesift.selectors.dedup import (
    METHODS,
    MINHASH_THRESHOLD,
    MinHashGroups,
    check_threshold,
    duplicates_from,
    exact_keys,
    first_of_equal,
    semantic_duplicates,
)

ON = ("sample", "prompt")
#: What each method compares unless told (``--on``): exact and SemDeDup the whole sample, MinHash the prompt.
DEFAULT_ON = {"exact": "sample", "minhash": "prompt", "semantic": "sample"}
EXAMPLES = 5  # pairs shown in a report or a command's summary
#: Samples read, hashed and signed at a time: a chunk's texts are all the pool a dedup holds at once.
CHUNK = 4096
#: Records from which MinHash signatures are computed in several processes (below, starting them costs more).
PARALLEL_FROM = 50_000


def dedup_text(sample: Sample, on: str) -> str:
    """The canonical text compared: every message (``prompt``: the system and user messages only) stripped, with
    its role, one per line."""
    kept = [m for m in messages(sample) if on == "sample" or m["role"] != "assistant"]
    return "\n".join(json.dumps([m["role"], m["content"].strip()], ensure_ascii=False) for m in kept)


def plain_text(sample: Sample, on: str) -> str:
    """The words compared by MinHash: the messages' contents (``prompt``: without the replies)."""
    return "\n".join(m["content"] for m in messages(sample) if on == "sample" or m["role"] != "assistant")


@dataclass
class DedupResult:
    """What a dedup kept and dropped, by pool index; ``dropped`` lists each dropped sample with its kept twin."""

    method: str
    options: dict[str, Any]
    kept: list[int]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self, pool: Any = None) -> dict[str, Any]:
        """The manifest's ``dedup`` section: method, options, counts, every drop, and a few example pairs."""
        return {"method": self.method, **self.options, **self.details, "kept": len(self.kept),
                "dropped": len(self.dropped), "pairs": self.dropped}  # fmt: skip


def check_dedup(method: str, threshold: float | None = None, on: str | None = None, clusters: int | None = None,
                n: int | None = None, normalise: bool = False) -> tuple[float | None, str]:  # fmt: skip
    """The options checked before any work (each error names its option); returns the threshold and ``on``."""
    if method not in METHODS:
        raise ConfigError("method", f"unknown dedup method {method!r}; choose one of {', '.join(METHODS)}")
    threshold = check_threshold(method, threshold)
    on = on or DEFAULT_ON[method]
    if on not in ON:
        raise ConfigError("on", f"choose sample or prompt, got {on!r}")
    if clusters is not None:
        if method != "semantic":
            raise ConfigError("clusters", "only semantic dedup clusters (exact and minhash compare texts)")
        if not is_number(clusters, whole=True) or clusters < 1:
            raise ConfigError("clusters", f"must be a whole number, at least 1, got {clusters!r}")
        if n is not None and clusters > n:
            raise ConfigError("clusters", f"must be between 1 and the pool's {n} records, got {clusters}")
    if normalise and method != "exact":  # it was silently ignored
        raise ConfigError(
            "normalise",
            f"only exact dedup normalises its text ({method} compares "
            f"{'word 5-grams' if method == 'minhash' else 'MiniLM vectors'} as METHODS.md §17 defines)",
        )
    return threshold, on


def dedup_pool(
    pool: Any,
    method: str,
    *,
    threshold: float | None = None,
    on: str | None = None,
    normalise: bool = False,
    clusters: int | None = None,
    indices: Sequence[int] | None = None,
    store_dir: str | Path | None = None,
    executor: Any = None,
    progress: bool = False,
) -> DedupResult:
    """Deduplicate the valid samples of ``pool`` (or those at ``indices``, kept in pool order)."""
    threshold, on = check_dedup(method, threshold, on, clusters, len(pool), normalise)
    wanted = None if indices is None else set(indices)
    options: dict[str, Any] = {"on": on}
    # the pool streams a chunk at a time; per sample only its index, content id and keys (or vector) are kept
    index_parts: list[np.ndarray] = []
    id_parts: list[np.ndarray] = []
    key_parts: list[np.ndarray] = []
    groups = MinHashGroups(threshold or MINHASH_THRESHOLD) if method == "minhash" else None

    def texts() -> Iterator[list[str]]:
        for chunk in _chunks(s for s in pool if isinstance(s, Sample) and (wanted is None or s.index in wanted)):
            index_parts.append(np.array([s.index for s in chunk], dtype=np.int64))
            id_parts.append(np.array([bytes.fromhex(s.content_id) for s in chunk], dtype="S16"))
            if method == "exact":
                key_parts.append(exact_keys([dedup_text(s, on) for s in chunk], normalised=normalise))
            elif groups is not None:
                yield [plain_text(s, on) for s in chunk]

    if groups is not None:  # the signatures on the Ray cluster, or in one process per core where that pays
        on_cluster = getattr(executor, "map_chunks", None)
        workers = min(4, os.cpu_count() or 1) if len(pool) >= PARALLEL_FROM else 1
        groups.add_all(texts(), workers=workers, map_chunks=on_cluster)
    else:
        for _ in texts():
            pass
    positions = np.concatenate(index_parts) if index_parts else np.zeros(0, dtype=np.int64)
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype="S16")
    if method == "exact":
        options["normalise"] = normalise
        keys = np.concatenate(key_parts) if key_parts else np.zeros((0, 2), dtype=np.uint64)
        found = duplicates_from(first_of_equal(keys), np.arange(len(keys)), len(keys), "exact")
    elif groups is not None:
        found = groups.duplicates(map_bands=getattr(executor, "map_chunks", None))
    else:
        from tunesift.execution.driver import embed_pool

        table = embed_pool(pool, indices=positions.tolist(), store_dir=store_dir, executor=executor,
                           progress=progress, minilm_text=on)  # fmt: skip
        found = semantic_duplicates(table.vectors, threshold=threshold or 0.99, clusters=clusters)
    dropped = [{"index": int(positions[p]), "id": ids[p].hex(), "kept_index": int(positions[k]),
                "kept_id": ids[k].hex()} for p, k in sorted(found.kept_for.items())]  # fmt: skip
    return DedupResult(method, options, positions[found.kept].tolist(), dropped, dict(found.details))


def _chunks(samples: Iterator[Sample], size: int | None = None) -> Iterator[list[Sample]]:
    size = size or CHUNK
    chunk: list[Sample] = []
    for sample in samples:
        chunk.append(sample)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
