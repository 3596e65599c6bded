"""IFD pinned to an obvious reference: one sample at a time, labels masked with -100, the HF loss."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import alpaca_records, make_gemma3, make_llama
from reference import assert_matches, reference_prompt

from tunesift.data.schemas import record_to_sample
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.ifd import IFDConfig, IFDScorer


def score(model, tok, records, batch_tokens=2048, **config):
    lm = CausalLM(model=model, tokenizer=tok)
    samples = [record_to_sample(r, i, "test") for i, r in enumerate(records)]
    return IFDScorer(lm, IFDConfig(**config), batch_tokens=batch_tokens).score(samples)


def test_cherry_alpaca_matches_reference_on_50_real_records(tiny_llama, tok_nobos):
    records = alpaca_records(50)
    results = score(tiny_llama, tok_nobos, records, variant="cherry", template="alpaca", max_length=512)
    assert all(r.skip_reason is None for r in results)
    assert_matches(results, records, tiny_llama, tok_nobos, "alpaca", "cherry", 512)


def test_superfilter_with_bos_tokenizer_matches_reference_on_50_real_records(tok_bos):
    model = make_llama(len(tok_bos), seed=1)
    records = alpaca_records(50)
    results = score(model, tok_bos, records, variant="superfilter", max_length=1024)
    assert_matches(results, records, model, tok_bos, "plain", "superfilter", 1024)


@pytest.mark.parametrize("template", ["alpaca", "wiz", "vicuna", "plain", "chat"])
@pytest.mark.parametrize("variant", ["cherry", "superfilter"])
def test_every_template_and_variant(template, variant, tok_bos):
    model = make_llama(len(tok_bos), seed=2)
    records = alpaca_records(12)
    results = score(model, tok_bos, records, variant=variant, template=template, max_length=256)
    assert_matches(results, records, model, tok_bos, template, variant, 256)


def test_gemma3_softcapped_logits_match_reference(tok_bos):
    model = make_gemma3(len(tok_bos))
    records = alpaca_records(10)
    results = score(model, tok_bos, records, variant="cherry", template="alpaca", max_length=512)
    assert_matches(results, records, model, tok_bos, "alpaca", "cherry", 512)


@pytest.mark.parametrize("tok_name", ["tok_nobos", "tok_bos"])
def test_budget_rule_with_truncated_responses(tok_name, request):
    tok = request.getfixturevalue(tok_name)
    model = make_llama(len(tok), seed=3)
    records = [r for r in alpaca_records(200) if len(tok(r["output"]).input_ids) > 60][:8]
    max_length = 120
    results = score(model, tok, records, variant="cherry", template="wiz", max_length=max_length)
    truncated = 0
    for rec, got in zip(records, results, strict=True):
        prompt, _ = reference_prompt("wiz", rec, tok)
        n_prompt = len(tok(prompt).input_ids)
        if n_prompt < max_length and len(tok(prompt + rec["output"]).input_ids) > max_length:
            # truncated on the right: exactly the tokens that fit after the prompt are scored
            assert got.n_tokens == max_length - n_prompt
            truncated += 1
    assert truncated >= 3, "the test needs truncated responses"
    assert_matches(results, records, model, tok, "wiz", "cherry", max_length)


def test_skip_reasons(tiny_llama, tok_nobos):
    long_instruction = " ".join(["word"] * 400)
    records = [
        {"instruction": "Say hi.", "input": "", "output": ""},
        {"instruction": long_instruction, "input": "", "output": "ok"},
        {"instruction": "Name a colour.", "input": "", "output": "Blue is a colour."},
    ]
    results = score(tiny_llama, tok_nobos, records, variant="cherry", max_length=128)
    assert [r.skip_reason for r in results] == ["no_response_tokens", "prompt_fills_budget", None]
    for r in results[:2]:
        assert r.ifd is None and r.n_tokens == 0
    assert results[2].ifd is not None and math.isfinite(results[2].ifd)


def test_non_finite_loss_is_a_skip_not_a_number(tok_nobos):
    model = make_llama(len(tok_nobos), seed=4)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.fill_(float("nan"))
    results = score(model, tok_nobos, alpaca_records(3), variant="cherry")
    assert [r.skip_reason for r in results] == ["non_finite_loss"] * 3
    assert all(r.ifd is None for r in results)


def test_scores_do_not_depend_on_batching(tiny_llama, tok_nobos):
    records = alpaca_records(20)
    one = score(tiny_llama, tok_nobos, records, batch_tokens=1)
    many = score(tiny_llama, tok_nobos, records, batch_tokens=8192)
    for a, b in zip(one, many, strict=True):
        assert a.ifd == pytest.approx(b.ifd, abs=1e-5)
        assert a.n_tokens == b.n_tokens


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize(("variant", "template"), [("cherry", "alpaca"), ("superfilter", "plain"), ("cherry", "chat")])
def test_smollm2_matches_reference_on_10_records(variant, template):
    from reference import assert_matches, float64

    lm = CausalLM.load("smollm2")
    assert lm.encode("") == []  # SmolLM2 uses no BOS
    records = alpaca_records(10)
    samples = [record_to_sample(r, i, "alpaca") for i, r in enumerate(records)]
    results = IFDScorer(lm, IFDConfig(variant=variant, template=template)).score(samples)
    # Superfiltering's direct text is the response alone: without a BOS, a one-token response
    # ("Yes", records 7 and 9) has no token to score there, as in the authors' code.
    assert sum(r.skip_reason is None for r in results) >= 8
    max_length = 512 if variant == "cherry" else 1024
    assert_matches(results, records, float64(lm.model), lm.tokenizer, template, variant, max_length)


@pytest.mark.slow
def test_gemma_adds_bos_and_matches_reference():
    from reference import assert_matches, float64

    lm = CausalLM.load("gemma-3-270m")
    bos = lm.tokenizer.bos_token_id
    assert lm.encode("") == [bos] and lm.encode("Hello")[0] == bos  # scores are garbage without <bos>
    records = alpaca_records(4)
    samples = [record_to_sample(r, i, "alpaca") for i, r in enumerate(records)]
    results = IFDScorer(lm, IFDConfig(variant="cherry")).score(samples)
    # Against a float64 forward pass and log-softmax: tunesift's fp32 losses sit within 1.4e-6 of it (measured),
    # as SmolLM2's within 1.3e-5; one tolerance, 1e-5 (and 1e-5 relative), for both.
    assert_matches(results, records, float64(lm.model), lm.tokenizer, "alpaca", "cherry", 512)
    assert all(1.0 < r.loss_cond < 6.0 for r in results)  # a sane base model, not garbage
