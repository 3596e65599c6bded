"""How k-center and SemDeDup grow with the pool: 100k, 300k and 1M clustered 384-d unit vectors (as
``sparse_diversity.py`` draws them), each size and method in a process of its own.

k-center picks 1 % of the points (10,000 of 1M); its arithmetic is at least ``N x k x d x 2`` (every point's
distance to every centre, once), measured against this machine's float32 matrix-product peak. SemDeDup clusters with
k-means (faiss beyond 200,000 rows where ``tunesift[scale]`` is installed, else scikit-learn) into
``min(1000, N / 100)`` clusters and compares within each::

    python benchmarks/diversity_growth.py [--sizes 100000,300000,1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import matmul_peak_gflops, peak_mib
from sparse_diversity import vectors


def one(method: str, n: int) -> dict:
    x = vectors(n)
    before = peak_mib()
    started = time.perf_counter()
    if method == "kcenter":
        from tunesift.selectors.kcenter import kcenter_greedy

        found = len(set(kcenter_greedy(x, n // 100)))
    else:
        from tunesift.selectors.dedup import semantic_duplicates

        found = len(semantic_duplicates(x).kept_for)
    return {"seconds": time.perf_counter() - started, "peak_mib": peak_mib(), "before_mib": before, "found": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return
    peak = matmul_peak_gflops(4096, reps=3)
    print(f"float32 matrix product on this machine: {peak:.0f} GFLOP/s")
    print()
    print(
        "| method | points | seconds | peak MiB | above the vectors MiB | result | GFLOP/s (lower bound) "
        "| share of peak |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        for method in ("kcenter", "semantic"):
            out = subprocess.run([sys.executable, __file__, "--one", method, str(n)], check=True, capture_output=True,
                                 text=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            result = f"{r['found']:,} picks" if method == "kcenter" else f"{r['found']:,} dropped"
            flops = 2.0 * n * (n // 100) * 384 if method == "kcenter" else None
            rate = "–" if flops is None else f"{flops / r['seconds'] / 1e9:.0f}"
            share = "–" if flops is None else f"{flops / r['seconds'] / 1e9 / peak:.0%}"
            above = r["peak_mib"] - r["before_mib"]
            print(f"| {method} | {n:,} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {above:.0f} | {result} | {rate} "
                  f"| {share} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
