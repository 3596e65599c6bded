"""How dedup's cost grows with the pool: exact and MinHash through ``tunesift dedup``'s own path (the pool streamed
from a file), at 100k, 300k and 1M records, beside datasketch's MinHash-LSH (the previous implementation, and the
tests' oracle) at the smallest size.

The pool is the Alpaca 9k sample, then copies of it with one word in twelve replaced, as JSONL. Each run is a
process of its own: seconds, peak resident memory above what the process held once its imports were done and the
pool was checked (``read_pool``), and that per record. MinHash compares whole samples here (``--on sample``, about
110 words a record, the issue's setting) and the prompts alone (the default)::

    python benchmarks/dedup_scale.py [--sizes 100000,300000,1000000]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def write_pool(n: int, path: Path) -> float:
    """The pool file; returns the mean words of a sample."""
    records = json.loads(DATA.read_text())
    rng = np.random.default_rng(0)
    words_total = 0
    with path.open("w") as handle:
        for i in range(n):
            r = dict(records[i % len(records)])
            if i >= len(records):
                words = r["output"].split() or ["x"]
                for k in rng.choice(len(words), size=max(1, len(words) // 12), replace=False):
                    words[k] = f"w{rng.integers(1_000_000)}"
                r["output"] = " ".join(words)
                instruction = r["instruction"].split()
                instruction[rng.integers(len(instruction))] = f"v{rng.integers(1_000_000)}"
                r["instruction"] = " ".join(instruction)
            words_total += len(f"{r['instruction']} {r.get('input', '')} {r['output']}".split())
            handle.write(json.dumps(r) + "\n")
    return words_total / n


def run_one(path: Path, method: str, on: str) -> dict:
    from tunesift.data.pools import read_pool

    pool = read_pool(path)
    if method == "datasketch":
        from datasketch import MinHash, MinHashLSH

        from tunesift.data.sample import Sample
        from tunesift.recipes.dedup import plain_text
        from tunesift.selectors.dedup import shingles

        base = rss_mib()
        started = time.perf_counter()
        lsh = MinHashLSH(threshold=0.7, num_perm=256)
        template = MinHash(num_perm=256, seed=1)
        found = 0
        for pos, sample in enumerate(s for s in pool if isinstance(s, Sample)):
            grams = shingles(plain_text(sample, on))
            m = MinHash(num_perm=256, seed=1, permutations=template.permutations, scheme=template.scheme)
            m.update_batch([g.encode("utf-8") for g in grams])
            found += bool(lsh.query(m))
            lsh.insert(pos, m, check_duplication=False)
        seconds = time.perf_counter() - started
    else:
        from tunesift.recipes.dedup import dedup_pool

        base = rss_mib()
        started = time.perf_counter()
        found = len(dedup_pool(pool, method, on=on).dropped)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": peak, "base_mib": base, "n": len(pool), "found": found}


def ray_stages(path: Path, cluster_cpus: int, target: int) -> None:
    """MinHash on a local Ray instance (this machine's CPUs): each stage's seconds, and a projection to ``target``
    records on a cluster of ``cluster_cpus`` CPUs from the measured rates (signatures and band grouping spread over
    the CPUs; the components joined on the driver, n log n)."""
    import os

    import ray

    from tunesift.data.pools import read_pool
    from tunesift.data.sample import Sample
    from tunesift.execution.ray_data import RayExecutor
    from tunesift.recipes.dedup import _chunks, plain_text
    from tunesift.selectors.dedup import MinHashGroups, components_of

    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    executor = RayExecutor()
    executor.connect()
    pool = read_pool(path)
    groups = MinHashGroups()
    started = time.perf_counter()
    texts = ([plain_text(s, "sample") for s in chunk] for chunk in _chunks(s for s in pool if isinstance(s, Sample)))
    groups.add_all(texts, map_chunks=executor.map_chunks)
    signatures = time.perf_counter() - started
    keys = np.concatenate(groups._keys)
    started = time.perf_counter()
    components_of(keys, executor.map_chunks)
    grouped = time.perf_counter() - started
    n = len(pool)
    ray.shutdown()
    scale = target / n * np.log(target) / np.log(n)
    per_cpu = n / signatures / cpus
    print(
        f"On Ray, {n:,} records, {cpus} CPUs: signatures {signatures:.1f} s ({per_cpu:,.0f} records/s a CPU), bands "
        f"grouped and components joined {grouped:.1f} s; keys on the driver {keys.nbytes / n:.0f} bytes a record."
    )
    print(
        f"Projection to {target:,} records on {cluster_cpus} CPUs: signatures ~{target / per_cpu / cluster_cpus:.0f} "
        f"s, grouping and components ~{grouped * scale:.0f} s (the join on the driver, n log n, an upper bound: "
        f"the band sorts spread over the CPUs), driver memory ~{target * (keys.nbytes / n + 40) / 2**30:.1f} GiB."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--ray", type=int, default=0, help="Also MinHash on a local Ray instance over this many "
                        "records, with a projection to --target records on --cluster-cpus CPUs.")  # fmt: skip
    parser.add_argument("--target", type=int, default=10_000_000)
    parser.add_argument("--cluster-cpus", type=int, default=64)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), args.one[1], args.one[2])))
        return
    if args.ray:
        with tempfile.TemporaryDirectory(prefix="dedup-ray-") as folder:
            path = Path(folder) / "pool.jsonl"
            write_pool(args.ray, path)
            ray_stages(path, args.cluster_cpus, args.target)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        "| method | on | records | words/record | seconds | records/s | peak above start MiB | bytes/record | dropped |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="dedup-scale-") as folder:
        for n in sizes:
            path = Path(folder) / f"pool-{n}.jsonl"
            words = write_pool(n, path)
            runs = [("exact", "sample"), ("minhash", "sample"), ("minhash", "prompt")]
            if n == sizes[0]:
                runs.append(("datasketch", "sample"))
            for method, on in runs:
                out = subprocess.run([sys.executable, __file__, "--one", str(path), method, on], check=True,
                                     capture_output=True, text=True)  # fmt: skip
                r = json.loads(out.stdout.strip().splitlines()[-1])
                above = r["peak_mib"] - r["base_mib"]
                print(f"| {method} | {on} | {n:,} | {words:.0f} | {r['seconds']:.1f} | {n / r['seconds']:,.0f} | "
                      f"{above:.0f} | {above * 2**20 / n:,.0f} | {r['found']:,} |", flush=True)  # fmt: skip
            path.unlink()


if __name__ == "__main__":
    main()
