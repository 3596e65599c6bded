"""``verified`` and ``length`` at scale (issue 44): N synthetic traces of W words (default 100,000 x 2,000, about
1.2 GB of JSONL), scored through the real command (pool read streaming, the driver, the store), each in a process of
its own under ``/usr/bin/time`` (wall time, peak resident memory, CPU time / wall / cores = the share of the machine
used), beside the obvious loop on the first rows in the same run: math-verify called row by row for ``verified``,
``tokenizer.encode`` one text at a time for ``length``. Prints a table.

Run: ``python benchmarks/reasoning_scale.py [--n 100000] [--words 2000] [--loop 2000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("so", "then", "we", "have", "the", "sum", "of", "x", "and", "y", "is", "equal", "to", "therefore", "let",
         "consider", "case", "where", "n", "squared", "plus", "minus", "times", "divided", "by", "check", "again",
         "wait", "hmm", "factor", "prime", "integer", "solution", "value", "because", "if", "not", "true")  # fmt: skip


def write_pool(path: Path, n: int, words: int, seed: int = 0) -> None:
    """``n`` messages records: a question, a ``words``-word reasoning_content, a final answer in ``\\boxed{}``,
    and the record's ``reference`` (a tenth of the answers wrong on purpose); written a record at a time."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            answer = rng.randrange(1000)
            thinking = " ".join(rng.choice(WORDS) for _ in range(words))
            final = f"The answer is $\\boxed{{{answer if i % 10 else answer + 1}}}$."
            record = {"messages": [{"role": "user", "content": f"Problem {i}: what is {answer}?"},
                                   {"role": "assistant", "content": final, "reasoning_content": thinking}],
                      "reference": str(answer)}  # fmt: skip
            handle.write(json.dumps(record) + "\n")


def timed(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``args`` under /usr/bin/time -v: wall s, peak MiB, and CPU time over wall and cores."""
    done = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    stats = dict(line.strip().rsplit(": ", 1) for line in done.stderr.splitlines() if ": " in line)
    wall = stats["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
    seconds = sum(float(x) * 60**k for k, x in enumerate(reversed(wall)))
    cpu = float(stats["User time (seconds)"]) + float(stats["System time (seconds)"])
    return {"wall": seconds, "peak_mib": int(stats["Maximum resident set size (kbytes)"]) / 1024,
            "cores": cpu / seconds / (os.cpu_count() or 1)}  # fmt: skip


def obvious_loops(path: Path, n: int, tokenizer_name: str) -> dict[str, float]:
    """Seconds per row of the obvious loops on the first ``n`` rows: math-verify's parse and verify row by row, and
    one ``encode`` per text."""
    from transformers import AutoTokenizer

    from tunesift.data.schemas import record_to_sample, split_trace
    from tunesift.models.registry import resolve_model
    from tunesift.scorers.verified import MathVerify

    rows = []
    with path.open(encoding="utf-8") as handle:
        for k, line in enumerate(handle):
            if k >= n:
                break
            rows.append(json.loads(line))
    samples = [record_to_sample(r, k, path) for k, r in enumerate(rows)]
    check = MathVerify()
    start = time.perf_counter()
    for sample, record in zip(samples, rows, strict=True):
        check(record["reference"], split_trace(sample.output).final)
    verify_s = (time.perf_counter() - start) / n
    tok = AutoTokenizer.from_pretrained(resolve_model(tokenizer_name).path)
    start = time.perf_counter()
    for sample in samples:
        len(tok.encode(split_trace(sample.output).thinking, add_special_tokens=False))
        len(tok.encode(f"{sample.instruction}\n{sample.output}", add_special_tokens=False))
    encode_s = (time.perf_counter() - start) / n
    return {"verified": verify_s, "length": encode_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument("--loop", type=int, default=2000, help="Rows the obvious loops time.")
    parser.add_argument("--tokenizer", default="smollm2-135m-instruct")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reasoning-scale-") as folder:
        pool = Path(folder) / "traces.jsonl"
        start = time.perf_counter()
        write_pool(pool, args.n, args.words)
        print(f"{args.n:,} traces of {args.words:,} words: {pool.stat().st_size / 2**30:.2f} GiB, written in "
              f"{time.perf_counter() - start:.0f} s; {os.cpu_count()} cores")  # fmt: skip
        env = dict(os.environ)  # the models' cache as the user has it (SmolLM2 prepared once); a fresh score store
        runs = {"verified": ["score", "verified", str(pool)],
                "length": ["score", "length", str(pool), "--tokenizer", args.tokenizer]}  # fmt: skip
        loops = obvious_loops(pool, args.loop, args.tokenizer)
        print("\n| scorer | rows | wall s | rows/s | peak MiB | share of the cores | obvious loop s/row | ratio |")
        print("|---|---|---|---|---|---|---|---|")
        for name, command in runs.items():
            out = Path(folder) / f"{name}.jsonl"
            got = timed([sys.executable, "-m", "tunesift", *command, "--store", str(Path(folder) / f"store-{name}"),
                         "--out", str(out)], env)  # fmt: skip
            per_row = got["wall"] / args.n
            print(f"| {name} | {args.n:,} | {got['wall']:.0f} | {args.n / got['wall']:,.0f} | {got['peak_mib']:.0f} "
                  f"| {got['cores']:.0%} | {loops[name]:.5f} | {loops[name] / per_row:.1f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
