"""The Ray executor on a local Ray instance: the local executor's scores, a killed worker, a stopped driver,
one device per actor, and the CLI's options and errors.

One Ray instance serves the whole session (2 CPUs, 2 fake GPUs: Ray only counts them, torch sees none).
Pools are scored with at most one CPU of actors, leaving one to Ray Data's own tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.execution.driver import compute_units
from tunesift.scorers.ifd import IFD
from tunesift.store import ScoreStore

ray = pytest.importorskip("ray")
from tunesift.execution.ray_data import RayExecutor  # noqa: E402 - needs ray

CPU_ONLY = {"gpus_per_actor": 0, "actors": 1, "cpus_per_actor": 1}


@pytest.fixture(scope="session", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    # a scorer defined in this file must reach the workers by value: they cannot import the test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture
def pool_path(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(24)))
    return path


def _ifd_values(table):
    return [r["ifd"] for r in table.rows]


def _assert_same(a, b):
    assert [r["id"] for r in a.rows] == [r["id"] for r in b.rows]
    for x, y in zip(a.rows, b.rows, strict=True):
        for key in ("ifd", "loss_cond", "loss_direct", "selectit"):
            if key in x:
                assert (x[key] is None) == (y[key] is None)
                if x[key] is not None:
                    assert y[key] == pytest.approx(x[key], abs=1e-5)


@pytest.mark.slow
@pytest.mark.ci
def test_packaged_smollm2_on_ray_gives_the_local_scores(tmp_path, pool_path):
    """IFD and SelectIT with the packaged SmolLM2 on 24 real records: Ray's scores are the local ones."""
    local = api.score_ifd(pool_path, store_dir=tmp_path / "local", chunk_size=8)
    remote = api.score_ifd(pool_path, store_dir=tmp_path / "ray", chunk_size=8, executor=RayExecutor(**CPU_ONLY))
    _assert_same(local, remote)
    assert sum(v is not None for v in _ifd_values(remote)) >= 20
    local_s = api.score_selectit(pool_path, k=2, store_dir=tmp_path / "local", chunk_size=8)
    remote_s = api.score_selectit(pool_path, k=2, store_dir=tmp_path / "ray", chunk_size=8,
                                  executor=RayExecutor(**CPU_ONLY))  # fmt: skip
    _assert_same(local_s, remote_s)


class KillOnce(IFD):
    """IFD whose worker process dies (as if killed, or out of memory) on the first batch it is given."""

    def __init__(self, marker: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marker = marker

    def compute(self, units, backend, on_progress=None):
        import os

        if not os.path.exists(self.marker):
            Path(self.marker).write_text("killed")
            os._exit(1)
        return super().compute(units, backend, on_progress)


def test_a_killed_worker_is_retried_and_every_sample_scored_once(tmp_path, pool_path, tiny_model_dir):
    from tunesift.models.registry import resolve_model

    model = resolve_model(str(tiny_model_dir))
    pool = api.read_pool(pool_path)
    scorer = KillOnce(str(tmp_path / "killed"), model)
    scorer.chunk_size = 6
    results = compute_units(scorer, (u for s in pool for u in scorer.units(s)), store_dir=tmp_path / "ray",
                            executor=RayExecutor(**CPU_ONLY))  # fmt: skip
    assert (tmp_path / "killed").exists(), "the fault was not injected"
    store = ScoreStore(tmp_path / "ray", IFD(model).cache_config())
    ids = [json.loads(line)["id"] for line in store.path.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == len(pool)  # every sample once
    assert store.shards() == []
    local = api.score_ifd(pool, model=model, store_dir=tmp_path / "local")
    for row in local.rows:
        assert results[row["id"]]["ifd"] == pytest.approx(row["ifd"], abs=1e-5)


class Counting(RayExecutor):
    """Counts the units it is asked to compute; stops (as a driver that dies) after ``stop_after`` results."""

    def __init__(self, stop_after: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stop_after = stop_after
        self.asked = 0

    def map_units(self, scorer, units, store, on_progress=None):
        self.present = len(store.load())  # what the store holds when this run starts computing

        def counted():
            for unit in units:
                self.asked += 1
                yield unit

        results = super().map_units(scorer, counted(), store, on_progress)
        try:
            for n, pair in enumerate(results, start=1):
                yield pair
                if self.stop_after is not None and n >= self.stop_after:
                    raise KeyboardInterrupt  # the driver stops here
        finally:
            results.close()


class Gate(IFD):
    """IFD whose first ``open`` batches compute at once and the rest wait (up to a minute) for a release file:
    a driver stopped after those batches leaves work undone, however fast the actor is."""

    def __init__(self, folder: str, open: int, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.folder, self.open = folder, open

    def compute(self, units, backend, on_progress=None):
        import os
        import time

        for ticket in range(self.open):
            try:
                os.close(os.open(f"{self.folder}/ticket-{ticket}", os.O_CREAT | os.O_EXCL))
                return super().compute(units, backend, on_progress)
            except FileExistsError:
                continue
        deadline = time.monotonic() + 60
        while not os.path.exists(f"{self.folder}/release") and time.monotonic() < deadline:
            time.sleep(0.05)
        return super().compute(units, backend, on_progress)


def test_a_stopped_driver_resumes_with_only_the_missing_samples(tmp_path, pool_path, tiny_model_dir):
    from tunesift.models.registry import resolve_model

    model = resolve_model(str(tiny_model_dir))
    pool = api.read_pool(pool_path)
    gate = Gate(str(tmp_path), 2, model)
    gate.chunk_size = 4
    with pytest.raises(KeyboardInterrupt):
        compute_units(gate, (u for s in pool for u in gate.units(s)), store_dir=tmp_path / "ray",
                      executor=Counting(stop_after=8, **CPU_ONLY))  # fmt: skip
    store = ScoreStore(tmp_path / "ray", IFD(model).cache_config())
    assert len(store.load()) == 8  # what the stopped driver received is stored at once
    (tmp_path / "release").touch()  # the batch in flight finishes (into a shard); the queued ones are skipped
    options = {"model": str(tiny_model_dir), "store_dir": tmp_path / "ray", "chunk_size": 4}
    again = Counting(**CPU_ONLY)
    table = api.score_ifd(pool_path, executor=again, **options)
    assert 8 <= again.present < 24  # the stopped run's samples were merged before deciding what is missing
    assert again.asked == 24 - again.present  # only the missing samples are computed
    assert list(store.shard_dir.glob("stop-*")) == []  # the stopped run's stop file is cleaned up
    _assert_same(api.score_ifd(pool_path, model=str(tiny_model_dir), store_dir=tmp_path / "local"), table)
    ids = [json.loads(line)["id"] for line in store.path.read_text().splitlines()]
    assert sorted(ids) == sorted({r["id"] for r in table.rows})


class WaitsForTwoActors(IFD):
    """IFD whose first batch in each actor waits (60 s at most) until two actors have each begun one: both
    actors then do work however the machine's load staggers their starts (the test does not race them)."""

    def __init__(self, folder: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder

    def compute(self, units, backend, on_progress=None):
        import os
        import time

        Path(self.folder, f"actor-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while len(list(Path(self.folder).glob("actor-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        return super().compute(units, backend, on_progress)


def test_each_actor_gets_its_own_gpu(tmp_path, pool_path, tiny_model_dir):
    from tunesift.models.registry import resolve_model

    executor = RayExecutor(actors=2, gpus_per_actor=1, cpus_per_actor=0.5)
    (tmp_path / "actors").mkdir()
    scorer = WaitsForTwoActors(str(tmp_path / "actors"), resolve_model(str(tiny_model_dir)), chunk_size=2)
    pool = api.read_pool(pool_path)
    compute_units(scorer, (u for s in pool for u in scorer.units(s)), store_dir=tmp_path / "s", executor=executor)
    stats = executor.actor_stats()
    assert len(stats) == 2, stats
    gpus = [entry["gpus"] for entry in stats.values()]
    assert all(g != "" for g in gpus) and len(set(gpus)) == 2  # one device id each, never shared


def test_cli_run_on_ray_writes_the_local_subset(tmp_path, pool_path, tiny_model_dir, store_dir):
    runner = CliRunner()
    common = ["--rate", "0.5", "--model", str(tiny_model_dir), "--batch-tokens", "1024"]
    local = runner.invoke(app, ["run", "cherry", str(pool_path), "--out", str(tmp_path / "a.json"), *common,
                                "--store", str(tmp_path / "local")])  # fmt: skip
    assert local.exit_code == 0, local.output
    remote = runner.invoke(app, ["run", "cherry", str(pool_path), "--out", str(tmp_path / "b.json"), *common,
                                 "--executor", "ray", "--actors", "1", "--gpus-per-actor", "0",
                                 "--scores-out", str(tmp_path / "b.scores.jsonl")])  # fmt: skip
    assert remote.exit_code == 0, remote.output
    assert "executor ray: 1 actor(s) ran" in remote.output
    a = json.loads((tmp_path / "a.manifest.json").read_text())
    b = json.loads((tmp_path / "b.manifest.json").read_text())
    assert a["selected_indices"] == b["selected_indices"] and a["scorer_config"] == b["scorer_config"]
    # the scores landed in the store: a local selection now reuses them without a model
    again = runner.invoke(app, ["run", "cherry", str(pool_path), "--out", str(tmp_path / "c.json"), *common])
    assert again.exit_code == 0 and json.loads((tmp_path / "c.manifest.json").read_text())["selected_indices"] == \
        b["selected_indices"]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--actors", "0"], "option 'actors': must be at least 1"),
        (["--gpus-per-actor", "4"], "option 'gpus-per-actor': asks 4 GPU(s) per actor but the cluster has 2"),
        (["--actors", "9", "--gpus-per-actor", "0"], "option 'actors': 9 actors need"),
    ],
)
def test_bad_ray_options_are_one_line_exit_2_nothing_written(tmp_path, pool_path, tiny_model_dir, store_dir, extra,
                                                              message):  # fmt: skip
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "cherry", str(pool_path), "--rate", "0.5", "--out", str(out),
                                      "--model", str(tiny_model_dir), "--executor", "ray", *extra])  # fmt: skip
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_bad_pool_fails_on_the_driver_before_any_actor(tmp_path, tiny_model_dir, store_dir):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "a", "output": "b"}, {"instruction": 3, "output": "b"}]')
    runner = CliRunner()
    args = ["score", "ifd", str(bad), "--out", str(tmp_path / "s.jsonl"), "--model", str(tiny_model_dir)]
    local = runner.invoke(app, args)
    remote = runner.invoke(app, [*args, "--executor", "ray", "--actors", "0"])  # the pool fails first
    assert local.exit_code == remote.exit_code == 2 and local.output == remote.output
    assert "record 1" in remote.output and "instruction" in remote.output


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_cluster_is_one_line_exit_2(tmp_path, pool_path, tiny_model_dir, store_dir, scheme):
    out = tmp_path / "s.jsonl"
    address = f"{scheme}127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(app, ["score", "ifd", str(pool_path), "--out", str(out), "--model",
                                      str(tiny_model_dir), "--executor", "ray", "--ray-address", address])  # fmt: skip
    assert result.exit_code == 2 and "option 'ray-address': nothing answers at" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_ray_executor_without_ray_installed(tmp_path, pool_path, tiny_model_dir, store_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as it does without the extra
    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["score", "ifd", str(pool_path), "--out", str(out), "--model",
                                      str(tiny_model_dir), "--executor", "ray"])  # fmt: skip
    assert result.exit_code == 2 and "pip install 'tunesift[ray]'" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_recipe_can_name_its_executor(tmp_path, pool_path, tiny_model_dir, store_dir):
    from tunesift.errors import TunesiftError
    from tunesift.recipes import parse_recipe

    mine = tmp_path / "mine.yaml"
    mine.write_text("""
name: cherry-on-ray
executor: {name: ray, actors: 1, gpus_per_actor: 0}
score: {scorer: ifd, variant: cherry}
steps:
  - filter: "ifd <= 1"
  - rank: {by: ifd, order: desc}
  - select: {method: top, of: candidates}
""")
    result = CliRunner().invoke(app, ["run", "recipe", str(mine), str(pool_path), "--rate", "0.5", "--out",
                                      str(tmp_path / "s.json"), "-o", f"model={tiny_model_dir}"])  # fmt: skip
    assert result.exit_code == 0 and "executor ray: 1 actor(s) ran" in result.output, result.output
    local = CliRunner().invoke(app, ["run", "recipe", str(mine), str(pool_path), "--rate", "0.5", "--out",
                                     str(tmp_path / "l.json"), "-o", f"model={tiny_model_dir}",
                                     "--executor", "local"])  # fmt: skip
    assert local.exit_code == 0 and "executor ray" not in local.output  # the command line wins
    assert json.loads((tmp_path / "s.manifest.json").read_text())["selected_indices"] == json.loads(
        (tmp_path / "l.manifest.json").read_text())["selected_indices"]  # fmt: skip
    with pytest.raises(TunesiftError, match="executor"):
        parse_recipe({"executor": "spark", "steps": [{"select": {"method": "top"}}]}, source="x.yaml")


@pytest.mark.parametrize(("address", "user", "want"), [(None, None, "0"), (None, "10", "10"), ("auto", None, None)])
def test_a_local_instance_runs_its_workers_at_the_users_priority(address, user, want, monkeypatch):
    """Ray starts workers at niceness 15 (measured: 15 with a plain ray.init, 0 through tunesift); the local
    instance tunesift starts asks for 0, a user's RAY_worker_niceness wins, and a cluster keeps its own."""
    from tunesift.errors import ConfigError
    from tunesift.execution import ray_data

    seen = {}

    class FakeRay:
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            seen["niceness"] = os.environ.get("RAY_worker_niceness")
            raise RuntimeError("stop here")

    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    if user is not None:
        monkeypatch.setenv("RAY_worker_niceness", user)
    monkeypatch.setattr(ray_data, "_ray", lambda: FakeRay)
    monkeypatch.setattr(ray_data, "_check_reachable", lambda address: None)
    with pytest.raises(ConfigError):
        ray_data.RayExecutor(address=address).connect()
    assert seen["niceness"] == want


def test_a_run_whose_scores_are_all_cached_starts_no_ray(tmp_path, pool_path, tiny_model_dir, store_dir, monkeypatch):
    """Ray is started only once there is something to compute: a second run over a cached store, with the
    ray executor of a local instance, never calls ray.init (nor joins the session's running instance)."""
    from tunesift import api
    from tunesift.execution import make_executor, ray_data

    first = api.score("ifd", pool_path, model=str(tiny_model_dir), store_dir=store_dir)  # locally, into the store

    class NoRay:
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            raise AssertionError("Ray was started for a run with nothing to compute")

    monkeypatch.setattr(ray_data, "_ray", lambda: NoRay)
    executor = make_executor("ray", gpus_per_actor=0)
    again = api.score("ifd", pool_path, model=str(tiny_model_dir), store_dir=store_dir, executor=executor)
    assert [r["ifd"] for r in again.rows] == [r["ifd"] for r in first.rows]
    assert not executor._connected and executor.summary() == []


SLOW_LOAD_CLI = Path(__file__).with_name("slow_load_cli.py")


def _processes_with(slow_load_dir: str) -> list[str]:
    """The processes (driver, Ray's own, its workers) whose environment came from one run of the test."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("SLOW_LOAD_DIR") == slow_load_dir:
                found.append(f"{proc.pid} {proc.info['name']}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["load", pytest.param("killed-load", marks=pytest.mark.ci), "between"])
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_a_ray_run_within_seconds_at_any_moment(sig, code, moment, tmp_path, tiny_model_dir):
    """A user's command in its own process and Ray instance, stopped: while the actor loads its model; after the
    actor was SIGKILLed during its load (while its replacement loads); between batches. Each stops within
    seconds with one line and exit 130 / 143 (Ray's core worker aborted the process on SIGTERM: a core dump),
    writes no output, leaves no Ray process, and the same command resumes to every sample once."""
    import subprocess

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(300)))
    loads = tmp_path / "loads"
    loads.mkdir()
    env = {**os.environ, "TUNESIFT_CACHE": str(tmp_path / "cache"), "SLOW_LOAD_DIR": str(loads),
           "SLOW_LOAD_SECONDS": "0" if moment == "between" else "120"}  # fmt: skip
    args = [sys.executable, str(SLOW_LOAD_CLI), "score", "slow-load-ifd", str(pool), "--out", str(tmp_path / "s.jsonl"),
            "--model", str(tiny_model_dir), "--executor", "ray", "--chunk-size", "2"]  # fmt: skip
    run = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip

    def wait_for(ready) -> None:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.1)
        assert ready(), "the run did not get there"

    wait_for(lambda: any(loads.iterdir()))
    if moment == "killed-load":
        os.kill(int(next(loads.iterdir()).name.removeprefix("load-")), signal.SIGKILL)
        wait_for(lambda: len(list(loads.iterdir())) >= 2)  # the replacement actor is loading
    if moment == "between":
        wait_for(lambda: any((tmp_path / "cache" / "scores").glob("ifd-*.jsonl")))  # results reach the store
    time.sleep(0.5)
    run.send_signal(sig)
    sent = time.monotonic()
    _, err = run.communicate(timeout=60)
    took = time.monotonic() - sent
    assert run.returncode == code, err[-2000:]
    assert took < 15, took
    assert "Traceback" not in err and "SIGTERM received" not in err and "core_worker" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("tunesift: interrupted: ")
    assert not (tmp_path / "s.jsonl").exists()
    deadline = time.monotonic() + 20
    while (left := _processes_with(env["SLOW_LOAD_DIR"])) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], f"processes of the run outlived it: {left}"
    env["SLOW_LOAD_SECONDS"] = "0"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    noise = [line for line in done.stderr.replace("\r", "\n").splitlines()
             if any(word in line.lower() for word in ("warning", "deprecat", "core_worker", "error"))]  # fmt: skip
    assert noise == [], noise  # a Ray run prints tunesift's own lines only
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(300))


class KilledFromOutside(IFD):
    """IFD whose actor process waits, at the given moment, to be SIGKILLed by the test (once): during its
    model load, or between batches (after its first batch reached the driver, before the next is computed)."""

    def __init__(self, folder: str, when: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.folder, self.when = folder, when

    def _wait_to_be_killed(self) -> None:
        import os
        import time

        if not os.path.exists(f"{self.folder}/killed"):
            Path(f"{self.folder}/victim").write_text(str(os.getpid()))
            time.sleep(60)  # the test kills this process here

    def load_backend(self, device=None):
        if self.when == "load":
            self._wait_to_be_killed()
        return super().load_backend(device)

    def compute(self, units, backend, on_progress=None):
        import os

        if self.when == "between" and os.path.exists(f"{self.folder}/first-done"):
            self._wait_to_be_killed()
        results = super().compute(units, backend, on_progress)
        Path(f"{self.folder}/first-done").touch()
        return results


@pytest.mark.parametrize("when", ["load", "between"])
def test_an_actor_killed_for_real_still_ends_with_every_sample_once(when, tmp_path, pool_path, tiny_model_dir):
    """SIGKILL of the actor process itself (not an exception inside compute): during its model load, and
    between two batches. The actor is restarted and the run ends with every sample scored once."""
    import threading

    from tunesift.models.registry import resolve_model

    model = resolve_model(str(tiny_model_dir))
    pool = api.read_pool(pool_path)
    scorer = KilledFromOutside(str(tmp_path), when, model, chunk_size=6)
    victim, killed = tmp_path / "victim", []

    def kill() -> None:
        deadline = time.monotonic() + 120
        while not victim.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if victim.exists():
            (tmp_path / "killed").touch()  # the restarted actor goes on
            os.kill(int(victim.read_text()), signal.SIGKILL)
            killed.append(int(victim.read_text()))

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    results = compute_units(scorer, (u for s in pool for u in scorer.units(s)), store_dir=tmp_path / "ray",
                            executor=RayExecutor(**CPU_ONLY))  # fmt: skip
    killer.join(timeout=5)
    assert killed, "the actor was not killed"
    store = ScoreStore(tmp_path / "ray", IFD(model).cache_config())
    ids = [json.loads(line)["id"] for line in store.path.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == len(pool)  # every sample once
    assert all(results[s.content_id]["ifd"] is not None or results[s.content_id]["skip_reason"] for s in pool.samples)


def test_rds_on_ray_gives_the_local_scores_and_its_index_serves_a_local_run(tmp_path, pool_path, tiny_model_dir):
    query = tmp_path / "q.json"
    query.write_text(json.dumps(alpaca_records(30)[26:29]))
    remote = api.score("rds", pool_path, query=query, model=str(tiny_model_dir), store_dir=tmp_path / "ray",
                       executor=RayExecutor(**CPU_ONLY))  # fmt: skip
    local = api.score("rds", pool_path, query=query, model=str(tiny_model_dir), store_dir=tmp_path / "local")
    assert [r["rds"] for r in remote.rows] == pytest.approx([r["rds"] for r in local.rows], abs=1e-5)
    # the vectors the actors computed reached the driver's binary store: nothing is left to compute
    again = api.score("rds", pool_path, query=query, model=str(tiny_model_dir), store_dir=tmp_path / "ray",
                      executor=Counting(**CPU_ONLY))  # fmt: skip
    assert [r["rds"] for r in again.rows] == [r["rds"] for r in remote.rows]
    assert next((tmp_path / "ray").glob("rds-*.f32")).stat().st_size == (24 + 3) * 64 * 4


def test_only_rays_actor_arguments_line_is_dropped_from_stderr(capfd):
    """Written below Python (fd 2, as Ray's C++ writes): that one line goes, the rest comes through in order."""
    from tunesift.execution.ray_data import RAY_ACTOR_ARGS_LINE, _stderr_without

    ray_line = (b"[2026-12-02 14:20:34,974 E 4574 4574] core_worker.cc:2465: Actor with class name: 'MapWorker(MapBatch"
                b"es(ScoreActor))' and ID: '839f' has constructor arguments in the object store and max_restarts > 0. "
                b"If the arguments go out of scope or are lost, the restart will fail.\n")  # fmt: skip
    other = b"[2026-12-02 14:20:35,001 E 4574 4574] core_worker.cc:99: a real error\n"
    with _stderr_without(RAY_ACTOR_ARGS_LINE):
        os.write(2, b"bar 10%\r")
        os.write(2, ray_line)
        os.write(2, other)
        os.write(2, b"tunesift: a line of its own\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "bar 10%\r" + other.decode() + "tunesift: a line of its own\nafter\n"


def test_minhash_dedup_on_ray_finds_the_local_groups(tmp_path, store_dir, monkeypatch):
    """Signatures by Ray Data tasks, chunk by chunk, give the groups of the local run on a real pool with planted
    near copies (one word in twelve of a response replaced) and exact ones."""
    import random

    from tunesift.recipes import dedup as dedup_module

    rng = random.Random(0)
    records = alpaca_records(240)
    for record in records[:50]:
        words = record["output"].split()
        for i in rng.sample(range(len(words)), max(1, len(words) // 12)):
            words[i] = f"w{rng.randint(0, 10**6)}"
        records.insert(rng.randint(0, len(records)), {**record, "output": " ".join(words)})
    records.extend(records[100:110])
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    monkeypatch.setattr(dedup_module, "CHUNK", 64)  # several chunks, so several tasks
    local = dedup_module.dedup_pool(api.read_pool(path), "minhash", on="sample")
    assert len(local.dropped) >= 20  # the 10 exact copies and the near copies MinHash reaches at 0.7
    out = tmp_path / "kept.json"
    result = CliRunner().invoke(app, ["dedup", str(path), "--method", "minhash", "--on", "sample", "--executor",
                                      "ray", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "kept.manifest.json").read_text())
    assert manifest["dedup"]["pairs"] == local.dropped
    assert [r["instruction"] for r in json.loads(out.read_text())] == [records[i]["instruction"] for i in local.kept]


def test_less_pool_gradients_on_ray_equal_the_local_run(tmp_path, tiny_model_dir, monkeypatch):
    """Issue 45: the warm-up runs once (here), then the pool's gradient features are sharded over Ray; each worker
    gets the checkpoint with the scorer and makes the projection itself from its counter-based seed: the scores are
    the local run's, and so are the stored features."""
    import numpy as np

    monkeypatch.setenv("TUNESIFT_CACHE", str(tmp_path / "cache"))
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(30)))
    query = tmp_path / "q.json"
    query.write_text(json.dumps(alpaca_records(40)[35:37]))
    options = {"query": [query], "model": str(tiny_model_dir), "template": "alpaca", "max_length": 200,
               "proj_dim": 1024, "warmup_lr": 1e-3, "chunk_size": 8}  # fmt: skip
    local = api.score("less", pool, store_dir=tmp_path / "local", **options)
    remote = api.score("less", pool, store_dir=tmp_path / "ray", executor=RayExecutor(**CPU_ONLY), **options)
    a, b = [r["less"] for r in local.rows], [r["less"] for r in remote.rows]
    assert all(x is not None for x in a) and np.allclose(a, b, atol=1e-6)
    assert [p.name for p in (tmp_path / "cache" / "less").glob("*/epoch*.pt")].count("epoch1.pt") == 1  # one warm-up


def test_pass_rate_from_an_endpoint_solver_on_ray_equals_the_local_run(tmp_path):
    """Issue 46: the solving stage is sharded over Ray's actors (each asks the endpoint for its samples); the rates are
    the local run's, and a second run on Ray asks for nothing: every sample reached the driver's store."""
    from localhost import JsonServer

    class Solver(JsonServer):
        def answer(self, path, body):
            content = "OK" if body.get("seed") is None else f"so \\boxed{{{4 + (body['seed'] % 2 == 0)}}}"
            return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}

    server = Solver()
    try:
        pool = tmp_path / "pool.json"
        pool.write_text(json.dumps([{"instruction": f"Q{i}: 2 + 3?", "output": "", "reference": "5"}
                                    for i in range(12)]))  # fmt: skip
        options = {"base_url": server.url, "model": "solver", "k": 4, "verifier": "fallback", "retries": 0}
        local = api.score("pass-rate", pool, store_dir=tmp_path / "local", **options)
        remote = api.score("pass-rate", pool, store_dir=tmp_path / "ray", executor=RayExecutor(**CPU_ONLY), **options)
        assert [r["pass_rate"] for r in remote.rows] == [r["pass_rate"] for r in local.rows]
        asked = server.requests
        again = api.score("pass-rate", pool, store_dir=tmp_path / "ray", executor=RayExecutor(**CPU_ONLY), **options)
        assert server.requests == asked and again.rows == remote.rows
    finally:
        server.close()
