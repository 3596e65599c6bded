"""One response per question (METHODS.md §25.5): shortest-correct, best:COLUMN (best:grape, GRAPE's rule), all;
GRAPE's worked example and its tie to IFD's conditioned loss; bad modes refused before any work."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.recipes.per_question import question_key
from tunesift.report.stats import source_table
from tunesift.scorers.grape import grape

runner = CliRunner()


def _trace(words: int, answer: int) -> str:
    return "<think>\n" + " ".join(["step"] * words) + f"\n</think>\n\nSo the answer is \\boxed{{{answer}}}."


# question, teacher, thinking words, boxed answer (reference 5 for A, 7 for B, 9 for C)
ROWS = [
    ("What is 2 + 3?", "t1", 12, 5), ("What is 2 + 3?", "t2", 4, 4), ("what  is 2 + 3?\n", "t2", 6, 5),
    ("What is 3 + 4?", "t1", 9, 7), ("What is 3 + 4?", "t2", 9, 7), ("What is  3 + 4?", "t1", 20, 8),
    ("What is 4 + 5?", "t1", 3, 1), ("What is 4 + 5?", "t2", 5, 2),
]  # fmt: skip
REFERENCE = {"2 + 3": "5", "3 + 4": "7", "4 + 5": "9"}


@pytest.fixture
def pool(tmp_path):
    records = [{"instruction": q, "output": _trace(w, a), "teacher": t,
                "answer": next(v for k, v in REFERENCE.items() if k in q)} for q, t, w, a in ROWS]  # fmt: skip
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


FIELDS = "instruction=instruction,output=output,reference=answer"


def test_groups_collapse_whitespace_and_keep_case(pool):
    samples = api.read_pool(pool, fields=FIELDS).samples
    keys = [question_key(s) for s in samples]
    assert keys[0] != keys[2]  # "what" is not "What": case is kept
    assert keys[3] == keys[5] and len(set(keys)) == 4


def test_shortest_correct(tmp_path, pool, store_dir):
    out = tmp_path / "picked.jsonl"
    result = runner.invoke(app, ["run", "verified", str(pool), "--fields", FIELDS, "--per-question",
                                 "shortest-correct", "--verifier", "fallback", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "picked.manifest.json").read_text())
    # group "What is 2 + 3?": 0 (12 words, right), 1 (wrong) -> 0; "what  is 2 + 3?": 2; "What is 3 + 4?": 3 and 4
    # tie at 9 words -> 3 (lower index); 5 wrong; "What is 4 + 5?": no correct trace, dropped and counted
    assert manifest["selected_indices"] == [0, 2, 3]
    assert manifest["per_question"]["questions"] == 3  # the filter left no trace of "What is 4 + 5?"
    assert {"per_question": {"keep": "shortest-correct"}} in manifest["steps"]
    run = api.run_recipe(api.with_per_question(api.load_recipe("random"), "shortest-correct"),
                         api.read_pool(pool, fields=FIELDS), tmp_path / "r.jsonl", api.Budget(rate=1.0))  # fmt: skip
    assert sorted(run.selection.indices) == [0, 2, 3]
    assert run.selection.per_question["no_correct_trace"] == 1 and run.selection.per_question["questions"] == 4


def test_best_column_and_all(tmp_path, pool, store_dir):
    recipe = api.load_recipe("length")
    table = api.score("length", api.read_pool(pool, fields=FIELDS), tokenizer="whitespace")
    lengths = [r["length"] for r in table.rows]
    for keep, expected in [("all", sorted(range(8), key=lambda i: (-lengths[i], i))), ("best:length", None)]:
        run = api.run_recipe(api.with_per_question(recipe, keep), api.read_pool(pool, fields=FIELDS),
                             tmp_path / f"{keep[:3]}.jsonl", api.Budget(rate=1.0), tokenizer="whitespace")  # fmt: skip
        if expected is None:  # the longest of each group, in the order the rank gave (longest first)
            groups: dict[str, list[int]] = {}
            for s in api.read_pool(pool, fields=FIELDS).samples:
                groups.setdefault(question_key(s), []).append(s.index)
            best = [max(g, key=lambda i: (lengths[i], -i)) for g in groups.values()]
            expected = sorted(best, key=lambda i: (-lengths[i], i))
        assert run.selection.indices == expected, keep


def test_best_grape_picks_the_response_the_model_finds_most_probable(tmp_path, pool, tiny_model_dir, store_dir):
    assert grape([-0.2, -0.4]) == pytest.approx(-0.3) and grape([-0.1, -0.5, -0.9]) == pytest.approx(-0.5)
    data = api.read_pool(pool, fields=FIELDS)
    ifd = api.score("ifd", data, model=str(tiny_model_dir))
    scored = api.score("grape", data, model=str(tiny_model_dir))
    assert [r["grape"] for r in scored.rows] == [-r["loss_cond"] for r in ifd.rows]  # IFD's numerator, same store
    groups: dict[str, list[int]] = {}
    for s in data.samples:
        groups.setdefault(question_key(s), []).append(s.index)
    by_hand = sorted(max(g, key=lambda i: (-ifd.rows[i]["loss_cond"], -i)) for g in groups.values())
    run = api.run_recipe(api.load_recipe("grape"), data, tmp_path / "g.jsonl", None, model=str(tiny_model_dir))
    assert sorted(run.selection.indices) == by_hand and run.selection.per_question["by"] == "grape"
    kept = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r["grape"] for r in kept] == sorted((scored.rows[i]["grape"] for i in by_hand), reverse=True)


def test_bad_modes_are_refused_before_any_work(tmp_path, pool, store_dir):
    for keep, says in [("longest", "choose one of shortest-correct, best:COLUMN, all"),
                       ("best:", "choose one of")]:  # fmt: skip
        result = runner.invoke(app, ["run", "length", str(pool), "--per-question", keep, "--count", "2",
                                     "--out", str(tmp_path / "o.jsonl")])  # fmt: skip
        assert result.exit_code == 2 and says in result.output
        assert not (tmp_path / "o.jsonl").exists()
    nowhere = runner.invoke(app, ["run", "length", str(pool), "--per-question", "best:nope", "--count", "2",
                                  "--tokenizer", "whitespace", "--out", str(tmp_path / "o.jsonl")])  # fmt: skip
    assert nowhere.exit_code == 2 and "best:nope: no such column" in nowhere.output


def test_the_table_per_teacher():
    rows = [{"source": "t1", "question": "a", "verified": 1.0, "length": 10},
            {"source": "t1", "question": "a", "verified": 0.0, "length": 30},
            {"source": "t2", "question": "b", "verified": None, "length": None}]  # fmt: skip
    assert source_table(rows) == [
        {"source": "t1", "rows": 2, "questions": 1, "verified_rate": 0.5, "median_thinking_tokens": 20.0},
        {"source": "t2", "rows": 1, "questions": 1, "verified_rate": None, "median_thinking_tokens": None},
    ]


def test_the_report_has_a_table_per_teacher(tmp_path, pool, store_dir):
    from tunesift.report import make_report

    scores = tmp_path / "len.jsonl"
    api.write_scores(scores, api.score("length", api.read_pool(pool, fields=FIELDS), tokenizer="whitespace"))
    out = tmp_path / "report.md"
    stats = make_report(pool, [scores], fmt="md", out=out, fields=FIELDS, count_tokens=lambda t: len(t.split()),
                        pool_map=False)  # fmt: skip
    table = {r["source"]: r for r in stats["reasoning_sources"]["table"]}
    # t1: rows 0, 3, 5, 6 (right, right, wrong, wrong); t2: rows 1, 2, 4, 7 (wrong, right, right, wrong)
    assert table["t1"] == {"source": "t1", "rows": 4, "questions": 3, "verified_rate": 0.5,
                           "median_thinking_tokens": 10.5}  # fmt: skip
    assert table["t2"]["questions"] == 4 and table["t2"]["median_thinking_tokens"] == 5.5
    assert "## Traces by teacher" in out.read_text()
