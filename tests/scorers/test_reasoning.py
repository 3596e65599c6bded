"""``verified`` and ``length`` (METHODS.md §25.1-25.2, issue 44): §25.7's worked examples, the fallback beside
math-verify, the real traces of ``reasoning/math_cot_100.jsonl`` against their grader, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.sample import Sample, Turn
from tunesift.data.schemas import last_boxed
from tunesift.scorers.length import Length, WhitespaceTokens
from tunesift.scorers.verified import Verified, choice_verify, fallback_verify

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reasoning" / "math_cot_100.jsonl"
runner = CliRunner()


def _traces(tmp_path: Path, n: int) -> tuple[list[dict], Path]:
    """The first ``n`` records of math_cot_100 as a pool file of their own."""
    records = [json.loads(line) for line in TRACES.read_text().splitlines()][:n]
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records, data


def _sample(output: str, reference: str | None, index: int = 0) -> Sample:
    return Sample(index, (Turn("Solve it.", output),), reference=reference)


def _verified(verifier: str, output: str, reference: str | None) -> dict:
    scorer = Verified(verifier, workers=1)
    return scorer.one(_sample(output, reference), scorer.load_backend())


@pytest.mark.parametrize(
    ("reference", "final", "expected"),
    [("0.5", "...answer is $\\boxed{\\frac{1}{2}}$.", 1.0), ("$2$", "$\\boxed{3}$", 0.0),
     ("$\\{1,2,3\\}$", "$\\boxed{3,2,1}$", 1.0), ("$\\sqrt{8}$", "$\\boxed{2\\sqrt{2}}$", 1.0),
     ("Show that the sum is even.", "$\\boxed{4}$", None), ("7\\pi", "so \\(\\boxed{7\\pi}\\).", 1.0),
     ("B", "The answer is (B).", 1.0), ("B", "so $\\boxed{C}$", 0.0), ("42", "no box, no answer here", 0.0),
     ("72", "48 + 24 = 72\n#### 72", 1.0), ("42", "so \\boxed{\\frac{84}{2}}", 1.0)],
)  # fmt: skip
def test_the_worked_examples_with_math_verify(reference, final, expected):
    """§25.7's verified examples (math-verify 0.9.0), a bare MATH answer, multiple choice and a missing answer."""
    pytest.importorskip("math_verify")
    row = _verified("math-verify", final, reference)
    assert row["verified"] == expected
    assert (row["skip_reason"] == "no_gold") == (expected is None)


def test_the_fallback_by_hand():
    assert fallback_verify("\\frac{1}{2}", "so \\boxed{\\dfrac{1}{2}}.") == 1.0
    assert fallback_verify("0.5", "\\boxed{1/2}") == 1.0 and fallback_verify("0.5", "\\boxed{\\frac{1}{2}}") == 1.0
    assert fallback_verify("48^\\circ", "\\boxed{48}") == 1.0 and fallback_verify("25\\%", "\\boxed{25}") == 1.0
    assert fallback_verify("3", "\\boxed{4}") == 0.0 and fallback_verify("3", "3 without a box") == 0.0
    assert choice_verify("A", "The final answer is A") == 1.0 and choice_verify("A", "nothing") == 0.0
    assert _verified("fallback", "48 + 24 = 72\n#### 72", "72")["verified"] == 1.0  # GSM8K's form
    assert fallback_verify("42", "\\boxed{\\frac{84}{2}}") == 1.0


@pytest.mark.parametrize(
    ("output", "reference", "reason"),
    [("<think> never closed", "4", "unclosed_think"), ("<think>x</think>   ", "4", "empty_final"),
     ("\\boxed{4}", None, "no_reference"), ("\\boxed{4}", "  ", "no_reference")],
)  # fmt: skip
def test_bad_rows_are_null_with_a_reason_never_a_default(output, reference, reason):
    for verifier in ("fallback", "auto"):
        assert _verified(verifier, output, reference) == {"verified": None, "skip_reason": reason}


def test_the_grader_of_real_traces_is_reproduced():
    """math_cot_100's 800 traces: math-verify and the fallback agree with the Qwen2.5-Math grader on 799; the one
    disagreement is the grader's (reference 10{,}000, answer 10000)."""
    records = [json.loads(line) for line in TRACES.read_text().splitlines()]
    traces = [(r["idx"], k, _sample(text, r["answer"]), r["score"][k]) for r in records
              for k, text in enumerate(r["code"])]  # fmt: skip
    for verifier in ("fallback", "math-verify"):
        if verifier == "math-verify":
            pytest.importorskip("math_verify")
        scorer = Verified(verifier, workers=2)  # two spawned processes for math-verify, in the pool's order
        backend = scorer.load_backend()
        rows = scorer.compute([scorer.units(s)[0] for _, _, s, _ in traces], backend)
        if verifier == "math-verify":
            backend.close()
        wrong = [(i, k) for (i, k, _, grader), row in zip(traces, rows, strict=True)
                 if row["verified"] != float(grader)]  # fmt: skip
        assert wrong == [(72, 7)], (verifier, wrong)
        grader = records[72]
        assert grader["answer"] == "10{,}000" and last_boxed(grader["code"][7]) == "10000" and not grader["score"][7]


def test_verified_through_the_cli_keeps_the_correct_traces(tmp_path, store_dir):
    source, data = _traces(tmp_path, 10)
    out = tmp_path / "correct.jsonl"
    result = runner.invoke(app, ["run", "verified", str(data), "--fields", "instruction=question,output=code[1],"
                                 "reference=answer", "--verifier", "fallback", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    kept = [json.loads(line)["idx"] for line in out.read_text().splitlines()]
    assert kept == [r["idx"] for r in source if r["score"][1]]
    manifest = json.loads((tmp_path / "correct.manifest.json").read_text())
    assert manifest["scorer_config"]["verifier"] == "fallback"
    table = api.score("verified", data, fields="instruction=question,output=code[1]", verifier="fallback")
    assert [r["skip_reason"] for r in table.rows] == ["no_reference"] * 10  # never a default score


def test_length_counts_the_thinking():
    """§25.7: `<think>\\nA B C\\n</think>\\nAnswer: \\boxed{4}` has length 3 (whitespace)."""
    scorer = Length("whitespace", training_length=5)
    sample = _sample("<think>\nA B C\n</think>\nAnswer: \\boxed{4}", None)
    (row,) = scorer.compute([scorer.units(sample)[0]], WhitespaceTokens())
    assert row == {"length": 3, "length_total": len("Solve it.".split()) + 7, "skip_reason": None}
    (plain,) = scorer.compute([scorer.units(_sample("just an answer", None))[0]], WhitespaceTokens())
    assert plain["length"] == 3  # no marker: the whole response is the trace
    (empty,) = scorer.compute([scorer.units(_sample("<think></think> 4", None))[0]], WhitespaceTokens())
    assert empty["length"] is None and empty["skip_reason"] == "no_thinking"


def test_length_selects_the_longest_traces_and_says_what_a_training_length_cuts(tmp_path, store_dir):
    records, data = _traces(tmp_path, 20)
    out = tmp_path / "long.jsonl"
    result = runner.invoke(app, ["run", "length", str(data), "--fields", "instruction=question,thinking=code[0],"
                                 "output=answer", "--tokenizer", "whitespace", "--training-length", "300", "--count",
                                 "5", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    by_hand = sorted(records, key=lambda r: (-len(r["code"][0].split()), r["idx"]))[:5]
    assert [json.loads(line)["idx"] for line in out.read_text().splitlines()] == [r["idx"] for r in by_hand]
    totals = [len(f"{r['question']}\n<think>\n{r['code'][0]}\n</think>\n\n{r['answer']}".split()) for r in by_hand]
    manifest = json.loads((tmp_path / "long.manifest.json").read_text())
    assert manifest["training_length"] == 300
    assert manifest["truncated_frac"] == pytest.approx(sum(t > 300 for t in totals) / 5)


def test_length_by_a_models_tokenizer_equals_one_text_at_a_time(tiny_model_dir):
    from transformers import AutoTokenizer

    records = [json.loads(line) for line in TRACES.read_text().splitlines()][:6]
    samples = [_sample(f"<think>\n{r['code'][0]}\n</think>\n\n\\boxed{{{r['answer']}}}", None, i)
               for i, r in enumerate(records)]  # fmt: skip
    scorer = Length(str(tiny_model_dir))
    rows = scorer.compute([scorer.units(s)[0] for s in samples], scorer.load_backend())
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for row, record, sample in zip(rows, records, samples, strict=True):
        assert row["length"] == len(tok.encode(record["code"][0].strip(), add_special_tokens=False))
        assert row["length_total"] == len(tok.encode(f"Solve it.\n{sample.output}", add_special_tokens=False))
    assert scorer.cache_config()["tokenizer"] != "whitespace"


def test_the_report_says_what_a_training_length_cuts(tmp_path, store_dir):
    _, data = _traces(tmp_path, 10)
    args = ["--fields", "instruction=question,thinking=code[0],output=answer", "--tokenizer", "whitespace",
            "--training-length", "300"]  # fmt: skip
    assert runner.invoke(app, ["run", "length", str(data), *args, "--count", "4", "--out", str(tmp_path / "s.jsonl"),
                               "--scores-out", str(tmp_path / "scores.jsonl")]).exit_code == 0  # fmt: skip
    share = json.loads((tmp_path / "s.manifest.json").read_text())["truncated_frac"]
    result = runner.invoke(app, ["report", str(data), "--fields", args[1], "--scores",
                                 str(tmp_path / "scores.jsonl"), "--selection", str(tmp_path / "s.jsonl"), "--format",
                                 "md", "--no-map", "--out", str(tmp_path / "r.md")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        f"s: {100 * share:.1f} % of the selected samples are longer than the training length of 300 tokens"
        in (tmp_path / "r.md").read_text()
    )


def test_a_verifier_error_is_null_with_its_reason_never_zero():
    pytest.importorskip("math_verify")
    from tunesift.scorers.verified import MathVerify

    check = MathVerify()

    def broken(*args, **kwargs):
        raise ValueError("sympy gave up")

    check.verify = broken
    assert check("4", "\\boxed{4}") == (None, "verifier_error: ValueError: sympy gave up")
    check.parse = broken  # the reference itself cannot be parsed: no gold
    assert check("4", "\\boxed{4}") == (None, "no_gold")
