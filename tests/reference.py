"""An obvious, independent IFD reference: one sample at a time, the NLL of the scored tokens in float64.

Shared by the tiny-model tests and the real-model tests; it shares no code with tunesift.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

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
        messages = [{"role": "user", "content": content}]
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        without = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return prompt, prompt[len(without) :]  # the assistant header the generation prompt adds
    raise AssertionError(template)


def float64(model):
    """A float64 copy of ``model``, for a reference whose own rounding stays far below its tolerance."""
    import copy

    return copy.deepcopy(model).to(torch.float64)


def reference_loss(model, tok, text: str, before: str, max_length: int) -> tuple[float, int]:
    """Mean NLL of the tokens after ``before`` in ``text`` cut to ``max_length``; and their count.

    The log-softmax runs in float64 on the model's logits. HF's ``labels=`` loss is not used: it casts the
    logits to float32 (even a float64 model's), and torch's float32 cross-entropy over a 49k-token vocabulary
    is 1e-5 off and moves with the CPU kernels torch dispatches to (issue 26, the first Alpaca record with SmolLM2:
    2.5765698 with AVX-512 kernels, 2.5765612 with AVX2, 2.5765610 with none, ATEN_CPU_CAPABILITY=default, the
    issue's figure; 2.5765766 in float64 on all three)."""
    ids = tok(text, truncation=True, max_length=max_length, return_tensors="pt").input_ids
    start = len(tok(before).input_ids)
    targets = ids[0, 1:]
    scored = torch.arange(len(targets)) >= start - 1  # target i is token i + 1
    count = int(scored.sum())
    if count == 0:  # nothing to score
        return math.nan, 0
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].to(torch.float64)
    nll = -torch.log_softmax(logits, dim=-1)[torch.arange(len(targets)), targets]
    return nll[scored].mean().item(), count


def reference_ifd(model, tok, rec: dict, template: str, variant: str, max_length: int) -> dict:
    prompt, prefix = reference_prompt(template, rec, tok)
    n_prompt = len(tok(prompt).input_ids)
    if n_prompt >= max_length:
        return {"skip_reason": "prompt_fills_budget"}
    cond, n_tokens = reference_loss(model, tok, prompt + rec["output"], prompt, max_length)
    if variant == "cherry":
        budget = max_length - n_prompt + len(tok(prefix).input_ids)
        direct, n_direct = reference_loss(model, tok, prefix + rec["output"], prefix, budget)
    else:
        direct, n_direct = reference_loss(model, tok, rec["output"], "", max_length - n_prompt + 1)
    if n_tokens == 0 or n_direct == 0:
        return {"skip_reason": "no_response_tokens"}
    if variant == "cherry":
        return {"ifd": cond / direct, "loss_cond": cond, "loss_direct": direct, "n_tokens": n_tokens}
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


def reference_probs(model, tok, record: dict, sentence: str) -> np.ndarray:
    """Full forward, full-vocabulary softmax at the last position, no cache, one prompt at a time."""
    question = record["instruction"] + ("\n" + record["input"] if record.get("input") else "")
    text = (
        sentence
        + "\n"
        + "\n"
        + "Instruction:"
        + question
        + "\n"
        + "Response:"
        + record["output"]
        + "\nThe answer is: \n"
    )
    ids = torch.tensor([tok(text).input_ids])
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids).logits[0, -1].double(), dim=-1)
    digits = [tok("\n" + str(d), add_special_tokens=False).input_ids[-1] for d in range(1, 6)]
    picked = probs[digits].numpy()
    return picked / picked.sum()
