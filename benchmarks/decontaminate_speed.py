"""Decontamination (METHODS.md §23) at pool scale on this machine: a synthetic pool of ~300-word samples against the
full built-in suite (every evaluation set tunesift reads, 24k items), at 100k, 300k and 1M samples.

The pool is a JSONL file (written once per size, streamed by the command as a user's would be): each sample is
~300 words drawn from the Alpaca pool's own vocabulary by frequency, one in 1,000 with an evaluation item planted
verbatim in its instruction. Each size runs `tunesift decontaminate` in a fresh process, so its peak RSS (memory
flat in pool size) is its own; the table gives seconds, samples/s, words/s, peak memory, and the planted copies
found (all must be). Beside it, the obvious loop (every sample against every item with the one-pair coverage) on
200 samples, projected to the pool, gives the ratio.

    .venv/bin/python benchmarks/decontaminate_speed.py [--sizes 100000,300000,1000000] [--folder /tmp/decont]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA

WORDS_PER_SAMPLE = 300
PLANT_EVERY = 1000


def make_pool(path: Path, n: int, items: list[str]) -> int:
    """Write ``n`` samples to ``path``; returns how many have a planted evaluation item."""
    records = json.loads(DATA.read_text())
    counts = Counter(w for r in records for w in re.findall(r"\S+", f"{r['instruction']} {r['output']}"))
    vocab = list(counts)
    p = np.array([counts[w] for w in vocab], dtype=float)
    p /= p.sum()
    rng = np.random.default_rng(0)
    planted = 0
    with open(path, "w", encoding="utf-8") as handle:
        block = 10_000
        for start in range(0, n, block):
            size = min(block, n - start)
            drawn = rng.choice(len(vocab), size=(size, WORDS_PER_SAMPLE), p=p)
            for k in range(size):
                words = [vocab[i] for i in drawn[k]]
                instruction = " ".join(words[:60])
                if (start + k) % PLANT_EVERY == 0:
                    instruction = items[(start + k) // PLANT_EVERY % len(items)]
                    planted += 1
                record = {"instruction": instruction, "input": "", "output": " ".join(words[60:])}
                handle.write(json.dumps(record) + "\n")
    return planted


def run_one(pool: Path, out: Path) -> dict:
    """`tunesift decontaminate` against every built-in set, in its own process, timed; its peak RSS from time -v."""
    from tunesift.data.evalsets import EVAL_SETS

    args = ["/usr/bin/time", "-v", sys.executable, "-m", "tunesift", "decontaminate", str(pool), "--out", str(out)]
    for name in EVAL_SETS:
        args += ["--against", name]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    manifest = json.loads(out.with_name(out.stem + ".manifest.json").read_text())
    return {"seconds": seconds, "peak_mib": peak_kib / 1024, "dropped": manifest["counts"]["dropped"]}


def obvious_per_sample(items: list[str], pool: Path, probe: int = 200) -> float:
    """Seconds per sample of the obvious loop: every item's coverage by the sample's user turn, one pair at a time."""
    from tunesift.selectors.decontaminate import coverage, words

    tokens = [words(t) for t in items]
    samples = []
    with open(pool, encoding="utf-8") as handle:
        for line in handle:
            samples.append(json.loads(line)["instruction"])
            if len(samples) >= probe:
                break
    started = time.perf_counter()
    for text in samples:
        turn = words(text)
        max(coverage(item, turn, 8) for item in tokens)
    return (time.perf_counter() - started) / probe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--folder", default="/tmp/tunesift-decontaminate-bench")
    args = parser.parse_args()
    from tunesift.data.evalsets import EVAL_SETS, read_eval_set

    items = [i.text for name in EVAL_SETS for i in read_eval_set(name)]
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        pool = folder / f"pool-{n}.jsonl"
        planted = make_pool(pool, n, items)
        result = run_one(pool, folder / f"clean-{n}.jsonl")
        words_total = n * WORDS_PER_SAMPLE
        rows.append((n, planted, result))
        print(f"{n:>9,d} samples: {result['seconds']:7.1f} s, {n / result['seconds']:9,.0f} samples/s, "
              f"{words_total / result['seconds'] / 1e6:5.2f} M words/s, peak {result['peak_mib']:6.0f} MiB, "
              f"planted {planted:,d}, dropped {result['dropped']:,d}", flush=True)  # fmt: skip
        pool.unlink()
    obvious = obvious_per_sample(items, _probe_pool(folder, items))
    print("\n| samples | seconds | samples/s | M words/s | peak MiB | MiB per 100k | planted | dropped |")
    print("|---|---|---|---|---|---|---|---|")
    for n, planted, r in rows:
        rate = n * WORDS_PER_SAMPLE / r["seconds"] / 1e6
        print(f"| {n:,d} | {r['seconds']:.1f} | {n / r['seconds']:,.0f} | {rate:.2f} | {r['peak_mib']:.0f} "
              f"| {r['peak_mib'] / (n / 1e5):.0f} | {planted:,d} | {r['dropped']:,d} |")  # fmt: skip
    n, _, r = rows[-1]
    print(f"\nobvious loop (every item's one-pair coverage, 200 samples): {obvious * 1e3:.1f} ms a sample, "
          f"{obvious * n / 3600:.1f} h projected for {n:,d}; tunesift {r['seconds']:.0f} s: "
          f"{obvious * n / r['seconds']:,.0f}x")  # fmt: skip


def _probe_pool(folder: Path, items: list[str]) -> Path:
    path = folder / "probe.jsonl"
    make_pool(path, 200, items)
    return path


if __name__ == "__main__":
    main()
