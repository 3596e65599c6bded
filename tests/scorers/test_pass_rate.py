"""pass-rate over a column of samples already in the pool (METHODS.md §25.3, §25.7): the worked examples, the
three modes, the 800 stored traces of math_cot_100 against their grader, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.scorers.pass_rate import pass_rate

runner = CliRunner()
COT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reasoning" / "math_cot_100.jsonl"
FIELDS = "instruction=question,output=solution,reference=answer"


def test_worked_examples():
    assert pass_rate([0, 1, 0, 0, 1, 0, 0, 0]) == 0.25
    assert pass_rate([0.0] * 8) == 0.0
    assert pass_rate([None] * 8) is None
    assert pass_rate([1, 0, None, 0, 1, 0, 1, 0]) == pytest.approx(3 / 7)


def _pool(tmp_path, correct_counts, k):
    """A question per entry, answer 5, with ``correct`` of its ``k`` samples boxing 5 and the rest 4."""
    records = [{"instruction": f"Question {i}: what is 2 + 3?", "output": "5", "reference": "5",
                "samples": ["so \\boxed{5}"] * c + ["so \\boxed{4}"] * (k - c)}
               for i, c in enumerate(correct_counts)]  # fmt: skip
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize(("recipe", "counts", "k", "kept"), [
    ("pass-rate", [2, 0, 8, 5, 1], 8, [4, 0, 3]),   # window 0.1 < p < 0.9, hardest first: 1/8 < 2/8 < 5/8
    ("pass-rate-unsolved", [2, 0, 8, 0], 8, [1, 3]),
    ("pass-rate-rare", [2, 4, 0, 3], 32, [0, 3]),   # 2/32 = 0.0625 kept, 4/32 = 0.125 dropped, 0 dropped
])  # fmt: skip
def test_the_three_modes(tmp_path, store_dir, recipe, counts, k, kept):
    pool = _pool(tmp_path, counts, k)
    out = tmp_path / "subset.json"
    result = runner.invoke(app, ["run", recipe, str(pool), "--samples", "samples", "--verifier", "fallback",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "subset.manifest.json").read_text())["selected_indices"] == kept
    if recipe == "pass-rate-rare":
        assert "needs at least 11" not in result.output
    else:
        assert "needs at least 11" in result.output  # 8 samples: LIMO's window cannot be met


def test_pass_rates_over_math_cot_100_agree_with_the_grader(store_dir):
    """The 8 stored traces of each of 100 MATH problems, checked by math-verify: the pass rate equals the share of the
    Qwen2.5-Math grader's verdicts on 99 of 100; the one that differs is the reference 10{,}000, which the grader
    refused to equal \\boxed{10000}."""
    pytest.importorskip("math_verify")
    table = api.score("pass-rate", COT, fields=FIELDS, samples="code", workers=1)
    records = [json.loads(line) for line in COT.open()]
    graded = [sum(r["score"]) / len(r["score"]) for r in records]
    differ = [i for i, (row, g) in enumerate(zip(table.rows, graded, strict=True)) if row["pass_rate"] != g]
    assert len(differ) == 1 and "{,}" in records[differ[0]]["answer"]
    assert table.rows[differ[0]]["pass_rate"] > graded[differ[0]]
    assert all(row["n_samples"] == 8 and row["difficulty_pr"] == 1 - row["pass_rate"] for row in table.rows)


def test_bad_input(tmp_path, store_dir):
    pool = _pool(tmp_path, [2, 1], 4)
    both = runner.invoke(app, ["score", "pass-rate", str(pool), "--samples", "samples", "--base-url",
                               "http://127.0.0.1:9/v1", "--model", "m", "--out",
                               str(tmp_path / "s.jsonl")])  # fmt: skip
    assert both.exit_code == 2 and "not both" in both.output
    records = json.loads(pool.read_text())
    records[1]["samples"] = "so \\boxed{5}"
    pool.write_text(json.dumps(records))
    not_a_list = runner.invoke(app, ["score", "pass-rate", str(pool), "--samples", "samples", "--out",
                                     str(tmp_path / "s.jsonl")])  # fmt: skip
    assert not_a_list.exit_code == 2 and "record 1" in not_a_list.output and "'samples' is str" in not_a_list.output
    assert len(not_a_list.output.strip().splitlines()) == 1 and not (tmp_path / "s.jsonl").exists()
    records[1]["samples"] = ["so \\boxed{5}"] * 2
    pool.write_text(json.dumps(records))
    table = api.score("pass-rate", pool, samples="samples", k=4, verifier="fallback")
    assert table.rows[0]["pass_rate"] == 0.5 and table.rows[1]["pass_rate"] is None
    assert table.rows[1]["skip_reason"] == "fewer_samples_than_k"
