"""SelectIT pinned to METHODS.md §3: worked examples, and an obvious full-vocabulary reference."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import alpaca_records, make_llama
from reference import reference_probs
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.schemas import record_to_sample
from tunesift.errors import ConfigError
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.selectit import (
    SelectITConfig,
    SelectITRater,
    load_prompts,
    model_level,
    score_token_ids,
    sentence_level,
    token_level,
)

# ---- worked examples and formulas ----


def test_token_level_worked_example():
    assert token_level((0.05, 0.10, 0.50, 0.25, 0.10)) == pytest.approx(1.125, abs=1e-12)


def test_token_level_authors_code_rule_squashes():
    p = np.array([0.05, 0.10, 0.50, 0.25, 0.10])
    q = np.exp(p) / np.exp(p).sum()
    want = 3 * (5 * q.max() - 1) / 4
    assert token_level(p, "authors-code") == pytest.approx(want, abs=1e-12)
    assert 0.23 < want < 0.26  # "about 0.24"


def test_token_level_ties_take_the_lowest_score():
    # scores 2 and 4 tie at 0.4: S_base = 2
    assert token_level((0.1, 0.4, 0.05, 0.4, 0.05)) == pytest.approx(2 * (5 * 0.4 - 1) / 4)
    assert token_level((0.2,) * 5) == pytest.approx(0.0)  # all equal: no confidence


def test_sentence_level_uses_population_std():
    s = [1.0, 2.0, 3.0, 4.0]
    mean, std = 2.5, math.sqrt(sum((x - 2.5) ** 2 for x in s) / 4)
    assert sentence_level(s, alpha=0.2) == pytest.approx(mean / (1 + 0.2 * std))
    assert sentence_level([1.7], alpha=0.2) == pytest.approx(1.7)


def test_model_level_worked_example():
    assert model_level([1.59, 2.13, 1.89], [7e9, 13e9, 70e9]) == pytest.approx(1.90, abs=0.005)
    assert model_level([1.59, 2.13, 1.89], [7e9, 13e9, 70e9]) == pytest.approx(171.12 / 90, abs=1e-9)


def test_packaged_prompts_are_five_distinct_sentences():
    prompts = load_prompts()
    assert len(prompts) == 5 == len(set(prompts))
    assert all("1" in p and "5" in p for p in prompts)


def test_score_digit_that_is_not_one_token_is_an_error():
    def encode(text, add_special_tokens=True):  # a backend whose tokenizer merges "1" into two tokens
        return {"\n": [7], "\n1": [7, 8, 9]}.get(text, [7, 10])

    with pytest.raises(ConfigError, match="digit 1 is not one token"):
        score_token_ids(SimpleNamespace(encode=encode, name="fake"))


@pytest.mark.parametrize(
    ("kwargs", "n_raters", "message"),
    [
        ({"level": "model"}, 1, "two or more raters"),
        ({"level": "sentence"}, 2, "one rater"),
        ({"k": 6}, 1, "between 1 and"),
        ({"level": "token", "token_prompt": 9}, 1, "token-prompt"),
        ({"level": "best"}, 1, "unknown level"),
    ],
)
def test_config_errors(kwargs, n_raters, message):
    with pytest.raises(ConfigError, match=message):
        SelectITConfig(**kwargs).resolved(n_raters, 5)


# ---- the obvious reference ----


@pytest.mark.parametrize("tok_name", ["tok_nobos", "tok_bos"])
def test_rater_matches_reference_on_30_real_records(tok_name, request):
    tok = request.getfixturevalue(tok_name)
    model = make_llama(len(tok), seed=5)
    records = alpaca_records(30)
    sentences = load_prompts()
    rater = SelectITRater(CausalLM(model=model, tokenizer=tok), batch_tokens=2048)
    pairs = [(record_to_sample(r, i, "x"), t) for i, r in enumerate(records) for t in sentences]
    ratings = rater.rate(pairs)
    for (sample, sentence), rating in zip(pairs, ratings, strict=True):
        want = reference_probs(model, tok, sample.record, sentence)
        np.testing.assert_allclose(rating.probs, want, atol=1e-5)
    assert rater.lm.stats["prefix_tokens_reused"] > 0  # the rating sentence was shared through the KV cache


def test_failed_sample_is_nan_with_reason_and_shifts_nothing(tmp_path, tok_nobos, store_dir):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok_nobos), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
    folder = tmp_path / "short-context"
    LlamaForCausalLM(config).save_pretrained(folder)
    tok_nobos.save_pretrained(folder)
    records = alpaca_records(12)
    records[4] = {**records[4], "output": "word " * 700}  # longer than the rater's 512-token context
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    table = api.score_selectit(pool, models=[str(folder)], k=2)
    bad = table.rows[4]
    assert bad["selectit"] is None and "too_long_for_context" in bad["skip_reason"]
    assert bad["raters"][0]["s_sent"] is None and bad["raters"][0]["prompts"][0]["p"] is None
    alone = api.score_selectit(tmp_path / "pool.json", models=[str(folder)], k=2, store_dir=tmp_path / "other")
    others = [r for r in table.rows if r["index"] != 4]
    assert all(r["selectit"] is not None for r in others)
    assert [r["selectit"] for r in others] == [r["selectit"] for r in alone.rows if r["index"] != 4]


def test_model_level_over_two_raters_and_reuse_without_model(tmp_path, tok_nobos, store_dir, monkeypatch):
    dirs = []
    for name, hidden in (("small", 32), ("large", 96)):
        folder = tmp_path / name
        make_llama(len(tok_nobos), seed=hidden, hidden=hidden).save_pretrained(folder)
        tok_nobos.save_pretrained(folder)
        dirs.append(str(folder))
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(10)))
    table = api.score_selectit(pool, models=dirs, k=3)
    sizes = [sum(p.numel() for p in CausalLM.load(d).model.parameters()) for d in dirs]
    assert [r["n_parameters"] for r in table.config["raters"]] == sizes
    for row in table.rows:
        sents = [r["s_sent"] for r in row["raters"]]
        for rater in row["raters"]:
            tokens = [token_level(p["p"]) for p in rater["prompts"]]
            assert [p["s_token"] for p in rater["prompts"]] == pytest.approx(tokens)
            assert rater["s_sent"] == pytest.approx(np.mean(tokens) / (1 + 0.2 * np.std(tokens)))
        assert (
            row["selectit"] == row["s_model"] == pytest.approx((sizes[0] * sents[0] + sizes[1] * sents[1]) / sum(sizes))
        )

    monkeypatch.setattr(CausalLM, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")))
    again = api.score_selectit(pool, models=dirs, k=3, alpha=0.5)  # new alpha: cached ratings, no model
    assert [r["raters"][0]["prompts"] for r in again.rows] == [r["raters"][0]["prompts"] for r in table.rows]
    token = api.score_selectit(pool, models=dirs[:1], level="token", token_prompt=2)
    assert [r["selectit"] for r in token.rows] == [r["raters"][0]["prompts"][2]["s_token"] for r in table.rows]


def test_cli_run_selectit_keeps_20_percent_highest_first(tmp_path, tiny_model_dir, store_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(20)))
    out, scores = tmp_path / "subset.json", tmp_path / "scores.jsonl"
    args = ["run", "selectit", str(pool), "--out", str(out), "--models", str(tiny_model_dir), "--k", "2",
            "--scores-out", str(scores)]  # fmt: skip
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    chosen = json.loads(out.read_text())
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert len(chosen) == 4  # int(0.2 * 20)
    assert [c["selectit"] for c in chosen] == sorted((r["selectit"] for r in rows), reverse=True)[:4]
    # select reads the field from the scores' configuration and defaults to the 'top' rule
    again = tmp_path / "again.json"
    result = CliRunner().invoke(
        app, ["select", str(pool), "--scores", str(scores), "--count", "4", "--out", str(again)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(again.read_text()) == chosen


@pytest.mark.slow
@pytest.mark.ci
def test_smollm2_selectit_matches_reference_on_5_records():
    lm = CausalLM.load("smollm2")
    records = alpaca_records(5)
    sentences = load_prompts()
    pairs = [(record_to_sample(r, i, "alpaca"), t) for i, r in enumerate(records) for t in sentences]
    ratings = SelectITRater(lm).rate(pairs)
    for (sample, sentence), rating in zip(pairs, ratings, strict=True):
        np.testing.assert_allclose(
            rating.probs, reference_probs(lm.model, lm.tokenizer, sample.record, sentence), atol=1e-5
        )
