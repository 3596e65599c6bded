"""Seconds per 1,000 samples and forward passes per sample of the survey methods added in issue 14, on this
machine, with the packaged SmolLM2 as every local model (judges, tagger, rater, Nuggets' model).

    python benchmarks/methods_speed.py [--n 24] [--anchors 10] [--instag-tokens 128]

Each scorer runs through its pool function on the first ``--n`` Alpaca records, with an empty score store
(a temporary folder), after one warm-up sample; the time is scaled to 1,000 samples. MoDS's reward model is
a DeBERTa-v3-large-shaped classifier with random weights (speed does not depend on the weights; the real
checkpoint is not packaged here); DQ is MiniLM embeddings plus the GraphCut binning. Nuggets is also timed
against the obvious loop (every anchor's one-shot text in full, one at a time) to show the KV-cache reuse.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import DATA


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def write_pool(records, folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text(json.dumps(records))
    return path


def deberta_large_reward(folder: Path) -> Path:
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    from tunesift.models.registry import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2").path)
    config = DebertaV2Config(vocab_size=128100, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                             intermediate_size=4096, max_position_embeddings=512, relative_attention=True,
                             position_buckets=256, pos_att_type=["p2c", "c2p"], num_labels=1,
                             pad_token_id=tok.pad_token_id or 0)  # fmt: skip
    torch.manual_seed(0)
    DebertaV2ForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def nuggets_obvious(lm, anchors, samples) -> float:
    """Every (sample, anchor) one-shot text through the model in full, one at a time, no cache."""
    from tunesift.scorers.nuggets import Task, anchor_span

    start = time.perf_counter()
    with torch.inference_mode():
        for sample in samples:
            demo = Task.of(sample)
            for anchor in anchors:
                span = anchor_span(lm, anchor, demo)
                lm.model(input_ids=torch.tensor([span.ids]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--anchors", type=int, default=10)
    parser.add_argument("--instag-tokens", type=int, default=128)
    args = parser.parse_args()

    from tunesift import api
    from tunesift.data.pools import read_pool
    from tunesift.models.causal_lm import CausalLM
    from tunesift.scorers.nuggets import load_anchors

    records = json.loads(DATA.read_text())[: args.n + 1 + args.anchors]
    work = Path(tempfile.mkdtemp(prefix="tunesift-bench-"))
    os.environ["TUNESIFT_CACHE"] = str(work / "cache")
    warm = write_pool(records[:1], work, "warm.json")
    pool = write_pool(records[1 : args.n + 1], work, "pool.json")
    anchor_file = write_pool(records[args.n + 1 :], work, "anchors.json")
    reward = deberta_large_reward(work / "reward")
    n_anchor = args.anchors
    rows = []

    def run(name, fn, passes, **kw):
        fn(warm, **kw)  # loads the model once, outside the timing
        seconds, table = timed(fn, pool, **kw)
        scored = sum(1 for r in table.rows if r.get(table.score_field) is not None)
        rows.append((name, seconds / args.n * 1000, passes, f"{scored}/{args.n} scored"))

    run("DEITA (complexity + quality)", api.score_deita, "2 (one per rating text a turn)")
    run("self-curation (local judge)", api.score_self_curation, "1")
    run(f"Nuggets ({n_anchor} anchors)", api.score_nuggets, f"{n_anchor} anchor continuations (+{n_anchor} once)",
        anchors=anchor_file)  # fmt: skip
    run(f"INSTAG (local tagger, <= {args.instag_tokens} new tokens)", api.score_instag,
        f"1 prompt pass + up to {args.instag_tokens} decode steps", max_new_tokens=args.instag_tokens,
        min_tag_count=1)  # fmt: skip
    run("MoDS quality (DeBERTa-v3-large shape)", api.score_mods, "1 (classifier)", reward_model=str(reward))

    from tunesift.models.minilm import MiniLMEmbedder
    from tunesift.selectors.dq import dq_select

    big = json.loads(DATA.read_text())[:1000]
    samples = read_pool(write_pool(big, work, "big.json")).samples
    embed_s, vectors = timed(MiniLMEmbedder(device="cpu").embed_samples, samples)
    bin_s, _ = timed(dq_select, vectors, 100, bins=10)
    rows.append(("DQ (MiniLM embedding + 10 GraphCut bins)", embed_s + bin_s, "1 (encoder)",
                 f"embed {embed_s:.1f} s + bins {bin_s:.2f} s at N=1000"))  # fmt: skip

    lm = CausalLM.load("smollm2")
    anchors = load_anchors(read_pool(pool), anchor_file)
    few = read_pool(pool).samples[:4]
    from tunesift.models.registry import resolve_model
    from tunesift.scorers.nuggets import AnchoredLM, Nuggets

    scorer = Nuggets(resolve_model("smollm2"), anchors)
    units = [u for s in few for u in scorer.units(s)]
    ours, _ = timed(scorer.compute, units, AnchoredLM(lm, np.zeros(len(anchors))))
    obvious = nuggets_obvious(lm, anchors, few)

    print(f"\nCPU: {os.cpu_count()} cores; SmolLM2-135M-Instruct fp32; n = {args.n} Alpaca records\n")
    print("| method | seconds / 1,000 samples | forward passes per sample | note |")
    print("|---|---|---|---|")
    for name, sec, passes, note in rows:
        print(f"| {name} | {sec:,.0f} | {passes} | {note} |")
    print(f"\nNuggets, 4 samples x {len(anchors)} anchors: batched with the demonstration's KV cache reused "
          f"{ours:.2f} s, obvious loop {obvious:.2f} s: {obvious / ours:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
