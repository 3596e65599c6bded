"""``tunesift advise`` on tiny models: a method planted to win is recommended with its reason; random-like methods
get the baseline and a plain "no method beat random"; a second run with one more method trains only its arms; the
plan; bad requests refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.data.evalsets import eval_dir
from tunesift.eval.advise.config import AdviseConfig
from tunesift.eval.advise.run import advise
from tunesift.eval.evaluation.metrics import read_alpaca_eval

TRAIN = {"template": "plain", "max_length": 96, "batch_tokens": 800, "examples_per_step": 4, "epochs": 5,
         "learning_rate": 1e-3}  # fmt: skip
EVAL = {"n_alpaca": 12, "n_gsm8k": 3, "n_mmlu": 4, "n_bbh": 2, "n_humaneval": 1, "max_length": 256}


@pytest.fixture
def planted_pool(tmp_path):
    """30 Alpaca records and the 12 AlpacaEval items the evaluation reads, whose GPT-4 answers are the longest."""
    pairs = read_alpaca_eval(eval_dir() / "alpaca_eval_805_gpt4_1106_preview.json", 12)
    records = alpaca_records(30) + [{"instruction": q, "input": "", "output": a} for q, a in pairs]
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    return path


def _config(pool: Path, tiny_model_dir: Path, tmp_path: Path, **changes) -> AdviseConfig:
    """The planted pool's winner wins by the AlpacaEval items it holds: these tests of the race's machinery keep
    them (keep_contaminated); the decontamination test below shows the default drops them. No guard: the planted
    arm wins its target, whatever the tiny model does elsewhere (the guards are tested in test_advise_rule.py)."""
    base = {"pool": str(pool), "budgets": [0.29], "methods": ["longest"], "base": str(tiny_model_dir),
            "proxy_size": 42, "random_seeds": [0, 1, 2], "train": dict(TRAIN), "eval": dict(EVAL),
            "store_dir": str(tmp_path / "scores"), "keep_contaminated": True,
            "guard": "none"}  # fmt: skip
    return AdviseConfig(**{**base, **changes})


def _quiet(message: str) -> None:
    pass


def test_a_planted_winner_is_recommended_and_a_second_run_trains_only_the_new_arm(planted_pool, tiny_model_dir,
                                                                                   tmp_path, store_dir):  # fmt: skip
    out = tmp_path / "advise"
    summary = advise(_config(planted_pool, tiny_model_dir, tmp_path), out, measure=False, log=_quiet)
    (advice,) = summary["advice"]
    assert advice["recommendation"] == "longest", advice
    assert "the largest gain over random on alpaca_eval_loss" in advice["reason"]
    assert advice["command"].startswith(f"tunesift run longest {planted_pool} --rate 0.29")
    board = {b["method"]: b for b in advice["leaderboard"]}
    assert board["longest"]["metrics"]["alpaca_eval_loss"]["verdict"] == "better"
    results = json.loads((out / "results.json").read_text())
    chosen = json.loads(Path(results["budgets"][0]["subsets"]["longest"]).read_text())
    items = {q for q, _ in read_alpaca_eval(eval_dir() / "alpaca_eval_805_gpt4_1106_preview.json", 12)}
    leaked = sum(r["instruction"] in items for r in chosen)
    assert leaked >= 10 and board["longest"]["contaminated_selected"] == leaked  # kept: its row counts them
    text = (out / "advice.md").read_text()
    assert "**Recommendation: longest**" in text and (out / "report.html").exists()
    assert "12 proxy records hold evaluation items" in text and "contaminated selected" in text
    runs = set((out / "runs").iterdir())
    said: list[str] = []
    advise(_config(planted_pool, tiny_model_dir, tmp_path), out, dry_run=True, log=said.append)
    assert said[2] == "cached: 4 of 4 fine-tunes already trained and evaluated"  # the method's and the 3 random ones
    recipe = tmp_path / "seven.yaml"
    recipe.write_text("name: seven\nsteps:\n  - select: {method: random, random_state: 7, of: pool}\n")
    again = advise(_config(planted_pool, tiny_model_dir, tmp_path, methods=["longest", str(recipe)]), out,
                   measure=False, log=_quiet)  # fmt: skip
    new = set((out / "runs").iterdir()) - runs
    assert len(new) == 1 and next(iter(new)).name.startswith("seven-s0-")  # only the new method's fine-tune
    assert {b["method"] for b in again["advice"][0]["leaderboard"]} == {"longest", "seven"}
    # --with-full: the whole proxy in the subsets' number of steps (12 of 42 records, 4 a step: 3 steps an epoch;
    # the whole pool at ceil(42 / 3) = 14 a step), and only its fine-tune is new
    full = advise(_config(planted_pool, tiny_model_dir, tmp_path, with_full=True), out, measure=False, log=_quiet)
    fresh = set((out / "runs").iterdir()) - runs - new
    assert len(fresh) == 1 and next(iter(fresh)).name.startswith("whole-pool-s0-")
    rows = {r["arm"]: r for r in json.loads((out / "results.json").read_text())["models"]}
    assert rows["whole-pool"]["n"] == 42 and rows["whole-pool"]["train_steps"] == rows["longest"]["train_steps"] == 15
    assert json.loads((next(iter(fresh)) / "run.json").read_text())["config"]["examples_per_step"] == 14
    whole = full["advice"][0]["whole_pool"]
    assert whole["records"] == 42 and whole["recommended_vs_whole"]["method"] == "longest"
    assert "**All of the data** (42 records in the same 15 optimizer steps" in (out / "advice.md").read_text()


def test_random_like_methods_get_the_baseline_and_say_so(tmp_path, tiny_model_dir, store_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{**r, "dataset": "a" if i % 3 else "b"} for i, r in enumerate(alpaca_records(40))]))
    recipe = tmp_path / "seven.yaml"
    recipe.write_text("name: seven\nsteps:\n  - select: {method: random, random_state: 7, of: pool}\n")
    config = _config(pool, tiny_model_dir, tmp_path, methods=[str(recipe), "balanced"], proxy_size=40,
                     budgets=[0.3], train={**TRAIN, "epochs": 1})  # fmt: skip
    summary = advise(config, tmp_path / "out", measure=False, log=_quiet)
    (advice,) = summary["advice"]
    assert advice["recommendation"] is None
    assert advice["reason"].startswith("no method beat random on alpaca_eval_loss")
    assert "balanced random" in advice["reason"] and advice["command"].endswith("--balance-by auto")
    assert "**No method beat random.**" in (tmp_path / "out" / "advice.md").read_text()


def test_the_plan_is_said_before_any_work_and_a_dry_run_stops_there(planted_pool, tiny_model_dir, tmp_path,
                                                                     store_dir):  # fmt: skip
    said: list[str] = []
    out = tmp_path / "advise"
    advise(_config(planted_pool, tiny_model_dir, tmp_path, methods=["longest", "ifd"],
                   scorer_model=str(tiny_model_dir)), out, dry_run=True, log=said.append)  # fmt: skip
    assert (
        said[1] == "arms: longest, ifd, random" and said[2] == "cached: 0 of 5 fine-tunes already trained and evaluated"
    )
    assert said[-1].startswith("estimate on this machine: scoring")  # N25: the estimate its help promises
    assert not out.exists() and not (tmp_path / "scores").exists()  # N25: a dry run writes nothing
    measured: list[str] = []
    from tunesift.eval.advise.config import compare_config
    from tunesift.eval.advise.plan import measure_costs, plan_lines

    config = _config(planted_pool, tiny_model_dir, tmp_path, methods=["ifd"], scorer_model=str(tiny_model_dir))
    cfg = compare_config(config, {"ifd": {"recipe": "cherry", "options": {"model": str(tiny_model_dir)}}})
    costs = measure_costs(config, cfg, out)
    assert costs["scoring"]["ifd"]["per_sample_s"] >= 0 and costs["train_step_s"] > 0
    measured = plan_lines(config, cfg, {"arms": [{"arm": "ifd", "evaluated": False, "size": 12}], "estimate": costs})
    assert measured[-1].startswith("estimate on this machine: scoring")


def test_less_is_raced_when_asked_and_its_estimate_counts_the_warm_up_once(planted_pool, tiny_model_dir, tmp_path,
                                                                           store_dir):  # fmt: skip
    """Issue 45: `advise --methods less` races LESS with the query set and the scorer model; the probe's records
    each paid the warm-up's epochs and the checkpoints' gradients, the race pays a 5 % warm-up once (at least 64
    records) and two gradients a record: the estimate says so before the race."""
    from tunesift.data.pools import read_pool
    from tunesift.eval.advise.arms import arms
    from tunesift.eval.advise.config import compare_config
    from tunesift.eval.advise.plan import measure_costs
    from tunesift.scorers.less import race_cost

    query = tmp_path / "q.json"
    query.write_text(json.dumps(alpaca_records(40)[35:37]))
    config = _config(planted_pool, tiny_model_dir, tmp_path, methods=["less"], scorer_model=str(tiny_model_dir),
                     query=[str(query)])  # fmt: skip
    chosen = arms(config, read_pool(planted_pool), tmp_path / "out")
    assert chosen["less"]["options"] == {"query": [str(query)], "model": str(tiny_model_dir)}
    assert "less" not in arms(
        _config(planted_pool, tiny_model_dir, tmp_path, methods=None, query=[str(query)]),
        read_pool(planted_pool),
        tmp_path / "out",
    )  # not on the default menu: asked for
    chosen["less"]["options"]["template"] = "alpaca"  # the tiny tokenizer has no chat template
    costs = measure_costs(config, compare_config(config, chosen), tmp_path / "out")
    assert costs["scoring"]["less"]["per_sample_s"] > 0
    # 6 gradients a probe record (4 warm-up epochs, 2 checkpoints); on 2,000 records 100 warm up, 2 a record
    load, per = race_cost(6.0, 10.0, 2000, {})
    assert (load, per) == (10.0 + 4 * 100, 2.0)
    assert race_cost(6.0, 0.0, 200, {"checkpoints": "all"}) == (0.75 * 4 * 64, 0.75 * 4)


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        (["--methods", "nope"], "methods"),
        (["--methods", "rds"], "query"),
        (["--methods", "less"], "query"),
        (["--budget", "1.5"], "budget"),
        (["--proxy-size", "500"], "proxy-size"),
        (["--random-seeds", "0"], "random-seeds"),
        (["--random-seeds", "0,0"], "random-seeds"),
        (["--train-seeds", "0"], "train-seeds"),
        (["--target", "missing.json"], "target"),
        (["--methods", "embed", "--query", "LEAK"], "query"),
        (["--budget", "0.01"], "budget"),  # N6: 0.4 of a record of the 40-record proxy
        (["--budget", "0.2,0.2"], "budget"),  # N7: the same arms twice
        (["--methods", ""], "methods"),  # N24: random against nothing
        (["--methods", "longest", "--dry-run", "--budget", "0.01"], "budget"),  # N6 in a dry run too
    ],
)
def test_bad_requests_are_one_line_exit_2_before_any_work(planted_pool, tiny_model_dir, tmp_path, flags, option):
    leak = tmp_path / "leak.json"
    pairs = read_alpaca_eval(eval_dir() / "alpaca_eval_805_gpt4_1106_preview.json", 2)
    leak.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in pairs]))
    flags = [str(leak) if f == "LEAK" else f for f in flags]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["advise", str(planted_pool), "--budget", "0.2", "--out", str(out), "--base",
                                      str(tiny_model_dir), "--proxy-size", "40", *flags])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"option '{option}'" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (out / "runs").exists()


def test_a_small_pool_is_raced_whole_without_a_proxy_size(tmp_path, tiny_model_dir, store_dir):
    """N8: every pool under 2,000 records was refused for a --proxy-size the user never gave."""
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(30)))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["advise", str(pool), "--budget", "0.2", "--out", str(out), "--base",
                                      str(tiny_model_dir), "--methods", "longest", "--dry-run"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "advise: 30 records of" in result.output and not out.exists()


def test_a_race_cannot_be_won_by_evaluation_items_in_the_pool(planted_pool, tiny_model_dir, tmp_path, store_dir):
    """The 12 AlpacaEval items planted in the pool are the longest records: longest won by them. With the check on
    (the default) they leave the race before any training: the plan and advice.md say how many, and no arm's
    subset holds one."""
    said: list[str] = []
    out = tmp_path / "advise"
    summary = advise(_config(planted_pool, tiny_model_dir, tmp_path, keep_contaminated=False), out, measure=False,
                     log=said.append)  # fmt: skip
    assert any(line.startswith("decontamination: 12 proxy records hold evaluation items (alpaca_eval: 12 of 805")
               and line.endswith("dropped from the race") for line in said), said  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["n_pool"] == 30 and results["contamination"]["dropped"] == 12
    items = {q for q, _ in read_alpaca_eval(eval_dir() / "alpaca_eval_805_gpt4_1106_preview.json", 12)}
    for subset in results["budgets"][0]["subsets"].values():
        assert not {r["instruction"] for r in json.loads(Path(subset).read_text())} & items
    assert summary["contamination"]["records"] == 12
    assert "Decontamination: 12 proxy records hold evaluation items" in (out / "advice.md").read_text()


def test_a_query_example_that_is_an_evaluation_item_is_refused_naming_both(planted_pool, tiny_model_dir, tmp_path):
    gsm = [json.loads(line)["question"] for line in (eval_dir() / "gsm8k_test.jsonl").open()][:3]
    query = tmp_path / "q.json"
    query.write_text(json.dumps([{"instruction": "Add two numbers.", "output": "x"},
                                 {"instruction": gsm[2], "output": "x"}]))  # fmt: skip
    result = CliRunner().invoke(
        app,
        [
            "advise",
            str(planted_pool),
            "--budget",
            "0.2",
            "--out",
            str(tmp_path / "o"),
            "--base",
            str(tiny_model_dir),
            "--methods",
            "bm25",
            "--query",
            str(query),
        ],
    )
    assert result.exit_code == 2, result.output
    assert f"{query}: example 1 is gsm8k item test/2" in result.output and "option 'query'" in result.output


def test_a_learning_rate_that_flips_the_verdict_is_named(planted_pool, tiny_model_dir, tmp_path, store_dir):
    """The planted winner wins at the race's learning rate (1e-3); at 3 the updates are so large that the verdict
    does not survive: the advice says so and names the setting; the plan counted the extra fine-tunes."""
    said: list[str] = []
    out = tmp_path / "advise"
    summary = advise(_config(planted_pool, tiny_model_dir, tmp_path, learning_rates=[3.0]), out, measure=False,
                     log=said.append)  # fmt: skip
    (advice,) = summary["advice"]
    assert advice["recommendation"] == "longest"
    assert advice["stability"]["holds"] is False
    assert advice["stability"]["flipped_by"][0]["setting"] == "learning rate 3"
    assert "stability: 4 more fine-tunes, every arm again at learning rate 3" in said
    assert "**Stability**: the verdict does not hold: at learning rate 3" in (out / "advice.md").read_text()
    assert json.loads((out / "results.json").read_text())["training"]["learning_rate"] == TRAIN["learning_rate"]
