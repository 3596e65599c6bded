"""How k-center, SemDeDup, DEITA's filter, MIG and DQ grow with the pool: 100k, 300k and 1M clustered 384-d unit
vectors (as ``sparse_diversity.py`` draws them), each size and method in a process of its own (QDIT and facility
location: ``sparse_diversity.py``; MinHash and exact dedup: ``dedup_scale.py``).

The selectors pick 1 % of the points (10,000 of 1M). k-center's dense arithmetic is ``N x k x d x 2`` (every point's
distance to every centre, once), shown against this machine's float32 matrix-product peak as a dense-equivalent
rate: its lazy bounds skip most of it, so the rate can pass the peak. SemDeDup clusters with k-means (faiss beyond
200,000 rows where ``tunesift[scale]`` is installed, else scikit-learn) into ``min(1000, N / 100)`` clusters and
compares within each. DEITA admits best first (seeded uniform scores) below cosine 0.9 to everything admitted. MIG
runs on synthetic INSTAG-like labels: ``N / 50`` labels with clustered embeddings, 1 to 5 labels a sample drawn
Zipf-like, quality uniform in [1, 6]. DQ orders the whole pool into 10 bins (N picks, each over what is left: N^2 d
by definition), so it runs at ``--dq-sizes`` and the table projects it by the exponent those sizes measure::

    python benchmarks/diversity_growth.py [--sizes 100000,300000,1000000] [--dq-sizes 10000,20000,40000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import matmul_peak_gflops, peak_mib
from sparse_diversity import vectors


def mig_inputs(n: int, seed: int = 0) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    """Synthetic INSTAG-like labels: ``n / 50`` labels (clustered embeddings, so the graph has edges), 1 to 5 a
    sample, label ``j`` drawn with weight ``1 / (j + 1)``; quality uniform in [1, 6]."""
    rng = np.random.default_rng(seed)
    n_labels = max(100, n // 50)
    embeddings = vectors(n_labels, centres=max(10, n_labels // 20), seed=seed + 1)
    weights = 1.0 / np.arange(1, n_labels + 1)
    counts = rng.integers(1, 6, size=n)
    flat = rng.choice(n_labels, size=int(counts.sum()), p=weights / weights.sum())
    labels = [row.tolist() for row in np.split(flat, np.cumsum(counts)[:-1])]
    return labels, rng.uniform(1, 6, size=n), embeddings


def one(method: str, n: int) -> dict:
    x = vectors(n)
    k = n // 100
    inputs = mig_inputs(n) if method == "mig" else None
    before = peak_mib()
    started = time.perf_counter()
    if method == "kcenter":
        from tunesift.selectors.kcenter import kcenter_greedy

        found = f"{len(set(kcenter_greedy(x, k))):,} picks"
    elif method == "semantic":
        from tunesift.selectors.dedup import semantic_duplicates

        found = f"{len(semantic_duplicates(x).kept_for):,} dropped"
    elif method == "deita":
        from tunesift.selectors.deita import deita_filter

        scores = np.random.default_rng(1).uniform(1, 6, size=n).tolist()
        found = f"{len(deita_filter(scores, x, k)):,} picks"
    elif method == "mig":
        from tunesift.selectors.mig import label_graph, mig_greedy, propagate

        labels, quality, embeddings = inputs
        u = propagate(labels, quality, label_graph(embeddings))
        found = f"{len(set(mig_greedy(u, k))):,} picks"
    else:
        from tunesift.selectors.dq import dq_select

        found = f"{len(set(dq_select(x, k))):,} picks"
    return {"seconds": time.perf_counter() - started, "peak_mib": peak_mib(), "before_mib": before, "found": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--dq-sizes", default="10000,20000,40000")
    parser.add_argument("--methods", default="kcenter,semantic,deita,mig,dq")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return
    peak = matmul_peak_gflops(4096, reps=3)
    print(f"float32 matrix product on this machine: {peak:.0f} GFLOP/s")
    print()
    print(
        "| method | points | seconds | peak MiB | above the vectors MiB | bytes a record above the vectors | result "
        "| dense-equivalent GFLOP/s | share of peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    methods = args.methods.split(",")
    runs = [(m, int(n)) for n in args.sizes.split(",") for m in methods if m != "dq"]
    runs += [("dq", int(n)) for n in args.dq_sizes.split(",")] if "dq" in methods else []
    dq_seconds = {}
    for method, n in runs:
        out = subprocess.run([sys.executable, __file__, "--one", method, str(n)], check=True, capture_output=True,
                             text=True)  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        flops = 2.0 * n * (n // 100) * 384 if method == "kcenter" else None
        rate = "–" if flops is None else f"{flops / r['seconds'] / 1e9:.0f}"
        share = "–" if flops is None else f"{flops / r['seconds'] / 1e9 / peak:.0%}"
        above = r["peak_mib"] - r["before_mib"]
        print(f"| {method} | {n:,} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {above:.0f} | {above * 2**20 / n:.0f} "
              f"| {r['found']} | {rate} | {share} |", flush=True)  # fmt: skip
        if method == "dq":
            dq_seconds[n] = r["seconds"]
    if len(dq_seconds) >= 2:
        sizes = sorted(dq_seconds)
        slope = float(np.polyfit(np.log(sizes), np.log([dq_seconds[n] for n in sizes]), 1)[0])
        for n in [int(s) for s in args.sizes.split(",")]:
            projected = dq_seconds[sizes[-1]] * (n / sizes[-1]) ** slope
            print(f"| dq (projected, exponent {slope:.2f}) | {n:,} | {projected:,.0f} | – | – | – | – | – | – |")


if __name__ == "__main__":
    main()
