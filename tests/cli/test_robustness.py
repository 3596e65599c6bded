"""Nothing lost, nothing stale: an output that is an input, a full disk, a garbled store line, checkpoints
with equal sizes, scores on another scale, missing shared data, Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import alpaca_records, make_llama
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.scorers.judge import UnparseableReply, parse_score
from tunesift.store import ScoreStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pool_json(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(12)))
    return path


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "cherry", "{pool}", "--rate", "0.5", "--out", "{pool}"],
        ["run", "cherry", "{pool}", "--rate", "0.5", "--out", "{tmp}/sub.json", "--scores-out", "{pool}"],
        ["score", "ifd", "{pool}", "--out", "{pool}"],
        ["select", "{pool}", "--scores", "{tmp}/s.jsonl", "--rate", "0.5", "--out", "{tmp}/s.jsonl"],
        ["run", "recipe", "{tmp}/mine.yaml", "{pool}", "--rate", "0.5", "--out", "{tmp}/mine.yaml"],
        ["report", "{pool}", "--scores", "{tmp}/s.jsonl", "--out", "{pool}"],
    ],
)
def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path, pool_json, store_dir, args):
    (tmp_path / "s.jsonl").write_text("{}\n")
    (tmp_path / "mine.yaml").write_text("steps:\n  - select: {method: top}\n")
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = CliRunner().invoke(app, [a.format(pool=pool_json, tmp=tmp_path) for a in args])
    line = _one_line(result)
    assert result.exit_code == 2 and "is the same file as the" in line and "nothing was done" in line
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before  # nothing changed
    assert not store_dir.exists()  # no work: nothing scored


@pytest.mark.parametrize("scores_out", ["sub.json", "sub.manifest.json"])
def test_two_outputs_on_one_file_are_refused_before_any_work(tmp_path, pool_json, store_dir, scores_out):
    """--out and --scores-out on one path: the subset replaced the scores (or its manifest did), silently."""
    out, scores = str(tmp_path / "sub.json"), str(tmp_path / scores_out)
    result = CliRunner().invoke(app, ["run", "cherry", str(pool_json), "--rate", "0.5", "--out", out,
                                      "--scores-out", scores])  # fmt: skip
    line = _one_line(result)
    assert result.exit_code == 2 and "option 'scores-out'" in line and "is also written by --out" in line
    assert not (tmp_path / "sub.json").exists() and not store_dir.exists()


def _limited(limit_bytes: int):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return set_limit


def test_a_full_disk_is_one_line_and_the_store_stays_valid(tmp_path, tiny_model_dir):
    records = alpaca_records(40)
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    store = tmp_path / "store"
    out = tmp_path / "scores.jsonl"
    cmd = [sys.executable, "-m", "tunesift", "score", "ifd", str(pool), "--out", str(out), "--model",
           str(tiny_model_dir), "--store", str(store), "--chunk-size", "2"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=_limited(3000))
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tunesift: error: ") and "ifd-" in last and "File too large" in last, last
    data = next(store.glob("ifd-*.jsonl"))
    rows = [json.loads(line) for line in data.read_text().splitlines()]  # every line whole
    assert 0 < len(rows) < len(records) and data.stat().st_size <= 3000
    assert not out.exists() and not list(tmp_path.rglob("*.tmp"))  # no partial output, no temporary file
    # the same command with room to write resumes from what was kept
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    clean = api.score_ifd(pool, model=str(tiny_model_dir), store_dir=tmp_path / "clean")
    got = [json.loads(line)["ifd"] for line in out.read_text().splitlines()]
    assert got == pytest.approx([r["ifd"] for r in clean.rows], abs=1e-6)


@pytest.mark.parametrize(("errno_", "cause"), [(13, "Permission denied"), (30, "Read-only file system")])
def test_an_unwritable_output_is_one_line(tmp_path, pool_json, tiny_model_dir, store_dir, monkeypatch, errno_, cause):
    import tempfile

    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):  # the file system refuses the subset's folder (root ignores chmod)
        if Path(dir) == tmp_path / "locked":
            raise OSError(errno_, os.strerror(errno_), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "locked" / "sub.json"
    result = CliRunner().invoke(app, ["run", "cherry", str(pool_json), "--rate", "0.5", "--model",
                                      str(tiny_model_dir), "--out", str(out)])  # fmt: skip
    line = _one_line(result)
    assert result.exit_code != 0 and line == f"tunesift: error: {out}: cannot write: {cause}"
    assert not out.exists() and list((tmp_path / "locked").iterdir()) == []


def test_a_garbled_line_in_the_middle_of_the_store_costs_only_that_line(tmp_path, capsys):
    store = ScoreStore(tmp_path, {"scorer": "ifd", "a": 1})
    store.append([{"id": f"s{k}", "ifd": k / 10} for k in range(5)])
    lines = store.path.read_bytes().split(b"\n")
    lines[2] = b'{"id": "s2", "if\x00\x00 garbage'  # a bad sector
    store.path.write_bytes(b"\n".join(lines) + b'{"id": "s9", "i')  # and a torn last line
    loaded = store.load()
    assert set(loaded) == {"s0", "s1", "s3", "s4"} and store.skipped_lines == 1
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and str(store.path) in err and "skipped 1 unreadable line" in err
    assert store.path.read_bytes().endswith(b"\n")  # only the torn last line was cut
    store.append([{"id": "s2", "ifd": 0.2}])
    assert set(store.load()) == {"s0", "s1", "s2", "s3", "s4"}


def test_checkpoints_of_equal_sizes_and_other_weights_never_share_scores(tmp_path, tok_nobos, monkeypatch):
    from tunesift.models.registry import resolve_model

    monkeypatch.setenv("TUNESIFT_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, seed in ((a, 0), (b, 1)):
        make_llama(len(tok_nobos), seed=seed).save_pretrained(folder)
        tok_nobos.save_pretrained(folder)
    sizes = sorted((p.name, p.stat().st_size) for p in a.iterdir())
    assert sizes == sorted((p.name, p.stat().st_size) for p in b.iterdir())
    fa, fb = resolve_model(str(a)).fingerprint, resolve_model(str(b)).fingerprint
    assert fa != fb
    # a copy (restored elsewhere, or over the other folder with its times kept) follows its content
    shutil.rmtree(b)
    shutil.copytree(a, b, copy_function=shutil.copy2)
    assert resolve_model(str(b)).fingerprint == fa
    # new weights written in place with the same size and modification time: the change time gives it away
    weights = a / "model.safetensors"
    stat = weights.stat()
    other = tmp_path / "other"
    make_llama(len(tok_nobos), seed=2).save_pretrained(other)
    shutil.copyfile(other / "model.safetensors", weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and resolve_model(str(a)).fingerprint not in (fa, fb)


OTHER_SCALES = [("Score: 3/10", "other_scale: 3/10"), ("7 out of 10", "other_scale: 7/10"),
                ("The score is 8/10.\nGood.", "other_scale: 8/10")]  # fmt: skip


@pytest.mark.parametrize(("reply", "reason"), OTHER_SCALES)
def test_a_score_on_another_scale_is_rejected_with_the_reply_kept(reply, reason):
    with pytest.raises(UnparseableReply) as caught:
        parse_score(reply)
    assert caught.value.reason == reason and caught.value.reply == reply
    assert parse_score("Score: 4/5") == 4.0 and parse_score("2 out of 5") == 2.0


def test_missing_shared_data_fails_the_run_saying_where_it_looked(tmp_path):
    env = {**os.environ, "TUNESIFT_SHARED_DATA": str(tmp_path / "nowhere")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_store.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "passed" not in done.stdout
    assert f"shared data not found: looked for {tmp_path / 'nowhere'}" in done.stdout + done.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_what_is_kept_and_resumes(tmp_path, tiny_model_dir, sig, code):
    records = alpaca_records(200)
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    store, out = tmp_path / "store", tmp_path / "scores.jsonl"
    cmd = [sys.executable, "-m", "tunesift", "score", "ifd", str(pool), "--out", str(out), "--model",
           str(tiny_model_dir), "--store", str(store), "--chunk-size", "1"]  # fmt: skip
    # SIGINT at its default in the child: a test run from a background job inherits it ignored, and Python then
    # installs no KeyboardInterrupt handler (the run would finish instead of stopping)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(store.glob("ifd-*.jsonl")) if store.exists() else []
        if files and files[0].read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and not out.exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith("tunesift: interrupted: ") and "samples are safely stored in" in last, last
    kept = int(last.split("interrupted: ")[1].split()[0])
    lines = next(store.glob("ifd-*.jsonl")).read_text().splitlines()
    assert 5 <= kept < len(records) and kept <= len(lines) <= kept + 1  # the chunk in flight may have landed
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    clean = api.score_ifd(pool, model=str(tiny_model_dir), store_dir=tmp_path / "clean")
    got = [json.loads(line)["ifd"] for line in out.read_text().splitlines()]
    assert got == pytest.approx([r["ifd"] for r in clean.rows], abs=1e-6)


def test_a_full_disk_during_training_is_one_line_and_leaves_no_half_checkpoint(tmp_path, tiny_model_dir):
    from tunesift.eval.training.train import CHECKPOINT

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(16)))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "tunesift", "train", str(pool), "--base", str(tiny_model_dir), "--out", str(run),
           "--save-every", "1", "--batch-tokens", "1024", "--max-length", "256"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=_limited(20_000))
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tunesift: error: {run / CHECKPOINT}: cannot write: "), last
    assert not (run / f".{CHECKPOINT}.tmp").exists() and not list(run.rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.ci
def test_a_full_disk_under_the_model_cache_is_one_line(tmp_path):
    """The packaged model is de-quantised into the cache on first use: a cache with no room says so."""
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(2)))
    cache = tmp_path / "cache"
    env = {**os.environ, "TUNESIFT_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "tunesift", "score", "ifd", str(pool), "--out", str(tmp_path / "s.jsonl")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=_limited(10_000_000))  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tunesift: error: {cache / 'models'}") and "cannot write" in last, last
    assert "TUNESIFT_CACHE" in last and list((cache / "models").iterdir()) == []  # no half-written model left
