"""Evaluation sets from the Hugging Face Hub (issue 43): a Hub cache built in a temporary folder from the local files
(the layout huggingface_hub reads, HF_HUB_OFFLINE=1) gives the same items, ids, decontamination and evaluation
results as ../shared/data; a set found nowhere names every place, why the Hub did not give it, and the command."""

from __future__ import annotations

import csv
import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.data import evalsets
from tunesift.data.evalhub import HUB, pulled_root
from tunesift.data.evalsets import READERS, SOURCES, eval_dir, read_eval_set, set_folder
from tunesift.errors import ConfigError

runner = CliRunner()
LOCAL = eval_dir()  # ../shared/data/eval: where the truth is read


def _jsonl(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _parquet(rows, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _mmlu_rows(split):
    """cais/mmlu's rows (subject, question, choices, answer 0-3) from hendrycks' CSV files, one subject after
    another."""
    rows = []
    for path in sorted((LOCAL / "mmlu" / split).glob(f"*_{split}.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for q, a, b, c, d, letter in csv.reader(handle):
                rows.append({"question": q, "subject": path.stem.rsplit("_", 1)[0], "choices": [a, b, c, d],
                             "answer": "ABCD".index(letter)})  # fmt: skip
    return rows


def _write_hub_files(snapshot, name):
    """The files of set ``name`` as its Hub repository holds them, made from the local copy."""
    files = [snapshot / f for f in HUB[name].files]
    if name == "gsm8k":
        _parquet(_jsonl(LOCAL / "gsm8k_test.jsonl"), files[0])
    elif name == "alpaca_eval":
        files[0].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LOCAL / "alpaca_eval_805_gpt4_1106_preview.json", files[0])
    elif name == "mmlu":
        _parquet(_mmlu_rows("test"), files[0])
        _parquet(_mmlu_rows("dev"), files[1])
    elif name == "humaneval":
        _parquet(_jsonl(LOCAL / "humaneval" / "HumanEval.jsonl.gz"), files[0])
    elif name == "math500":
        files[0].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LOCAL.parent / "reasoning" / "math500.jsonl", files[0])
    else:  # aime24: the Hub copy adds a year column
        rows = [{**r, "year": 2024} for r in _jsonl(LOCAL.parent / "reasoning" / "aime24.jsonl")]
        for r in rows:
            r.pop("question", None)
        _parquet(rows, files[0])


@pytest.fixture
def hub_only(tmp_path, monkeypatch):
    """A machine with no ../shared: the only evaluation sets are in a Hugging Face cache, offline."""
    cache = tmp_path / "hf" / "hub"
    for name, spec in HUB.items():
        _write_hub_files(cache / f"datasets--{spec.repo.replace('/', '--')}" / "snapshots" / spec.revision, name)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TUNESIFT_CACHE", str(tmp_path / "tunesift-cache"))
    monkeypatch.delenv(evalsets.DATA_DIR_ENV, raising=False)
    nowhere = tmp_path / "no-shared" / "eval"
    real = evalsets.places
    monkeypatch.setattr(evalsets, "places", lambda data_dir=None: real(data_dir) if data_dir is not None
                        else [("../shared/data beside the checkout", nowhere)])  # fmt: skip
    return cache


def test_the_same_items_and_ids_from_the_hub(hub_only):
    for name in HUB:
        folder = set_folder(name)
        assert folder == pulled_root(name) / "eval"
        from_hub = list(READERS[name](folder))
        assert from_hub == list(READERS[name](LOCAL)) and len(from_hub) == HUB[name].items, name
    # laid out once: the copy is read again without the Hub cache
    shutil.rmtree(hub_only)
    assert len(read_eval_set("gsm8k")) == 1319


def test_the_same_decontamination_and_evaluation_from_the_hub(hub_only, tmp_path, tiny_model_dir, monkeypatch):
    from tunesift.eval.evaluation.metrics import read_mmlu
    from tunesift.eval.evaluation.suite import EvalSettings, evaluate

    pool = [{"instruction": i.text, "input": "", "output": "x"} for i in read_eval_set("gsm8k")[:3]]
    pool += json.loads((LOCAL.parent / "instruct" / "dolly_alpagasus_3k.json").read_text())[:20]
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    args = ["decontaminate", str(tmp_path / "pool.json"), "--against", "gsm8k,alpaca_eval,mmlu,humaneval,math500"]
    hub = runner.invoke(app, [*args, "--out", str(tmp_path / "hub.json")])
    assert hub.exit_code == 0, hub.output
    local = runner.invoke(app, [*args, "--out", str(tmp_path / "local.json"), "--data-dir", str(LOCAL.parent)])
    assert local.exit_code == 0, local.output
    assert (tmp_path / "hub.json").read_text() == (tmp_path / "local.json").read_text()
    assert len(json.loads((tmp_path / "hub.json").read_text())) == 20  # the three GSM8K questions dropped

    small = {"n_alpaca": 3, "n_gsm8k": 3, "n_mmlu": 4, "n_bbh": 2, "n_humaneval": 2, "mmlu_shots": 1}
    results = {}
    for source, data_dir in (("hub", None), ("local", str(LOCAL.parent))):
        settings = EvalSettings(data_dir=data_dir, **small)
        got = evaluate(str(tiny_model_dir), "targeted", settings)
        results[source] = {m: got[m]["items"] for m in ("gsm8k_loss", "alpaca_eval_loss")}
    assert results["hub"] == results["local"]
    assert read_mmlu(set_folder("mmlu") / "mmlu", 40, 0) == read_mmlu(LOCAL / "mmlu", 40, 0)  # dev shots too


def test_a_set_not_in_the_cache_offline_names_every_place_and_the_command(hub_only, tmp_path):
    spec = HUB["gsm8k"]
    shutil.rmtree(hub_only / f"datasets--{spec.repo.replace('/', '--')}")
    with pytest.raises(ConfigError) as err:
        set_folder("gsm8k")
    message = str(err.value)
    assert "evaluation set 'gsm8k' not found" in message and "beside the checkout" in message
    assert "hf://datasets/openai/gsm8k (main/test) @cc7b047" in message and "HF_HUB_OFFLINE is set" in message
    assert "tunesift data pull gsm8k" in message and "\n" not in message
    (tmp_path / "pool.json").write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    result = runner.invoke(app, ["decontaminate", str(tmp_path / "pool.json"), "--against", "gsm8k",
                                 "--out", str(tmp_path / "c.json")])  # fmt: skip
    assert result.exit_code == 2 and "tunesift data pull gsm8k" in result.output
    assert not (tmp_path / "c.json").exists()
    with pytest.raises(ConfigError, match="no Hub source is pinned"):
        set_folder("bbh")


def test_a_hub_copy_with_another_number_of_items_is_refused(hub_only):
    spec = HUB["gsm8k"]
    path = hub_only / f"datasets--{spec.repo.replace('/', '--')}" / "snapshots" / spec.revision / spec.files[0]
    _parquet(_jsonl(LOCAL / "gsm8k_test.jsonl")[:100], path)
    with pytest.raises(ConfigError, match="gave 100 items where the set holds 1319"):
        set_folder("gsm8k")
    assert not pulled_root("gsm8k").exists()  # nothing half laid out


def test_data_pull_and_list(hub_only):
    result = runner.invoke(app, ["data", "pull", "gsm8k", "aime24"])
    assert result.exit_code == 0, result.output
    assert "gsm8k" in result.output and str(pulled_root("gsm8k") / "eval") in result.output
    listing = runner.invoke(app, ["data", "list"])
    rows = {line.split()[0]: line for line in listing.output.splitlines()[2:]}
    assert str(pulled_root("aime24") / "eval") in rows["aime24"] and "@2fe88a2" in rows["aime24"]
    assert "missing" in rows["bbh"] and "none pinned" in rows["bbh"] and "missing" in rows["mmlu"]
    result = runner.invoke(app, ["data", "pull", "bbh"])
    assert result.exit_code == 2 and "no Hub source is pinned for 'bbh'" in result.output
    assert all(name in SOURCES for name in HUB)
