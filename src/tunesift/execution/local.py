"""The in-process executor: a chunk of units at a time, each chunk stored before the next starts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tunesift.scorers.base import Progress, Scorer, Unit, compute_safely
from tunesift.store import ScoreStore


@dataclass
class LocalExecutor:
    """Computes units in this process; the backend is loaded on the first chunk that needs it.

    ``backend`` may be a loaded backend to use instead (a model already in memory). A chunk is the
    scorer's ``chunk_size`` units, stored before the next starts (a kill loses at most one chunk).
    """

    device: str | None = None
    backend: Any = None
    name: str = "local"
    _seconds: dict[str, float] = field(default_factory=dict, repr=False)

    def prepare(self) -> None:
        """Nothing to start: the model loads with the first batch."""

    def map_units(
        self, scorer: Scorer, units: Iterable[Unit], store: ScoreStore, on_progress: Progress = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        size = scorer.chunk_size
        backend = self.backend
        chunk: list[Unit] = []

        def run() -> Iterator[tuple[str, dict[str, Any]]]:
            nonlocal backend
            if backend is None:
                started = time.perf_counter()
                backend = scorer.load_backend(self.device)
                self._add("load", time.perf_counter() - started)
            started = time.perf_counter()
            results = compute_safely(scorer, chunk, backend, on_progress)
            self._add("compute", time.perf_counter() - started)
            rows = [{"id": unit.key, **result} for unit, result in zip(chunk, results, strict=True)]
            store.append(rows)  # the store keeps only results
            chunk.clear()
            yield from ((row["id"], row) for row in rows)

        for unit in units:
            chunk.append(unit)
            if len(chunk) >= size:
                yield from run()
        if chunk:
            yield from run()

    def target_device(self) -> str:
        if self.backend is not None:
            return str(getattr(self.backend, "device", "cpu"))
        from tunesift.models.precision import pick_device

        return pick_device(self.device)

    def _add(self, stage: str, seconds: float) -> None:
        self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds

    def summary(self) -> list[str]:
        if not self._seconds:
            return []
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in self._seconds.items())
        return [f"executor local (1 process): {stages}"]
