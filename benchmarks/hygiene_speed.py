"""The hygiene columns' throughput on this machine: `lang` (langid.py) and `pii` (regular expressions, Luhn), on
real Alpaca records (the 9k pool, repeated to --n samples) and on synthetic 300-word samples.

Two figures each: the scorer's own computation (samples/s, one process, no store), and `tunesift score NAME` end
to end in a fresh process (reading the pool, the score store's appends, writing SCORES), with its peak RSS.

    .venv/bin/python benchmarks/hygiene_speed.py [--n 50000]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA


def compute_rate(name: str, pool: Path, limit: int = 20000) -> float:
    from tunesift.data.pools import read_pool
    from tunesift.data.sample import Sample
    from tunesift.scorers import get_method
    from tunesift.scorers.base import Unit

    scorer = get_method(name)()
    backend = scorer.load_backend()
    units = [Unit(s.content_id, s) for s in read_pool(pool) if isinstance(s, Sample)][:limit]
    started = time.perf_counter()
    scorer.compute(units, backend)
    return len(units) / (time.perf_counter() - started)


def end_to_end(name: str, pool: Path, n: int, folder: Path) -> tuple[float, float]:
    args = ["/usr/bin/time", "-v", sys.executable, "-m", "tunesift", "score", name, str(pool), "--out",
            str(folder / f"{name}.jsonl"), "--store", str(folder / f"store-{name}-{pool.stem}")]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return n / seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--folder", default="/tmp/tunesift-hygiene-bench")
    args = parser.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = json.loads(DATA.read_text())
    alpaca = folder / "alpaca.jsonl"
    with open(alpaca, "w", encoding="utf-8") as handle:
        for k in range(args.n):
            record = records[k % len(records)]
            handle.write(json.dumps({**record, "output": f"{record['output']} [{k}]"}) + "\n")  # unique
    from decontaminate_speed import make_pool

    synthetic = folder / "synthetic.jsonl"
    make_pool(synthetic, args.n, ["x"])
    print("| scorer | pool | compute samples/s | end to end samples/s | peak MiB |")
    print("|---|---|---|---|---|")
    for name in ("lang", "pii"):
        for label, pool in (("alpaca", alpaca), ("synthetic 300 words", synthetic)):
            rate = compute_rate(name, pool)
            e2e, peak = end_to_end(name, pool, args.n, folder)
            print(f"| {name} | {label} | {rate:,.0f} | {e2e:,.0f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
