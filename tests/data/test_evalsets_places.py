"""Where the evaluation sets are found (issue 43): --data-dir alone, else $TUNESIFT_DATA_DIR, then ../shared/data
beside the checkout; a set found nowhere is one line naming it, every place looked and where to get it."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.cli.data import EXAMPLE
from tunesift.data.evalsets import (
    DATA_DIR_ENV,
    READERS,
    SOURCES,
    eval_dir,
    places,
    read_eval_set,
    set_folder,
)
from tunesift.errors import ConfigError

runner = CliRunner()


@pytest.fixture
def own_data(tmp_path):
    """A user's own folder laid out as ../shared/data, holding GSM8K alone."""
    root = tmp_path / "mydata"
    (root / "eval").mkdir(parents=True)
    shutil.copy(eval_dir() / "gsm8k_test.jsonl", root / "eval")
    return root


def test_every_set_has_a_source_and_a_reader():
    assert set(SOURCES) == set(READERS)
    assert all(s.origin and s.licence and s.files for s in SOURCES.values())


def test_the_environment_comes_first_and_a_named_folder_alone(own_data, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(own_data))
    looked = places()
    assert looked[0] == (f"${DATA_DIR_ENV}", own_data / "eval") and "beside the checkout" in looked[1][0]
    assert set_folder("gsm8k") == own_data / "eval"
    assert set_folder("mmlu") == places()[1][1]  # not in the user's folder: the next place that holds it
    assert [label for label, _ in places(own_data)] == ["--data-dir"]
    assert places(own_data / "eval") == places(own_data)  # the root or its eval folder
    with pytest.raises(ConfigError) as err:
        set_folder("mmlu", own_data)
    message = str(err.value)
    assert message.startswith("option 'against': evaluation set 'mmlu' not found (needs eval/mmlu/test)")
    assert f"--data-dir {own_data / 'eval'}" in message and "hendrycks/test" in message
    assert f"{DATA_DIR_ENV}=FOLDER" in message and "tunesift data list" in message


def test_the_same_items_from_a_users_folder(own_data):
    assert read_eval_set("gsm8k", own_data) == read_eval_set("gsm8k")


def test_a_set_found_nowhere_is_one_line_before_any_work(tmp_path, own_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pool.json").write_text(EXAMPLE.read_text())
    result = runner.invoke(app, ["decontaminate", "pool.json", "--against", "gsm8k,mmlu", "--data-dir", str(own_data),
                                 "--out", "clean.json"])  # fmt: skip
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "evaluation set 'mmlu' not found" in lines[0]
    assert not (tmp_path / "clean.json").exists() and not (tmp_path / "clean.manifest.json").exists()
    result = runner.invoke(app, ["decontaminate", "pool.json", "--against", "gsm8k", "--data-dir", str(own_data),
                                 "--out", "clean.json"])  # fmt: skip
    assert result.exit_code == 0 and "gsm8k 0 of 1319" in result.output, result.output


def test_data_list_and_example(tmp_path, own_data, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(own_data))
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[2:]}
    assert set(rows) == set(SOURCES) and str(own_data / "eval") in rows["gsm8k"]
    assert "CC BY-NC 4.0" in rows["alpaca_eval"] and "openai/human-eval" in rows["humaneval"]
    result = runner.invoke(app, ["data", "list", "--data-dir", str(own_data)])
    rows = {line.split()[0]: line for line in result.output.splitlines()[2:]}
    assert "missing" in rows["mmlu"] and "missing" not in rows["gsm8k"]
    out = tmp_path / "pool.json"
    assert runner.invoke(app, ["data", "example", str(out)]).exit_code == 0
    records = json.loads(out.read_text())
    assert len(records) == 300 and records == json.loads(EXAMPLE.read_text())
    assert all(r["instruction"] and r["output"] and r["category"] for r in records)
    out.write_text("[]")
    result = runner.invoke(app, ["data", "example", str(out)])
    assert result.exit_code == 2 and "nothing is overwritten" in result.output and out.read_text() == "[]"


def test_a_reasoning_pool_decontaminated_against_the_reasoning_sets(tmp_path, store_dir):
    """Issue 44: math_cot_100's MATH test problems, decontaminated against MATH500, AIME24, AMC23, Minerva and
    OlympiadBench, lose every one that is a MATH500 problem word for word (5, counted independently), and two more
    that share a MATH500 problem's stem with other numbers (coverage 0.57 and 0.87 > 0.5: Tulu's rule)."""
    reasoning = eval_dir().parent / "reasoning"
    math500 = {json.loads(line)["problem"].strip() for line in (reasoning / "math500.jsonl").open()}
    questions = [json.loads(line)["question"].strip() for line in (reasoning / "math_cot_100.jsonl").open()]
    out = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["decontaminate", str(reasoning / "math_cot_100.jsonl"), "--fields",
                                 "instruction=question,output=answer", "--against",
                                 "math500,aime24,amc23,minerva,olympiadbench", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    section = json.loads((tmp_path / "clean.manifest.json").read_text())["decontaminate"]
    exact = {i for i, q in enumerate(questions) if q in math500}
    dropped = {d["index"]: d for d in section["samples"]}
    assert len(exact) == 5 and exact <= set(dropped) and len(dropped) == 7
    assert all(d["set"] == "math500" and d["coverage"] > 0.5 for d in dropped.values())
    assert sorted(round(d["coverage"], 2) for i, d in dropped.items() if i not in exact) == [0.57, 0.87]
    assert section["sets"]["olympiadbench"]["items"] == 675
    assert len(read_eval_set("aime24")) == 30 and len(read_eval_set("minerva")) == 272
