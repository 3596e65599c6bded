"""What LESS costs on this machine (METHODS.md §26): the warm-up, then seconds per record per checkpoint of the pool's
gradient features, the share of the measured matrix-multiply peak, peak memory and the datastore's size, at several
pool sizes; against the obvious loop in the same run (batch size 1, the full vocabulary's logits and the library's
loss, the projection's signs made again for every record).

Each size runs in a fresh process with its own caches (nothing reused), on ``alpaca_random_9k`` records, with the
packaged SmolLM2-135M-Instruct (fp32, the chat template), the CPU defaults (r 8, 4 warm-up epochs, checkpoints 1 and 2,
k = 8192) and 8 GSM8K train problems as the query set.

    python benchmarks/less_cost.py [--sizes 250,1000] [--obvious 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA

EVAL = DATA.parents[1] / "eval"
MODEL = "smollm2-135m-instruct"

CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
from tunesift import api
from tunesift.data.pools import read_pool
from tunesift.execution.driver import default_executor
from tunesift.models.backend import model_ref
from tunesift.models.lora_grads import WarmupConfig
from tunesift.scorers.less import run_warmup, warmup_rows
pool, query, store, model = sys.argv[1:5]
samples = [s for s in read_pool(pool)]
resolved = model_ref(model, default_executor(None, None), dtype="float32")
started = time.perf_counter()
run_warmup(resolved, [samples[i] for i in warmup_rows(len(samples), 0)], "chat", 1024, WarmupConfig(r=8, alpha=32.0))
warm = time.perf_counter() - started
started = time.perf_counter()
table = api.score("less", pool, query=[query], model=model, store_dir=store)
features = time.perf_counter() - started
size = sum(p.stat().st_size for p in Path(store).rglob("*") if p.is_file() and "less" in p.name)
tokens = [r.get("n_labels") for r in table.rows]
print(json.dumps({"warmup_s": warm, "features_s": features, "peak_mib": resource.getrusage(resource.RUSAGE_SELF)
                  .ru_maxrss / 1024, "store_bytes": size, "scored": sum(r["less"] is not None for r in table.rows)}))
"""


def obvious(n: int, records: list[dict]) -> dict:
    """The obvious loop: one record at a time, transformers' loss over the full vocabulary's logits, the Adam
    transform, and a projection whose signs are made for this record alone (B = 1)."""
    import numpy as np
    import torch

    from tunesift.data.pools import read_pool
    from tunesift.data.templates import get_template
    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.lora_grads import attach_lora, encode
    from tunesift.models.registry import resolve_model
    from tunesift.scorers.less import adam_transform, project

    lm = CausalLM.load(resolve_model(MODEL))
    lm.model.float()
    params = attach_lora(lm.model, 8, 32.0, 0.1, 0)
    width = sum(p.numel() for _, p in params)
    m, v = np.full(width, 1e-5, np.float32), np.full(width, 1e-9, np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.json"
        path.write_text(json.dumps(records[:n]))
        samples = list(read_pool(path))
    template = get_template("chat", lm)
    started, tokens = time.perf_counter(), 0
    for sample in samples:
        example = encode(lm, template, sample, 1024)
        ids = torch.tensor([example.ids])
        labels = ids.clone()
        labels[0, : example.start] = -100
        lm.model.zero_grad()
        lm.model(input_ids=ids, labels=labels).loss.backward()
        g = torch.cat([p.grad.reshape(-1) for _, p in params]).numpy()
        project(adam_transform(g, m, v, 16)[None, :], 8192, 0)
        tokens += len(example.ids)
    return {"s_per_record": (time.perf_counter() - started) / n, "tokens": tokens / n}


def peak_gflops() -> float:
    import numpy as np

    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    started = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250,1000")
    parser.add_argument("--obvious", type=int, default=3, help="records through the obvious loop")
    args = parser.parse_args()
    records = json.loads(DATA.read_text(encoding="utf-8"))
    with open(EVAL / "gsm8k_train.jsonl", encoding="utf-8") as handle:
        problems = [json.loads(line) for _, line in zip(range(8), handle, strict=False)]
    gflops = peak_gflops()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            pool, query = Path(folder) / "pool.json", Path(folder) / "q.json"
            pool.write_text(json.dumps(records[:n]))
            query.write_text(json.dumps([{"instruction": p["question"], "output": p["answer"]} for p in problems]))
            env = {**os.environ, "TUNESIFT_CACHE": str(Path(folder) / "cache")}
            done = subprocess.run([sys.executable, "-c", CHILD, str(pool), str(query), str(Path(folder) / "store"),
                                   MODEL], env=env, capture_output=True, text=True, check=True)  # fmt: skip
            found = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append((n, found))
    loop = obvious(args.obvious, records)
    # work per record and checkpoint: forward and backward through 135M weights (input gradients only: the weights
    # are frozen), 2 x 2 x params x tokens, and the projection, 2 x P x k
    params, width, k = 134.5e6, 921_600, 8192
    print(f"matrix-multiply peak measured here: {gflops:.0f} GFLOP/s (float32, 2048 x 2048)\n")
    print(
        "| records | warm-up s | features s | s / record / checkpoint | rows/s | share of peak | peak MiB | "
        "datastore MB | obvious loop s / record | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, found in rows:
        per = found["features_s"] / (2 * n)
        flops = 4 * params * loop["tokens"] + 2 * width * k
        rate = n / found["features_s"]
        print(f"| {n:,} | {found['warmup_s']:.0f} | {found['features_s']:.0f} | {per:.3f} | {rate:.2f}"
              f" | {flops / per / 1e9 / gflops:.0%} | {found['peak_mib']:,.0f} | {found['store_bytes'] / 1e6:.1f} | "
              f"{loop['s_per_record']:.2f} | {loop['s_per_record'] / per:.1f}x |")  # fmt: skip
    print(f"\nobvious loop: {args.obvious} records, {loop['tokens']:.0f} tokens each on average")


if __name__ == "__main__":
    main()
