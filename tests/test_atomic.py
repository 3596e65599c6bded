"""Files a user gets are created as ``open(path, "w")`` would create them: the umask's mode for a new file,
the existing mode for an overwrite (a colleague or a job under another user must be able to read a subset)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.atomic import atomic_open
from tunesift.cli import app


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_a_new_file_gets_the_umask_and_an_overwrite_keeps_its_mode(tmp_path, umask):
    plain, atomic = tmp_path / "plain.txt", tmp_path / "atomic.txt"
    with open(plain, "w") as handle:
        handle.write("x")
    with atomic_open(atomic) as handle:
        handle.write("x")
    assert _mode(atomic) == _mode(plain) == 0o666 & ~umask
    os.chmod(atomic, 0o640)
    with atomic_open(atomic) as handle:
        handle.write("y")
    assert _mode(atomic) == 0o640 and atomic.read_text() == "y"


def test_scores_subset_manifest_report_and_trained_model_are_shareable(tmp_path, umask, tiny_model_dir, store_dir):
    from tunesift.eval.training.train import TrainConfig, train

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(6)))
    want = 0o666 & ~umask
    out, scores, report = tmp_path / "subset.json", tmp_path / "scores.jsonl", tmp_path / "report.md"
    result = CliRunner().invoke(app, ["run", "cherry", str(pool), "--count", "2", "--model", str(tiny_model_dir),
                                      "--out", str(out), "--scores-out", str(scores)])  # fmt: skip
    assert result.exit_code == 0, result.output
    args = ["report", str(pool), "--scores", str(scores), "--selection", str(out), "--out", str(report), "--format",
            "md", "--tokenizer", str(tiny_model_dir)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = next(tmp_path.glob("subset*manifest*"))
    for path in (out, scores, manifest, report):
        assert _mode(path) == want, path
    run = train(out, tmp_path / "run", TrainConfig(base=str(tiny_model_dir), template="plain", max_length=64))
    files = [p for p in run.model_dir.rglob("*") if p.is_file()]
    assert files and all(_mode(p) == want for p in files)
    assert _mode(run.model_dir) == 0o777 & ~umask
