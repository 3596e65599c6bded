"""SelectIT speed: tunesift against the obvious reference loop, in one run, on the same records.

    python benchmarks/selectit_speed.py [--n 100] [--models smollm2,gemma-3-270m]

The reference is what one writes first: per (sample, prompt) one full forward pass, a softmax over the
whole vocabulary at the last position, no cache. Prints tokens/s of each, the ratio, the agreement of
the renormalised probabilities, and the share of this machine's fp32 matmul peak (measured in the same
run; FLOPs of the linear layers only, the output layer where it runs).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import DATA, linear_params, matmul_peak_gflops

from tunesift.data.schemas import record_to_sample
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.selectit import SelectITRater, load_prompts


@torch.no_grad()
def obvious_loop(model, tok, pairs):
    digits = [tok("\n" + str(d), add_special_tokens=False).input_ids[-1] for d in range(1, 6)]
    out, tokens = [], 0
    for sample, sentence in pairs:
        question = sample.instruction + ("\n" + sample.input if sample.input else "")
        text = f"{sentence}\n\nInstruction:{question}\nResponse:{sample.output}\nThe answer is: \n"
        ids = torch.tensor([tok(text).input_ids])
        probs = torch.softmax(model(input_ids=ids).logits[0, -1], dim=-1)[digits]
        out.append((probs / probs.sum()).double().numpy())
        tokens += ids.shape[1]
    return np.array(out), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--models", default="smollm2,gemma-3-270m")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    args = parser.parse_args()

    records = json.loads(DATA.read_text(encoding="utf-8"))[: args.n]
    sentences = load_prompts()
    pairs = [(record_to_sample(r, i, DATA), t) for i, r in enumerate(records) for t in sentences]
    peak = matmul_peak_gflops()
    print(f"{len(records)} records of {DATA.name} x {len(sentences)} rating prompts = {len(pairs)} texts; "
          f"{torch.get_num_threads()} threads; fp32 matmul peak (2048^3, best of 10): {peak:.1f} GFLOP/s")  # fmt: skip
    print()
    print("| rater | method | seconds | tokens/s | ratio | GFLOP/s done | share of peak | max abs diff of P' |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        lm = CausalLM.load(name, device="cpu")
        rater = SelectITRater(lm, batch_tokens=args.batch_tokens)
        body, head = linear_params(lm.model)
        rater.rate(pairs[:10])  # warm-up
        obvious_loop(lm.model, lm.tokenizer, pairs[:3])
        lm.stats.clear()
        start = time.perf_counter()
        ours = np.array([r.probs for r in rater.rate(pairs)])
        t_ours = time.perf_counter() - start
        stats = dict(lm.stats)
        start = time.perf_counter()
        ref, tokens = obvious_loop(lm.model, lm.tokenizer, pairs)
        t_ref = time.perf_counter() - start
        diff = float(np.abs(ours - ref).max())
        flops_ref = 2 * (body + head) * tokens
        flops_ours = (
            2 * body * stats["decoder_tokens"] + 2 * 5 * lm.model.config.hidden_size * stats["output_positions"]
        )
        for method, secs, flops in (("obvious loop", t_ref, flops_ref), ("tunesift", t_ours, flops_ours)):
            print(f"| {lm.name} | {method} | {secs:.1f} | {tokens / secs:.0f} | {t_ref / secs:.2f}x "
                  f"| {flops / secs / 1e9:.1f} | {flops / secs / 1e9 / peak:.0%} | {diff:.1e} |")  # fmt: skip
        print(f"|  | (tunesift: {stats['batches']} batches, decoder tokens {stats['decoder_tokens']} of {tokens}, "
              f"prefix reused {stats['prefix_tokens_reused']}, padding {stats['padding_tokens']}) |||||||")  # fmt: skip
        del lm, rater


if __name__ == "__main__":
    main()
