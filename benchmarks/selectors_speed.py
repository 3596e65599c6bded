"""Diversity selectors at scale: 100,000 random 384-d unit vectors, budget 10,000.

    python benchmarks/selectors_speed.py [--n 100000] [--k 10000] [--fl-candidates 20000]

Prints seconds and peak memory of each selector (tracemalloc peak of Python and NumPy allocations). No
selector builds an N x N matrix: 100,000^2 float32 would be 40 GB. Facility location works on candidates
prefiltered to 20,000, as Superfiltering.D does (top IFD first, then diversity).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from tunesift.selectors.deita import deita_filter
from tunesift.selectors.facility_location import facility_location
from tunesift.selectors.kcenter import kcenter_greedy


def measure(name, fn):
    tracemalloc.start()
    start = time.perf_counter()
    picks = fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return name, seconds, peak, len(picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--fl-candidates", type=int, default=20_000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = rng.random(args.n)
    top = np.argsort(-scores, kind="stable")[: args.fl_candidates]
    embeddings_mb = x.nbytes / 1e6
    rows = [
        measure("k-center greedy", lambda: kcenter_greedy(x, args.k)),
        measure(f"facility location ({args.fl_candidates:,} candidates)", lambda: facility_location(x[top], args.k)),
        measure("DEITA filter (tau 0.9)", lambda: deita_filter(scores, x, args.k, tau=0.9)),
    ]
    print(f"{args.n:,} random {args.dim}-d unit vectors ({embeddings_mb:.0f} MB), budget {args.k:,}; "
          f"an N x N float32 matrix would take {args.n**2 * 4 / 1e9:.0f} GB")  # fmt: skip
    print()
    print("| selector | seconds | peak memory (MB) | picked |")
    print("|---|---|---|---|")
    for name, seconds, peak, picked in rows:
        print(f"| {name} | {seconds:.1f} | {peak / 1e6:.0f} | {picked:,} |")


if __name__ == "__main__":
    main()
