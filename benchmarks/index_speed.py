"""Selecting from a vector index: 1M pool vectors of SmolLM2's width (576, random unit vectors), 100 query
points, the top 10k by max cosine, and round-robin over 3 tasks; time, peak memory, and how cost grows.

The vectors are written as the score store keeps them (a binary float32 file) and memory-mapped, as a targeted
method reads them: ``max_similarity`` (blockwise ``N x Q`` products) then ``round_robin``. The obvious loop (one
pool vector at a time, a dot product per query point) is timed on a slice and scaled for the ratio.

    .venv/bin/python benchmarks/index_speed.py [--pool 1000000] [--width 576] [--queries 100] [--keep 10000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from tunesift.scorers.targeted import max_similarity
from tunesift.selectors.round_robin import round_robin

BLOCK = 65_536


def write_index(path: Path, n: int, width: int, seed: int = 0) -> np.memmap:
    """``n`` random unit vectors, written a block at a time (memory stays one block)."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as handle:
        for begin in range(0, n, BLOCK):
            block = rng.standard_normal((min(BLOCK, n - begin), width), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            handle.write(block.astype("<f4").tobytes())
    return np.memmap(path, dtype="<f4", mode="r", shape=(n, width))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def select(index: np.ndarray, queries: np.ndarray, sizes: list[int], keep: int) -> tuple[list[int], float]:
    started = time.perf_counter()
    scores = max_similarity(index, queries, sizes)
    picked = round_robin(scores, keep)
    return picked, time.perf_counter() - started


def obvious_loop(index: np.ndarray, queries: np.ndarray, n: int) -> float:
    """Seconds per pool vector of the plain loop: each vector against each query point."""
    started = time.perf_counter()
    for i in range(n):
        v = np.asarray(index[i], dtype=np.float32)
        max(float(v @ q) for q in queries)
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=576)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--keep", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((args.queries, args.width), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    thirds = [args.queries // 3 + (t < args.queries % 3) for t in range(3)]
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for n in sorted({args.pool // 4, args.pool // 2, args.pool}):
            index = write_index(Path(folder) / f"index-{n}.f32", n, args.width)
            before = peak_rss_mb()
            one, seconds_one = select(index, queries, [args.queries], args.keep)
            three, seconds_three = select(index, queries, thirds, args.keep)
            assert len(one) == len(three) == min(args.keep, n)
            rows.append((n, seconds_one, seconds_three, peak_rss_mb(), before))
            del index
        loop = obvious_loop(write_index(Path(folder) / "loop.f32", 2_000, args.width), queries, 2_000)
    vector_mb = args.pool * args.width * 4 / 2**20
    print(
        f"index: {args.pool:,} x {args.width} float32 = {vector_mb:,.0f} MiB ({args.width * 4:,} bytes per sample; "
        f"the store adds a ~75-byte JSON line); {args.queries} query points; keep {args.keep:,}"
    )
    print()
    print(
        "| pool | top-k, 1 task (s) | round-robin, 3 tasks (s) | vectors/s (1 task) | obvious loop (s, scaled) "
        "| speed-up | peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, one, three, peak, _ in rows:
        print(
            f"| {n:,} | {one:.2f} | {three:.2f} | {n / one:,.0f} | {loop * n:,.0f} | {loop * n / one:,.0f}x "
            f"| {peak:,.0f} |"
        )
    n, one, three, peak, _ = rows[-1]
    print()
    print(
        f"peak RSS {peak:,.0f} MiB = {peak / vector_mb:.2f} x the vectors' bytes (target < 2); "
        f"top-k {one:.2f} s, round-robin {three:.2f} s (target < 10 s)"
    )


if __name__ == "__main__":
    main()
