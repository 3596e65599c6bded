"""difficulty (METHODS.md §25.4): §25.7's parse examples, Sky-T1's prompts with their attribution, an endpoint on
localhost at temperature 0.7, a reply with no rating null with the raw reply kept, and a local model's replies."""

from __future__ import annotations

import json

import pytest
from localhost import JsonServer
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.scorers import difficulty
from tunesift.scorers.difficulty import SUFFIX, parse_difficulty
from tunesift.scorers.judge import UnparseableReply

runner = CliRunner()


@pytest.mark.parametrize(("reply", "expected"), [
    ("This is AIME 7-9 level. [[4]]", 4.0),
    ("I estimate [[7.5]]", 7.5),
    ("Rating: [6]", 6.0),
    ("Level 4", None),
    ("Between [[3]] and [[4]], final [[4]]", 4.0),
    ('{"difficulty": 9}', 9.0),
    ("[[12]]", None),
    ('{"difficulty": 3, "reasoning": "a JSON object wins"} [[8]]', 3.0),
    ("[[0]]", None),
])  # fmt: skip
def test_the_worked_examples(reply, expected):
    if expected is None:
        with pytest.raises(UnparseableReply):
            parse_difficulty(reply)
    else:
        assert parse_difficulty(reply) == expected


def test_the_prompts_are_sky_t1s_with_attribution():
    assert "SkyThought" in difficulty.__doc__ and "Apache-2.0" in difficulty.__doc__
    assert "according to the AoPS standard" in difficulty.MATH_PROMPT
    assert "(IMO 2020/6)" in difficulty.AOPS_CRITERIA and "\\frac{1}{2^{20}}" in difficulty.AOPS_CRITERIA
    assert "according to the ICPC standard" in difficulty.CODE_PROMPT and "Level 10:" in difficulty.ICPC_CRITERIA


class RatingServer(JsonServer):
    """Rates a question by its number of words, in [[N]]; a question with "shrug" gets a reply with no rating."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        super().__init__()

    def answer(self, path, body):
        content = body["messages"][-1]["content"]
        if content == "Reply with OK.":
            return 200, {"choices": [{"message": {"role": "assistant", "content": "OK"}}]}
        self.bodies.append(body)
        problem = content.split("Problem to be labeled: ", 1)[1].split(". Please put", 1)[0].split(".\n", 1)[0]
        reply = "Hard to say." if "shrug" in problem else f"Reasoning... [[{len(problem.split())}]]"
        return 200, {"choices": [{"message": {"role": "assistant", "content": reply}}]}


def test_an_endpoint_rates_each_question(tmp_path, store_dir):
    server = RatingServer()
    try:
        pool = tmp_path / "q.jsonl"
        questions = ["one two three", "a b c d e f g", "shrug now", "w " * 12]
        pool.write_text("".join(json.dumps({"problem": q}) + "\n" for q in questions))
        out = tmp_path / "d.jsonl"
        result = runner.invoke(app, ["score", "difficulty", str(pool), "--fields", "instruction=problem",
                                     "--base-url", server.url, "--model", "rater", "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["difficulty"] for r in rows] == [3.0, 7.0, None, None]
        assert rows[2]["skip_reason"] == "no_rating" and rows[3]["skip_reason"] == "off_scale: 12"
        body = server.bodies[0]
        assert body["temperature"] == 0.7 and body["max_tokens"] == 512
        assert body["messages"][-1]["content"].endswith("\n" + SUFFIX) and len(body["messages"]) == 1
        code = api.score("difficulty", api.read_pool(pool, fields="instruction=problem"), base_url=server.url,
                         model="rater", domain="code")  # fmt: skip
        assert server.bodies[-1]["messages"][0] == {"role": "system", "content": difficulty.CODE_SYSTEM}
        assert code.rows[0]["difficulty"] == 3.0
        picked = tmp_path / "hard.jsonl"
        result = runner.invoke(app, ["run", "difficulty", str(pool), "--fields", "instruction=problem", "--count", "2",
                                     "--base-url", server.url, "--model", "rater", "--out", str(picked)])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert [json.loads(line)["problem"] for line in picked.read_text().splitlines()] == questions[1::-1]
    finally:
        server.close()


def test_a_local_model_writes_its_rating(tmp_path, tiny_model_dir, store_dir):
    """The tiny random model writes no rating: a rater that rates nothing stops the run with one line naming why (no
    default rating, nothing stored), as the CLI says it before exiting 2."""
    from tunesift.execution.driver import ComputeFailed

    pool = tmp_path / "q.json"
    pool.write_text(json.dumps([{"instruction": "What is 2 + 3?"}, {"instruction": "Prove Fermat."}]))
    with pytest.raises(ComputeFailed, match=r"every one of 2 samples failed.*no_rating"):
        api.score("difficulty", api.read_pool(pool, fields="instruction=instruction"), model=str(tiny_model_dir),
                  max_tokens=4)  # fmt: skip


def test_an_unknown_domain_is_refused(tmp_path, store_dir):
    pool = tmp_path / "q.json"
    pool.write_text(json.dumps([{"instruction": "x", "output": "y"}]))
    result = runner.invoke(app, ["score", "difficulty", str(pool), "--domain", "poetry", "--out",
                                 str(tmp_path / "o.jsonl")])  # fmt: skip
    assert result.exit_code == 2 and "choose one of math, code" in result.output
