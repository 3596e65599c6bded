"""IFD speed: tunesift against the obvious one-sample-at-a-time loop, in one run, on the same records.

    python benchmarks/ifd_speed.py [--n 200] [--model smollm2] [--batch-tokens 4096]

Prints tokens/s of each, their ratio, the agreement of the scores, and the share of this machine's fp32
matmul peak (measured here, in the same run) that each reaches. FLOPs count the linear layers only
(2 x parameters x tokens, the output layer at the positions where it runs); attention's own
O(L^2) products are left out, which at these lengths is a few per cent.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import DATA, linear_params, matmul_peak_gflops

from tunesift.data.schemas import record_to_sample
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.ifd import IFDConfig, IFDScorer

ALPACA = {
    False: "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:",
    True: "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
}


@torch.no_grad()
def obvious_loop(model, tok, records, max_length=512):
    """What one writes first: per sample, two full forward passes with labels, the HF loss."""

    def loss(text, before, budget):
        ids = tok(text, truncation=True, max_length=budget, return_tensors="pt").input_ids
        labels = ids.clone()
        labels[0, : len(tok(before).input_ids)] = -100
        return model(input_ids=ids, labels=labels).loss.item(), ids.shape[1]

    scores, tokens = [], 0
    for rec in records:
        prompt = ALPACA[bool(rec["input"])].format(**rec)
        n_prompt = len(tok(prompt).input_ids)
        cond, n_cond = loss(prompt + rec["output"], prompt, max_length)
        prefix = "### Response:"
        direct, n_direct = loss(prefix + rec["output"], prefix, max_length - n_prompt + len(tok(prefix).input_ids))
        scores.append(cond / direct)
        tokens += n_cond + n_direct
    return scores, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    args = parser.parse_args()

    records = json.loads(DATA.read_text(encoding="utf-8"))[: args.n]
    lm = CausalLM.load(args.model, device="cpu")
    scorer = IFDScorer(lm, IFDConfig(variant="cherry", template="alpaca"), batch_tokens=args.batch_tokens)
    samples = [record_to_sample(r, i, DATA) for i, r in enumerate(records)]
    hidden = lm.model.config.hidden_size
    body_params, head_params = linear_params(lm.model)

    peak = matmul_peak_gflops()
    scorer.score(samples[:8])  # warm-up
    obvious_loop(lm.model, lm.tokenizer, records[:4])
    lm.stats.clear()

    start = time.perf_counter()
    ours = scorer.score(samples)
    t_ours = time.perf_counter() - start
    stats = dict(lm.stats)

    start = time.perf_counter()
    ref, tokens = obvious_loop(lm.model, lm.tokenizer, records)
    t_ref = time.perf_counter() - start

    diffs = [abs(a.ifd - b) for a, b in zip(ours, ref, strict=True) if a.ifd is not None]
    flops_ref = 2 * (body_params + head_params) * tokens
    flops_ours = 2 * body_params * stats["decoder_tokens"] + 2 * head_params * stats["output_positions"]
    print(
        f"model {lm.name} ({sum(p.numel() for p in lm.model.parameters()) / 1e6:.0f}M params, hidden {hidden}), "
        f"{len(records)} records of {DATA.name}, cherry/alpaca, max_length 512, {torch.get_num_threads()} threads"
    )
    print(f"fp32 matmul peak (2048^3, best of 10): {peak:.1f} GFLOP/s")
    print(f"texts: {2 * len(records)}, tokens (conditioned + direct): {tokens}")
    print(
        f"tunesift: {stats['batches']} batches, decoder tokens {stats['decoder_tokens']} "
        f"(padding {stats['padding_tokens']}, prefix reused {stats['prefix_tokens_reused']}), "
        f"output layer at {stats['output_positions']} of {tokens} positions"
    )
    print()
    print("| method | seconds | tokens/s | ratio | GFLOP/s done | share of matmul peak |")
    print("|---|---|---|---|---|---|")
    for name, secs, flops in (("obvious loop", t_ref, flops_ref), ("tunesift", t_ours, flops_ours)):
        print(
            f"| {name} | {secs:.1f} | {tokens / secs:.0f} | {t_ref / secs:.2f}x | {flops / secs / 1e9:.1f} "
            f"| {flops / secs / 1e9 / peak:.0%} |"
        )
    print()
    print(f"agreement: max |IFD diff| = {max(diffs):.2e} over {len(diffs)} scored samples")  # fmt: skip


if __name__ == "__main__":
    main()
