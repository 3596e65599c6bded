"""QDIT and facility location on the sparse kernel (each point's 64 nearest neighbours, lazy greedy) against the
exact dense greedy: the objective each reaches on 20,000 points, and the seconds and peak memory at 100k, 300k and 1M.

Vectors: 384-d unit vectors drawn around 2,000 centres (real sentence embeddings cluster; uniform random ones have no
neighbours worth the name). Neighbours come from faiss when it is installed (``tunesift[scale]``), else exactly from
blocked products (much slower beyond 50k). Each size runs in a process of its own, so its peak memory is its own::

    python benchmarks/sparse_diversity.py [--sizes 100000,300000,1000000] [--compare 20000] [--neighbours 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_mib


def vectors(n: int, d: int = 384, centres: int = 2000, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``centres`` random means, filled a block at a time (so the peak memory a benchmark
    reports after drawing them is the vectors', not the drawing's temporaries)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, d), dtype=np.float32)
    which = rng.integers(centres, size=n)
    x = np.empty((n, d), dtype=np.float32)
    for begin in range(0, n, 65536):
        block = slice(begin, min(n, begin + 65536))
        x[block] = means[which[block]] + 0.8 * rng.standard_normal((block.stop - begin, d), dtype=np.float32)
        x[block] /= np.linalg.norm(x[block], axis=1, keepdims=True)
    return x


def compare(n: int, k: int, neighbours: int) -> list[dict]:
    """The dense objective of each greedy's picks, on the same points."""
    from tunesift.selectors.facility_location import facility_location
    from tunesift.selectors.neighbours import coverage_value
    from tunesift.selectors.qdit import qdit_select, scaled_quality

    x = vectors(n)
    quality = np.random.default_rng(1).uniform(1, 6, size=n)
    norms = np.einsum("ij,ij->i", x, x)
    out = []
    for method in ("qdit", "facility-location"):
        row: dict = {"method": method, "n": n, "k": k}
        for path, given in (("dense", None), ("sparse", neighbours), ("ivf", neighbours)):
            started = time.perf_counter()
            if path == "ivf":  # the approximate neighbours a pool over 50,000 points gets, here on this one
                from tunesift.selectors import neighbours as nb

                nb.EXACT_UP_TO = 0
            if method == "qdit":
                picks = qdit_select(x, quality, k, neighbours=given)
            else:
                picks = facility_location(x, k, neighbours=given)
            row[f"{path}_s"] = time.perf_counter() - started
            if method == "qdit":
                row[path] = coverage_value(lambda r: x[r] @ x.T, n, picks, weight=0.5 / n,
                                           bonus=0.5 * scaled_quality(quality))  # fmt: skip
            else:
                row[path] = coverage_value(lambda r: np.exp(-np.sqrt(np.maximum(
                    norms[r, None] - 2 * x[r] @ x.T + norms[None, :], 0)) / x.shape[1]), n, picks)  # fmt: skip
            row[f"{path}_picks"] = picks
        dense = set(row.pop("dense_picks"))
        row["overlap"] = len(dense & set(row.pop("sparse_picks"))) / k
        row["ivf_overlap"] = len(dense & set(row.pop("ivf_picks"))) / k
        from tunesift.selectors import neighbours as nb

        nb.EXACT_UP_TO = 50_000
        out.append(row)
    return out


def scale(n: int, k: int, neighbours: int, method: str) -> dict:
    from tunesift.selectors import neighbours as nb
    from tunesift.selectors.qdit import scaled_quality

    x = vectors(n)
    quality = np.random.default_rng(1).uniform(1, 6, size=n)
    before = peak_mib()
    started = time.perf_counter()
    ids, scores = nb.nearest(x, neighbours + 1, metric="ip" if method == "qdit" else "l2")
    found = time.perf_counter() - started
    if method != "qdit":
        scores = np.exp(-np.sqrt(np.maximum(scores, 0.0)) / x.shape[1])
    started = time.perf_counter()
    weight, bonus = (0.5 / n, 0.5 * scaled_quality(quality)) if method == "qdit" else (1.0, None)
    picks = nb.sparse_greedy(ids, scores, k, weight=weight, bonus=bonus)
    greedy = time.perf_counter() - started
    return {"method": method, "n": n, "k": k, "neighbours_s": found, "greedy_s": greedy, "picks": len(set(picks)),
            "peak_mib": peak_mib(), "vectors_mib": x.nbytes / 2**20, "before_mib": before,
            "faiss": nb.faiss_module() is not None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--compare", type=int, default=20000)
    parser.add_argument("--neighbours", type=int, default=64)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, n, k, m = args.one
        print(json.dumps(compare(int(n), int(k), int(m)) if method == "compare" else
                         scale(int(n), int(k), int(m), method)))  # fmt: skip
        return

    def run(*fields: object) -> object:
        out = subprocess.run([sys.executable, __file__, "--one", *map(str, fields)], check=True, capture_output=True,
                             text=True)  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    k = 1000
    if args.compare:
        objective_table(run, args.compare, k, args.neighbours)
    print(f"At scale ({args.neighbours} neighbours):")
    print("| method | points | picks | neighbours s | greedy s | total s | peak MiB | vectors MiB "
          "| bytes a record above the vectors | faiss |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        picks = 1000 if n < 1_000_000 else 10_000
        for method in ("qdit", "facility-location"):
            r = run(method, n, picks, args.neighbours)
            above = (r["peak_mib"] - r["before_mib"]) * 2**20 / n
            print(f"| {method} | {n:,} | {picks:,} | {r['neighbours_s']:.1f} | {r['greedy_s']:.1f} | "
                  f"{r['neighbours_s'] + r['greedy_s']:.1f} | {r['peak_mib']:.0f} | {r['vectors_mib']:.0f} | "
                  f"{above:.0f} | {'yes' if r['faiss'] else 'no'} |", flush=True)  # fmt: skip


def objective_table(run: Callable[..., object], n: int, k: int, neighbours: int) -> None:
    print(f"Objective on {n:,} points, {k} picks (dense kernel value of each greedy's picks):")
    print(
        "| method | neighbours | dense greedy s | sparse greedy s | dense objective | sparse objective | ratio | "
        "picks shared |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in run("compare", n, k, neighbours):
        for path, label in (("sparse", "exact"), ("ivf", "IVF")):
            shared = r["overlap"] if path == "sparse" else r["ivf_overlap"]
            print(f"| {r['method']} | {label} | {r['dense_s']:.1f} | {r[path + '_s']:.1f} | {r['dense']:.4f} | "
                  f"{r[path]:.4f} | {r[path] / r['dense']:.3%} | {shared:.0%} |", flush=True)  # fmt: skip
    print()


if __name__ == "__main__":
    main()
