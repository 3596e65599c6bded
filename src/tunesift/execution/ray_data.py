"""The Ray executor: a scorer's units through Ray Data, on an actor pool that loads the model once per actor.

The driver streams the units the store lacks into ``ray.data.from_items`` (a window at a time, so memory
does not grow with the pool), and ``map_batches`` sends batches of them to a pool of actors
(:class:`ScoreActor`, a callable class on ``ActorPoolStrategy``), each holding one backend on its own GPU
(or CPUs). An actor computes a batch exactly as the local executor computes a chunk, writes the results
as a shard named by the batch's keys (a temporary file renamed, so a retried batch rewrites the same
shard and never duplicates), and returns them; the driver appends them to the store and drops the shard.
A driver that dies leaves its finished shards, merged into the store by the next run before it decides
what is missing. A driver that stops (Ctrl-C, an error) leaves a stop file that tells the actors to skip
the batches still queued for them, so the cluster stops working within one batch. Actors that die are
restarted and their batch retried, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from tunesift.errors import ConfigError
from tunesift.scorers.base import Progress, Scorer, Unit, compute_safely
from tunesift.store import ScoreStore

# Units handed to one Ray dataset: the actor pool (and its models) lives as long as one window.
WINDOW_UNITS = 100_000
# Restarts of a dead actor, and retries of the batch it held (Ray Data's actor pools default to infinite).
MAX_RETRIES = 3


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor", "the Ray executor needs Ray: pip install 'tunesift[ray]'") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, naming the option, when nothing listens at ``HOST:PORT`` (Ray itself waits minutes)."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError("ray-address", f"expected auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(
            "ray-address",
            f"nothing answers at {address} ({err.strerror or err}); start the head "
            "node with 'ray start --head', or give --ray-address auto on a node of the cluster",
        ) from None


# The one line Ray's C++ core worker writes to the driver's stderr for every actor Ray Data starts (its actors take
# their constructor arguments from the object store and restart when they die: Ray issue 53727). It asks nothing
# of the user: the arguments' owner is this driver, and without it there is no run to restart an actor for.
RAY_ACTOR_ARGS_LINE = re.compile(
    rb"\[[0-9-]+ [0-9:,]+ E \d+ \d+\] core_worker\.cc:\d+: Actor with class name: [^\n]*has constructor arguments "
    rb"in the object store and max_restarts > 0[^\n]*\n"
)


@contextlib.contextmanager
def _stderr_without(pattern: re.Pattern[bytes]) -> Iterator[None]:
    """File descriptor 2 through a filter that drops ``pattern``, for lines written below Python (Ray's C++).

    Everything else goes through as it comes (progress bars included); on leaving, fd 2 is restored and the
    pipe drained before returning, so nothing written inside is lost or reordered after what follows."""
    import sys
    import threading

    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read, write = os.pipe()
    except (OSError, ValueError, AttributeError):  # no fd 2 (an embedding program): nothing to filter
        yield
        return

    def pump() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(read, 65536):  # a C++ log line is one write(): it arrives whole
                os.write(saved, pattern.sub(b"", chunk))

    thread = threading.Thread(target=pump, name="tunesift-stderr", daemon=True)
    thread.start()
    os.dup2(write, 2)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(write)  # the reader sees the end once what is in the pipe is through
        thread.join(timeout=5)
        os.close(read)
        os.close(saved)


def shard_name(keys: Iterable[str]) -> str:
    """A batch's shard name, from its units' keys: the same batch always gets the same name."""
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:24]


class ScoreActor:
    """One worker of the pool: rebuilds the scorer from its pickled parameters and loads its backend once."""

    def __init__(self, scorer: bytes, store_root: str, device: str | None, threads: int, stop_file: str) -> None:
        import ray
        import torch
        from ray import cloudpickle

        self.scorer: Scorer = cloudpickle.loads(scorer)
        self.stop_file = stop_file
        self.store = ScoreStore(store_root, self.scorer.cache_config())
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        torch.set_num_threads(max(1, threads))
        if device is None:
            device = "cuda" if self.gpu_ids and torch.cuda.is_available() else "cpu"
        self.device = device
        self.actor_id = ray.get_runtime_context().get_actor_id() or f"pid-{os.getpid()}"
        started = time.perf_counter()
        self.backend = self.scorer.load_backend(device)
        self.load_seconds = time.perf_counter() - started

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from ray import cloudpickle

        keys = [str(k) for k in batch["key"]]
        if os.path.exists(self.stop_file):  # the driver has stopped: nobody reads this batch's results
            return {name: [] for name in ("row", "shard", "actor", "gpus", "seconds", "load_seconds")}
        units = [Unit(k, cloudpickle.loads(blob)) for k, blob in zip(keys, batch["unit"], strict=True)]
        started = time.perf_counter()
        results = compute_safely(self.scorer, units, self.backend)
        seconds = time.perf_counter() - started
        rows = [{"id": key, **result} for key, result in zip(keys, results, strict=True)]
        name = shard_name(keys)
        self.store.write_shard(name, rows)  # failures never reach a shard
        n = len(rows)
        return {
            "row": [json.dumps(row, allow_nan=False) for row in rows],
            "shard": [name] * n,
            "actor": [self.actor_id] * n,
            "gpus": [",".join(self.gpu_ids)] * n,
            "seconds": [seconds / n] * n,
            "load_seconds": [self.load_seconds] * n,
        }


@dataclass
class RayExecutor:
    """Computes units on a Ray cluster (a local Ray instance when ``address`` is None).

    ``actors``: pool size (default: as many as the cluster's GPUs or CPUs allow, one model each, leaving
    a CPU for Ray's own tasks); ``gpus_per_actor`` (default 1 when the cluster has GPUs, else 0; a fraction
    packs small models onto one GPU); ``cpus_per_actor`` (default 1; also the actor's torch threads).
    """

    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float | None = None
    cpus_per_actor: float | None = None
    device: str | None = None
    max_retries: int = MAX_RETRIES
    window: int = WINDOW_UNITS
    runtime_env: dict[str, Any] | None = None
    name: str = "ray"
    _stats: dict[str, Any] = field(default_factory=dict, repr=False)
    _connected: bool = field(default=False, repr=False)

    def validate(self) -> None:
        """The options that are wrong whatever the cluster (no Ray needed); errors name the option."""
        if self.actors is not None and self.actors < 1:
            raise ConfigError("actors", f"must be at least 1, got {self.actors}")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ConfigError("gpus-per-actor", f"must be >= 0, got {self.gpus_per_actor}")
        if self.cpus_per_actor is not None and self.cpus_per_actor <= 0:
            raise ConfigError("cpus-per-actor", f"must be > 0, got {self.cpus_per_actor}")

    def prepare(self) -> None:
        if not self._connected:
            self.connect()

    def connect(self) -> None:
        """Join (or start) Ray and check the options against the cluster; errors name the option."""
        ray = _ray()
        self.validate()
        if self.address and self.address != "auto":
            _check_reachable(self.address)
        if not ray.is_initialized():
            if self.address is None:
                # Ray starts its workers at niceness 15; on a busy machine the scoring actor of the user's own
                # local run then gets a sliver of a core. The instance tunesift starts runs them at the user's
                # priority (a cluster keeps its own setting; RAY_worker_niceness set by the user wins).
                os.environ.setdefault("RAY_worker_niceness", "0")
            import signal
            import threading

            main = threading.current_thread() is threading.main_thread()
            handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
            try:
                # ERROR: Ray's advisory lines (token authentication, ...) are not the user's business on a run
                ray.init(address=self.address, include_dashboard=False, logging_level="ERROR",
                         log_to_driver=False, ignore_reinit_error=True)  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = self.address or "a local instance"
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                hint = "start it with 'ray start --head' or give --ray-address auto | ray://HOST:10001"
                raise ConfigError("ray-address", f"cannot reach Ray at {where}: {first}; {hint}") from None
            # Ray's core worker installs C-level handlers that abort the process on SIGTERM (a core dump, not
            # exit 143); the handlers the program had go back, so Ctrl-C and SIGTERM stop a Ray run as a local one
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        import logging

        from ray.data import DataContext

        logging.getLogger("ray.data").setLevel(logging.ERROR)  # before the switch below, which says it is off
        context = DataContext.get_current()
        context.enable_progress_bars = False  # tunesift draws its own
        context.print_on_execution_start = False
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        if self.gpus_per_actor is None:
            self.gpus_per_actor = 1.0 if gpus >= 1 else 0.0
        if self.gpus_per_actor > gpus:
            raise ConfigError("gpus-per-actor", f"asks {self.gpus_per_actor:g} GPU(s) per actor but the cluster has "
                              f"{gpus:g}; use --gpus-per-actor 0 to score on CPUs")  # fmt: skip
        if self.cpus_per_actor is None:
            self.cpus_per_actor = 1.0 if self.gpus_per_actor == 0 or cpus >= 2 else max(cpus / 2, 0.1)
        if self.gpus_per_actor > 0:
            fit = math.floor(gpus / self.gpus_per_actor + 1e-9)
        else:  # leave one CPU for Ray Data's own tasks: a pool on every CPU starves the dataset
            fit = math.floor(max(cpus - 1, self.cpus_per_actor) / self.cpus_per_actor + 1e-9)
        if self.actors is None:
            self.actors = max(1, fit)
        elif self.actors > max(1, fit):
            raise ConfigError("actors", f"{self.actors} actors need {self.actors * self.cpus_per_actor:g} CPU(s) and "
                              f"{self.actors * self.gpus_per_actor:g} GPU(s); the cluster has {cpus:g} CPU(s) and "
                              f"{gpus:g} GPU(s) (one CPU is left to Ray)")  # fmt: skip
        self._connected = True

    def map_chunks(self, fn: Callable[[Any], Any], chunks: Iterable[Any], window: int = 32) -> Iterator[Any]:
        """``fn(chunk)`` for every chunk (a pure function: MinHash signatures of some texts), computed by Ray Data
        tasks across the cluster a window of chunks at a time, and returned in the chunks' order."""
        if not self._connected:
            self.connect()
        ray = _ray()
        from ray import cloudpickle

        blob = cloudpickle.dumps(fn)

        def apply(batch: dict[str, Any]) -> dict[str, Any]:
            work = cloudpickle.loads(blob)
            return {"i": batch["i"], "result": [cloudpickle.dumps(work(cloudpickle.loads(c))) for c in batch["chunk"]]}

        it = iter(chunks)
        while window_items := list(islice(it, window)):
            items = [{"i": i, "chunk": cloudpickle.dumps(c)} for i, c in enumerate(window_items)]
            done = ray.data.from_items(items).map_batches(apply, batch_size=1, num_cpus=1).take_all()
            for row in sorted(done, key=lambda r: int(r["i"])):
                yield cloudpickle.loads(row["result"])

    def map_units(
        self, scorer: Scorer, units: Iterable[Unit], store: ScoreStore, on_progress: Progress = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self._connected:
            self.connect()
        from ray import cloudpickle

        size = scorer.chunk_size  # units per batch, as a local chunk
        blob = cloudpickle.dumps(scorer)
        store.root.mkdir(parents=True, exist_ok=True)
        stop_file = store.shard_dir / f"stop-{uuid.uuid4().hex}"
        with _stderr_without(RAY_ACTOR_ARGS_LINE):
            yield from self._map_windows(scorer, iter(units), store, blob, size, stop_file, on_progress)
        for stale in store.shard_dir.glob("stop-*"):  # left by stopped runs, whose actors are gone by now
            with contextlib.suppress(OSError):
                stale.unlink()
        with contextlib.suppress(OSError):
            store.shard_dir.rmdir()  # only when empty

    def _map_windows(self, scorer: Scorer, iterator: Iterator[Unit], store: ScoreStore, blob: bytes, size: int,
                     stop_file: Any, on_progress: Progress) -> Iterator[tuple[str, dict[str, Any]]]:  # fmt: skip
        ray = _ray()
        from ray import cloudpickle

        while window := list(islice(iterator, self.window)):
            items = [{"key": u.key, "unit": cloudpickle.dumps(u.payload)} for u in window]
            dataset = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / size)))
            with warnings.catch_warnings():  # per-actor retry settings are deprecated keywords until Ray 2.64
                warnings.simplefilter("ignore", DeprecationWarning)
                mapped = self._map(ray, dataset, blob, store, size, str(stop_file))
            started = time.perf_counter()
            # no prefetch: a batch reaches the store (and the progress bar) as soon as its actor returns it
            batches = mapped.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0)
            finished = False
            try:
                for batch in batches:
                    rows = [json.loads(text) for text in batch["row"]]
                    store.append(rows)  # the store keeps only results
                    for name in set(batch["shard"].tolist()):
                        store.drop_shard(name)
                    self._record(batch)
                    if on_progress is not None:
                        on_progress(len(rows) * scorer.texts_per_unit)
                    yield from ((row["id"], row) for row in rows)
                finished = True
            finally:  # a driver that stops consuming (Ctrl-C, an error) shuts the dataset's execution down
                if not finished:
                    with contextlib.suppress(OSError):
                        stop_file.parent.mkdir(parents=True, exist_ok=True)
                        stop_file.touch()
                close = getattr(batches, "close", None)
                if close is not None:
                    close()
            self._stats["wall"] = self._stats.get("wall", 0.0) + time.perf_counter() - started

    def _map(self, ray: Any, dataset: Any, blob: bytes, store: ScoreStore, size: int, stop_file: str) -> Any:
        """The dataset mapped through the actor pool, with the retry limits set explicitly."""
        return dataset.map_batches(
            ScoreActor,
            fn_constructor_kwargs={
                "scorer": blob,
                "store_root": str(store.root),
                "device": self.device,
                "threads": max(1, int(self.cpus_per_actor or 1)),
                "stop_file": stop_file,
            },
            batch_size=size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_cpus=self.cpus_per_actor,
            num_gpus=self.gpus_per_actor or None,
            runtime_env=self.runtime_env,
            max_restarts=self.max_retries,
            max_task_retries=self.max_retries,
        )

    def _record(self, batch: dict[str, Any]) -> None:
        actors = self._stats.setdefault("actors", {})
        for actor, gpus, seconds, load in zip(batch["actor"], batch["gpus"], batch["seconds"], batch["load_seconds"],
                                              strict=True):  # fmt: skip
            entry = actors.setdefault(str(actor), {"units": 0, "compute": 0.0, "load": float(load), "gpus": str(gpus)})
            entry["units"] += 1
            entry["compute"] += float(seconds)

    def target_device(self) -> str:
        """``cuda`` when actors hold GPUs (the driver may have none: the actor checks its own), else ``cpu``.

        For a local instance not started yet, this machine's GPUs say it, so asking starts nothing (a run
        whose scores are all cached never starts Ray); a running instance or a cluster is asked."""
        if not self._connected:
            if self.address is None and not _ray().is_initialized():
                import torch

                gpus = self.gpus_per_actor if self.gpus_per_actor is not None else float(torch.cuda.is_available())
                return self.device or ("cuda" if gpus else "cpu")
            self.connect()
        return self.device or ("cuda" if self.gpus_per_actor else "cpu")

    def actor_stats(self) -> dict[str, dict[str, Any]]:
        """Per actor that returned results: units, compute and load seconds, and its GPU ids."""
        return dict(self._stats.get("actors", {}))

    def summary(self) -> list[str]:
        actors = self.actor_stats()
        if not actors:
            return []
        load = max(a["load"] for a in actors.values())
        compute = sum(a["compute"] for a in actors.values())
        return [f"executor ray: {len(actors)} actor(s) ran ({self.actors} in the pool, {self.cpus_per_actor:g} CPU "
                f"and {self.gpus_per_actor:g} GPU each); model load {load:.1f} s (slowest actor), compute "
                f"{compute:.1f} actor-s, wall {self._stats.get('wall', 0.0):.1f} s"]  # fmt: skip
