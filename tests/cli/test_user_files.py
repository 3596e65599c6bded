"""Nothing a user gave is ever overwritten: every file a command reads (pool, query sets, anchors, recipe, rule,
scores, selections, dataset_info.json) against every file it writes (outputs, manifests, rejects, sidecars),
refused before any work, naming both; through the CLI and the Python API."""

from __future__ import annotations

import json

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.errors import ConfigError, InputError

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(12)))
    query = tmp_path / "q.json"
    query.write_text(json.dumps(alpaca_records(3)))
    return pool, query


def _unchanged(tmp_path):
    return {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


def _refused(result, *words):
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["run", "bm25", "{pool}", "--query", "{q}", "--count", "5", "--out", "{q}"], "out"),
        (["run", "bm25", "{pool}", "--query", "{q}", "--count", "5", "--out", "{tmp}/s.json", "--scores-out", "{q}"],
         "scores-out"),
        (["run", "bm25", "{pool}", "--query", "{tmp}/q.manifest.json", "--count", "5", "--out", "{tmp}/q.jsonl"],
         "out"),  # the subset's manifest would replace the query set
        (["score", "bm25", "{pool}", "--query", "{q}", "--out", "{q}"], "out"),
        (["run", "embed", "{pool}", "--query", "{tmp}/other.json", "--query", "{q}", "--count", "5", "--out", "{q}"],
         "out"),
        (["run", "nuggets", "{pool}", "--anchors", "{q}", "--rate", "0.5", "--out", "{q}"], "out"),
        (["score", "nuggets", "{pool}", "--anchors", "{q}", "--out", "{q}"], "out"),
    ],
)  # fmt: skip
def test_a_query_set_or_anchors_file_is_never_overwritten(tmp_path, files, store_dir, args, option):
    """N1: --out (or --scores-out, or the subset's manifest) on the query or anchors file was written over it."""
    pool, query = files
    (tmp_path / "other.json").write_text(json.dumps(alpaca_records(2)))
    (tmp_path / "q.manifest.json").write_text(json.dumps(alpaca_records(2)))
    before = _unchanged(tmp_path)
    result = runner.invoke(app, [a.format(pool=pool, q=query, tmp=tmp_path) for a in args])
    _refused(result, f"option '{option}'", "is the same file as the --", "nothing was done")
    assert _unchanged(tmp_path) == before and not store_dir.exists()


def test_the_api_refuses_an_output_that_is_an_input_too(tmp_path, files, store_dir):
    pool, query = files
    before = _unchanged(tmp_path)
    with pytest.raises(ConfigError, match="is the same file as the --query"):
        api.run("bm25", str(pool), count=5, out=query, query=[query])
    with pytest.raises(ConfigError, match="is the same file as the --anchors"):
        api.run_recipe("nuggets", pool, query, api.Budget(rate=0.5), anchors=query)
    assert _unchanged(tmp_path) == before


def test_a_recipe_files_query_is_read_beside_it_and_protected(tmp_path, files, store_dir, monkeypatch):
    """N22: a recipe's ``query:`` is read from the recipe's folder (not the current one), and the error says
    where it looked; an --out on that file is refused."""
    pool, query = files
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "q.json").write_text(query.read_text())
    recipe = folder / "mine.yaml"
    recipe.write_text("score: {scorer: bm25, query: q.json}\nsteps:\n  - select: {method: top}\n")
    monkeypatch.chdir(tmp_path / "..")
    out = tmp_path / "sub.json"
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(pool), "--count", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())) == 3
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(pool), "--count", "3", "--out",
                                 str(folder / "q.json")])  # fmt: skip
    _refused(result, "option 'out'", "is the same file as the --query", str(folder / "q.json"))
    recipe.write_text("score: {scorer: bm25, query: missing.json}\nsteps:\n  - select: {method: top}\n")
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(pool), "--count", "3", "--out", str(out)])
    assert result.exit_code == 2 and str(folder / "missing.json") in result.output, result.output


def test_a_manifest_another_subset_wrote_is_not_replaced(tmp_path, files, store_dir):
    """N19: X.json, X.jsonl and a folder X share X.manifest.json; a later run replaced the earlier one's."""
    pool, _ = files
    first = runner.invoke(app, ["run", "random", str(pool), "--count", "3", "--out", str(tmp_path / "X.json")])
    assert first.exit_code == 0, first.output
    manifest = (tmp_path / "X.manifest.json").read_text()
    assert json.loads(manifest)["subset"].endswith("X.json")
    again = runner.invoke(app, ["run", "random", str(pool), "--count", "3", "--out", str(tmp_path / "X.jsonl")])
    _refused(again, "option 'out'", "X.manifest.json is the manifest of", "X.json")
    assert (tmp_path / "X.manifest.json").read_text() == manifest and not (tmp_path / "X.jsonl").exists()
    rerun = runner.invoke(app, ["run", "random", str(pool), "--count", "4", "--out", str(tmp_path / "X.json")])
    assert rerun.exit_code == 0, rerun.output  # the same subset written again replaces its own manifest


@pytest.mark.parametrize(
    ("content", "words"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "holds a JSON list, not an object"),
     ('{"sub": {"file_name": "someone_else.json"}}', "already has an entry 'sub' for another dataset")],
)  # fmt: skip
def test_a_bad_or_taken_dataset_info_is_refused_before_anything_is_written(tmp_path, files, store_dir, content, words):
    """N3: an invalid or non-object dataset_info.json was a traceback with the subset already written; N21: an
    entry of the same name for another file was silently replaced."""
    pool, _ = files
    info = tmp_path / "dataset_info.json"
    info.write_text(content)
    out = tmp_path / "sub.json"
    result = runner.invoke(app, ["run", "random", str(pool), "--count", "3", "--out", str(out), "--out-format",
                                 "llamafactory"])  # fmt: skip
    _refused(result, str(info), words)
    assert info.read_text() == content and not out.exists() and not (tmp_path / "sub.manifest.json").exists()
    with pytest.raises(InputError, match=words.split(" '")[0]):
        api.run("random", str(pool), count=3, out=out, out_format="llamafactory")


def test_a_rerun_to_the_same_llamafactory_file_keeps_the_other_entries(tmp_path, files, store_dir):
    pool, _ = files
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    for _ in range(2):
        result = runner.invoke(app, ["run", "random", str(pool), "--count", "3", "--out", str(tmp_path / "sub.json"),
                                     "--out-format", "llamafactory"])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert set(json.loads(info.read_text())) == {"mine", "sub"}


@pytest.mark.parametrize(
    "args",
    [
        ["select", "{pool}", "--scores", "{tmp}/s.jsonl", "--rate", "0.5", "--out", "{tmp}/afile", "--out-format",
         "hf"],
        ["run", "random", "{pool}", "--count", "3", "--out", "{tmp}/afile", "--out-format", "hf"],
        ["advise", "{pool}", "--budget", "0.5", "--out", "{tmp}/afile", "--dry-run"],
        ["train", "{pool}", "--base", "m", "--out", "{tmp}/afile"],
    ],
)  # fmt: skip
def test_an_output_folder_that_is_a_file_is_refused_naming_the_option(tmp_path, files, store_dir, args):
    """N20: an output folder path that is an existing file: exit 1 after the work started, option unnamed."""
    pool, _ = files
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "s.jsonl").write_text("")
    result = runner.invoke(app, [a.format(pool=pool, tmp=tmp_path) for a in args])
    _refused(result, "option 'out'", "is a file, not a folder", "nothing was done")
    assert (tmp_path / "afile").read_text() == "mine"


def test_advise_refuses_the_pool_as_its_out_folder(tmp_path, files, store_dir):
    """N6: an --out that is the pool was accepted by a dry run."""
    pool, _ = files
    result = runner.invoke(app, ["advise", str(pool), "--budget", "0.5", "--out", str(pool), "--dry-run"])
    _refused(result, "option 'out'", "nothing was done")
