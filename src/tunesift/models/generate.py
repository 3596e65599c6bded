"""Greedy generation with a loaded causal LM: the answers of judges, taggers, MoDS' tuned model and the
evaluation's chain-of-thought replies all come from this one function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def generate(lm: Any, prompts: Sequence[str], max_new_tokens: int = 256, stop: Sequence[str] = (),
             batch_size: int = 8, max_total_tokens: int | None = None) -> list[str]:  # fmt: skip
    """Greedy continuations (left padding, batched by prompt length), cut at the first stop string.

    ``max_total_tokens`` caps prompt + answer per prompt (Cherry's 1,024) on top of ``max_new_tokens``;
    a prompt that already fills it gets an empty answer."""
    import torch

    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded_all = [lm.encode(p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded_all[i]))
    outputs = [""] * len(prompts)
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        encoded = [encoded_all[i] for i in rows]
        width = max(len(e) for e in encoded)
        limits = [max_new_tokens if max_total_tokens is None else min(max_new_tokens, max_total_tokens - len(e))
                  for e in encoded]  # fmt: skip
        if max(limits) <= 0:
            continue
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for r, e in enumerate(encoded):
            ids[r, width - len(e) :] = torch.tensor(e)
            mask[r, width - len(e) :] = 1
        with torch.inference_mode():
            out = lm.model.generate(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                                    max_new_tokens=max(limits), do_sample=False, pad_token_id=pad)  # fmt: skip
        for r, row in enumerate(out[:, width:]):
            text = tok.decode(row[: max(limits[r], 0)], skip_special_tokens=True)
            for s in stop:
                text = text.split(s, 1)[0]
            outputs[rows[r]] = text
    return outputs


def sample(lm: Any, prompts: Sequence[str], seeds: Sequence[int], temperature: float,
           max_new_tokens: int = 1024) -> list[str]:  # fmt: skip
    """One sampled continuation per prompt, each drawn from its own seed (so a sample is the same whichever
    others are drawn beside it: k = 8 after k = 4 draws only the new four); temperature 0 is greedy."""
    import torch

    if temperature <= 0:
        return generate(lm, prompts, max_new_tokens)
    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    outputs = []
    for prompt, seed in zip(prompts, seeds, strict=True):
        ids = torch.tensor([lm.encode(prompt)], device=lm.device)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                    do_sample=True, temperature=temperature, top_p=1.0, top_k=0,
                                    pad_token_id=pad)  # fmt: skip
        outputs.append(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return outputs
