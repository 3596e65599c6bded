"""The bad pools users have: a one-line error naming file, record and field (exit 2, nothing written),
or, where a user expects the run to go on, the record scored as skipped with its reason."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunesift.cli import app

runner = CliRunner()
GOOD = {"instruction": "Name a colour.", "input": "", "output": "Blue is a colour."}

ERRORS = [
    ("truncated.json", '[{"instruction": "a", "output": "b"}, {"instr', "record 1", "not valid JSON"),
    ("badline.jsonl", json.dumps(GOOD) + "\n{not json\n", "record 1", "line 2 is not valid JSON"),
    ("latin1.jsonl", json.dumps(GOOD).encode() + b'\n{"instruction": "caf\xe9", "output": "x"}\n', "record 1",
     "not UTF-8"),
    ("wrongtype.json", json.dumps([GOOD, ["a", "b"]]), "record 1", "expected a JSON object"),
    ("missing.json", json.dumps([GOOD, {"instruction": "x"}]), "record 1: field 'output'", "missing"),
    ("fieldtype.json", json.dumps([GOOD, {"instruction": "x", "output": ["y"]}]), "field 'output'",
     "expected a string"),
    ("emptyconv.jsonl", json.dumps({"conversations": []}) + "\n", "record 0: field 'conversations'",
     "empty conversation"),
    ("noassistant.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n",
     "field 'messages'", "no assistant turn"),
    ("surrogate.json", '[{"instruction": "Hi \\ud83d there", "output": "x"}]', "record 0: field 'instruction'",
     "lone surrogate"),
    ("surrogate.jsonl", json.dumps(GOOD) + '\n{"instruction": "x", "output": "y \\udc00"}\n',
     "record 1: field 'output'", "lone surrogate"),
    ("badrole.jsonl", json.dumps({"conversations": [{"from": "robot", "value": "x"}]}) + "\n",
     "field 'conversations[0].from'", "unknown role"),
    ("nan.json", '[{"instruction": "a", "output": "b", "score": NaN}]', "record 0", "not valid JSON"),
    ("infinity.jsonl", '{"instruction": "a", "output": "b", "score": Infinity}\n', "record 0", "not valid JSON"),
    ("empty.json", "", "", "file is empty"),
    ("empty.jsonl", "\n\n", "", "file is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "where", "message"), ERRORS)
def test_errors_are_one_line_exit_2_and_write_nothing(tmp_path, name, content, where, message):
    data = tmp_path / name
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["score", "ifd", str(data), "--out", str(out), "--model", "nonexistent-model"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert str(data) in line and where in line and message in line
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_records_a_user_expects_to_go_on(tmp_path, tiny_model_dir, store_dir):
    huge = {"instruction": "Write a lot.", "input": "", "output": "word " * 200_000}  # a 1 MB response
    records = [GOOD, {**GOOD, "output": ""}, huge, GOOD]  # an empty response; a duplicate of record 0
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    out, subset = tmp_path / "scores.jsonl", tmp_path / "subset.json"
    result = runner.invoke(app, ["run", "cherry", str(data), "--count", "4", "--out", str(subset), "--scores-out",
                                 str(out), "--model", str(tiny_model_dir), "--max-length", "256"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1]["skip_reason"] == "empty_response" and rows[1]["ifd"] is None
    assert rows[2]["skip_reason"] is None and 0 < rows[2]["n_tokens"] < 256  # truncated to the budget
    assert rows[3]["id"] == rows[0]["id"] and rows[3]["ifd"] == rows[0]["ifd"]  # duplicates: same score, both kept
    manifest = json.loads((tmp_path / "subset.manifest.json").read_text())
    assert manifest["counts"]["duplicates"] == 1 and manifest["skipped_by_reason"] == {"empty_response": 1}


def test_on_error_skip_lists_rejects_and_keeps_indices(tmp_path, tiny_model_dir, store_dir):
    lines = [json.dumps(GOOD), json.dumps({"instruction": 3, "output": "x"}), json.dumps(["list"]),
             json.dumps({"conversations": []}), json.dumps({**GOOD, "instruction": "Name a fruit."})]  # fmt: skip
    data = tmp_path / "pool.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores.jsonl"
    args = ["score", "ifd", str(data), "--out", str(out), "--model", str(tiny_model_dir)]
    assert runner.invoke(app, args).exit_code == 2  # the default stops at the first invalid record
    result = runner.invoke(app, [*args, "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["ifd"] is not None for r in rows] == [True, False, False, False, True]
    assert rows[1]["skip_reason"] == "invalid_record: instruction: expected a string, found int"
    rejects = [json.loads(line) for line in (tmp_path / "scores.rejects.jsonl").read_text().splitlines()]
    assert [(r["index"], r["field"]) for r in rejects] == [(1, "instruction"), (2, None), (3, "conversations")]
    assert rejects[2]["record"] == {"conversations": []}


class _Failing:
    """An endpoint that fails every request in one way: (status, reply) for every call."""

    def __init__(self, status: int, reply):
        from localhost import JsonServer

        outer = self

        class Server(JsonServer):
            def answer(self, path, body):
                if outer.status == "slow":  # answers, but after the client's timeout
                    import time

                    time.sleep(3)
                    return 200, outer.reply
                return outer.status, outer.reply

        self.status, self.reply = status, reply
        self.server = Server()
        self.url = self.server.url


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


@pytest.mark.parametrize("method", ["alpagasus", "self-curation", "instag"])
@pytest.mark.parametrize(
    ("failure", "quoted"),
    [("closed", "Connection refused"), ((500, {"error": "overloaded"}), "overloaded"),
     ((400, {"error": "model does not exist"}), "model does not exist"), ((200, "<html>"), "no chat completion"),
     ((200, {"id": "x"}), "no chat completion"), (("slow", {"id": "x"}), "timed out")],
)  # fmt: skip
def test_an_endpoint_that_fails_every_request_is_one_error_up_front(method, failure, quoted, tmp_path, store_dir):
    """Probed once before any work: exit 2 naming --base-url and quoting the server; --out is left as it was."""
    failing = None
    if failure == "closed":
        url = _closed_port_url()
    else:
        failing = _Failing(*failure)
        url = failing.url
    try:
        pool = tmp_path / "pool.json"
        pool.write_text(json.dumps([GOOD] * 3))
        out = tmp_path / "subset.json"
        out.write_text("mine")
        result = runner.invoke(app, ["run", method, str(pool), "--count", "1", "--out", str(out), "--model", "m",
                                     "--base-url", url, "--retries", "0", "--timeout", "1"])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "base-url" in result.output and quoted in result.output
        assert out.read_text() == "mine" and not (tmp_path / "subset.manifest.json").exists()
    finally:
        if failing is not None:
            failing.server.close()


def test_a_run_where_every_sample_fails_writes_nothing(tmp_path, tiny_model_dir, store_dir, monkeypatch):
    """A model that fails on every sample stops the run with one line (exit 2), instead of a table of nulls."""
    from tunesift.scorers.ifd import IFD

    def broken(self, units, backend, on_progress=None):
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(IFD, "compute", broken)
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([GOOD, {**GOOD, "output": "Red."}]))
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["score", "ifd", str(pool), "--out", str(out), "--model", str(tiny_model_dir)])
    assert result.exit_code == 2 and "every one of 2 samples failed" in result.output
    assert "kernel failed" in result.output and not out.exists()


def _pool_file(tmp_path, n=10):
    from conftest import alpaca_records

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(n)))
    return pool


@pytest.mark.parametrize(
    ("args", "key"),
    [(["run", "dq", "--bins", "0"], "bins"), (["run", "dq", "--bins", "50"], "bins"),
     (["run", "random", "--rate", "0.01"], "rate"), (["run", "cluster-ifd", "--clusters", "0"], "clusters"),
     (["run", "recipe", "longest", "-o", "model=smollm2"], "model"),
     (["run", "recipe", "alpagasus", "-o", "retries=many"], "retries"),
     (["run", "recipe", "cherry", "-o", "max_length=lots"], "max-length"),
     (["run", "recipe", "dq", "-o", "bins=0"], "bins"), (["run", "recipe", "dq", "-o", "bins=many"], "bins"),
     (["run", "recipe", "dq", "-o", "retries=many"], "retries"), (["run", "recipe", "cherry", "-o", "bins=3"], "bins"),
     (["run", "cherry", "--concurrency", "0"], "concurrency"), (["run", "cherry", "--timeout", "0"], "timeout"),
     (["run", "cherry", "--batch-tokens", "0"], "batch-tokens"), (["run", "cherry", "--chunk-size", "0"], "chunk-size"),
     (["run", "recipe", "cherry", "-o", "retries=-1"], "retries"), (["run", "bm25", "--epsilon", "-1"], "epsilon")],
)  # fmt: skip
def test_select_and_scorer_options_are_refused_before_any_work(args, key, tmp_path, store_dir):
    """Nothing is embedded, scored or written: the store stays empty and --out is not created."""
    pool = _pool_file(tmp_path)
    out = tmp_path / "subset.json"
    budget = [] if "--rate" in args else ["--count", "3"]
    command = [*args[:2], *([args[2]] if args[1] == "recipe" else []), str(pool)]
    rest = args[3:] if args[1] == "recipe" else args[2:]
    result = runner.invoke(app, [*command, *rest, *budget, "--out", str(out)])
    assert result.exit_code == 2 and key in result.output, result.output
    assert not out.exists() and not (store_dir.exists() and any(store_dir.rglob("*.jsonl")))


def test_the_manifest_records_every_select_option(tmp_path, store_dir, monkeypatch):
    import numpy as np

    from tunesift.models.minilm import MiniLMEmbedder

    monkeypatch.setattr(MiniLMEmbedder, "__init__", lambda self, device=None, max_length=256: None)

    def embed(self, texts, batch_size=64):
        return np.random.default_rng(len(texts)).normal(size=(len(texts), 8)).astype(np.float32)

    monkeypatch.setattr(MiniLMEmbedder, "embed", embed)
    pool = _pool_file(tmp_path)
    out = tmp_path / "subset.json"
    result = runner.invoke(app, ["run", "dq", str(pool), "--count", "4", "--bins", "3", "--seed", "5",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    select = json.loads((tmp_path / "subset.manifest.json").read_text())["steps"][-1]["select"]
    assert select["method"] == "dq" and select["bins"] == 3 and select["random_state"] == 5
    # the recipe command with -o applies them to its select step the same way (they were silently ignored)
    again = tmp_path / "again.json"
    result = runner.invoke(app, ["run", "recipe", "dq", str(pool), "--count", "4", "-o", "bins=3", "-o",
                                 "random_state=5", "--out", str(again)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "again.manifest.json").read_text())["steps"][-1]["select"] == select
    assert json.loads(again.read_text()) == json.loads(out.read_text())


def _judge_scores(tmp_path):
    """A 4-record pool and its SCORES file (judge ratings 1 to 4), written without a model."""
    from tunesift import api

    pool = _pool_file(tmp_path, 4)
    scores = tmp_path / "scores.jsonl"
    rows = [{"index": i, "id": None, "alpagasus": v, "skip_reason": None} for i, v in enumerate([1.0, 2.0, 3.0, 4.0])]
    table = api.ScoreTable({"scorer": "alpagasus"}, rows, "alpagasus", ("alpagasus",))
    for row, sample in zip(table.rows, api.read_pool(pool).samples, strict=True):
        row["id"] = sample.content_id
    api.write_scores(scores, table)
    return pool, scores


@pytest.mark.parametrize(("budget", "key"), [(["--count", "5"], "count"), (["--rate", "0.2"], "rate")])
def test_select_refuses_a_budget_beyond_the_pool_or_rounding_to_0(tmp_path, budget, key):
    """--count 11 on 10 records selected what there was, silently; 'run' already refused it."""
    pool, scores = _judge_scores(tmp_path)
    out = tmp_path / "subset.json"
    result = runner.invoke(app, ["select", str(pool), "--scores", str(scores), "--rule", "top", *budget,
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and f"option '{key}'" in result.output and not out.exists()


def test_an_empty_selection_says_why(tmp_path, store_dir):
    pool, scores = _judge_scores(tmp_path)
    out = tmp_path / "subset.json"
    result = runner.invoke(app, ["select", str(pool), "--scores", str(scores), "--rate", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "selected 0 of 4" in result.output and "no scored record passed score >= 4.5" in result.output
