"""The defects a new user met in the newer commands (issue 42, P1-P20): each through the CLI or the API, as the
user met it. P1, P10, P16, P21 and P22 (distill) are in tests/scorers/test_distill.py, P2 (pii) in
tests/scorers/test_lang_pii.py."""

from __future__ import annotations

import json
import os

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.evalsets import eval_dir
from tunesift.errors import ConfigError, InputError
from tunesift.options import split_list

runner = CliRunner()
EMAIL = "Write to jane.doe@example.org about it."


def _one_line_exit_2(result, *words):
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert all(w in lines[-1] for w in words), lines[-1]


@pytest.fixture
def pool(tmp_path):
    """Ten Alpaca records, the first GSM8K test question among them, and one with an e-mail address."""
    records = alpaca_records(10)
    question = json.loads((eval_dir() / "gsm8k_test.jsonl").read_text().splitlines()[0])["question"]
    records[3] = {"instruction": question, "input": "", "output": "18"}
    records[5] = {**records[5], "output": EMAIL}
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    return path


def test_a_failure_after_the_subset_is_written_leaves_the_earlier_one(pool, tmp_path, store_dir, monkeypatch):
    """P1's rule where it lives: a subset and its manifest land together or not at all."""
    import tunesift.outputs

    out = tmp_path / "s.json"
    result = runner.invoke(app, ["run", "random", str(pool), "--count", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    before = out.read_bytes(), (tmp_path / "s.manifest.json").read_bytes()

    def broken(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tunesift.outputs, "manifest_path", broken)  # fails after the records are written
    result = runner.invoke(app, ["run", "random", str(pool), "--count", "5", "--out", str(out)])
    assert result.exit_code != 0
    assert (out.read_bytes(), (tmp_path / "s.manifest.json").read_bytes()) == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("kind", ["list", "pandas", "datasets"])
def test_decontaminate_on_rows_honours_redact_out_and_dry_run(pool, tmp_path, store_dir, kind):
    """P3: redact, out and dry_run were silently ignored for a list, a DataFrame or a Dataset."""
    records = json.loads(pool.read_text())
    data = records
    if kind == "pandas":
        data = pytest.importorskip("pandas").DataFrame(records)
    elif kind == "datasets":
        data = pytest.importorskip("datasets").Dataset.from_list(records)
    out = tmp_path / "clean.json"
    kept = api.decontaminate(data, "gsm8k", redact=True, out=out)
    rows = kept.to_dict("records") if kind == "pandas" else list(kept)
    assert len(rows) == 9 and not any(r["instruction"] == records[3]["instruction"] for r in rows)
    assert "Write to <EMAIL> about it." in [r["output"] for r in rows]
    written = json.loads(out.read_text())
    assert len(written) == 9 and "Write to <EMAIL> about it." in [r["output"] for r in written]
    dry = tmp_path / "dry.json"
    api.decontaminate(data, "gsm8k", out=dry, dry_run=True)
    assert not dry.exists() and json.loads((tmp_path / "dry.manifest.json").read_text())["dry_run"]
    with pytest.raises(ConfigError, match="dry_run"):
        api.decontaminate(data, "gsm8k", dry_run=True)


def test_a_file_of_items_by_any_spelling_and_a_set_named_twice(pool, tmp_path, store_dir, monkeypatch):
    """P4: --against ./FILE crashed with a KeyError; P14: gsm8k named twice was read twice ("5 of 2638")."""
    items = tmp_path / "items.json"
    items.write_text(json.dumps([json.loads(pool.read_text())[3]]))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for spelling in ("./items.json", "sub/..//items.json"):
        result = runner.invoke(app, ["decontaminate", "pool.json", "--against", spelling, "--out", "c.json"])
        assert result.exit_code == 0, result.output
        assert "dropped 1" in result.output
    result = runner.invoke(app, ["decontaminate", "pool.json", "--against", "gsm8k", "--against", "gsm8k,./items.json",
                                 "--against", "items.json", "--out", "c.json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    sets = json.loads((tmp_path / "c.manifest.json").read_text())["decontaminate"]["sets"]
    assert list(sets) == ["gsm8k", "items.json"] and sets["gsm8k"]["items"] == 1319
    kept = api.decontaminate(json.loads(pool.read_text()), ["./items.json"])  # the API takes the same spellings
    assert len(kept) == 9
    assert runner.invoke(app, ["score", "lang", "pool.json", "--out", "s.jsonl"]).exit_code == 0
    result = runner.invoke(app, ["report", "pool.json", "--scores", "s.jsonl", "--selection", "c.json", "--against",
                                 "./items.json", "--no-map", "--format", "md", "--out", "r.md"])  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("flags", "says"),
    [(["--mode", "any", "--threshold", "0.9"], "option 'threshold': mode 'any'"),
     (["--threshold", "1"], "a coverage in (0, 1)"), (["--threshold", "nan"], "option 'threshold'")],
)  # fmt: skip
def test_a_threshold_that_does_nothing_is_refused(pool, tmp_path, store_dir, flags, says):
    """P15: --mode any --threshold 0.9 was silently ignored; --threshold 1 could never drop anything."""
    out = tmp_path / "c.json"
    result = runner.invoke(app, ["decontaminate", str(pool), "--against", "gsm8k", *flags, "--out", str(out)])
    _one_line_exit_2(result, says)
    assert not out.exists()


def test_one_parser_for_every_list_option(pool, tmp_path, store_dir):
    """P6: --languages en,de, --kinds email,phone and --against gsm8k,mmlu were not split."""
    assert split_list("a, b,,c") == ["a", "b", "c"] and split_list(["a,b", "c"]) == ["a", "b", "c"]
    assert split_list(None) == [] and split_list(" ") == []
    result = runner.invoke(app, ["run", "lang", str(pool), "--languages", "en,de", "--out", str(tmp_path / "l.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "l.manifest.json").read_text())["scorer_config"]["languages"] == ["de", "en"]
    result = runner.invoke(app, ["run", "pii", str(pool), "--kinds", "email,phone", "--out", str(tmp_path / "k.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "k.manifest.json").read_text())["scorer_config"]["kinds"] == ["email", "phone"]
    assert len(json.loads((tmp_path / "k.json").read_text())) == 9  # the e-mail's record left out
    result = runner.invoke(app, ["redact", str(pool), "--kinds", "email,phone", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0 and "redacted 1 of 10" in result.output, result.output
    result = runner.invoke(app, ["decontaminate", str(pool), "--against", "gsm8k,mt_bench", "--out",
                                 str(tmp_path / "c.json")])  # fmt: skip
    assert result.exit_code == 0 and "gsm8k 1 of 1319, mt_bench 0 of" in result.output, result.output


@pytest.mark.parametrize(
    ("flags", "says"),
    [(["--keep", "xx"], "'lang' never holds 'xx'"), (["--keep", "EN"], "codes are lower case: en"),
     (["--keep", ""], "give at least one value"), (["--drop", ","], "give at least one value")],
)  # fmt: skip
def test_run_lang_refuses_a_language_it_can_never_keep(pool, tmp_path, store_dir, flags, says):
    """P13: --keep xx, --keep EN and --keep "" gave an empty subset with exit 0."""
    out = tmp_path / "l.json"
    result = runner.invoke(app, ["run", "lang", str(pool), *flags, "--out", str(out)])
    _one_line_exit_2(result, "option", says)
    assert not out.exists() and not store_dir.exists()


@pytest.mark.parametrize(
    ("scorer", "text", "says"),
    [("lang", "lang == 1", "'lang' holds text, not a number: use 'lang in [WORD, ...]'"),
     ("lang", "lang_confidence in [en]", "'lang_confidence' holds a number, not text"),
     ("pii", "pii_kinds not in [email]", "'pii_kinds' holds a list"),
     ("lang", "lang in [english]", "'lang' never holds 'english'")],
)  # fmt: skip
def test_a_filter_must_fit_its_columns_type(tmp_path, scorer, text, says):
    """P9: 'lang == 1' crashed with a TypeError after scoring; P12: text filters on a number or list column were
    accepted and selected nothing. Refused when the recipe is read."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f'score: {{scorer: {scorer}}}\nsteps:\n  - filter: "{text}"\n  - select: {{method: top}}\n')
    with pytest.raises(InputError, match=says.replace("[", r"\[").replace("]", r"\]")):
        api.load_recipe(recipe)


def test_a_pool_with_no_text_is_skipped_not_failed(tmp_path, store_dir):
    """P18: 'score lang' on records with no instruction text said "every one of 5 samples failed"."""
    data = tmp_path / "empty.json"
    data.write_text(json.dumps([{"instruction": " ", "input": "", "output": f"x{i}"} for i in range(5)]))
    result = runner.invoke(app, ["score", "lang", str(data), "--out", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 0, result.output
    assert "failed" not in result.output and "'no_text': 5" in result.output
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["skip_reason"] for r in rows] == ["no_text"] * 5 and all(r["lang"] is None for r in rows)


def test_an_output_that_is_a_folder_is_refused_before_any_work(pool, tmp_path, store_dir):
    """P17: an --out that is an existing folder was found only when writing (explore after 101 s of work)."""
    folder = tmp_path / "here"
    folder.mkdir()
    commands = (
        ["run", "random", str(pool), "--count", "2"],
        ["score", "lang", str(pool)],
        ["dedup", str(pool), "--method", "exact"],
        ["decontaminate", str(pool), "--against", "gsm8k"],
    )
    for args in commands:
        result = runner.invoke(app, [*args, "--out", str(folder)])
        _one_line_exit_2(result, "option 'out'", "is a folder, not a file")
    assert not store_dir.exists() and not any(folder.iterdir())


def test_report_and_explore_write_what_their_name_says(pool, tmp_path, store_dir):
    """P19: report --out X.json wrote the HTML over its own statistics; --format md was refused for a .json it
    never writes. P20: explore --out e.json wrote parquet under a .json name."""
    scores = tmp_path / "s.jsonl"
    assert runner.invoke(app, ["score", "lang", str(pool), "--out", str(scores)]).exit_code == 0
    result = runner.invoke(app, ["report", str(pool), "--scores", str(scores), "--out", str(tmp_path / "X.json"),
                                 "--no-map"])  # fmt: skip
    _one_line_exit_2(result, "option 'out'", "statistics (.json) beside it")
    assert not (tmp_path / "X.json").exists()
    md = tmp_path / "pool.md"
    result = runner.invoke(app, ["report", str(pool), "--scores", str(scores), "--format", "md", "--out", str(md),
                                 "--no-map"])  # fmt: skip
    assert result.exit_code == 0 and md.read_text().startswith("#"), result.output
    result = runner.invoke(app, ["explore", str(pool), "--scores", str(scores), "--out", str(tmp_path / "e.json")])
    _one_line_exit_2(result, "option 'out'", "name it .parquet")


def test_explore_names_its_default_output_as_its_default(tmp_path, store_dir, monkeypatch):
    """P20: the default output equal to the pool was reported as the user's --out."""
    monkeypatch.chdir(tmp_path)
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(alpaca_records(4)), "pool.explore.parquet")
    result = runner.invoke(app, ["explore", "pool.explore.parquet"])
    _one_line_exit_2(result, "option 'out (default: DATA's name + .explore.parquet)'", "same file as the pool")


@pytest.mark.parametrize(
    ("flags", "option"),
    [(["--learning-rates", "5e-4"], "learning-rates"), (["--learning-rates", "nan"], "learning-rates"),
     (["--learning-rates", "inf"], "learning-rates"), (["--learning-rates", ""], "learning-rates"),
     (["--guard", "gsm8k_accuracy"], "guard"), (["--guard", ""], "guard"), (["--guard", ","], "guard"),
     (["--train", "learning_rate=inf"], "train.lr")],
)  # fmt: skip
def test_advise_refuses_settings_that_race_nothing_new_or_guard_nothing(pool, tmp_path, tiny_model_dir, flags,
                                                                         option):  # fmt: skip
    """P7: --learning-rates took the race's own rate (every arm raced twice), nan, inf and an empty value;
    P11: --guard took a metric the race does not measure and a blank, and guarded nothing."""
    out = tmp_path / "adv"
    result = runner.invoke(app, ["advise", str(pool), "--budget", "0.5", "--out", str(out), "--base",
                                 str(tiny_model_dir), "--methods", "longest", "--dry-run", *flags])  # fmt: skip
    _one_line_exit_2(result, f"option '{option}'")
    assert not (out / "runs").exists()


def test_an_exponent_without_a_dot_is_a_number(pool, tmp_path, tiny_model_dir, store_dir):
    """P8: --train learning_rate=1e-4 (and learning_rate: 1e-4 in YAML) was refused as text."""
    from tunesift.yamltext import load_yaml

    assert load_yaml("learning_rate: 1e-4") == {"learning_rate": 0.0001}
    assert load_yaml("[12, 2E5, .5, 1.2.3, yes]") == [12, 200000.0, 0.5, "1.2.3", True]
    out = tmp_path / "adv"
    result = runner.invoke(app, ["advise", str(pool), "--budget", "0.5", "--out", str(out), "--base",
                                 str(tiny_model_dir), "--methods", "longest", "--dry-run", "--train",
                                 "learning_rate=1e-4"])  # fmt: skip
    assert result.exit_code == 0, result.output


def test_a_compare_config_takes_keep_contaminated(tmp_path):
    """P5: keep_contaminated: true, which the docs and --help promise, was refused as an unknown key."""
    from tunesift.eval.compare.config import load_config

    (tmp_path / "cmp.yaml").write_text("pool: pool.json\nbase: gemma-3-270m\nbudget: {rate: 0.1}\n"
                                       "keep_contaminated: true\n")  # fmt: skip
    assert load_config(tmp_path / "cmp.yaml").keep_contaminated is True
    (tmp_path / "bad.yaml").write_text("pool: pool.json\nbase: gemma-3-270m\nkeep_contaminatd: true\n")
    with pytest.raises(InputError, match="keep_contaminatd"):
        load_config(tmp_path / "bad.yaml")
