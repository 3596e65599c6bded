"""Reading chains of thought and column pools (METHODS.md §25.0, issue 44): the trace is seen, every column layout
is read, a field map reads any columns, and a subset writes each record back as it came."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.data.pools import read_pool
from tunesift.data.schemas import FieldMap, gsm8k_answer, last_boxed, record_to_sample, split_trace
from tunesift.errors import ConfigError, InputError

REASONING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reasoning"
runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "thinking", "final", "form"),
    [("<think>\nA B C\n</think>\nAnswer: \\boxed{4}", "A B C", "Answer: \\boxed{4}", "think"),
     ("first </think> second </think> the end", "first </think> second", "the end", "think"),
     ("<|begin_of_thought|> t1 t2 <|end_of_thought|>\n<|begin_of_solution|> sol <|end_of_solution|>", "t1 t2", "sol",
      "markers"),
     ("<think> cut off mid-thought", "cut off mid-thought", "", "unclosed"),
     ("plain answer 42", "plain answer 42", "plain answer 42", "none")],
)  # fmt: skip
def test_split_trace(text, thinking, final, form):
    trace = split_trace(text)
    assert (trace.thinking, trace.final, trace.form) == (thinking, final, form)


def test_references():
    assert last_boxed("so $\\boxed{\\frac{1}{2}}$ and then \\boxed{x^{2}}.") == "x^{2}"
    assert last_boxed("no box") is None and last_boxed("\\boxed{unclosed") is None
    assert gsm8k_answer("48/2 = 24\n#### 1,072") == "1072" and gsm8k_answer("no marks") is None


def test_reasoning_content_is_part_of_the_trained_response():
    """The trace was silently ignored: IFD saw the final answer only."""
    message = {"role": "assistant", "content": "The answer is 4.", "reasoning_content": "2 + 2 = 4"}
    with_trace = record_to_sample({"messages": [{"role": "user", "content": "2+2?"}, message]}, 0, "p.json")
    without = record_to_sample({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant",
                                                                                  "content": "The answer is 4."}]},
                               0, "p.json")  # fmt: skip
    assert with_trace.output == "<think>\n2 + 2 = 4\n</think>\n\nThe answer is 4."
    assert split_trace(with_trace.output).thinking == "2 + 2 = 4" and without.output == "The answer is 4."
    assert with_trace.content_id != without.content_id  # every cached score is the trace's own
    reasoning = {"role": "assistant", "content": "4", "reasoning": "two and two"}
    sample = record_to_sample({"messages": [{"role": "user", "content": "?"}, reasoning]}, 0, "p.json")
    assert split_trace(sample.output).thinking == "two and two"
    with pytest.raises(InputError, match=r"field 'messages\[1\].reasoning_content': expected a string"):
        record_to_sample({"messages": [{"role": "user", "content": "?"}, {**message, "reasoning_content": 3}]}, 0,
                         "p.json")  # fmt: skip


def test_column_layouts_are_read_from_their_keys():
    s1k = {"question": "Q?", "thinking_trajectories": ["think hard"], "attempt": "so \\boxed{5}", "solution": "5"}
    sample = record_to_sample(s1k, 0, "p.json")
    assert sample.instruction == "Q?" and sample.output == "<think>\nthink hard\n</think>\n\nso \\boxed{5}"
    assert sample.reference == "5" and sample.record is s1k
    math500 = read_pool(REASONING / "math500.jsonl")
    assert math500.schema == "math" and math500.samples[0].reference == "\\left( 3, \\frac{\\pi}{2} \\right)"
    minerva = read_pool(REASONING / "minerva_math.jsonl")
    assert minerva.schema == "math-boxed" and minerva.samples[0].reference == last_boxed(minerva.samples[0].output)
    gsm = read_pool(REASONING.parent / "eval" / "gsm8k_test.jsonl")
    assert gsm.schema == "gsm8k" and gsm.samples[0].reference == "18"
    pair = record_to_sample({"prompt": "Say hi", "completion": "hi"}, 0, "p.json")
    assert (pair.instruction, pair.output) == ("Say hi", "hi")


def test_a_field_map_reads_any_columns(tmp_path):
    pool = read_pool(REASONING / "math_cot_100.jsonl", fields="instruction=question,output=code[0],reference=answer")
    first = pool.samples[0]
    record = json.loads((REASONING / "math_cot_100.jsonl").open().readline())
    assert first.output == record["code"][0] and first.reference == record["answer"] and first.record == record
    assert pool.schema == "fields instruction=question,output=code[0],reference=answer"
    olympiad = read_pool(REASONING / "olympiadbench.jsonl",
                         fields="instruction=question,output=solution[0],reference=final_answer[0]")  # fmt: skip
    assert olympiad.samples[0].reference == "2"
    assert read_pool(REASONING / "math500.jsonl", fields="instruction=problem,reference=answer").samples[0].output == ""
    for given, says in [("output=question", "map at least instruction"), ("question=q,output=a", "unknown target"),
                        ("instruction=q,output=a:boxed", "only the reference"), ("instruction", "TARGET=FIELD"),
                        ("instruction=q,output=a,output=b", "mapped twice")]:  # fmt: skip
        with pytest.raises(ConfigError, match=says):
            FieldMap.parse(given)
    with pytest.raises(InputError, match=r"record 0: field 'nope': missing \(the field map reads it\)"):
        read_pool(REASONING / "math500.jsonl", fields="instruction=problem,output=nope")
    short = FieldMap.parse("instruction=q,output=a[0],thinking=a[3]")  # an index past the list: no thinking
    assert record_to_sample({"q": "x", "a": ["only"]}, 0, "p.json", fields=short).output == "only"


def test_the_cli_selects_from_a_column_pool_and_writes_records_back_as_they_came(tmp_path, store_dir):
    source = [json.loads(line) for line in (REASONING / "math_cot_100.jsonl").open()][:12]
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in source))
    out = tmp_path / "picked.jsonl"
    result = runner.invoke(app, ["run", "longest", str(data), "--count", "4", "--fields",
                                 "instruction=question,thinking=code[0],output=answer", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    picked = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(picked) == 4 and all({k: v for k, v in r.items() if k != "response_chars"} in source for r in picked)
    longest = sorted(source, key=lambda r: -len(f"<think>\n{r['code'][0]}\n</think>\n\n{r['answer']}"))[:4]
    assert [r["idx"] for r in picked] == [r["idx"] for r in longest]  # ranked by the trace, not the answer alone
    result = runner.invoke(app, ["run", "longest", str(data), "--count", "4", "--fields", "instruction=question,"
                                 "output=nothing", "--out", str(tmp_path / "x.jsonl")])  # fmt: skip
    assert result.exit_code == 2 and "field 'nothing'" in result.output and not (tmp_path / "x.jsonl").exists()


def test_a_records_reference_field_is_its_reference_in_every_schema():
    message = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "\\boxed{4}"}],
               "reference": "4"}  # fmt: skip
    assert record_to_sample(message, 0, "p.json").reference == "4"
    alpaca = {"instruction": "2+2?", "output": "4", "reference": 4}
    assert record_to_sample(alpaca, 0, "p.json").reference == "4"
    assert record_to_sample({"instruction": "x", "output": "y"}, 0, "p.json").reference is None
    with pytest.raises(InputError, match="field 'reference': expected a string"):
        record_to_sample({**alpaca, "reference": ["4"]}, 0, "p.json")


def test_a_recipe_names_the_pools_fields(tmp_path, store_dir):
    """Issue 44: --fields on the command line, in a recipe (fields:) and in the Python API alike."""
    from tunesift import api

    source = [json.loads(line) for line in (REASONING / "math_cot_100.jsonl").open()][:8]
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in source))
    recipe = tmp_path / "longest-trace.yaml"
    recipe.write_text("fields: instruction=question,thinking=code[0],output=answer\nsteps:\n"
                      "  - select: {method: longest}\n")  # fmt: skip
    out = tmp_path / "picked.jsonl"
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(data), "--count", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    by_hand = sorted(source, key=lambda r: -len(f"<think>\n{r['code'][0]}\n</think>\n\n{r['answer']}"))[:3]
    assert [json.loads(line)["idx"] for line in out.read_text().splitlines()] == [r["idx"] for r in by_hand]
    run = api.run_recipe(api.load_recipe(recipe), data, tmp_path / "api.jsonl", api.Budget(count=3))
    assert run.selection.indices == [source.index(r) for r in by_hand]
    recipe.write_text("fields: output=question\nsteps:\n  - select: {method: longest}\n")
    with pytest.raises(InputError, match="field 'fields': map at least instruction"):
        api.load_recipe(recipe)
