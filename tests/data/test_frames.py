"""The Python API over pools held in Python (a list of dicts, a DataFrame, a Dataset): the same kind back with the
CLI's scores; a selection in rank order with its manifest; subsets for trainers (LLaMA-Factory, messages, hf)."""

from __future__ import annotations

import json

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

import tunesift
from tunesift.cli import app
from tunesift.errors import InputError

pd = pytest.importorskip("pandas")
datasets = pytest.importorskip("datasets")

CONVERSATIONS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
                  {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another one?"},
                  {"role": "assistant", "content": "Red, the colour of a ripe tomato."}]},
    {"messages": [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}]},
]  # fmt: skip


def _kinds(records):
    return {"list": records, "pandas": pd.DataFrame(records), "datasets": datasets.Dataset.from_list(records)}


def _column(data, name):
    return [r[name] for r in data] if isinstance(data, list) else list(data[name])


@pytest.mark.parametrize("kind", ["list", "pandas", "datasets"])
def test_each_kind_in_gives_the_same_kind_out_with_the_clis_scores(kind, tmp_path, tiny_model_dir, store_dir):
    records = alpaca_records(10)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    scores = tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["score", "ifd", str(path), "--model", str(tiny_model_dir), "--out", str(scores)])
    assert result.exit_code == 0, result.output
    cli = [json.loads(line)["ifd"] for line in scores.read_text().splitlines()]
    data = _kinds(records)[kind]
    scored = tunesift.score("ifd", data, model=str(tiny_model_dir))
    assert type(scored) is type(data)
    assert _column(scored, "ifd") == pytest.approx(cli)
    assert _column(scored, "instruction") == _column(data, "instruction")
    assert "loss_cond" in (scored.columns if kind == "pandas" else scored.column_names if kind == "datasets"
                           else scored[0])  # fmt: skip
    # the selection: the rule of the score column, rank order, same kind
    chosen = tunesift.select(scored, rate=0.5)
    kept = [i for i, v in enumerate(cli) if v is not None and v <= 1]  # Cherry: IFD <= 1, the rate of survivors
    want = sorted(kept, key=lambda i: (-cli[i], i))[: int(0.5 * len(kept))]
    assert _column(chosen, "instruction") == [records[i]["instruction"] for i in want]
    # a recipe run: the chosen rows with their scores, and the manifest
    subset = tunesift.run("cherry", data, rate=0.5, model=str(tiny_model_dir))
    assert type(subset).__name__ in ("Subset", "DataFrame", "Dataset")
    manifest = subset.attrs["tunesift_manifest"] if kind == "pandas" else subset.manifest
    assert manifest["selected_indices"] == want and manifest["rule"] == "cherry"
    assert _column(subset, "ifd") == pytest.approx([cli[i] for i in want])


def test_a_messages_column_in_a_dataset_scores_as_from_a_file(tmp_path, store_dir):
    query = tmp_path / "q.json"
    query.write_text(json.dumps(alpaca_records(2)))
    path = tmp_path / "conv.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in CONVERSATIONS))
    from_file = tunesift.score("bm25", path, query=query)
    from_dataset = tunesift.score("bm25", datasets.Dataset.from_list(CONVERSATIONS), query=query)
    assert from_dataset["bm25"] == pytest.approx([r["bm25"] for r in from_file.rows])


def test_a_frame_without_the_fields_names_the_row_and_column(store_dir):
    with pytest.raises(InputError) as err:
        tunesift.score("bm25", pd.DataFrame([{"prompt": "x", "answer": "y"}]), query=[])
    assert "<DataFrame>" in str(err.value) and "record 0" in str(err.value)
    with pytest.raises(InputError) as err:
        tunesift.score("bm25", [{"instruction": 5, "output": "x"}], query=[])
    assert str(err.value).startswith("<list of dicts>: record 0: field 'instruction'")


def test_llamafactory_messages_and_hf_subsets_load_for_their_trainers(tmp_path, store_dir):
    records = alpaca_records(8)
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    runner = CliRunner()
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    for fmt, name in (("llamafactory", "lf.json"), ("messages", "msgs.jsonl"), ("hf", "hfdir")):
        result = runner.invoke(app, ["run", "longest", str(pool), "--count", "4", "--out-format", fmt,
                                     "--out", str(tmp_path / name)])  # fmt: skip
        assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["mine"] == {"file_name": "mine.json"}  # the user's own entry is kept
    entry = info["lf"]
    assert entry["formatting"] == "alpaca" and entry["file_name"] == "lf.json"
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / entry["file_name"]), split="train")
    columns = entry["columns"]
    assert {columns["prompt"], columns["query"], columns["response"]} <= set(loaded.column_names)
    longest = sorted(range(8), key=lambda i: (-len(records[i]["output"]), i))[:4]
    assert loaded[columns["response"]] == [records[i]["output"] for i in longest]
    msgs = datasets.load_dataset("json", data_files=str(tmp_path / "msgs.jsonl"), split="train")
    for row in msgs["messages"]:
        roles = [m["role"] for m in row]
        assert roles == ["user", "assistant"] and row[-1]["content"]
    assert datasets.load_from_disk(str(tmp_path / "hfdir"))["output"] == [records[i]["output"] for i in longest]


def test_conversations_become_sharegpt_for_llamafactory_and_are_refused_as_alpaca(tmp_path, store_dir):
    pool = tmp_path / "conv.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in CONVERSATIONS))
    runner = CliRunner()
    out = tmp_path / "lf.json"
    assert runner.invoke(app, ["run", "longest", str(pool), "--count", "2", "--out-format", "llamafactory",
                               "--out", str(out)]).exit_code == 0  # fmt: skip
    entry = json.loads((tmp_path / "dataset_info.json").read_text())["lf"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "conversations", "system": "system"}
    first = json.loads(out.read_text())[0]
    assert [t["from"] for t in first["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert first["system"] == "Be brief."
    bad = tmp_path / "a.json"
    result = runner.invoke(app, ["run", "longest", str(pool), "--count", "2", "--out-format", "alpaca",
                                 "--out", str(bad)])  # fmt: skip
    assert result.exit_code == 2 and "out-format" in result.output and not bad.exists()
    unknown = runner.invoke(app, ["run", "longest", str(pool), "--count", "2", "--out-format", "csv",
                                  "--out", str(bad)])  # fmt: skip
    assert unknown.exit_code == 2 and "option 'out-format'" in unknown.output
