"""AlpaGasus judge: reply parsing, an OpenAI-compatible endpoint over real HTTP on localhost (retries, timeouts,
concurrency, caching, unreadable replies kept), and the local judge against a full-vocabulary reference."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.scorers.judge import UnparseableReply, judge_messages, parse_score


@pytest.mark.parametrize(
    ("reply", "score"),
    [("4", 4.0), ("4.5\nGood answer.", 4.5), ("Score: 3/5\nbecause", 3.0), ("**5**\n", 5.0), ("\n  2 \nmeh", 2.0),
     ("The answer is fine.\nScore: 4", 4.0), ("0\nwrong", 0.0)],
)  # fmt: skip
def test_parse_score(reply, score):
    assert parse_score(reply) == score


@pytest.mark.parametrize("reply", ["", "I think it is good.", "7\ntoo high", "Accuracy: high", "-1"])
def test_unparseable_reply_keeps_the_reply(reply):
    with pytest.raises(UnparseableReply) as err:
        parse_score(reply)
    assert err.value.reply == reply


class ScriptedServer:
    """A real HTTP server on localhost speaking the chat-completions protocol; what it answers depends on a
    marker in the instruction, so each failure mode is exercised over the wire."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth: set[str | None] = set()
        self.delay = delay
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions" and body["temperature"] == 0
                messages = body["messages"]  # one message: the probe before any work
                marker = messages[1]["content"].split("\n")[2] if len(messages) > 1 else "probe"
                counted = False
                with lock:
                    server.calls[marker] = server.calls.get(marker, 0) + 1
                    n = server.calls[marker]
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.auth.add(self.headers.get("Authorization"))
                try:
                    time.sleep(server.delay)
                    status, reply = server.answer(marker, n)
                    if marker == "slow":
                        time.sleep(1.0)
                    payload = {"choices": [{"message": {"role": "assistant", "content": reply}}]}
                    data = json.dumps(payload).encode()
                    with lock:  # done before the reply leaves: a client's next request never overlaps this one
                        server.in_flight -= 1
                        counted = True
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    if not counted:
                        with lock:
                            server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def answer(marker: str, n: int) -> tuple[int, str]:
        if marker == "flaky" and n <= 2:
            return 500, ""
        if marker == "busy" and n == 1:
            return 429, ""
        if marker == "bad-request":
            return 400, ""
        return 200, {"good": "4\nAccurate.", "half": "Score: 4.5/5\nFine.", "prose": "Looks fine to me.",
                     "flaky": "5", "busy": "3", "slow": "5"}.get(marker, "2")  # fmt: skip

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def _pool(tmp_path, markers):
    records = [{"instruction": f"Rate this.\n{m}", "input": "", "output": f"answer {m}"} for m in markers]
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    return path


def test_endpoint_judge_over_http(tmp_path, server, store_dir, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    markers = ["good", "half", "prose", "flaky", "busy", "slow", "bad-request"]
    path = _pool(tmp_path, markers)
    options = {"model": "judge-1", "base_url": server.url, "api_key_env": "JUDGE_KEY", "timeout": 0.5,
               "retries": 2}  # fmt: skip
    table = api.score_alpagasus(path, **{**options, "concurrency": 3})
    rows = {m: r for m, r in zip(markers, table.rows, strict=True)}
    assert rows["good"]["alpagasus"] == 4.0 and rows["half"]["alpagasus"] == 4.5
    assert rows["flaky"]["alpagasus"] == 5.0 and server.calls["flaky"] == 3  # two 500s, then the answer
    assert rows["busy"]["alpagasus"] == 3.0 and server.calls["busy"] == 2
    assert rows["prose"]["alpagasus"] is None and rows["prose"]["skip_reason"] == "unparseable_reply"
    assert rows["prose"]["judge_reply"] == "Looks fine to me."  # the raw reply is kept
    assert rows["slow"]["alpagasus"] is None and rows["slow"]["skip_reason"].startswith("request_failed")
    assert server.calls["slow"] == 3  # timed out on every attempt
    assert rows["bad-request"]["skip_reason"] == "request_failed: HTTP 400 (not retried)"
    assert server.calls["bad-request"] == 1
    assert server.auth == {"Bearer sk-test"}
    assert table.skipped() == {"unparseable_reply": 1, "request_failed: HTTP 400 (not retried)": 1,
                               rows["slow"]["skip_reason"]: 1}  # fmt: skip
    # Second run: the scores come from the cache; every failure (unreadable reply, refused request, time-out)
    # was never stored, so it is asked again.
    before = dict(server.calls)
    again = api.score_alpagasus(path, **options)
    asked = {"slow": 3, "prose": 1, "bad-request": 1}
    assert {m: server.calls[m] - before[m] for m in markers} == {m: asked.get(m, 0) for m in markers}
    assert [r["alpagasus"] for r in again.rows] == [r["alpagasus"] for r in table.rows]


def test_endpoint_concurrency_is_bounded(tmp_path, store_dir):
    server = ScriptedServer(delay=0.15)
    try:
        path = _pool(tmp_path, [f"item{i}" for i in range(12)])
        table = api.score_alpagasus(path, model="m", base_url=server.url, concurrency=3, retries=0)
        assert [r["alpagasus"] for r in table.rows] == [2.0] * 12
        assert server.max_in_flight == 3
    finally:
        server.close()


def test_run_alpagasus_keeps_all_at_or_above_4_5(tmp_path, server, store_dir):
    path = _pool(tmp_path, ["good", "half", "flaky", "busy", "prose", "other"])
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "alpagasus", str(path), "--model", "m", "--base-url", server.url,
                                      "--out", str(out), "--retries", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    chosen = json.loads(out.read_text())
    assert [r["alpagasus"] for r in chosen] == [5.0, 4.5]
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    assert manifest["skipped_by_reason"] == {"unparseable_reply": 1}


def test_local_judge_matches_full_vocabulary_reference(tmp_path, tiny_model_dir, store_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    records = alpaca_records(8)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    table = api.score_alpagasus(path, model=str(tiny_model_dir), batch_tokens=2000)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    from tunesift.data.pools import read_pool

    for row, sample in zip(table.rows, read_pool(path).samples, strict=True):
        text = tok.apply_chat_template(judge_messages(sample), tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt").input_ids
        digits = [tok(text + str(d)).input_ids[-1] for d in range(6)]
        with torch.no_grad():
            probs = torch.softmax(model(ids).logits[0, -1].double(), dim=-1)[digits]
        probs = (probs / probs.sum()).numpy()
        assert row["alpagasus"] == pytest.approx(float(np.dot(np.arange(6), probs)), abs=1e-6)


@pytest.mark.slow
def test_endpoint_serving_the_packaged_model(tmp_path, store_dir):
    """A localhost server that really generates with SmolLM2 (greedy): each reply is read or kept as unreadable."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesift.models.registry import resolve_model

    folder = resolve_model("smollm2-135m-instruct").path
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ids = tok.apply_chat_template(body["messages"], add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)["input_ids"]  # fmt: skip
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=12, do_sample=False)
            reply = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    from tunesift.execution.driver import ComputeFailed

    try:
        path = tmp_path / "pool.json"
        path.write_text(json.dumps(alpaca_records(6)))
        table = api.score_alpagasus(path, model="smollm2", base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                                    concurrency=2, timeout=120)  # fmt: skip
    except ComputeFailed as err:  # every greedy reply unreadable: a failed run, nothing written or cached
        assert "every one of 6 samples failed" in str(err) and "unparseable_reply" in str(err)
        return
    finally:
        httpd.shutdown()
    for row in table.rows:
        assert row["judge_reply"] is not None
        if row["alpagasus"] is None:
            assert row["skip_reason"] == "unparseable_reply"
            with pytest.raises(UnparseableReply):
                parse_score(row["judge_reply"])
        else:
            assert 0 <= row["alpagasus"] <= 5 and parse_score(row["judge_reply"]) == row["alpagasus"]


class _NotJsonAfterProbe(ThreadingHTTPServer):
    """Answers the start-up probe as a chat server, then HTTP 200 with a body that is not JSON (``broken``), or
    the score 5 once repaired."""

    def __init__(self) -> None:
        self.broken = True
        self.sample_requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                probe = len(body["messages"]) == 1
                outer.sample_requests += not probe
                if probe or not outer.broken:
                    data = json.dumps({"choices": [{"message": {"role": "assistant", "content": "5"}}]}).encode()
                else:
                    data = b"<html>upstream proxy error</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_replies_that_are_not_json_are_never_cached_and_write_nothing(tmp_path, store_dir):
    """N2: an endpoint that passes the probe then answers every sample with a body that is not JSON: the run
    fails (exit 2), the existing --out is left as it was, the store holds nothing; once the server is fixed
    the same command asks every sample again and selects them."""
    server = _NotJsonAfterProbe()
    try:
        path = _pool(tmp_path, ["a", "b", "c"])
        out = tmp_path / "sub.json"
        out.write_text('["my earlier subset"]')
        args = [
            "run",
            "alpagasus",
            str(path),
            "--model",
            "m",
            "--base-url",
            server.url,
            "--out",
            str(out),
            "--retries",
            "0",
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "every one of 3" in result.output and "not JSON" in result.output
        assert out.read_text() == '["my earlier subset"]' and not (tmp_path / "sub.manifest.json").exists()
        assert all(p.stat().st_size == 0 for p in store_dir.rglob("alpagasus-*.jsonl"))
        assert server.sample_requests == 3
        server.broken = False
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert server.sample_requests == 6  # asked again: nothing had been remembered
        assert [r["alpagasus"] for r in json.loads(out.read_text())] == [5.0, 5.0, 5.0]
    finally:
        server.shutdown()
        server.server_close()
