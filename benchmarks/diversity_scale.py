"""Diversity-first selection and dedup at scale on this machine: MinHash dedup of 200k records, SemDeDup and QDIT
over 100k MiniLM-sized vectors, MIG over 100k samples with ~3,000 labels; time, throughput and peak memory.

Each measurement runs in a fresh process, so its peak RSS is its own. Data:
- MinHash: the Alpaca pool's 9k texts (prompt and response), each repeated with one word in twelve replaced at
  random, to 200k records (so near-duplicate groups exist, as in a scraped pool);
- SemDeDup / QDIT: 100k unit vectors of MiniLM's width (384), random, with 10 % planted near copies (cosine ~0.995);
- MIG: 3,000 labels (unit vectors in 384-d, drawn around 1,000 centres so the 0.9 graph has edges), each sample 1-6
  labels by a Zipf law, quality uniform in [1, 36].
None builds an N x N matrix: the table gives memory per sample.

    .venv/bin/python benchmarks/diversity_scale.py [--records 200000] [--vectors 100000] [--qdit-k 1000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minhash(n: int) -> dict:
    from tunesift.selectors.dedup import minhash_duplicates

    records = json.loads(DATA.read_text())
    rng = np.random.default_rng(0)
    base = [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in records]
    texts = []
    while len(texts) < n:
        for text in base:
            words = text.split()
            if len(texts) >= len(base):  # copies after the first pass: one word in twelve replaced
                for i in rng.choice(len(words), size=max(1, len(words) // 12), replace=False):
                    words[i] = f"w{rng.integers(1_000_000)}"
            texts.append(" ".join(words))
            if len(texts) >= n:
                break
    before = peak_mib()
    started = time.perf_counter()
    found = minhash_duplicates(texts)
    seconds = time.perf_counter() - started
    return {"what": f"MinHash dedup, {n:,} records", "seconds": seconds, "rate": n / seconds, "unit": "records/s",
            "peak_mib": peak_mib(), "before_mib": before, "n": n, "found": len(found.kept_for)}  # fmt: skip


def _vectors(n: int, width: int = 384) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, width), dtype=np.float32)
    copies = n // 10
    x[-copies:] = x[:copies] + rng.standard_normal((copies, width), dtype=np.float32) * 0.1  # cosine ~0.995
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def semantic(n: int) -> dict:
    from tunesift.selectors.dedup import semantic_duplicates

    x = _vectors(n)
    before = peak_mib()
    started = time.perf_counter()
    found = semantic_duplicates(x)
    seconds = time.perf_counter() - started
    return {"what": f"SemDeDup, {n:,} vectors (k-means {found.details['clusters']} clusters)", "seconds": seconds,
            "rate": n / seconds, "unit": "vectors/s", "peak_mib": peak_mib(), "before_mib": before, "n": n,
            "found": len(found.kept_for)}  # fmt: skip


def qdit(n: int, k: int) -> dict:
    from tunesift.selectors.qdit import qdit_select

    x = _vectors(n)
    quality = np.random.default_rng(1).uniform(1, 6, size=n)
    before = peak_mib()
    started = time.perf_counter()
    picks = qdit_select(x, quality, k, alpha=0.5)
    seconds = time.perf_counter() - started
    return {"what": f"QDIT, {n:,} vectors, {k:,} picks", "seconds": seconds, "rate": k / seconds, "unit": "picks/s",
            "peak_mib": peak_mib(), "before_mib": before, "n": n, "found": len(set(picks))}  # fmt: skip


def mig(n: int, n_labels: int, k: int) -> dict:
    from tunesift.selectors.mig import label_graph, mig_greedy, propagate

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n_labels // 3, 384), dtype=np.float32)
    labels = centres[rng.integers(len(centres), size=n_labels)] + rng.standard_normal((n_labels, 384)).astype(
        np.float32) * 0.012  # fmt: skip
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    ranks = np.arange(1, n_labels + 1, dtype=np.float64)
    weights = (1 / ranks) / (1 / ranks).sum()
    tags = [list(rng.choice(n_labels, size=int(rng.integers(1, 7)), p=weights)) for _ in range(n)]
    quality = rng.uniform(1, 36, size=n)
    before = peak_mib()
    started = time.perf_counter()
    graph = label_graph(labels)
    u = propagate(tags, quality, graph)
    built = time.perf_counter() - started
    picks = mig_greedy(u, k)
    seconds = time.perf_counter() - started
    edges = (graph.nnz - n_labels) // 2
    return {"what": f"MIG, {n:,} samples, {n_labels:,} labels ({edges:,} edges, graph + propagation "
            f"{built:.1f} s), {k:,} picks", "seconds": seconds, "rate": k / seconds, "unit": "picks/s",
            "peak_mib": peak_mib(), "before_mib": before, "n": n, "found": len(set(picks))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--qdit-k", type=int, default=1_000)
    parser.add_argument("--mig-k", type=int, default=10_000)
    parser.add_argument("--labels", type=int, default=3_000)
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:  # one measurement, in this fresh process
        run = {"minhash": lambda: minhash(args.records), "semantic": lambda: semantic(args.vectors),
               "qdit": lambda: qdit(args.vectors, args.qdit_k),
               "mig": lambda: mig(args.vectors, args.labels, args.mig_k)}[args.only]  # fmt: skip
        print(json.dumps(run()))
        return
    rows = []
    for name in ("minhash", "semantic", "qdit", "mig"):
        out = subprocess.run([sys.executable, __file__, "--only", name, *sys.argv[1:]], capture_output=True, text=True,
                             check=True)  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done: {rows[-1]['what']}", file=sys.stderr, flush=True)
    print("| what | seconds | throughput | peak RSS (MiB) | of which the data (MiB) | per sample (KiB) | found |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        work = r["peak_mib"] - r["before_mib"]
        print(f"| {r['what']} | {r['seconds']:.1f} | {r['rate']:,.0f} {r['unit']} | {r['peak_mib']:,.0f} | "
              f"{r['before_mib']:,.0f} | {1024 * r['peak_mib'] / r['n']:.2f} (work {1024 * work / r['n']:.2f}) | "
              f"{r['found']:,} |")  # fmt: skip
    print(
        "\nfound: duplicates dropped (dedup), distinct picks (QDIT, MIG). Peak RSS includes the interpreter and "
        "libraries (~300 MiB) and the input data; 'work' is what the method added on top of the data."
    )


if __name__ == "__main__":
    main()
