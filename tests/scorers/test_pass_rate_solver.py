"""pass-rate from a solver (METHODS.md §25.3): an endpoint on localhost and a tiny local model. Every sample is kept
in the store (k = 8 after k = 4 asks for 4), a failed request is never a sample, garbage after a good probe is a
null row with its reason, and the rate equals one computed by hand from the samples the server wrote."""

from __future__ import annotations

import json
import threading

import pytest
from localhost import JsonServer

from tunesift import api
from tunesift.models.solver import SYSTEM_PROMPT, draw_seed
from tunesift.scorers.verified import fallback_verify


class SolverServer(JsonServer):
    """Boxes 5 when the request's seed is even, 4 when odd; a question with "garbage" in it gets a body with no
    chat completion, one with "flaky" a 500 until ``heal`` is set. Records every (question, seed) asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.heal = False
        self.guard = threading.Lock()
        super().__init__()

    def answer(self, path, body):
        messages = body["messages"]
        if messages[-1]["content"] == "Reply with OK.":
            return 200, {"choices": [{"message": {"role": "assistant", "content": "OK"}}]}
        assert body["temperature"] == 0.7 and messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
        question, seed = messages[1]["content"], body["seed"]
        with self.guard:
            self.asked.append((question, seed))
        if "garbage" in question:
            return 200, {"not": "a completion"}
        if "flaky" in question and not self.heal:
            return 500, {"error": "overloaded"}
        return 200, {"choices": [{"message": {"role": "assistant", "content": f"so \\boxed{{{4 + (seed % 2 == 0)}}}"}}]}


@pytest.fixture
def server():
    s = SolverServer()
    yield s
    s.close()


def _pool(tmp_path, questions):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([{"instruction": q, "output": "", "reference": "5"} for q in questions]))
    return path


def _by_hand(question, k):
    """The rate from the seeds the solver draws, one sample at a time: what the server boxes, checked by hand."""
    return sum(fallback_verify("5", f"\\boxed{{{4 + (draw_seed(question, j) % 2 == 0)}}}") for j in range(k)) / k


def test_endpoint_samples_are_kept_and_k_grows_paying_only_the_new_ones(tmp_path, server, store_dir):
    questions = [f"Question {i}: what is 2 + 3?" for i in range(5)]
    pool = _pool(tmp_path, questions)
    where = {"base_url": server.url, "model": "solver", "retries": 0, "verifier": "fallback"}
    four = api.score("pass-rate", pool, k=4, **where)
    assert [r["pass_rate"] for r in four.rows] == [_by_hand(q, 4) for q in questions]
    assert len(server.asked) == 20 and len(set(server.asked)) == 20
    eight = api.score("pass-rate", pool, k=8, **where)
    assert len(server.asked) == 40  # 4 new samples a question; the first 4 came from the store
    assert [r["pass_rate"] for r in eight.rows] == [_by_hand(q, 8) for q in questions]
    assert all(r["n_samples"] == 8 and r["difficulty_pr"] == 1 - r["pass_rate"] for r in eight.rows)
    again = api.score("pass-rate", pool, k=8, **where)
    assert len(server.asked) == 40 and again.rows == eight.rows  # a rerun asks nothing


def test_a_failed_request_is_never_a_sample(tmp_path, server, store_dir):
    pool = _pool(tmp_path, ["Question A: 2 + 3?", "Question flaky: 2 + 3?", "Question garbage: 2 + 3?"])
    where = {"base_url": server.url, "model": "solver", "retries": 0, "verifier": "fallback", "k": 4}
    first = api.score("pass-rate", pool, **where)
    assert first.rows[0]["pass_rate"] == _by_hand("Question A: 2 + 3?", 4)
    assert first.rows[1]["pass_rate"] is None and first.rows[1]["skip_reason"].startswith(
        "solver_failed: request_failed: HTTP 500"
    )
    assert first.rows[2]["pass_rate"] is None and "bad_response" in first.rows[2]["skip_reason"]
    server.heal = True
    asked = len(server.asked)
    second = api.score("pass-rate", pool, **where)
    # the healed question is asked again (its failures were never stored), the good one is not
    assert second.rows[1]["pass_rate"] == _by_hand("Question flaky: 2 + 3?", 4)
    assert sum(q == "Question A: 2 + 3?" for q, _ in server.asked[asked:]) == 0
    assert second.rows[2]["pass_rate"] is None


def test_no_reference_is_not_solved(tmp_path, server, store_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"instruction": "Prove it.", "output": ""}]))
    table = api.score("pass-rate", pool, base_url=server.url, model="solver", k=2, verifier="fallback")
    assert table.rows[0]["skip_reason"] == "no_reference" and server.asked == []


def test_samples_and_a_solver_together_are_refused(tmp_path, server, store_dir):
    from tunesift.errors import ConfigError

    with pytest.raises(ConfigError, match="not both"):
        api.score("pass-rate", _pool(tmp_path, ["q"]), samples="samples", base_url=server.url, model="solver")


def test_local_solver_stores_each_seeded_sample(tmp_path, tiny_model_dir, store_dir):
    """The tiny random model's samples are gibberish (rate 0.0), but each is drawn from its own seed: the same text in
    a run of k = 1 as in a run of k = 3, so growing k only adds."""
    from tunesift.models.backend import load_lm
    from tunesift.models.generate import sample
    from tunesift.models.registry import resolve_model

    pool = _pool(tmp_path, ["What is 2 + 3?"])
    table = api.score("pass-rate", pool, model=str(tiny_model_dir), k=3, max_tokens=6, verifier="fallback")
    assert table.rows[0]["pass_rate"] == 0.0 and table.rows[0]["n_samples"] == 3
    lm = load_lm(resolve_model(str(tiny_model_dir)), "cpu")
    one = sample(lm, ["abc"], [draw_seed("abc", 2)], 0.7, 6)
    three = sample(lm, ["x", "y", "abc"], [1, 2, draw_seed("abc", 2)], 0.7, 6)
    assert one[0] == three[2]


class LengthServer(JsonServer):
    """Answers each question at temperature 1.0 with as many words as the question's number; "broken" gets a 500."""

    def __init__(self) -> None:
        self.asked = 0
        super().__init__()

    def answer(self, path, body):
        question = body["messages"][-1]["content"]
        if question == "Reply with OK.":
            return 200, {"choices": [{"message": {"role": "assistant", "content": "OK"}}]}
        assert body["temperature"] == 1.0
        self.asked += 1
        if "broken" in question:
            return 500, {"error": "down"}
        n = int(question.split()[-1])
        return 200, {"choices": [{"message": {"role": "assistant", "content": "<think>" + " w" * n + "</think> 4"}}]}


def test_length_of_a_generated_answer(tmp_path, store_dir):
    server = LengthServer()
    try:
        pool = tmp_path / "q.json"
        pool.write_text(json.dumps([{"instruction": f"count {n}"} for n in (3, 9, 1)] + [{"instruction": "broken 2"}]))
        where = {
            "base_url": server.url,
            "model": "m",
            "retries": 0,
            "tokenizer": "whitespace",
            "length_of": "generated",
        }
        pool = api.read_pool(pool, fields="instruction=instruction")  # a pool of questions alone
        table = api.score("length", pool, **where)
        assert [r["length"] for r in table.rows] == [3, 9, 1, None]
        assert table.rows[3]["skip_reason"].startswith("solver_failed: request_failed: HTTP 500")
        asked = server.asked
        assert [r["length"] for r in api.score("length", pool, **where).rows[:3]] == [3, 9, 1]
        assert server.asked == asked + 1  # only the failed question is asked again
        out = tmp_path / "longest.json"
        api.run_recipe(api.load_recipe("length"), pool, out, api.Budget(count=2), **where)
        assert [r["instruction"] for r in json.loads(out.read_text())] == ["count 9", "count 3"]
    finally:
        server.close()


def test_a_solver_that_answers_only_garbage_after_its_probe_stops_in_one_line(tmp_path, server, store_dir):
    from typer.testing import CliRunner

    from tunesift.cli import app

    pool = _pool(tmp_path, ["Question garbage 1?", "Question garbage 2?"])
    out = tmp_path / "rates.jsonl"
    result = CliRunner().invoke(app, ["score", "pass-rate", str(pool), "--base-url", server.url, "--model", "solver",
                                      "--k", "2", "--retries", "0", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and not out.exists()
    assert "every one of 4 solutions failed" in result.output and "bad_response" in result.output
