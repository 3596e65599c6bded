"""The s1K selection (METHODS.md §25.6-25.7): the nine-row worked example through ``tunesift run s1k``, its draw
probabilities against an independent count over many seeds, the deterministic walk, and the quality rules."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.selectors.s1k import quality_reason, rank_weights, s1_draw

runner = CliRunner()

# id, question, reference, thinking words, domain, solved by (7B, 32B), source
NINE = [
    ("q1", "Find x if 2x+3=7.", "2", 120, "Algebra", (True, True), "synthetic"),
    ("q2", "[asy] draw((0,0)--(1,1)); [/asy] Find the area.", "1/2", 3000, "Geometry", (False, False), "olympiads"),
    ("q3", "How many subsets of {1..10} have no two consecutive elements?", "144", 4000, "Combinatorics",
     (False, False), "synthetic"),
    ("q4", "Find all primes p such that p^2+2 is prime.", "3", 2500, "Number theory", (False, True), "synthetic"),
    ("q5", "Find the limit of n sin(1/n).", None, 900, "Analysis", (False, False), "synthetic"),
    ("q6", "In how many ways can 8 non-attacking rooks be placed?", "40320", 1500, "Combinatorics", (False, False),
     "synthetic"),
    ("q7", "![Image](fig.png) Find the angle.", "30", 2000, "Geometry", (False, False), "synthetic"),
    ("q8", "Find the inradius of the 13-14-15 triangle.", "4", 6000, "Geometry", (False, False), "synthetic"),
    ("q9", "How many lattice paths stay under y=x?", "14", 800, "Combinatorics", (False, False), "synthetic"),
]  # fmt: skip
FIELDS = "instruction=question,output=trace,reference=answer"


@pytest.fixture
def nine(tmp_path):
    records = []
    for qid, question, ref, words, domain, solved, source in NINE:
        attempts = [f"\\boxed{{{ref if s else 'wrong'}}}" for s in solved]
        records.append({"id": qid, "question": question, "trace": "<think>" + " w" * words + "</think> done",
                        "answer": ref, "domain": domain, "source": source, "attempts": attempts})  # fmt: skip
    path = tmp_path / "nine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _run(tmp_path, pool, count, *extra):
    out = tmp_path / f"s1k-{count}.jsonl"
    result = runner.invoke(app, ["run", "s1k", str(pool), "--fields", FIELDS, "--samples", "attempts", "--k", "2",
                                 "--verifier", "fallback", "--tokenizer", "whitespace", "--count", str(count),
                                 "--out", str(out), *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return [json.loads(line)["id"] for line in out.read_text().splitlines()], json.loads(
        out.with_suffix(".manifest.json").read_text())  # fmt: skip


def test_the_nine_rows_deterministic(tmp_path, nine, store_dir):
    for count, expected in [(1, ["q3"]), (2, ["q3", "q8"]), (3, ["q3", "q8", "q6"])]:
        ids, manifest = _run(tmp_path, nine, count, "--deterministic")
        assert ids == expected
    # q5 (no reference) has no pass rate and the solved q1, q4 fail pass_rate == 0: 6 candidates reach the selector,
    # whose quality stage drops q2 ([asy], not AIME) and q7 (an image), leaving q3, q6, q8, q9
    assert manifest["counts"]["candidates"] == 6
    assert manifest["select_details"]["quality_dropped"] == {"figure": 2}
    assert manifest["select_details"]["after_quality"] == 4 and manifest["select_details"]["domains"] == 2


def test_the_first_draw_probabilities(tmp_path, nine, store_dir):
    """Over 4,000 seeds, the first pick matches §25.7: q8 0.5, q3 0.2857, q6 0.1429, q9 0.0714 (within 0.025); one
    seeded run is repeatable."""
    domains = ["Combinatorics", "Combinatorics", "Geometry", "Combinatorics"]  # q3, q6, q8, q9
    lengths = [4000, 1500, 6000, 800]
    firsts = Counter(s1_draw(domains, lengths, 1, seed)[0] for seed in range(4000))
    for position, expected in zip(range(4), [0.2857, 0.1429, 0.5, 0.0714], strict=True):
        assert abs(firsts[position] / 4000 - expected) < 0.025
    assert s1_draw(domains, lengths, 4, 7) == s1_draw(domains, lengths, 4, 7)
    assert sorted(s1_draw(domains, lengths, 4, 7)) == [0, 1, 2, 3]
    once, _ = _run(tmp_path, nine, 2, "--seed", "3")
    again, _ = _run(tmp_path, nine, 2, "--seed", "3")
    assert once == again and set(once) <= {"q3", "q6", "q8", "q9"}


def test_rank_weights_worked_example():
    assert np.allclose(rank_weights([1200, 5000, 300, 2500]), [0.13333, 0.53333, 0.06667, 0.26667], atol=1e-5)
    assert np.allclose(rank_weights([4000, 1500, 800]), [0.5714, 0.2857, 0.1429], atol=1e-4)


@pytest.mark.parametrize(("question", "source", "strict", "reason"), [
    ("[asy] a figure", "AIME 2020", False, None),
    ("[asy] a figure", "olympiads", False, "figure"),
    ("Find exp2. of x", "", False, None),
    ("Find exp2. of x", "", True, "strict_regex"),  # the notebook's rule drops this false positive too
    ("**3.** Find x", "", True, "strict_regex"),
])  # fmt: skip
def test_quality_rules(question, source, strict, reason):
    assert quality_reason(question, "thinking", "1", source, strict) == reason


def test_length_top_three_after_quality(tmp_path, nine, store_dir):
    """§25.7: length alone after stage 1 takes [q8, q3, q4] (keeping q4, which the 32B solver solved)."""
    pool = api.read_pool(nine, fields=FIELDS)
    table = api.score("length", pool, tokenizer="whitespace")
    kept = [i for i, (qid, q, ref, *_rest) in enumerate(NINE) if quality_reason(q, "t", ref, _rest[-1]) is None]
    top = sorted(kept, key=lambda i: -table.rows[i]["length"])[:3]
    assert [NINE[i][0] for i in top] == ["q8", "q3", "q4"]
