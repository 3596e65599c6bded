"""IFD pinned to an obvious reference: one sample at a time, labels masked with -100, the HF loss."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import alpaca_records, make_gemma3, make_llama

from tunesift.data.pools import record_to_sample
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.ifd import IFDConfig, IFDScorer

# The template texts, written out again here so that the reference does not share code with tunesift.
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:"
)
ALPACA_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
VICUNA_SYS = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def reference_prompt(template: str, rec: dict, tok) -> tuple[str, str]:
    """(prompt, direct prefix) for a record, written from METHODS.md."""
    ins, inp = rec["instruction"], rec.get("input", "")
    if template == "alpaca":
        return (ALPACA_INPUT if inp else ALPACA_NO_INPUT).format(instruction=ins, input=inp), "### Response:"
    if template == "wiz":
        return (f"{ins}\n{inp}\n\n### Response:" if inp else f"{ins}\n\n### Response:"), "### Response:"
    if template == "vicuna":
        user = f"{ins}\nInput:\n{inp}" if inp else ins
        return f"{VICUNA_SYS} USER: {user} ASSISTANT:", "ASSISTANT:"
    if template == "plain":
        return (f"{ins}\n{inp}\n" if inp else f"{ins}\n"), ""
    if template == "chat":
        content = f"{ins}\n\n{inp}" if inp else ins
        prompt = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
        return prompt, "<|assistant|>\n"
    raise AssertionError(template)


def reference_loss(model, tok, text: str, before: str, max_length: int) -> tuple[float, int]:
    """Mean NLL of the tokens after ``before`` in ``text`` cut to ``max_length``; and their count."""
    ids = tok(text, truncation=True, max_length=max_length, return_tensors="pt").input_ids
    start = len(tok(before).input_ids)
    labels = ids.clone()
    labels[0, :start] = -100
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss.item()
    return loss, int((labels[0, 1:] != -100).sum())


def reference_ifd(model, tok, rec: dict, template: str, variant: str, max_length: int) -> dict:
    prompt, prefix = reference_prompt(template, rec, tok)
    n_prompt = len(tok(prompt).input_ids)
    if n_prompt >= max_length:
        return {"skip_reason": "prompt_fills_budget"}
    cond, n_tokens = reference_loss(model, tok, prompt + rec["output"], prompt, max_length)
    if variant == "cherry":
        budget = max_length - n_prompt + len(tok(prefix).input_ids)
        direct, _ = reference_loss(model, tok, prefix + rec["output"], prefix, budget)
        return {"ifd": cond / direct, "loss_cond": cond, "loss_direct": direct, "n_tokens": n_tokens}
    direct, _ = reference_loss(model, tok, rec["output"], "", max_length - n_prompt + 1)
    return {"ifd": math.exp(cond - direct), "loss_cond": cond, "loss_direct": direct, "n_tokens": n_tokens}


def assert_matches(results, records, model, tok, template, variant, max_length, tol=1e-5):
    for rec, got in zip(records, results, strict=True):
        want = reference_ifd(model, tok, rec, template, variant, max_length)
        if "skip_reason" in want:
            assert got.skip_reason == want["skip_reason"]
            continue
        assert got.skip_reason is None
        assert got.n_tokens == want["n_tokens"]
        for key in ("ifd", "loss_cond", "loss_direct"):
            assert getattr(got, key) == pytest.approx(want[key], abs=tol, rel=tol), key


def score(model, tok, records, token_budget=2048, **config):
    lm = CausalLM(model=model, tokenizer=tok)
    samples = [record_to_sample(r, i, "test") for i, r in enumerate(records)]
    return IFDScorer(lm, IFDConfig(**config), token_budget=token_budget).score(samples)


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
    one = score(tiny_llama, tok_nobos, records, token_budget=1)
    many = score(tiny_llama, tok_nobos, records, token_budget=8192)
    for a, b in zip(one, many, strict=True):
        assert a.ifd == pytest.approx(b.ifd, abs=1e-5)
        assert a.n_tokens == b.n_tokens
