"""Judge distillation (METHODS.md §22): worked examples A and B through the real code, beside an obvious one-row-at-a-
time reference; a dummy teacher that reproduces example A through the whole command; failures, gates and seeds."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from localhost import JsonServer
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.options import Option
from tunesift.scorers.base import Scorer
from tunesift.scorers.embedding import MiniLMEmbedding
from tunesift.scorers.heldout import fit_head, fold_of, metrics, rate_matched, topk_agreement


class JudgeServer(JsonServer):
    """A chat endpoint answering a judge's last message (after its system prompt) with ``reply(content)``."""

    def __init__(self, reply):
        self.reply = reply
        super().__init__()

    def answer(self, path, body):
        content = self.reply(body["messages"][-1]["content"])
        return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}


# ----- worked example A (ridge) -----

X_A = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float)
Y_A = np.array([4, 0, 3, 1], dtype=float)


def _ridge_by_hand(x, y, alpha):
    """w = (Xc'Xc + aI)^-1 Xc'yc, b = mean(y) - mean(x)'w: the intercept is not penalised."""
    xc, yc = x - x.mean(0), y - y.mean()
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return w, y.mean() - x.mean(0) @ w


@pytest.mark.parametrize(("alpha", "w"), [(1e-12, [2, 1]), (1.0, [4 / 3, 2 / 3]), (2.0, [1, 0.5])])
def test_example_a_ridge_table(alpha, w):
    head = fit_head(X_A, Y_A, "ridge", alphas=[alpha])
    np.testing.assert_allclose(head.weights, w, atol=1e-9)
    np.testing.assert_allclose(head.weights, _ridge_by_hand(X_A, Y_A, alpha)[0], atol=1e-9)
    assert head.bias == pytest.approx(2.0)


def test_example_a_predictions_and_the_rate_matched_threshold():
    head = fit_head(X_A, Y_A, "ridge", alphas=[2.0])
    pred = head.predict(X_A)
    np.testing.assert_allclose(pred, [3, 1, 2.5, 1.5])
    assert head.predict(np.array([[0.6, 0.8]]))[0] == pytest.approx(3.0)
    assert np.flatnonzero(pred >= 3).tolist() == [0]  # the raw threshold keeps too few: ridge shrinks
    p, tau = rate_matched(Y_A, 3.0, pred)
    assert p == 0.5 and tau == pytest.approx(2.0)
    assert np.flatnonzero(pred >= tau).tolist() == [0, 2]


# ----- worked example B (metrics) -----

Y_B = np.array([5, 4, 4, 3, 3, 2, 2, 1, 1, 0], dtype=float)
P_B = np.array([4.1, 3.2, 4.4, 2.9, 3.5, 2.0, 2.6, 1.2, 0.8, 1.5])


def _ranks(v):
    """Average ranks, one value at a time."""
    out = []
    for x in v:
        below = sum(1 for u in v if u < x)
        equal = sum(1 for u in v if u == x)
        out.append(below + (equal + 1) / 2)
    return np.array(out)


def _auc_by_pairs(positive, score):
    pairs = [(p, n) for p in range(len(score)) if positive[p] for n in range(len(score)) if not positive[n]]
    return sum(1.0 if score[p] > score[n] else 0.5 if score[p] == score[n] else 0.0 for p, n in pairs) / len(pairs)


def test_example_b_figures():
    m = metrics(Y_B, P_B, 4.0)
    assert m["spearman"] == pytest.approx(0.908044, abs=1e-6)
    assert m["spearman"] == pytest.approx(np.corrcoef(_ranks(Y_B), _ranks(P_B))[0, 1])
    assert m["pearson"] == pytest.approx(0.906028, abs=1e-6)
    binary = m["at_threshold"]
    assert binary["positives"] == 3 and not binary["reliable"]  # fewer than 10 positives: flagged
    assert binary["precision"] == binary["recall"] == binary["f1"] == pytest.approx(2 / 3)
    assert binary["roc_auc"] == pytest.approx(20 / 21) == _auc_by_pairs(Y_B >= 4, P_B)
    three = topk_agreement(Y_B, P_B, 3)
    assert (three["topk_overlap"], three["topk_precision"], three["random"]) == (
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
        0.3,
    )
    five = topk_agreement(Y_B, P_B, 5)
    assert five["topk_overlap"] == five["topk_precision"] == 1.0
    p, tau = rate_matched(Y_B, 4.0, P_B)
    assert p == pytest.approx(0.3) and tau == pytest.approx(3.29)
    assert np.flatnonzero(P_B >= tau).tolist() == [0, 2, 4]


def test_duplicates_never_straddle_folds():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 6, 300).astype(float)
    groups = [f"text {i % 40}" for i in range(300)]  # 40 texts, each 7 or 8 times
    folds = fold_of(y, groups, seed=0)
    for g in set(groups):
        assert len({folds[i] for i in range(300) if groups[i] == g}) == 1
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]


# ----- the whole command, with a dummy teacher and features read from the text -----

POINT = re.compile(r"x0=(-?\d+(?:\.\d+)?) x1=(-?\d+(?:\.\d+)?)")


class PointEmbedder:
    """Stands in for MiniLM: the vector of a text is the point written in it, [x0, x1]."""

    def embed(self, texts, batch_size=64):
        return np.array([[float(v) for v in POINT.search(t).groups()] for t in texts], dtype=np.float32)


@pytest.fixture
def points(monkeypatch):
    monkeypatch.setattr(MiniLMEmbedding, "load_backend", lambda self, device=None: PointEmbedder())


class Linear(Scorer):
    """The dummy teacher y = 2 + 2 x0 + x1 of the point in the instruction; ``noise`` scores at random instead, and
    ``fail_every`` fails one record in that many."""

    method = "toy-linear"
    summary = "A dummy teacher (a test method)."
    columns = ("linear",)
    options = (Option("noise", bool, False, "Random scores."), Option("fail_every", int, 0, "Fail one in N."))

    name = "toy-linear"
    result_fields = ("linear", "skip_reason")
    calls = 0

    def __init__(self, noise=False, fail_every=0):
        self.noise, self.fail_every = noise, fail_every

    @classmethod
    def build(cls, pool, executor, *, noise, fail_every):
        return cls(noise, fail_every)

    def cache_config(self):
        return {"scorer": self.name, "noise": self.noise, "fail_every": self.fail_every}

    def load_backend(self, device=None):
        return None

    def compute(self, units, backend, on_progress=None):
        out = []
        for unit in units:
            type(self).calls += 1
            x0, x1 = (float(v) for v in POINT.search(unit.payload.instruction).groups())
            copy = int(unit.payload.instruction.rsplit("#", 1)[1])
            if self.fail_every and copy % self.fail_every == 0:
                out.append(self.failure("RuntimeError: the judge is down"))
            elif self.noise:
                out.append({"linear": float(np.random.default_rng(copy * 7 + int(x0 * 3 + x1)).normal()),
                            "skip_reason": None})  # fmt: skip
            else:
                out.append({"linear": 2 + 2 * x0 + x1, "skip_reason": None})
        return out


def _pool(tmp_path, copies=13, name="pool.json"):
    """Example A's four points, ``copies`` records each (distinct texts: no duplicates)."""
    records = [{"instruction": f"Rate the point x0={x0:g} x1={x1:g} #{c}", "input": "", "output": f"answer {c}"}
               for c in range(copies) for x0, x1 in X_A]  # fmt: skip
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path, records


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_dummy_teacher_reproduces_example_a_through_the_whole_command(tmp_path, store_dir, points):
    pool, records = _pool(tmp_path)
    runner = CliRunner()
    out = tmp_path / "scores.jsonl"
    # 13 copies of each point: Xc'Xc = 26 I, so alpha 26 is example A's alpha 2
    args = ["score", "distill", str(pool), "--teacher", "toy-linear", "--alpha", "26", "--teacher-threshold", "3",
            "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = _lines(out)
    expected = {(1.0, 0.0): 3.0, (-1.0, 0.0): 1.0, (0.0, 1.0): 2.5, (0.0, -1.0): 1.5}
    for row, record in zip(rows, records, strict=True):
        x0, x1 = (float(v) for v in POINT.search(record["instruction"]).groups())
        assert row["distill"] == pytest.approx(expected[(x0, x1)])
        assert row["teacher"] == 2 + 2 * x0 + x1  # every record labelled: the pool is 52 records
        assert row["distill_pass"] == (expected[(x0, x1)] >= 2.0)  # the rate-matched tau of example A
    config = json.loads((tmp_path / "scores.jsonl.config.json").read_text())["config"]
    assert config["rate_matched"]["tau"] == pytest.approx(2.0) and config["rate_matched"]["teacher_pass_rate"] == 0.5
    assert config["evaluation"]["n"] == 52 and config["evaluation"]["spearman"] > 0.9
    assert config["cost"]["teacher_units_computed"] == 52 and config["cost"]["teacher_units_reused"] == 0
    assert "out-of-fold on 52 labelled records" in result.output
    # the threshold recipe keeps the rate-matched half: the points the teacher scores 4 and 3
    subset = tmp_path / "kept.json"
    result = runner.invoke(app, ["run", "distill-threshold", str(pool), "--teacher", "toy-linear", "--alpha", "26",
                                 "--teacher-threshold", "3", "--out", str(subset)])  # fmt: skip
    assert result.exit_code == 0, result.output
    kept = json.loads(subset.read_text())
    assert len(kept) == 26 and all(2 + 2 * float(POINT.search(r["instruction"]).group(1))
                                   + float(POINT.search(r["instruction"]).group(2)) >= 3 for r in kept)  # fmt: skip
    manifest = json.loads((tmp_path / "kept.manifest.json").read_text())
    assert manifest["scorer_config"]["evaluation"]["n"] == 52
    assert "Teacher units: 0 computed" not in result.output and "0 computed, 52 reused" in result.output


def test_a_teacher_failing_on_some_rows_is_counted_never_filled_in(tmp_path, store_dir, points):
    pool, _ = _pool(tmp_path, copies=20)
    table = api.score("distill", pool, teacher="toy-linear", teacher_options={"fail_every": 10}, alphas=[1.0])
    failed = [r for r in table.rows if r["teacher"] is None]
    assert len(failed) == 8  # copies 0 and 10 of each of the four points: 10 %
    assert all(r["distill"] is not None for r in table.rows)
    assert table.config["labelled"] == {"asked": 80, "scored": 72, "failed": 8, "failed_by_reason": {"error": 8}}
    assert table.config["evaluation"]["n"] == 72


def test_rejected_and_empty_records_stay_at_their_index_unscored(tmp_path, store_dir, points):
    _, records = _pool(tmp_path, copies=15)
    records[2] = {"instruction": 5, "output": "not a string instruction"}
    records[7] = {**records[7], "output": "  "}
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(records))
    table = api.score("distill", api.read_pool(path, on_error="skip"), teacher="toy-linear")
    assert [r["index"] for r in table.rows] == list(range(60))
    assert table.rows[2]["skip_reason"].startswith("invalid_record: instruction") and table.rows[2]["distill"] is None
    assert table.rows[7]["skip_reason"] == "empty_response" and table.rows[7]["distill"] is None
    assert table.config["n_label"] == 58 and sum(r["distill"] is not None for r in table.rows) == 58
    assert 2 not in api.select(table, "top", api.Budget(count=58)).indices


def test_the_sample_is_seeded_and_the_same_seed_gives_identical_columns(tmp_path, store_dir, points):
    pool, _ = _pool(tmp_path, copies=30)
    runner = CliRunner()
    outs = []
    for n, seed in enumerate([4, 4, 5]):
        out = tmp_path / f"s{n}.jsonl"
        result = runner.invoke(app, ["score", "distill", str(pool), "--teacher", "toy-linear", "--n-label", "60",
                                     "--seed", str(seed), "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    labelled = [{r["index"] for r in _lines(o) if r["teacher"] is not None} for o in outs]
    assert len(labelled[0]) == 60 and labelled[0] != labelled[2]
    expected = sorted(np.random.default_rng(4).permutation(120)[:60].tolist())
    assert sorted(labelled[0]) == expected


def test_the_gate_refuses_a_head_that_does_not_reproduce_a_noise_teacher(tmp_path, store_dir, points):
    pool, _ = _pool(tmp_path, copies=20)
    out = tmp_path / "scores.jsonl"
    runner = CliRunner()
    args = ["score", "distill", str(pool), "--teacher", "toy-linear", "--teacher-option", "noise=true", "--out",
            str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "nothing was written" in result.output and not out.exists()
    assert "Spearman" in result.output
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0 and "--force" in result.output and out.exists()


def test_an_endpoint_teacher_through_a_localhost_server(tmp_path, store_dir, points):
    def reply(content):
        if not POINT.search(content):
            return "OK"  # the probe before any work
        x0, x1 = (float(v) for v in POINT.search(content).groups())
        return f"Score: {2 + x0 + x1:g}\nA fine answer."

    server = JudgeServer(reply)
    try:
        pool, _ = _pool(tmp_path, copies=15)
        options = {"base_url": server.url, "model": "judge"}
        table = api.score("distill", pool, teacher="alpagasus", teacher_options=options, n_label=50,
                          teacher_threshold=3.0)  # fmt: skip
        assert server.requests >= 50 and table.config["cost"]["teacher_units_computed"] == 50
        assert sum(r["teacher"] is not None for r in table.rows) == 50
        assert table.config["teacher_config"]["scorer"] == "alpagasus"
        before = server.requests
        again = api.score("distill", pool, teacher="alpagasus", teacher_options=options, n_label=50,
                          teacher_threshold=3.0)  # fmt: skip
        assert server.requests == before  # a rerun pays for no teacher call
        assert again.config["cost"]["teacher_units_reused"] == 50
        assert [r["distill"] for r in again.rows] == [r["distill"] for r in table.rows]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--teacher", "no-such"], "option 'teacher': unknown method 'no-such'"),
        (["--teacher", "toy-linear", "--teacher-option", "colour=red"], "has no option 'colour'"),
        (["--teacher", "distill"], "its own teacher"),
        (["--teacher", "toy-linear", "--n-label", "49"], "at least 50"),
        (["--teacher", "toy-linear", "--n-label", "53"], "more than the pool's 52"),
        (["--teacher", "toy-linear", "--seed", "-1"], "option 'seed': must be at least 0"),  # P10: a numpy ValueError
        (["--teacher", "toy-linear", "--teacher-threshold", "nan"], "option 'teacher-threshold': must be a finite"),
        (["--teacher", "bm25"], "option 'teacher-option query': teacher 'bm25'"),  # P16: named "--query FILE on run"
        (["--teacher", "toy-linear", "--teacher-option", "fail_every=x"], "option 'teacher-option fail_every'"),
        ([], "needs a teacher"),
    ],
)
def test_bad_input_is_one_line_and_nothing_written(tmp_path, store_dir, points, args, says):
    pool, _ = _pool(tmp_path)
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["score", "distill", str(pool), *args, "--out", str(out)])
    assert result.exit_code == 2 and says in result.output, result.output
    assert not out.exists()


def test_a_teacher_whose_every_call_fails_writes_nothing(tmp_path, store_dir, points):
    server = JudgeServer(lambda content: "I cannot rate this.")
    try:
        pool, _ = _pool(tmp_path)
        out = tmp_path / "scores.jsonl"
        result = CliRunner().invoke(app, ["score", "distill", str(pool), "--teacher", "alpagasus", "--teacher-option",
                                          f"base_url={server.url}", "--teacher-option", "model=judge", "--out",
                                          str(out)])  # fmt: skip
        assert result.exit_code == 2 and "failed" in result.output and not out.exists()
    finally:
        server.close()


def test_the_report_shows_the_held_out_figures(tmp_path, store_dir, points):
    pool, _ = _pool(tmp_path)
    scores = tmp_path / "scores.jsonl"
    api.write_scores(scores, api.score("distill", pool, teacher="toy-linear", alphas=[26.0], teacher_threshold=3.0))
    out = tmp_path / "report.md"
    result = CliRunner().invoke(
        app, ["report", str(pool), "--scores", str(scores), "--out", str(out), "--format", "md"]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "## Distilled judge" in text and "Distilled from toy-linear: 52 records labelled, 52 used" in text
    assert "Out of fold: Spearman" in text and "Unreliable" not in text.split("## Distilled judge")[1].split("Top-k")[0]


def test_advise_races_a_distilled_judge_when_the_user_names_a_teacher(tmp_path):
    from tunesift.eval.advise.arms import arms
    from tunesift.eval.advise.config import AdviseConfig
    from tunesift.eval.advise.rule import _command

    config = AdviseConfig(pool="pool.json", budgets=[0.1], methods=["distill:toy-linear"], proxy_size=400,
                          teacher_options=["fail_every=7"])  # fmt: skip
    spec = arms(config, [], tmp_path)["distill:toy-linear"]
    assert spec == {"recipe": "distill", "options": {"teacher": "toy-linear", "teacher_options": {"fail_every": 7},
                                                    "n_label": 100, "force": True}}  # fmt: skip
    command = _command(spec, "pool.json", 0.1, config)
    assert command.endswith("--teacher toy-linear --teacher-option fail_every=7 --n-label 100 --force")
    for methods, says in ((["distill:"], "name the teacher"), (["distill:no-such"], "unknown method"),
                          (["distill:toy-linear"], "as many more")):  # fmt: skip
        small = AdviseConfig(pool="p", budgets=[0.1], methods=methods, proxy_size=60)
        with pytest.raises(Exception, match=says):
            arms(small, [], tmp_path)


def test_an_output_never_overwrites_a_file_the_teacher_reads(tmp_path, store_dir):
    pool, _ = _pool(tmp_path)
    query = tmp_path / "query.json"
    query.write_text(json.dumps([{"instruction": "Rate the point", "output": "ok"}]))
    before = query.read_bytes()
    result = CliRunner().invoke(app, ["score", "distill", str(pool), "--teacher", "bm25", "--teacher-option",
                                      f"query={query}", "--out", str(query)])  # fmt: skip
    assert result.exit_code == 2 and "--teacher-option query" in result.output, result.output
    assert query.read_bytes() == before


def test_a_failed_distill_threshold_leaves_an_earlier_subset_in_place(tmp_path, store_dir, points):
    """Issue 42 P1: --teacher-threshold nan ran the teacher, replaced the subset with [] and then failed on the
    manifest. A non-finite threshold is now refused before any work, and nothing is written."""
    pool, _ = _pool(tmp_path)
    out = tmp_path / "kept.json"
    out.write_text('["an earlier subset"]')
    calls = Linear.calls
    result = CliRunner().invoke(app, ["run", "distill-threshold", str(pool), "--teacher", "toy-linear",
                                      "--teacher-threshold", "nan", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and "must be a finite number" in result.output, result.output
    assert Linear.calls == calls and out.read_text() == '["an earlier subset"]'
    assert not (tmp_path / "kept.manifest.json").exists()


class Verdict(Linear):
    """A pass/fail teacher on AlpaGasus' scale: 5 where x0 >= 0.9, else 2 (a tenth of the pool passes); its recipe
    keeps >= 4.5."""

    method = "toy-verdict"
    name = "toy-verdict"
    columns = subset_columns = ("verdict",)
    result_fields = ("verdict", "skip_reason")
    pass_threshold = 4.5

    def compute(self, units, backend, on_progress=None):
        out = []
        for unit in units:
            x0 = float(POINT.search(unit.payload.instruction).group(1))
            out.append({"verdict": 5.0 if x0 >= 0.9 else 2.0, "skip_reason": None})
        return out


def test_a_two_valued_teacher_is_measured_at_its_recipe_threshold_and_gated_on_auc(tmp_path, store_dir, points):
    """Issue 42 P22: the figures were taken at the top 20 % quantile, which for a teacher passing a tenth is its
    lowest score (every row positive, AUC undefined), and the head was gated on Spearman, which ties bound."""
    records = [{"instruction": f"Rate the point x0={k / 100:g} x1={(k * 37 % 11) / 10:g} #{k}", "input": "",
                "output": f"answer {k}"} for k in range(100)]  # fmt: skip
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["score", "distill", str(pool), "--teacher", "toy-verdict", "--out", str(out)])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "scores.jsonl.config.json").read_text())["config"]["evaluation"]
    binary = evaluation["at_threshold"]
    assert binary["threshold"] == 4.5 and evaluation["threshold_source"] == "the teacher's recipe"
    assert binary["positives"] == 10 and binary["roc_auc"] > 0.9
    assert evaluation["gate"]["figure"] == "roc_auc" and evaluation["gate"]["value"] == binary["roc_auc"]
    assert "at 4.5:" in result.output


def test_the_figures_threshold_is_never_the_lowest_score():
    from tunesift.scorers.distill import figure_threshold, gate_figure

    y = np.array([2.0] * 9 + [5.0])
    assert figure_threshold(y, None, None) == (5.0, "median, raised above the lowest score")
    assert figure_threshold(y, 3.0, 4.5) == (3.0, "teacher_threshold")
    assert figure_threshold(np.array([1.0, 2.0, 3.0, 4.0]), None, None) == (2.5, "median")
    assert gate_figure(y) == "roc_auc" and gate_figure(np.array([0.0, 1, 2, 3])) == "spearman"


def test_an_undefined_figure_says_why(capsys):
    """Issue 42 P21: "undefined (a constant score)" where the head merely called no row positive."""
    from tunesift.scorers.distill import _say_figures

    binary = {"threshold": 4.5, "positives": 3, "precision": None, "recall": 0.0, "f1": None, "roc_auc": 0.7,
              "reliable": False}  # fmt: skip
    _say_figures({"n": 60, "spearman": 0.2, "pearson": 0.2, "at_threshold": binary, "top_k": {},
                  "learning_curve": []}, "judge")  # fmt: skip
    line = next(x for x in capsys.readouterr().err.splitlines() if "at 4.5" in x)
    assert "precision undefined (no row predicted positive)" in line and "a constant score" not in line
    assert "F1 undefined (no row predicted positive)" in line
