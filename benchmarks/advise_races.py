"""The two `advise` races of issue 33's closing note, and what each costs: wall time and peak resident memory.

The pool: 1,800 records of ``alpaca_random_9k`` and 200 GSM8K *train* problems (as Alpaca records), shuffled with
seed 0; the query set: the first 8 GSM8K train problems (never in the pool). Both races run into one folder, so the
second reuses every fine-tune the first trained (compare caches each under the hash of what produced it):

1. ``--target gsm8k --query Q --methods longest,bm25,embed``: the race the issue opens with;
2. ``--target alpaca_eval --methods longest,superfiltering,bm25,embed``: the general target, where the rule by
   effect has to choose between a cheap arm and a larger gain;
3. ``less`` (``--races less``): ``--target gsm8k --methods rds,embed,less`` on 1,000 records of the pool (issue 45).

Each at the race's learning rate and again at ``--learning-rate`` (the stability check). Evaluation: AlpacaEval 50,
GSM8K 50, MMLU 100 items, as in the earlier notes. Prints the leaderboards and verdicts as markdown.

    python benchmarks/advise_races.py --out runs/advise_races
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path

from _common import DATA

from tunesift.eval.advise.rule import shown

EVAL = DATA.parents[1] / "eval"
RACES = {
    "gsm8k": ["--target", "gsm8k", "--methods", "longest,bm25,embed"],
    "alpaca_eval": ["--target", "alpaca_eval", "--methods", "longest,superfiltering,bm25,embed"],
    # issue 45: LESS beside RDS+ and embed on the GSM8K target, on 1,000 records of the pool (LESS takes a warm-up and
    # two gradients a record: about 20 min of the race on 2 cores)
    "less": ["--target", "gsm8k", "--methods", "rds,embed,less", "--proxy-size", "1000"],
}


def build(out: Path, n_alpaca: int, n_gsm8k: int, n_query: int) -> tuple[Path, Path]:
    """The mixed pool and the query set (written once; a rerun reads the same files, so the race stays cached)."""
    pool, query = out / "pool_alpaca_gsm8k.json", out / "gsm8k_query.json"
    if pool.exists() and query.exists():
        return pool, query
    out.mkdir(parents=True, exist_ok=True)
    with open(EVAL / "gsm8k_train.jsonl", encoding="utf-8") as handle:
        problems = [json.loads(line) for _, line in zip(range(n_query + n_gsm8k), handle, strict=False)]
    as_alpaca = [{"instruction": p["question"], "input": "", "output": p["answer"]} for p in problems]
    rng = random.Random(0)
    records = rng.sample(json.loads(DATA.read_text(encoding="utf-8")), n_alpaca) + as_alpaca[n_query:]
    rng.shuffle(records)
    pool.write_text(json.dumps(records))
    query.write_text(json.dumps(as_alpaca[:n_query]))
    return pool, query


def race(name: str, pool: Path, query: Path, out: Path, lr: float) -> dict:
    """One race through the CLI under ``/usr/bin/time -v``: its advice, wall seconds and peak resident MiB."""
    stability = ["--learning-rates", f"{lr:g}"] if lr > 0 else []  # 0: the race's own rate only
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "tunesift", "advise", str(pool), "--budget", "0.1",
               *RACES[name], "--query", str(query), *stability, "--eval", "n_alpaca=50",
               "--eval", "n_gsm8k=50", "--eval", "n_mmlu=100", "--out", str(out / "race")]  # fmt: skip
    log = out / f"{name}.log"
    with open(log, "w", encoding="utf-8") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    text = log.read_text(encoding="utf-8")
    if done.returncode:
        raise SystemExit(f"the {name} race failed (exit {done.returncode}); see {log}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    advice = json.loads((out / "race" / "advice.json").read_text())
    (out / f"advice-{name}.json").write_text(json.dumps(advice, indent=2))
    (out / f"advice-{name}.md").write_text((out / "race" / "advice.md").read_text())
    return {"advice": advice, "peak_mib": peak, "wall": wall}


def table(name: str, found: dict) -> str:
    advice = found["advice"]["advice"][0]
    board = advice["leaderboard"]
    metrics = list(dict.fromkeys(m for b in board for m in b["metrics"]))
    lines = [f"### {name}: wall {found['wall']}, peak {found['peak_mib']:,.0f} MiB", "",
             "| method | " + " | ".join(metrics) + " | vs best on target | selection s |",
             "|---" * (len(metrics) + 3) + "|"]  # fmt: skip
    for b in board:
        cells = [shown(b["metrics"][m], verdict=True) for m in metrics]
        versus = shown(b["vs_best"], verdict=True) if "vs_best" in b else "best"
        lines.append(f"| {b['method']} | " + " | ".join(cells) + f" | {versus} | {b['select_s']:.1f} |")
    lines += ["", f"Recommendation: {advice['recommendation'] or 'none (random)'}: {advice['reason']}"]
    if advice.get("tradeoff"):
        lines.append(f"Trade-off: {advice['tradeoff']['text']}")
    if advice.get("stability"):
        s = advice["stability"]
        lines.append("Stability: " + ("holds at " + ", ".join(s["settings"]) if s["holds"] else "flipped: " + "; ".join(
            f"{f['setting']} recommends {f['recommended'] or 'random'}" for f in s["flipped_by"])))  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/advise_races"))
    parser.add_argument("--races", default="gsm8k,alpaca_eval", help="which races, in order")
    parser.add_argument(
        "--learning-rate", type=float, default=2e-4, help="the second setting (the race's is 5e-4); 0: none"
    )
    parser.add_argument("--n-alpaca", type=int, default=1800)
    parser.add_argument("--n-gsm8k", type=int, default=200)
    parser.add_argument("--n-query", type=int, default=8)
    args = parser.parse_args()
    pool, query = build(args.out, args.n_alpaca, args.n_gsm8k, args.n_query)
    for name in args.races.split(","):
        print(table(name, race(name, pool, query, args.out, args.learning_rate)), "\n", flush=True)


if __name__ == "__main__":
    main()
