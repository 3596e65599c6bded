"""A race on a reasoning pool (issue 46): ``verified``, ``length``, ``pass-rate`` over a column of samples, a
per-question choice (shortest correct trace) and random, at one budget, through ``tunesift advise --target math500``
(the reasoning suite: MATH500's and GSM8K's reference-solution losses, AlpacaEval's as a guard). Prints the board with
its intervals, each arm's share of traces cut at the training length, the decontamination, wall time and peak memory.

The pool, built from the shared files (written once, so a rerun reuses every fine-tune):

* ``reasoning/math_cot_100.jsonl``: 100 MATH problems x their 8 sampled traces, each trace a row (teacher
  ``qwen-sample``), every row holding the problem's 8 traces in ``samples`` (the pass-rate arm's column) and the
  reference answer: several responses per question, about a third of them wrong by the grader;
* 300 GSM8K *train* problems, three rows each: the human solution as a trace ending ``\\boxed{N}`` (teacher
  ``human``), the same trace with a planted wrong final answer (``wrong``), and the trace padded with a repeated
  sentence (``padded``, correct, long): the failure modes verification and length are meant to catch or fall for.

The pool is decontaminated against MATH500, AIME24 and AMC23 first (``tunesift decontaminate``), then raced.

    python benchmarks/reasoning_race.py --out runs/reasoning_race [--train max_length=1024]

The second run reuses the pool, the decontamination and every arm's selection (the score store), and trains anew.
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

REASONING = DATA.parents[1] / "reasoning"
EVAL = DATA.parents[1] / "eval"
PADDING = "Let me double-check that step once more."
RECIPES = {
    # the pass-rate window over the pool's own samples (Open-R1), the hardest first
    "pass-rate-samples.yaml": """name: pass-rate-samples
description: pass-rate window over the samples column
score: {scorer: pass-rate, samples: samples}
steps:
  - filter: "pass_rate > 0.1"
  - filter: "pass_rate < 0.9"
  - rank: {by: difficulty_pr, order: desc}
  - select: {method: top, of: pool}
""",
    # one response per question: the shortest correct trace, then random among the questions
    "shortest-correct.yaml": """name: shortest-correct
description: per question the shortest verified trace, random among questions
score: {scorer: verified}
steps:
  - filter: "verified >= 1"
  - per_question: {keep: shortest-correct}
  - select: {method: random, of: pool}
""",
}


def gsm8k_rows(n: int, seed: int = 0) -> list[dict]:
    with open(EVAL / "gsm8k_train.jsonl", encoding="utf-8") as handle:
        problems = [json.loads(line) for _, line in zip(range(n), handle, strict=False)]
    rows = []
    for p in problems:
        steps, answer = p["answer"].rsplit("####", 1)
        answer = answer.strip().replace(",", "")
        thinking = re.sub(r"<<[^>]*>>", "", steps).strip()
        wrong = str(int(answer) + 1) if answer.lstrip("-").isdigit() else answer + "1"
        padded = thinking + "\n" + " ".join([PADDING] * 40)
        for teacher, trace, final in (("human", thinking, answer), ("wrong", thinking, wrong),
                                      ("padded", padded, answer)):  # fmt: skip
            rows.append({"instruction": p["question"], "output": f"{trace}\nThe answer is $\\boxed{{{final}}}$.",
                         "reference": answer, "teacher": teacher})  # fmt: skip
    return rows


def math_rows() -> list[dict]:
    rows = []
    for line in open(REASONING / "math_cot_100.jsonl", encoding="utf-8"):
        r = json.loads(line)
        for trace in r["code"]:
            rows.append({"instruction": r["question"], "output": trace, "reference": r["gt"],
                         "teacher": "qwen-sample", "samples": r["code"]})  # fmt: skip
    return rows


def run(command: list[str], log: Path) -> str:
    with open(log, "w", encoding="utf-8") as handle:
        done = subprocess.run(["/usr/bin/time", "-v", *command], stdout=handle, stderr=subprocess.STDOUT, check=False)
    text = log.read_text(encoding="utf-8")
    if done.returncode:
        raise SystemExit(f"{command[3:5]} failed (exit {done.returncode}); see {log}")
    return text


def measured(text: str) -> tuple[str, float]:
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    return wall, int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/reasoning_race"))
    parser.add_argument("--n-gsm8k", type=int, default=300)
    parser.add_argument("--budget", default="0.1")
    parser.add_argument("--eval", action="append", default=["n_math500=200", "n_gsm8k=100", "n_alpaca=50"])
    parser.add_argument("--train", action="append", default=[], help="KEY=VALUE of the fine-tune, e.g. max_length=1024")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    pool = out / "pool.jsonl"
    if not pool.exists():
        rows = math_rows() + gsm8k_rows(args.n_gsm8k)
        random.Random(0).shuffle(rows)
        pool.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    clean = out / "pool.clean.jsonl"
    tunesift = [sys.executable, "-m", "tunesift"]
    if not clean.exists():
        run([*tunesift, "decontaminate", str(pool), "--against", "math500,aime24,amc23", "--out", str(clean)],
            out / "decontaminate.log")  # fmt: skip
    found = json.loads(clean.with_suffix(".manifest.json").read_text())
    for name, text in RECIPES.items():
        (out / name).write_text(text)
    methods = ",".join(["verified", "length", str(out / "pass-rate-samples.yaml"), str(out / "shortest-correct.yaml")])
    evals = [x for e in args.eval for x in ("--eval", e)] + [x for t in args.train for x in ("--train", t)]
    text = run([*tunesift, "advise", str(clean), "--budget", args.budget, "--target", "math500", "--methods", methods,
                *evals, "--out", str(out / "race")], out / f"race{'-'.join(['', *args.train])}.log")  # fmt: skip
    wall, peak = measured(text)
    advice = json.loads((out / "race" / "advice.json").read_text())
    print(
        f"pool: {sum(1 for _ in open(pool))} rows; decontamination (math500, aime24, amc23) dropped "
        f"{found.get('dropped', found.get('counts', {}).get('dropped'))}; race wall {wall}, peak {peak:,.0f} MiB\n"
    )
    print((out / "race" / "advice.md").read_text())
    (out / "summary.json").write_text(json.dumps({"wall": wall, "peak_mib": peak, "advice": advice}, indent=2))


if __name__ == "__main__":
    main()
