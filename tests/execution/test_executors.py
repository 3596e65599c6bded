"""The executor contract without Ray: the default path never imports it, two processes share one store,
and a sample whose scoring raises gets a null score with its reason without stopping the job."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import alpaca_records

from tunesift import api
from tunesift.execution.local import LocalExecutor
from tunesift.models.registry import resolve_model
from tunesift.scorers.ifd import IFD
from tunesift.store import ScoreStore

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_path_does_not_import_ray(tmp_path, tiny_model_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(4)))
    code = (
        "import sys; from tunesift import api; import tunesift.cli; "
        f"api.score_ifd({str(pool)!r}, model={str(tiny_model_dir)!r}, store_dir={str(tmp_path / 's')!r}); "
        "assert 'ray' not in sys.modules, 'ray was imported'; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_two_processes_scoring_one_pool_on_one_store(tmp_path, tiny_model_dir):
    """Both finish with correct scores; the store has no torn or garbled line and holds every sample."""
    records = alpaca_records(60)
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    store = tmp_path / "store"
    cmds = [[sys.executable, "-m", "tunesift", "score", "ifd", str(pool), "--out", str(tmp_path / f"s{k}.jsonl"),
             "--model", str(tiny_model_dir), "--store", str(store), "--chunk-size", "1"] for k in range(2)]  # fmt: skip
    procs = [subprocess.Popen(cmds[0], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and procs[0].poll() is None:  # the second opens the store mid-run
        files = list(store.glob("ifd-*.jsonl")) if store.exists() else []
        if files and files[0].read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.05)
    procs.append(subprocess.Popen(cmds[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    clean = api.score_ifd(pool, model=str(tiny_model_dir), store_dir=tmp_path / "clean")
    for k in range(2):
        rows = [json.loads(line) for line in (tmp_path / f"s{k}.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == [r["id"] for r in clean.rows]
        for got, want in zip(rows, clean.rows, strict=True):
            assert got["ifd"] == pytest.approx(want["ifd"], abs=1e-6)
    store_file = next(store.glob("ifd-*.jsonl"))
    lines = store_file.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends on a whole line
    parsed = [json.loads(line) for line in lines[:-1]]  # every line is whole JSON
    assert {r["id"] for r in parsed} == {r["id"] for r in clean.rows}


class FailsOn(IFD):
    """IFD that raises for one instruction, as a tokenizer or kernel failure on one odd sample would."""

    def compute(self, units, backend, on_progress=None):
        if any(u.payload.instruction == "BOOM" for u in units):
            raise RuntimeError("kernel failed on this text")
        return super().compute(units, backend, on_progress)


def test_a_sample_that_raises_is_null_with_its_reason_and_retried_later(tmp_path, tiny_model_dir):
    records = alpaca_records(10)
    records[3] = {"instruction": "BOOM", "input": "", "output": "A reply."}
    pool_path = tmp_path / "pool.json"
    pool_path.write_text(json.dumps(records))
    pool = api.read_pool(pool_path)
    model = resolve_model(str(tiny_model_dir))
    scorer = FailsOn(model, chunk_size=4)
    from tunesift.execution.driver import score_pool

    table = score_pool(scorer, pool, store_dir=tmp_path / "s", executor=LocalExecutor())
    bad = table.rows[3]
    assert bad["ifd"] is None and bad["skip_reason"] == "error: RuntimeError: kernel failed on this text"
    assert table.skipped() == {"error": 1}
    clean = api.score_ifd(pool, model=model, store_dir=tmp_path / "clean")
    for k, row in enumerate(table.rows):
        if k != 3:
            assert row["ifd"] == pytest.approx(clean.rows[k]["ifd"], abs=1e-6)  # its chunk-mates were scored
    cached = ScoreStore(tmp_path / "s", scorer.cache_config()).load()
    assert table.rows[3]["id"] not in cached and len(cached) == 9  # the failure is not cached: a rerun retries it
