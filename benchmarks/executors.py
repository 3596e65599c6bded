"""Executors: the same IFD scoring of the same records, in-process and on Ray with 1 and 2 actors.

    python benchmarks/executors.py [--n 200] [--model smollm2] [--chunk-size 25]

Each row scores the records into a fresh store, model load included, and prints seconds, samples/s, and
the share of this machine's fp32 matmul peak (measured in the same run) that the decoder's linear layers
reach (FLOPs = 2 x parameters x tokens, counted once from the local run's batches: every executor computes
the same batches). Ray's overhead is its one-actor time over the local run with the same thread count
(one actor = one CPU = one torch thread). On a 2-core machine Ray is started with 3 logical CPUs, so
that two one-CPU actors leave one to Ray Data's own tasks. Every row's scores are checked against the
first (1e-5).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _common import DATA, linear_params, matmul_peak_gflops

from tunesift import api
from tunesift.execution.local import LocalExecutor
from tunesift.models.causal_lm import CausalLM
from tunesift.models.registry import resolve_model


def timed(pool: Path, model, executor, store: Path, chunk: int) -> tuple[float, list[float | None]]:
    start = time.perf_counter()
    table = api.score_ifd(pool, model=model, store_dir=store, chunk_size=chunk, executor=executor)
    return time.perf_counter() - start, table.values()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--chunk-size", type=int, default=25, help="samples per store write / Ray batch")
    args = parser.parse_args()
    import ray

    from tunesift.execution.ray_data import RayExecutor

    work = Path(tempfile.mkdtemp(prefix="tunesift-executors-"))
    pool = work / "pool.json"
    pool.write_text(json.dumps(json.loads(DATA.read_text())[: args.n]))
    model = resolve_model(args.model)
    threads = torch.get_num_threads()
    peak = matmul_peak_gflops()

    # FLOPs of the work, from one pass whose batches we can count (the same batches every executor runs)
    lm = CausalLM.load(model)
    api.score_ifd(pool, backend=lm, store_dir=work / "count", chunk_size=args.chunk_size)
    body, head = linear_params(lm.model)
    flops = 2 * body * lm.stats["decoder_tokens"] + 2 * head * lm.stats["output_positions"]
    del lm

    rows = []
    reference = None
    torch.set_num_threads(threads)
    runs = [(f"local, {threads} threads", lambda: LocalExecutor(), threads)]
    runs.append(("local, 1 thread", lambda: LocalExecutor(), 1))
    ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    for actors in (1, 2):
        runs.append((f"ray, {actors} actor(s) x 1 CPU", lambda a=actors: RayExecutor(actors=a, gpus_per_actor=0,
                                                                                   cpus_per_actor=1), 1))  # fmt: skip
    for k, (name, make, n_threads) in enumerate(runs):
        torch.set_num_threads(n_threads)
        seconds, values = timed(pool, model, make(), work / f"store{k}", args.chunk_size)
        if reference is None:
            reference = values
        worst = max((abs(a - b) for a, b in zip(values, reference, strict=True) if a is not None), default=0.0)
        assert worst <= 1e-5, f"{name}: scores differ from the first run by {worst}"
        rows.append((name, seconds, args.n / seconds, flops / seconds / 1e9 / peak))
    torch.set_num_threads(threads)
    ray.shutdown()

    print(f"IFD (cherry), {args.n} Alpaca records, {model.name}, chunk {args.chunk_size}; fp32 matmul peak "
          f"{peak:.0f} GFLOP/s on {threads} threads; {flops / 1e12:.2f} TFLOP of linear-layer work")  # fmt: skip
    print("| executor | seconds | samples/s | share of peak |")
    print("|---|---|---|---|")
    for name, seconds, rate, share in rows:
        print(f"| {name} | {seconds:.1f} | {rate:.1f} | {share:.1%} |")
    by = {name: seconds for name, seconds, _, _ in rows}
    one = by["ray, 1 actor(s) x 1 CPU"]
    print(f"\nRay overhead at one actor over local with one thread: {one / by['local, 1 thread'] - 1:+.1%}")
    print(f"Ray, 2 actors over local with {threads} threads: {by['ray, 2 actor(s) x 1 CPU'] / rows[0][1] - 1:+.1%}")


if __name__ == "__main__":
    main()
