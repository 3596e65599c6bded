"""Where a scorer's units are computed: in this process, or on a Ray cluster.

An executor receives a scorer (parameters only, so it can be rebuilt anywhere), the units the store lacks,
and the store; it computes them in batches, appends the results to the store, and yields ``(key, result)``
pairs as they finish. Both executors run the same :meth:`~tunesift.scorers.base.Scorer.compute` on the
same batches, so their results are the same cache entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from tunesift.errors import ConfigError
from tunesift.scorers.base import Progress, Scorer, Unit
from tunesift.store import ScoreStore

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    """Computes units and stores their results; ``summary()`` says what ran, for the end of a run."""

    name: str

    def map_units(
        self, scorer: Scorer, units: Iterable[Unit], store: ScoreStore, on_progress: Progress = None
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def summary(self) -> list[str]: ...

    def prepare(self) -> None:
        """Called once there is something to compute, before any progress is shown (a cluster is joined or
        started here, never when the store holds everything)."""
        ...

    def target_device(self) -> str:
        """The device type the work runs on (``cpu``, ``cuda``, ``cuda:N``): what ``--dtype auto`` means."""
        ...


def make_executor(
    name: str = "local",
    *,
    device: str | None = None,
    ray_address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float | None = None,
) -> Executor:
    """An executor by name (``local`` or ``ray``) with its options; Ray's are checked before any work."""
    if name == "local":
        from tunesift.execution.local import LocalExecutor

        return LocalExecutor(device=device)
    if name == "ray":
        from tunesift.execution.ray_data import RayExecutor

        executor = RayExecutor(address=ray_address, actors=actors, gpus_per_actor=gpus_per_actor,
                               cpus_per_actor=cpus_per_actor, device=device)  # fmt: skip
        executor.validate()
        if ray_address is not None:  # a cluster of the user's: unreachable is an error now
            executor.connect()
        return executor
    raise ConfigError("executor", f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
