"""Decontamination (METHODS.md §23): the worked example to the digit, a one-turn reference against the vectorised
index, planted copies in a real pool (verbatim, the first half, renamed), conversations, the command, the recipe
step, the API, a dry run and bad input."""

from __future__ import annotations

import json
import random
import re

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.evalsets import EVAL_SETS, eval_dir, read_eval_set
from tunesift.errors import ConfigError
from tunesift.selectors.decontaminate import EvalIndex, coverage, words

runner = CliRunner()
POOL = eval_dir().parent / "instruct" / "alpaca_random_9k.json"
E = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips "
     "did Natalia sell altogether in April and May?")  # fmt: skip
U1 = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
U2 = "How many clips did Natalia sell altogether in April and May?"
U3 = E.replace("Natalia", "Tom").replace("her", "his").replace("she", "he")


def reference(item: str, turn: str, n: int) -> float:
    """One pair, obvious code: mark every item position inside an item n-gram that the turn holds."""
    e, u = re.findall(r"\w+", item.lower()), re.findall(r"\w+", turn.lower())
    if len(e) < n:
        return 1.0 if e == u else 0.0
    shared = [e[i : i + n] for i in range(len(e) - n + 1) if any(e[i : i + n] == u[j : j + n]
                                                               for j in range(len(u) - n + 1))]  # fmt: skip
    marked = set()
    for i in range(len(e) - n + 1):
        if e[i : i + n] in shared:
            marked.update(range(i, i + n))
    return len(marked) / len(e)


@pytest.mark.parametrize(("turn", "covered", "dropped"), [(U1, 20, True), (U2, 11, False), (U3, 11, False)])
def test_the_worked_example_to_the_digit(turn, covered, dropped):
    assert len(words(E)) == 31
    index = EvalIndex([E], 8)
    turns = [words(turn)]
    hit = index.best(turns, index.candidates(turns))
    assert hit.coverage == pytest.approx(covered / 31, abs=1e-12) == reference(E, turn, 8)
    assert (hit.coverage > 0.5) is dropped


def test_the_index_agrees_with_the_one_pair_reference_on_real_items():
    """Every GSM8K test question against turns made from pieces of others: the vectorised lookup finds exactly
    the items the obvious pairwise code finds, with the same coverage."""
    items = [i.text for i in read_eval_set("gsm8k")][:60]
    rng = random.Random(0)
    turns = []
    for _ in range(80):
        a, b = rng.sample(items, 2)
        wa, wb = a.split(), b.split()
        turns.append(" ".join([*wa[: rng.randint(0, len(wa))], "and", "then", *wb[rng.randint(0, len(wb)) :]]))
    for n in (3, 8):
        index = EvalIndex(items, n)
        found = index.candidates([words(t) for t in turns])
        for turn, hits in zip(turns, found, strict=True):
            expected = {k for k, item in enumerate(items) if reference(item, turn, n) > 0}
            assert {k for k in hits if coverage(index.tokens[k], words(turn), n) > 0} == expected
            for k in expected:
                assert coverage(index.tokens[k], words(turn), n) == pytest.approx(reference(items[k], turn, n))


def test_a_short_item_matches_only_an_equal_turn():
    index = EvalIndex(["What is 2+2?"], 8)
    turns = [words("what is 2 + 2"), words("So, what is 2+2? Think.")]
    hits = [index.best([t], index.candidates([t])) for t in turns]
    assert hits[0].coverage == 1.0 and hits[1] is None


def renamed_copy(text: str) -> str:
    return text.replace("Janet", "Maria").replace("She ", "He ").replace("her ", "his ")


@pytest.fixture
def planted(tmp_path):
    """500 real Alpaca records with GSM8K and AlpacaEval items planted: verbatim, the first half, renamed, and
    one in the second user turn of a conversation."""
    pool = json.loads(POOL.read_text())[:500]
    gsm = [i.text for i in read_eval_set("gsm8k")]
    alpaca_eval = [i.text for i in read_eval_set("alpaca_eval")]
    pool[3] = {"instruction": gsm[0], "input": "", "output": "72"}  # verbatim: dropped
    half = words(gsm[1])[: len(words(gsm[1])) // 2]
    pool[4] = {"instruction": " ".join(half), "input": "", "output": "x"}  # half of the words: coverage <= 0.5
    pool[5] = {"instruction": renamed_copy(gsm[0]), "input": "", "output": "x"}  # renamed: as its coverage says
    pool[6] = {
        "conversations": [
            {"from": "human", "value": "Hello!"},
            {"from": "gpt", "value": "Hi."},
            {"from": "human", "value": alpaca_eval[7]},
            {"from": "gpt", "value": "Sure."},
        ]
    }
    pool[7] = {"instruction": "Answer this.", "input": gsm[2], "output": "x"}  # in the input: the user turn
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool))
    return path


def test_planted_copies_in_a_real_pool_are_found_or_kept_as_the_rule_says(planted, tmp_path):
    out = tmp_path / "clean.json"
    result = runner.invoke(app, ["decontaminate", str(planted), "--against", "gsm8k", "--against", "alpaca_eval",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "clean.manifest.json").read_text())
    drops = {d["index"]: d for d in manifest["decontaminate"]["samples"]}
    gsm0 = read_eval_set("gsm8k")[0].text
    renamed = reference(gsm0, renamed_copy(gsm0), 8)
    assert 0 < renamed < 1 and set(drops) == {3, 6, 7} | ({5} if renamed > 0.5 else set())
    assert drops[3]["set"] == "gsm8k" and drops[3]["item"] == "test/0" and drops[3]["coverage"] == 1.0
    assert drops[6]["set"] == "alpaca_eval" and drops[6]["item"] == "7" and drops[6]["turn"] == 1
    assert drops[7]["item"] == "test/2"
    sets = manifest["decontaminate"]["sets"]
    assert sets["gsm8k"]["items_in_pool"] == 2 and sets["gsm8k"]["items"] == 1319
    assert sets["alpaca_eval"]["items_in_pool"] == 1 and sets["alpaca_eval"]["samples_dropped"] == 1
    kept = json.loads(out.read_text())
    assert len(kept) == 500 - len(drops) and kept[3] == json.loads(planted.read_text())[4]  # pool order, as they were
    # any mode with short n-grams also catches the half copy and the renamed one
    result = runner.invoke(app, ["decontaminate", str(planted), "--against", "gsm8k", "--mode", "any", "--n", "5",
                                 "--out", str(tmp_path / "any.json")])  # fmt: skip
    dropped = {d["index"] for d in json.loads((tmp_path / "any.manifest.json").read_text())["decontaminate"]["samples"]}
    assert {3, 4, 5, 7} <= dropped and drops.keys() - {6} <= dropped


def test_a_dry_run_writes_only_the_manifest(planted, tmp_path):
    out = tmp_path / "clean.json"
    result = runner.invoke(app, ["decontaminate", str(planted), "--against", "gsm8k", "--out", str(out), "--dry-run"])
    assert result.exit_code == 0 and "would keep 497 of 500" in result.output, result.output  # 3, 5 (renamed), 7
    assert not out.exists() and json.loads((tmp_path / "clean.manifest.json").read_text())["dry_run"] is True


@pytest.mark.parametrize(
    ("args", "option", "words_"),
    [(["--against", "nope"], "against", "gsm8k, alpaca_eval, mmlu"),
     (["--against", "{tmp}/empty.json"], "against", "holds no records"),
     (["--against", "{tmp}/bad.json"], "against", "not valid JSON"),
     (["--against", "gsm8k", "--threshold", "0"], "threshold", "(0, 1)"),
     (["--against", "gsm8k", "--threshold", "1.5"], "threshold", "(0, 1)"),
     (["--against", "gsm8k", "--n", "0"], "n", "at least 1"),
     (["--against", "gsm8k", "--mode", "some"], "mode", "tulu or any"),
     (["--against", "{tmp}/eval.json"], "out", "is the same file as the --against")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, option, words_):
    (tmp_path / "pool.json").write_text(json.dumps(alpaca_records(5)))
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "eval.json").write_text(json.dumps(alpaca_records(2)))
    out = "{tmp}/eval.json" if option == "out" else "{tmp}/clean.json"
    before = sorted(tmp_path.iterdir())
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in ["decontaminate", "{tmp}/pool.json", *args, "--out",
                                                                  out]])  # fmt: skip
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"option '{option}'" in lines[0] and words_ in lines[0]
    assert sorted(tmp_path.iterdir()) == before


def test_the_recipe_step_and_the_api(planted, tmp_path, store_dir):
    gsm = [i.text for i in read_eval_set("gsm8k")]
    mine = tmp_path / "recipes" / "my_eval.jsonl"
    mine.parent.mkdir()
    mine.write_text(json.dumps({"instruction": "Write a haiku about the autumn wind in the mountains at night.",
                                "output": "..."}) + "\n")  # fmt: skip
    records = json.loads(planted.read_text())
    records[8] = {"instruction": "Write a haiku about the autumn wind in the mountains at night.", "output": "x"}
    planted.write_text(json.dumps(records))
    recipe = mine.parent / "clean.yaml"
    recipe.write_text("steps:\n  - decontaminate: {against: [gsm8k, my_eval.jsonl]}\n  - select: {method: random}\n")
    out = tmp_path / "sub.json"
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(planted), "--rate", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    assert {d["index"] for d in manifest["decontaminate"]["samples"]} == {3, 5, 7, 8}
    assert not {3, 5, 7, 8} & set(manifest["selected_indices"]) and len(manifest["selected_indices"]) == 496
    # the API: a list of dicts comes back without the covered rows, the manifest beside it
    rows = [{"instruction": gsm[5], "output": "x"}, *alpaca_records(3)]
    clean = api.decontaminate(rows, against="gsm8k")
    assert clean == rows[1:] and clean.manifest["dropped"] == 1
    with pytest.raises(ConfigError, match="give out=PATH"):
        api.decontaminate(str(planted), against=["gsm8k"])
    result = api.decontaminate(str(planted), against=["gsm8k"], out=tmp_path / "c.jsonl")
    assert len(result.dropped) == 3 and len((tmp_path / "c.jsonl").read_text().splitlines()) == 497


def test_every_named_set_is_read_in_full():
    sizes = {name: len(read_eval_set(name)) for name in EVAL_SETS}
    assert sizes["gsm8k"] == 1319 and sizes["mmlu"] == 14042 and sizes["bbh"] == 6511 and sizes["humaneval"] == 164
    assert sizes["alpaca_eval"] == 805 and sizes["mt_bench"] == 160 and sizes["vicuna"] == 80


def test_the_report_counts_each_selections_contamination(planted, tmp_path, store_dir):
    scores, everything, clean = tmp_path / "lang.jsonl", tmp_path / "all.json", tmp_path / "clean.json"
    assert runner.invoke(app, ["score", "lang", str(planted), "--out", str(scores)]).exit_code == 0
    assert runner.invoke(app, ["run", "random", str(planted), "--rate", "1", "--out", str(everything)]).exit_code == 0
    recipe = tmp_path / "c.yaml"
    recipe.write_text("steps:\n  - decontaminate: {against: gsm8k}\n  - select: {method: random}\n")
    assert runner.invoke(app, ["run", "recipe", str(recipe), str(planted), "--rate", "1", "--out", str(clean)]
                         ).exit_code == 0  # fmt: skip
    out = tmp_path / "report.md"
    result = runner.invoke(app, ["report", str(planted), "--scores", str(scores), "--selection", str(everything),
                                 "--selection", str(clean), "--against", "gsm8k", "--format", "md", "--no-map",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Contamination against gsm8k: 3 pool samples hold an evaluation item." in text
    assert "- all: 3 of 500 selected samples contaminated (gsm8k 3)" in text
    assert "- clean: 0 of 497 selected samples contaminated" in text
