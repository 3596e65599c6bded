"""The comparison protocol: equal sizes and equal steps, every cached artifact keyed by what produced it,
intervals and verdicts that can tell a better model from noise, a budget sweep, the winning rate against
full data with a judge on localhost, and bad configs refused before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import alpaca_records
from localhost import JsonServer
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.eval.compare.config import CompareConfig, load_config, validate
from tunesift.eval.compare.run import compare
from tunesift.eval.compare.view import html, table
from tunesift.eval.evaluation.suite import SUITES

EVAL = {"n_alpaca": 4, "n_gsm8k": 3, "n_mmlu": 4, "n_bbh": 2, "n_humaneval": 1, "max_length": 256}
TRAIN = {"template": "plain", "max_length": 96, "batch_tokens": 600, "examples_per_step": 2}


def _config(tmp_path: Path, tiny_model_dir: Path, **changes) -> CompareConfig:
    pool = tmp_path / "pool.json"
    if not pool.exists():
        pool.write_text(json.dumps(alpaca_records(40)))
    base = {"pool": str(pool), "pool_size": 30, "budget": {"count": 6}, "base": str(tiny_model_dir),
            "train": dict(TRAIN), "methods": {"longest": {"recipe": "longest"}}, "random_seeds": [0, 1],
            "full": False, "floor": False, "eval": dict(EVAL)}  # fmt: skip
    return CompareConfig(**{**base, **changes})


def _quiet(message: str) -> None:
    pass


def test_compare_cli_end_to_end_and_resume(tmp_path, tiny_model_dir, store_dir):
    raw = {"pool": "pool.json", "pool_size": 30, "budget": {"count": 6}, "base": str(tiny_model_dir),
           "train": TRAIN, "methods": {"longest": {"recipe": "longest"}}, "random_seeds": [0, 1], "full": True,
           "eval": EVAL, "n_boot": 200}  # fmt: skip
    (tmp_path / "pool.json").write_text(json.dumps(alpaca_records(40)))
    (tmp_path / "cmp.yaml").write_text(json.dumps(raw))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "cmp.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    rows = results["models"]
    assert [(r["budget"], r["arm"], r["n"]) for r in rows] == [
        ("n6", "longest", 6), ("n6", "random", 6), ("n6", "random", 6), ("full", "full", 30),
        ("base", "base (untuned)", 0)]  # fmt: skip
    assert {r["train_steps"] for r in rows[:3]} == {3}  # 6 samples, 2 per step, whatever their lengths
    longest = json.loads(Path(results["budgets"][0]["subsets"]["longest"]).read_text())
    pool = json.loads(Path(results["pool"]).read_text())
    assert sorted(len(r["output"]) for r in longest) == sorted(len(r["output"]) for r in pool)[-6:]
    # every method against random and full, every metric, with an interval around the difference
    found = {(i["method"], i["against"], i["metric"]) for i in results["intervals"]}
    assert found == {("longest", a, m) for a in ("random", "full") for m in SUITES["cpu"]}  # BBH and HumanEval too
    assert all(i["low"] <= i["diff"] <= i["high"] or i["low"] == i["high"] for i in results["intervals"])
    text = (out / "results.md").read_text()
    assert "examples per optimizer step" in text and "Against random" in text and "Against full" in text
    assert (out / "results.png").stat().st_size and "<table>" in (out / "report.html").read_text()
    run = Path(rows[0]["run"])
    first = (run / "run.json").stat().st_mtime
    again = CliRunner().invoke(app, ["compare", str(tmp_path / "cmp.yaml"), "--out", str(out)])
    assert again.exit_code == 0 and (run / "run.json").stat().st_mtime == first  # resumed, nothing retrained
    # The scores were taken from the tuned model in memory; the model written to disk gives the same.
    from tunesift.eval.evaluation.suite import EvalSettings, evaluate, headline

    in_memory = json.loads(Path(rows[0]["eval_file"]).read_text())
    Path(rows[0]["eval_file"]).rename(run / "kept.json")
    from_disk = evaluate(run, "cpu", EvalSettings(template="plain", **EVAL))
    assert headline(from_disk) == pytest.approx(headline(in_memory), rel=1e-6)


def test_a_changed_setting_is_never_served_from_the_cache(tmp_path, tiny_model_dir, store_dir):
    """Sampled pool, subsets, training runs and evaluations: each is recomputed when what produced it changes,
    and the earlier artifact stays where it was."""
    out = tmp_path / "out"
    first = compare(_config(tmp_path, tiny_model_dir, intervals=False, random_seeds=[0]), out, log=_quiet)

    def files(pattern: str) -> set[str]:
        return {p.name for p in out.glob(pattern)}

    pools, runs = files("pool-*.json"), files("runs/*")
    evals = {p.name for p in out.glob("runs/*/eval-*.json")}
    # the sampled pool: another seed draws another pool, and every subset and run follows it
    compare(_config(tmp_path, tiny_model_dir, intervals=False, random_seeds=[0], pool_seed=1), out, log=_quiet)
    assert len(files("pool-*.json") - pools) == 1 and pools <= files("pool-*.json")
    # a subset: an edited recipe file is another recipe, so another subset file
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("name: mine\nsteps:\n  - select: {method: random, random_state: 5, of: pool}\n")
    compare(_config(tmp_path, tiny_model_dir, intervals=False, random_seeds=[0],
                    methods={"mine": {"recipe": str(recipe)}}), out, log=_quiet)  # fmt: skip
    before = files("subsets/*.json")
    recipe.write_text("name: mine\nsteps:\n  - select: {method: random, random_state: 6, of: pool}\n")
    compare(_config(tmp_path, tiny_model_dir, intervals=False, random_seeds=[0],
                    methods={"mine": {"recipe": str(recipe)}}), out, log=_quiet)  # fmt: skip
    assert [n for n in files("subsets/*.json") - before if n.startswith("mine-")]
    # a training run: another learning rate is another run folder, the first one untouched
    before_runs = files("runs/*")
    changed = compare(_config(tmp_path, tiny_model_dir, intervals=False, random_seeds=[0],
                              train={**TRAIN, "learning_rate": 1e-2}), out, log=_quiet)  # fmt: skip
    assert {Path(r["run"]).name for r in changed["models"]}.isdisjoint(runs | before_runs)
    assert runs <= files("runs/*")
    assert {r["train_steps"] for r in changed["models"]} == {r["train_steps"] for r in first["models"]}
    # an evaluation: other settings write another file beside the first, in the same run folder
    again = compare(_config(tmp_path, tiny_model_dir, intervals=False, random_seeds=[0],
                            eval={**EVAL, "n_alpaca": 3}), out, log=_quiet)  # fmt: skip
    assert [r["run"] for r in again["models"]] == [r["run"] for r in first["models"]]  # no retraining
    assert len({p.name for p in out.glob("runs/*/eval-*.json")} - evals) == 1
    first_run = Path(first["models"][0]["run"])
    assert Path(first["models"][0]["eval_file"]).name in {p.name for p in first_run.glob("eval-*.json")}
    after = json.loads(Path(again["models"][0]["eval_file"]).read_text())
    assert after["alpaca_eval_loss"]["n"] == 3


def test_train_refuses_a_finished_run_with_another_config(tmp_path, tiny_model_dir):
    from tunesift.errors import ConfigError
    from tunesift.eval.training.train import TrainConfig, train

    (tmp_path / "pool.json").write_text(json.dumps(alpaca_records(6)))
    cfg = TrainConfig(base=str(tiny_model_dir), template="plain", max_length=64, examples_per_step=3)
    train(tmp_path / "pool.json", tmp_path / "run", cfg)
    with pytest.raises(ConfigError, match=r"finished run with another configuration \(learning_rate\)"):
        train(tmp_path / "pool.json", tmp_path / "run", TrainConfig(**{**cfg.__dict__, "learning_rate": 1e-3}))


def test_a_short_method_shrinks_every_arm_to_the_common_size(tmp_path, tiny_model_dir, store_dir):
    """A filter leaves fewer records than the budget: every arm is compared at the smaller size, and it says so."""
    recipe = tmp_path / "short.yaml"
    recipe.write_text("name: short\nsteps:\n  - filter: \"response_chars <= 40\"\n"
                      "  - rank: {by: response_chars, order: desc}\n"
                      "  - select: {method: top, of: candidates}\n")  # fmt: skip
    pool = json.loads(json.dumps(alpaca_records(40)))
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    said: list[str] = []
    results = compare(_config(tmp_path, tiny_model_dir, methods={"short": {"recipe": str(recipe)}}, intervals=False,
                              budget={"count": 12}, pool_size=None), tmp_path / "out", log=said.append)  # fmt: skip
    kept = sum(len(r["output"]) <= 40 for r in pool)
    assert 0 < kept < 12
    assert {r["n"] for r in results["models"]} == {kept}
    assert results["budgets"][0]["short"] == {"short": kept} and results["budgets"][0]["size"] == kept
    assert any("common size" in m for m in said)
    assert f"asked 12; short kept {kept}" in table(results)


def test_budget_sweep_caches_points_and_draws_the_curve(tmp_path, tiny_model_dir, store_dir):
    out = tmp_path / "out"
    one = compare(_config(tmp_path, tiny_model_dir, budget=None, budgets=[0.2], n_boot=200), out, log=_quiet)
    runs = {r["run"] for r in one["models"]}
    two = compare(_config(tmp_path, tiny_model_dir, budget=None, budgets=[0.2, 1.0], n_boot=200, full=True), out,
                  log=_quiet)  # fmt: skip
    assert runs <= {r["run"] for r in two["models"]}
    trained = {r["run"] for r in two["models"]} - runs
    # budget 1.0: every arm is the whole pool, so it shares the full-data runs (seeds 0 and 1): 2 new runs
    assert len(trained) == 2 and all(Path(r).name.startswith("full-") for r in trained)
    sizes = {b["budget"]: b["size"] for b in two["budgets"]}
    assert sizes == {"0.2": 6, "1": 30}
    page = html(two)
    assert page.count("<img") == 3  # the curve and one bar plot per budget


class LengthJudge(JsonServer):
    """Answers as the Vicuna judge prompt asks: two scores on the first line, here from the answers' lengths."""

    def answer(self, path, body):
        text = body["messages"][1]["content"]
        first = text.split("[The Start of Assistant 1's Answer]\n", 1)[1].split("\n\n[The End", 1)[0]
        second = text.split("[The Start of Assistant 2's Answer]\n", 1)[1].split("\n\n[The End", 1)[0]
        content = f"{len(first) % 11} {len(second) % 11}\nlength decides"
        return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}


def test_winning_rate_against_full_data_with_a_judge_on_localhost(tmp_path, tiny_model_dir, store_dir):
    server = LengthJudge()
    try:
        results = compare(_config(tmp_path, tiny_model_dir, full=True, n_boot=200,
                                  judge={"model": "judge", "base_url": server.url, "n": 3}), tmp_path / "out",
                          log=_quiet)  # fmt: skip
    finally:
        server.close()
    assert server.requests == 2 * 3 * 2  # two models against full, three questions, both orders
    winning = results["winning"]
    assert [(w["method"], w["n"]) for w in winning] == [("longest", 3), ("random", 3)]
    for w in winning:
        assert w["wins"] + w["ties"] + w["losses"] + w["unjudged"] == 3
        judged = w["wins"] + w["ties"] + w["losses"]
        assert w["winning_score"] == pytest.approx((w["wins"] - w["losses"]) / judged + 1)
        assert w["wins_share"] + w["ties_share"] + w["losses_share"] == pytest.approx(1.0)
    assert "Winning rate against the full-data model" in table(results)
    runs = {Path(r["run"]) for r in results["models"] if r["budget"] == "full"}
    assert all(list(r.glob("answers-*.json")) for r in runs)  # the full model answered once, for both


@pytest.mark.parametrize(
    ("changes", "key"),
    [({"methods": {"nope": {"recipe": "no-such-recipe"}}}, "methods.nope.recipe"),
     ({"budget": {"rate": 1.5}}, "budget.rate"),
     ({"budget": {"rate": 0}}, "budget.rate"),
     ({"budget": None, "budgets": [0.1, 1.2]}, "budgets"),
     ({"budget": None, "budgets": [0.0]}, "budgets"),
     ({"budget": None, "budgets": [0.25, 0.25]}, "budgets"),  # N7: the same arms twice
     ({"random_seeds": [0]}, "random_seeds"),
     ({"random_seeds": [0, 0]}, "random_seeds"),
     ({"pool_size": 0}, "pool_size"),
     ({"eval": {**EVAL, "n_alpaca": 0}}, "eval.n_alpaca"),
     ({"eval": {**EVAL, "max_length": 2}}, "eval.n_alpaca"),
     ({"judge": {"model": "j"}}, "judge"),
     ({"train": {**TRAIN, "examples_per_step": 0}}, "train"),
     ({"train_seeds": 0}, "train_seeds"),
     ({"budget": {"rate": "x"}}, "budget.rate"), ({"budget": {"count": 2.5}}, "budget.count"),
     ({"random_seeds": "x"}, "random_seeds"), ({"random_seeds": [0, "a"]}, "random_seeds"),
     ({"train": {**TRAIN, "epochs": "x"}}, "train.epochs"), ({"train": {**TRAIN, "lora_dropout": "x"}}, "train"),
     ({"eval": {**EVAL, "n_alpaca": "x"}}, "eval.n_alpaca"), ({"full": "maybe"}, "full"),
     ({"full_equal_steps": "yes"}, "full_equal_steps"), ({"eval": {**EVAL, "n_bbh": 0}}, "eval.n_bbh"),
     ({"eval": {**EVAL, "n_humaneval": "x"}}, "eval.n_humaneval"),
     ({"n_boot": "lots"}, "n_boot")],
)  # fmt: skip
def test_bad_configs_are_refused_before_training(tmp_path, tiny_model_dir, changes, key):
    from tunesift.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate(_config(tmp_path, tiny_model_dir, **changes))
    assert err.value.option.startswith(key)
    assert "\n" not in str(err.value)


def test_methods_that_are_no_mapping_are_one_line(tmp_path, tiny_model_dir):
    (tmp_path / "pool.json").write_text(json.dumps(alpaca_records(10)))
    (tmp_path / "cmp.yaml").write_text(json.dumps({"pool": "pool.json", "budget": {"rate": 0.5},
                                                   "base": str(tiny_model_dir), "methods": ["cherry"]}))  # fmt: skip
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "cmp.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "option 'methods'" in result.output and not (tmp_path / "out").exists()


def test_bad_config_exits_2_naming_the_key_with_nothing_trained(tmp_path, tiny_model_dir):
    (tmp_path / "pool.json").write_text(json.dumps(alpaca_records(10)))
    (tmp_path / "cmp.yaml").write_text(json.dumps({"pool": "pool.json", "budget": {"rate": 0.5},
                                                   "base": str(tiny_model_dir), "random_seeds": [3]}))  # fmt: skip
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "cmp.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "random_seeds" in result.output
    assert not (tmp_path / "out").exists()
    assert load_config(tmp_path / "cmp.yaml").random_seeds == [3]


@pytest.mark.parametrize(
    ("changes", "key"),
    [({"pool_size": 50}, "pool_size"), ({"eval": {"n_alpaca": 0}}, "eval"),
     ({"budget": {"rate": 0.05}}, "budget")],  # N17: 0.5 of a record left out/pool-*.json behind
)  # fmt: skip
def test_a_config_refused_at_run_time_leaves_no_out_folder(tmp_path, tiny_model_dir, changes, key):
    """pool_size beyond the pool is refused (it was used silently); nothing is left behind, not even --out."""
    (tmp_path / "pool.json").write_text(json.dumps(alpaca_records(10)))
    config = {"pool": "pool.json", "budget": {"rate": 0.5}, "base": str(tiny_model_dir), "random_seeds": [0, 1],
              **changes}  # fmt: skip
    (tmp_path / "cmp.yaml").write_text(json.dumps(config))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "cmp.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and key in result.output
    assert not (tmp_path / "out").exists()
