"""Is int8 dynamic quantisation worth shipping as ``--dtype qint8`` on a CPU? IFD in fp32 against IFD with the
decoder's linear layers quantised to int8 (PyTorch dynamic quantisation; the output layer stays fp32), on
the same records, in one run.

    python benchmarks/qint8_cpu.py [--n 500] [--model smollm2]

Prints both times, the speed ratio, and the Spearman correlation of the two IFD rankings. The issue's bar:
ship it only at >= 1.5x and Spearman >= 0.99.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch
from _common import DATA
from scipy.stats import spearmanr

from tunesift.data.schemas import record_to_sample
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.ifd import IFDConfig, IFDScorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    args = parser.parse_args()

    records = json.loads(DATA.read_text(encoding="utf-8"))[: args.n]
    samples = [record_to_sample(r, i, DATA) for i, r in enumerate(records)]
    config = IFDConfig(variant="cherry", template="alpaca")
    results = {}
    for name in ("fp32", "qint8"):
        lm = CausalLM.load(args.model, device="cpu", dtype="float32")
        if name == "qint8":
            with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.ao.quantization.quantize_dynamic(lm.model.get_decoder(), {torch.nn.Linear}, dtype=torch.qint8,
                                                       inplace=True)  # fmt: skip
            assert not any(type(m) is torch.nn.Linear for m in lm.model.get_decoder().modules()), "not quantised"
            lm = CausalLM(model=lm.model, tokenizer=lm.tokenizer, name=lm.name, fingerprint=lm.fingerprint)
        scorer = IFDScorer(lm, config, batch_tokens=args.batch_tokens)
        scorer.score(samples[:8])  # warm-up
        start = time.perf_counter()
        scores = scorer.score(samples)
        results[name] = (time.perf_counter() - start, [s.ifd for s in scores])
    (t32, a), (t8, b) = results["fp32"], results["qint8"]
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    rho = spearmanr([x for x, _ in both], [y for _, y in both]).statistic
    threads = torch.get_num_threads()
    print(f"model {args.model}, {len(records)} records of {DATA.name}, cherry/alpaca, {threads} threads")
    print()
    print("| variant | seconds | speed vs fp32 | Spearman vs fp32 | max abs IFD diff |")
    print("|---|---|---|---|---|")
    print(f"| fp32 | {t32:.1f} | 1.00x | 1 | 0 |")
    print(f"| qint8 (decoder linears) | {t8:.1f} | {t32 / t8:.2f}x | {rho:.4f} | "
          f"{max(abs(x - y) for x, y in both):.3f} |")  # fmt: skip
    verdict = "ship" if t32 / t8 >= 1.5 and rho >= 0.99 else "do not ship"
    print(f"\nbar: >= 1.5x and Spearman >= 0.99 -> {verdict}")


if __name__ == "__main__":
    main()
