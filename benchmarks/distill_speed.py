"""What ``distill`` costs beyond its teacher, at 100k and 1M records, with the pool's vectors already stored.

For each size a synthetic pool (distinct instructions) is written and its MiniLM vectors (random unit vectors with a
planted direction, so the head has something to find) are put in a fresh score store, as ``embed``, ``kcenter`` or
an earlier distill would have left them. Then, in a process of its own (so its peak memory is its own), the whole
method runs through ``tunesift.score("distill", ...)`` with the packaged ``lang`` identifier as a cheap teacher
(``force``: its confidence is not what the planted direction predicts), and prints each stage's seconds, the peak
resident memory, memory per record, the head's scoring against the obvious one-row-at-a-time loop, and the scoring's
share of this machine's measured float64 matrix-product peak. The teacher's share uses ``--teacher-per-call``
(seconds per labelled record; default: the packaged AlpaGasus judge's rate measured by ``distill_heldout.py``)::

    python benchmarks/distill_speed.py [--sizes 100000,1000000] [--n-label 2000] [--teacher-per-call 0.22]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import matmul_peak_gflops

WIDTH = 384


def build(n: int, folder: Path) -> None:
    """The pool file and its stored prompt vectors (what the ``lang`` teacher's features are: the prompt)."""
    from tunesift.data.schemas import record_to_sample
    from tunesift.scorers.embedding import MiniLMEmbedding
    from tunesift.store import ScoreStore

    rng = np.random.default_rng(0)
    pool = folder / "pool.jsonl"
    store = ScoreStore(folder / "store", MiniLMEmbedding(text="prompt").cache_config(), "vec")
    direction = rng.normal(size=WIDTH)
    direction /= np.linalg.norm(direction)
    with pool.open("w") as handle:
        for begin in range(0, n, 50_000):
            count = min(50_000, n - begin)
            records = [{"instruction": f"Write item {i} of the benchmark list, number {i * 7919 % 100_003}.",
                        "input": "", "output": f"Item {i}."} for i in range(begin, begin + count)]  # fmt: skip
            handle.write("".join(json.dumps(r) + "\n" for r in records))
            vectors = rng.normal(size=(count, WIDTH)) + 3 * rng.normal(size=(count, 1)) * direction
            vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
            rows = [{"id": record_to_sample(r, 0, pool).content_id, "vec": v}
                    for r, v in zip(records, vectors, strict=True)]  # fmt: skip
            store.append(rows)


def measure(folder: Path, n_label: int) -> dict:
    """The whole method over the stored pool; this process's peak memory."""
    from tunesift import api
    from tunesift.scorers.heldout import fit_head

    started = time.perf_counter()
    table = api.score("distill", folder / "pool.jsonl", teacher="lang", n_label=n_label, force=True,
                      store_dir=folder / "store")  # fmt: skip
    wall = time.perf_counter() - started
    cost = table.config["cost"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # the head's scoring, blocked, against the obvious loop over the same stored vectors
    from tunesift.scorers.embedding import MiniLMEmbedding
    from tunesift.store import ScoreStore

    matrix = ScoreStore(folder / "store", MiniLMEmbedding(text="prompt").cache_config(), "vec").vectors()
    rng = np.random.default_rng(1)
    head = fit_head(rng.normal(size=(500, WIDTH)), rng.normal(size=500), "ridge", alphas=[1.0])
    started = time.perf_counter()
    head.predict(matrix)
    blocked = time.perf_counter() - started
    loop_rows = min(20_000, len(matrix))
    weights = head.weights.tolist()
    started = time.perf_counter()
    for r in range(loop_rows):
        row = matrix[r].tolist()
        _ = sum(w * x for w, x in zip(weights, row, strict=True)) + head.bias
    loop = (time.perf_counter() - started) / loop_rows * len(matrix)
    return {"n": len(table.rows), "wall": wall, "cost": cost, "peak_bytes": peak, "blocked_predict_s": blocked,
            "loop_predict_s_projected": loop}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--n-label", type=int, default=2000)
    parser.add_argument("--teacher-per-call", type=float, default=None,
                        help="Seconds per labelled record of the teacher whose share is shown.")  # fmt: skip
    parser.add_argument("--build", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, metavar=("DIR", "N_LABEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(int(args.build[0]), Path(args.build[1]))
        return
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), int(args.measure[1]))))
        return
    peak_gflops = matmul_peak_gflops(2048, reps=3, dtype=torch.float64)
    print(f"float64 matrix product on this machine: {peak_gflops:.1f} GFLOP/s (the peak the scoring is measured "
          "against)")  # fmt: skip
    print()
    print(
        "| records | build s | distill s | teacher (lang) s | embed s | fit+evaluate s | score s | peak MiB "
        "| KiB/record | head: blocked s | head: loop s (projected) | ratio | scoring GFLOP/s | share of peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="distill-speed-") as folder:
            started = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--build", str(n), folder], check=True)
            built = time.perf_counter() - started
            out = subprocess.run([sys.executable, __file__, "--measure", folder, str(args.n_label)], check=True,
                                 capture_output=True, text=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
        s = r["cost"]["seconds"]
        gflops = 2 * WIDTH * n / r["blocked_predict_s"] / 1e9
        embed = s["embed_labelled"] + s["embed_pool"]
        blocked, loop, peak = r["blocked_predict_s"], r["loop_predict_s_projected"], r["peak_bytes"]
        print(
            f"| {n:,} | {built:.0f} | {r['wall']:.1f} | {s['teacher']:.1f} | {embed:.1f} "
            f"| {s['fit_and_evaluate']:.1f} | {s['score_pool']:.1f} | {peak / 2**20:.0f} | {peak / n / 1024:.2f} "
            f"| {blocked:.2f} | {loop:.0f} | {loop / blocked:.0f}x | {gflops:.2f} | {gflops / peak_gflops:.1%} |"
        )
        results.append((n, r))
    if args.teacher_per_call:
        print()
        print(f"The teacher's share at {args.teacher_per_call:.3f} s a record, {args.n_label} labelled:")
        print("| records | teacher on the sample s | distill beyond the teacher s | teacher's share | teacher on the "
              "whole pool s |")  # fmt: skip
        print("|---|---|---|---|---|")
        for n, r in results:
            teacher = args.teacher_per_call * args.n_label
            rest = r["wall"] - r["cost"]["seconds"]["teacher"]
            print(f"| {n:,} | {teacher:.0f} | {rest:.1f} | {teacher / (teacher + rest):.1%} | "
                  f"{args.teacher_per_call * n:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
