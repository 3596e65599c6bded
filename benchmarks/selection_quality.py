"""Does the selection help? The CPU protocol: tune the packaged *base* Gemma-3-270M (LoRA, 1 epoch) on
10 % of a 2,000-record Alpaca pool chosen by IFD, SelectIT, longest response, and random (3 seeds), then
compare by likelihood: response loss on AlpacaEval's GPT-4 outputs, loss of GSM8K reference solutions,
MMLU 5-shot letter accuracy; the untuned base model is the floor.

    python benchmarks/selection_quality.py            # table with intervals and verdicts, plot, report.html

Every step is cached in --out under the hash of what produced it, so a killed run resumes and a changed flag
recomputes. Measured in this project on 2 cores (202 GFLOP/s fp32 matmul peak): 42.7 min in all; scoring
13 min (IFD 8.6, SelectIT 4.3), training 6 models 18 min (25 optimizer steps each: 8 examples per step),
evaluating 7 models 11 min. Gemma's 262k-token output layer makes each scored or trained token cost ~0.5
GFLOP. What fits the hour:
the scorers run on SmolLM2-135M-Instruct (IFD: Superfiltering's observation that a small model's IFD
ranks like a larger one's; SelectIT: it needs an instruction-tuned rater, and the token level rates with
one prompt instead of five), training texts are cut at 256 tokens and the evaluation sets are cut
(AlpacaEval 50 items and GSM8K 50, each text at most 160 tokens; MMLU 100 questions). Every one of these is
a flag: the issue's full sizes are ``--n-alpaca 200 --n-gsm8k 200 --n-mmlu 300 --eval-max-length 1024
--train-max-length 512 --selectit-level sentence --ifd-model gemma-3-270m`` (about 2.5 h here).

``--target gsm8k`` runs the targeted protocol instead: a query set of 8 GSM8K *train* problems (never the
evaluation items, which come from GSM8K test), and rds (RDS+ on SmolLM2), embed (MiniLM), bm25, longest and
random, evaluated on the GSM8K loss (the target) and the AlpacaEval loss (what the target may cost).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, matmul_peak_gflops

from tunesift.eval.compare.config import CompareConfig
from tunesift.eval.compare.run import compare
from tunesift.eval.compare.view import html, plot, table


def targeted_methods(out: Path, args: argparse.Namespace) -> dict:
    """rds, embed, bm25 against a query file of GSM8K train problems (as Alpaca records), and longest."""
    train = DATA.parents[1] / "eval" / "gsm8k_train.jsonl"
    with open(train, encoding="utf-8") as handle:
        problems = [json.loads(line) for _, line in zip(range(args.n_query), handle, strict=False)]
    query = out / "gsm8k_query.json"
    query.write_text(json.dumps([{"instruction": p["question"], "input": "", "output": p["answer"]} for p in problems],
                                indent=1))  # fmt: skip
    return {
        "rds": {"recipe": "rds", "options": {"query": [str(query)], "model": args.rds_model}},
        "embed": {"recipe": "embed", "options": {"query": [str(query)]}},
        "bm25": {"recipe": "bm25", "options": {"query": [str(query)]}},
        "longest": {"recipe": "longest"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/selection_quality")
    parser.add_argument("--pool-size", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--base", default="gemma-3-270m")
    parser.add_argument("--ifd-model", default="smollm2-135m-instruct")
    parser.add_argument("--selectit-model", default="smollm2-135m-instruct")
    parser.add_argument("--selectit-level", default="token", choices=["token", "sentence"])
    parser.add_argument("--n-alpaca", type=int, default=50)
    parser.add_argument("--n-gsm8k", type=int, default=50)
    parser.add_argument("--n-mmlu", type=int, default=100)
    parser.add_argument("--eval-max-length", type=int, default=160)
    parser.add_argument("--train-max-length", type=int, default=256)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--examples-per-step", type=int, default=8)
    parser.add_argument("--train-seeds", type=int, default=1)
    parser.add_argument("--budgets", default=None, help="a sweep of rates, e.g. 0.05,0.1,0.2 (opt-in; adds time)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--target", choices=["gsm8k"], default=None, help="the targeted protocol (see above)")
    parser.add_argument("--n-query", type=int, default=8, help="--target: query examples from GSM8K train")
    parser.add_argument("--rds-model", default="smollm2-135m-instruct", help="--target: RDS+'s representation model")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = CompareConfig(
        pool=str(DATA),
        pool_size=args.pool_size,
        pool_seed=0,
        budget=None if args.budgets else {"rate": args.rate},
        budgets=[float(b) for b in args.budgets.split(",")] if args.budgets else None,
        train_seeds=args.train_seeds,
        base=args.base,
        train={
            "lora": True,
            "epochs": 1,
            "template": "alpaca",
            "max_length": args.train_max_length,
            "batch_tokens": 2048,
            "examples_per_step": args.examples_per_step,
        },
        methods=targeted_methods(out, args)
        if args.target
        else {
            "ifd": {"recipe": "cherry", "options": {"model": args.ifd_model}},
            "selectit": {
                "recipe": "selectit",
                "options": {"models": [args.selectit_model], "level": args.selectit_level},
            },
            "longest": {"recipe": "longest"},
        },
        random_seeds=[int(s) for s in args.seeds.split(",")],
        full=False,
        floor=True,
        suite="targeted" if args.target else "cpu",
        eval={
            "n_alpaca": args.n_alpaca,
            "n_gsm8k": args.n_gsm8k,
            "n_mmlu": args.n_mmlu,
            "max_length": args.eval_max_length,
        },
        store_dir=str(out / "scores"),
    )
    peak = matmul_peak_gflops()
    started = time.perf_counter()
    results = compare(config, out, progress=False, log=lambda m: print(m, flush=True))
    minutes = (time.perf_counter() - started) / 60
    text = table(results)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    png = plot(results, out / "results.png")
    (out / "report.html").write_text(html(results), encoding="utf-8")
    threads = torch.get_num_threads()
    sizes = ", ".join(f"{b['budget']}: {b['size']}" for b in results["budgets"])
    print(f"\npool {args.pool_size} of {DATA.name} (seed 0), records per arm {sizes}, base {args.base}; "
          f"threads {threads}; fp32 matmul peak {peak:.0f} GFLOP/s")  # fmt: skip
    print(text)
    print(f"\nwall time {minutes:.1f} min; plot -> {png}")


if __name__ == "__main__":
    main()
