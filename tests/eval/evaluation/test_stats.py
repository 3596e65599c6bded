"""The paired bootstrap against hand-computed cases, and verdicts on real fine-tunes: a model trained on the
evaluation items is better, two random subsets are not distinguishable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import alpaca_records
from scipy.stats import binom

from tunesift.eval.evaluation.stats import paired_bootstrap, verdict


def test_exact_distribution_of_a_hand_case():
    """Accuracy, 20 items: A is right on 15 where B is wrong, both right or both wrong elsewhere (so the
    per-item difference is 1 on 15 items, 0 on 5). A resample's mean difference is Binomial(20, 0.75) / 20:
    its 2.5 % and 97.5 % points are 11/20 = 0.55 and 18/20 = 0.90 by hand (scipy's binom.ppf), both above
    zero: better."""
    a = [[1.0] * 15 + [1.0, 1.0, 0.0, 0.0, 1.0]]
    b = [[0.0] * 15 + [1.0, 1.0, 0.0, 0.0, 1.0]]
    got = paired_bootstrap(a, b, [1.0] * 20, higher_is_better=True, n_boot=20000, seed=7)
    assert got.diff == pytest.approx(0.75)
    assert binom.ppf(0.025, 20, 0.75) / 20 == 0.55 and binom.ppf(0.975, 20, 0.75) / 20 == 0.9
    assert got.low == pytest.approx(0.55, abs=0.05 + 1e-9) and got.high == pytest.approx(0.9, abs=0.05 + 1e-9)
    assert got.verdict == "better" and got.n_items == 20
    # the same numbers as a loss (lower is better): A's higher value makes it worse
    assert paired_bootstrap(a, b, [1.0] * 20, higher_is_better=False, n_boot=2000, seed=7).verdict == "worse"


def test_a_small_symmetric_case_is_not_distinguishable():
    """Four items, per-item differences (1, 0, 1, 0): the resampled mean difference is Binomial(4, 0.5) / 4,
    which is 0 with probability 1/16 > 2.5 %: the interval reaches zero."""
    a = [[1.0, 0.0, 1.0, 1.0]]
    b = [[0.0, 0.0, 0.0, 1.0]]
    got = paired_bootstrap(a, b, [1.0] * 4, higher_is_better=True, n_boot=20000, seed=1)
    assert got.low == 0.0 and got.high == 1.0 and got.diff == 0.5
    assert got.verdict == "not distinguishable"


def test_a_constant_shift_of_a_token_weighted_loss_is_exact():
    """Losses as (NLL sum, tokens): A's NLL is B's plus 0.1 per token on every item, so every resample's
    difference is -0.1 exactly, whatever the items' lengths."""
    tokens = [3.0, 10.0, 1.0, 7.0, 4.0]
    b = [[2.0, 31.0, 0.5, 9.0, 6.0]]
    a = [[x - 0.1 * t for x, t in zip(b[0], tokens, strict=True)]]
    got = paired_bootstrap(a, b, tokens, higher_is_better=False, n_boot=500)
    assert got.diff == pytest.approx(-0.1) and got.low == pytest.approx(-0.1) and got.high == pytest.approx(-0.1)
    assert got.verdict == "better"


def test_models_of_an_arm_are_pooled_and_skipped_items_left_out():
    """Two random seeds for B: the point estimate is A minus the mean of B's seeds; an item a model skipped
    (None) is left out for every model, and the ratio is over the remaining items' denominators."""
    den = [2.0, 2.0, 4.0]
    a = [[1.0, 1.0, None]]
    b = [[2.0, 0.0, 5.0], [0.0, 2.0, 1.0]]
    got = paired_bootstrap(a, b, den, higher_is_better=True, n_boot=300)
    mean_b = np.mean([(2.0 + 0.0) / 4, (0.0 + 2.0) / 4])
    assert got.diff == pytest.approx(2.0 / 4 - mean_b) and got.n_items == 2 and got.n_b == 2


def test_verdict_rule():
    assert verdict(0.01, 0.2, True) == "better" and verdict(0.01, 0.2, False) == "worse"
    assert verdict(-0.3, -0.1, True) == "worse" and verdict(-0.3, -0.1, False) == "better"
    assert verdict(-0.1, 0.1, True) == "not distinguishable" and verdict(0.0, 0.0, False) == "not distinguishable"


def test_a_model_trained_on_the_evaluation_items_is_better_two_random_subsets_are_not(
    tmp_path, tiny_model_dir, store_dir
):
    """Real fine-tunes of the tiny model, evaluated by AlpacaEval response loss on 12 items: one arm trained on
    those very items (five epochs) against random subsets of an Alpaca pool: better. Two random subsets
    against each other (two seeds each, pooled): not distinguishable."""
    from tunesift.data.evalsets import eval_dir
    from tunesift.eval.compare.intervals import intervals
    from tunesift.eval.evaluation.metrics import read_alpaca_eval
    from tunesift.eval.evaluation.suite import EvalSettings, evaluate, headline, result_path
    from tunesift.eval.training.train import TrainConfig, train

    settings = EvalSettings(template="plain", n_alpaca=12, n_gsm8k=2, n_mmlu=2, n_bbh=2, n_humaneval=1,
                            max_length=256)  # fmt: skip
    pairs = read_alpaca_eval(eval_dir() / "alpaca_eval_805_gpt4_1106_preview.json", 12)
    cheat = tmp_path / "cheat.json"
    cheat.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in pairs]))
    pool = alpaca_records(60)
    rows = []
    for name, data, epochs, seed in [("cheat", cheat, 5, 0), *[(f"random-{s}", None, 1, s) for s in range(4)]]:
        if data is None:
            picked = np.random.default_rng(seed).choice(len(pool), 12, replace=False)
            data = tmp_path / f"{name}.json"
            data.write_text(json.dumps([pool[i] for i in picked]))
        cfg = TrainConfig(base=str(tiny_model_dir), template="plain", max_length=96, epochs=epochs, seed=seed,
                          examples_per_step=4, learning_rate=1e-3)  # fmt: skip
        run = tmp_path / "runs" / name
        train(data, run, cfg)
        evaluate(run, "cpu", settings)
        scores = json.loads(result_path(run, "cpu", settings).read_text())
        rows.append({"budget": "b", "arm": name.split("-")[0] if name != "cheat" else "cheat", "seed": seed,
                     "eval_file": str(result_path(run, "cpu", settings)), **headline(scores)})  # fmt: skip
    cheat_row, randoms = rows[0], rows[1:]
    found = intervals({"budgets": [{"budget": "b"}], "models": [cheat_row, *randoms]}, n_boot=2000)
    loss = next(i for i in found if i["metric"] == "alpaca_eval_loss" and i["against"] == "random")
    assert loss["diff"] < 0 and loss["verdict"] == "better", loss
    # two random arms against each other: seeds 0-1 play the method, seeds 2-3 are random
    fake = [{**r, "arm": "random-a"} for r in randoms[:2]] + randoms[2:]
    found = intervals({"budgets": [{"budget": "b"}], "models": fake}, n_boot=2000)
    loss = next(i for i in found if i["metric"] == "alpaca_eval_loss")
    assert loss["verdict"] == "not distinguishable", loss
