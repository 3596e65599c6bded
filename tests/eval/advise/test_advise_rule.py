"""advise's recommendation by effect (issue 33): planted races built from per-item evaluation results, so the rule
is tested without training: the larger gain wins over a cheaper small one, a cheaper arm takes its place only when
the two are not distinguishable, a guard excludes a trade-off and names it, --guard none recommends it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunesift.eval.advise.advice import advice_markdown
from tunesift.eval.advise.config import AdviseConfig
from tunesift.eval.advise.rule import advise_from
from tunesift.eval.compare.intervals import intervals

N_ITEMS = 80
BASE = np.random.default_rng(0).uniform(1.5, 2.5, size=(2, N_ITEMS))  # per-item loss of random: gsm8k, alpaca


def _race(tmp_path, arms: dict[str, tuple[float, float, float]]) -> dict:
    """``arms``: name -> (shift of the gsm8k loss, shift of the alpaca_eval loss, selection seconds); random is
    three models at the base losses with small noise, each arm one model shifted item by item."""
    rng = np.random.default_rng(1)
    models = []

    def model(arm: str, seed: int, shift: tuple[float, float], select_s: float | None) -> dict:
        losses = BASE + np.array(shift)[:, None] + rng.normal(0, 0.02, size=BASE.shape)
        evals = {metric: {"items": [[float(v) * 10, 10] for v in row]}
                 for metric, row in zip(("gsm8k_loss", "alpaca_eval_loss"), losses, strict=True)}  # fmt: skip
        path = tmp_path / f"{arm}-{seed}.json"
        path.write_text(json.dumps(evals))
        return {"budget": "0.1", "arm": arm, "seed": seed, "select_s": select_s, "eval_file": str(path),
                "n": 1000 if arm == "whole-pool" else 100, "train_steps": 13,
                "gsm8k_loss": float(losses[0].mean()), "alpaca_eval_loss": float(losses[1].mean())}  # fmt: skip

    models += [model("random", s, (0.0, 0.0), None) for s in range(3)]
    models += [model(name, 0, (g, a), cost) for name, (g, a, cost) in arms.items()]
    results = {"n_pool": 1000, "budgets": [{"budget": "0.1", "rate": 0.1}], "models": models}
    results["intervals"] = intervals(results, n_boot=1000)
    return results


def _advise(results, arms, **config):
    cfg = AdviseConfig(pool="pool.json", budgets=[0.1], target="gsm8k", **config)
    methods = {name: {"recipe": name} for name in arms}
    (advice,) = advise_from(results, cfg, methods, 100_000, "pool.json")
    return advice, cfg


def test_the_larger_gain_wins_over_a_slightly_better_cheaper_arm(tmp_path):
    arms = {"far": (-0.30, 0.0, 100.0), "slight": (-0.03, 0.0, 1.0)}
    advice, _ = _advise(_race(tmp_path, arms), arms)
    board = {b["method"]: b for b in advice.leaderboard}
    assert board["slight"]["metrics"]["gsm8k_loss"]["verdict"] == "better"  # both beat random
    assert advice.recommendation == "far" and "the largest gain over random on gsm8k_loss" in advice.reason
    assert board["slight"]["vs_best"]["best"] == "far" and board["slight"]["vs_best"]["verdict"] == "worse"
    assert advice.command.startswith("tunesift run far pool.json --rate 0.1")


def test_a_cheaper_arm_takes_the_place_only_when_not_distinguishable(tmp_path):
    arms = {"costly": (-0.22, 0.0, 100.0), "cheap": (-0.209, 0.0, 1.0)}  # costly gains ~0.003 more
    advice, _ = _advise(_race(tmp_path, arms), arms)
    board = {b["method"]: b for b in advice.leaderboard}
    assert board["cheap"]["vs_best"]["best"] == "costly"  # costly gains more, but not distinguishably so
    assert board["cheap"]["vs_best"]["low"] <= 0 <= board["cheap"]["vs_best"]["high"]
    assert advice.recommendation == "cheap" and "not distinguishable from costly" in advice.reason


@pytest.mark.parametrize("guard", ["all", "none", "alpaca_eval_loss"])
def test_a_trade_off_is_excluded_by_a_guard_and_named_or_recommended_without_one(tmp_path, guard):
    arms = {"bm25": (-0.30, +0.20, 2.0), "longest": (+0.10, -0.05, 0.1)}
    advice, cfg = _advise(_race(tmp_path, arms), arms, guard=guard)
    if guard == "none":  # recommended, and what it costs is said with it
        assert advice.recommendation == "bm25" and advice.tradeoff is None
        assert "; at a cost on alpaca_eval_loss (+0.2" in advice.reason and "worse than random)" in advice.reason
        return
    assert advice.recommendation is None and "without losing on a guarded metric" in advice.reason
    assert advice.tradeoff["method"] == "bm25" and advice.tradeoff["worse_on"] == ["alpaca_eval_loss"]
    assert advice.tradeoff["command"].startswith("tunesift run bm25 pool.json")
    text = advice_markdown([advice], cfg, 60.0)
    assert "**Trade-off**: bm25 is the best for gsm8k_loss alone" in text and "worse on alpaca_eval_loss +0.2" in text


@pytest.mark.parametrize(("whole", "verdict", "said"),
                         [(-0.10, "better", "the selection beats all of the data on gsm8k_loss"),
                          (-0.292, "not distinguishable", "the selection cannot be told apart from all of the data"),
                          (-0.50, "worse", "the selection does not beat all of the data")])  # fmt: skip
def test_the_whole_pool_at_equal_steps_against_the_recommendation(tmp_path, whole, verdict, said):
    """--with-full: the whole pool is raced as an arm (never recommended: the user has a budget); advice.md says
    whether the recommended selection beats it on the target, by their paired interval."""
    arms = {"far": (-0.30, 0.0, 100.0), "whole-pool": (whole, 0.0, None)}
    advice, cfg = _advise(_race(tmp_path, arms), {"far": arms["far"]})
    assert advice.recommendation == "far" and [b["method"] for b in advice.leaderboard] == ["far"]
    assert advice.whole_pool["records"] == 1000 and advice.whole_pool["steps"] == 13
    assert advice.whole_pool["metrics"]["gsm8k_loss"]["verdict"] == "better"  # against random
    versus = advice.whole_pool["recommended_vs_whole"]
    assert versus["method"] == "far" and versus["verdict"] == verdict
    assert versus["diff"] == pytest.approx(-0.30 - whole, abs=0.02)
    text = advice_markdown([advice], cfg, 60.0)
    assert "**All of the data** (1000 records in the same 13 optimizer steps" in text and said in text


def test_the_cli_default_guard_follows_an_explicit_target(tmp_path):
    from typer.testing import CliRunner

    from tunesift.cli import app

    result = CliRunner().invoke(app, ["advise", "pool.json", "--budget", "0.1", "--out", str(tmp_path / "o"),
                                      "--guard", "nope"])  # fmt: skip
    assert result.exit_code == 2 and "option 'guard'" in result.output


def test_a_verdict_that_holds_under_another_setting_says_so(tmp_path):
    from tunesift.eval.advise.rule import stability

    arms = {"far": (-0.30, 0.0, 100.0), "slight": (-0.03, 0.0, 1.0)}
    first, _ = _advise(_race(tmp_path, arms), arms)
    (tmp_path / "again").mkdir()
    second, _ = _advise(_race(tmp_path / "again", {"far": (-0.25, 0.0, 100.0), "slight": (-0.3, 0.0, 1.0)}), arms)
    held = stability(first, [("learning rate 1e-4", first)], "gsm8k_loss")
    assert held["holds"] and held["settings"] == ["learning rate 1e-4"] and held["flipped_by"] == []
    flipped = stability(first, [("learning rate 1e-3", second)], "gsm8k_loss")
    assert not flipped["holds"] and flipped["flipped_by"][0]["recommended"] == "slight"
    (seen,) = flipped["seen"]  # the other setting's board on the target, for advice.md
    assert seen["recommended"] == "slight" and set(seen["arms"]) == {"far", "slight"}
    assert seen["arms"]["slight"]["diff"] < seen["arms"]["far"]["diff"] < 0
    first.stability = flipped
    text = advice_markdown([first], AdviseConfig(pool="pool.json", budgets=[0.1], target="gsm8k"), 60.0)
    assert "At learning rate 1e-3 (slight recommended), gsm8k_loss against random: far -0.2" in text
