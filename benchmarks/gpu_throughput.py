"""Scoring throughput on a GPU: IFD and SelectIT over Alpaca records, a 7B model and the packaged ones.

    python benchmarks/gpu_throughput.py [--n 2000] [--models llama2-7b,smollm2,gemma3-270m] [--batch-tokens 16384]
    python benchmarks/gpu_throughput.py --tiny     # the same script on a CPU: a tiny model, 40 records

The 7B model is Llama-2-7B's shape (hidden 4096, 32 layers, 32 heads, MLP 11008) built from its config with
random weights in bf16: throughput does not depend on the weights, and nothing is downloaded. Its
vocabulary is the tokenizer's (SmolLM2's 49,152 ids instead of Llama-2's 32,000: the output layer runs
only at scored positions, so this changes little). The packaged models load as tunesift loads them.

Per model and method it prints real tokens/s (padding excluded), achieved TFLOP/s and MFU against the
bf16 (CPU: fp32) matmul peak measured in the same run, peak GPU memory, and the projected time for all
52,002 Alpaca records. FLOPs count the linear layers (2 x parameters x tokens, the output layer where it
runs) plus attention's score and value products (4 x layers x hidden x length^2 / 2 per text, causal).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from _common import DATA, linear_params
from transformers import AutoTokenizer

from tunesift.data.schemas import record_to_sample
from tunesift.models.causal_lm import CausalLM
from tunesift.models.registry import ResolvedModel, resolve_model
from tunesift.scorers.base import Unit
from tunesift.scorers.ifd import IFD
from tunesift.scorers.selectit import SelectITConfig, SelectITRating, load_prompts

ALPACA_52K = 52_002
LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}  # fmt: skip
TINY = {"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 4, "max_position_embeddings": 2048}  # fmt: skip


def matmul_peak_tflops(device: str, dtype: torch.dtype, size: int = 8192, reps: int = 20) -> float:
    """The best sustained rate of one large matmul in ``dtype`` on ``device``, measured now."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_llama(shape: dict, tokenizer, device: str, dtype: torch.dtype) -> CausalLM:
    """A Llama-shaped model with random weights built directly on ``device`` in ``dtype``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=False, **shape)
    config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return CausalLM(model=model, tokenizer=tokenizer, name="llama2-7b-shape (random)", fingerprint="random",
                    device=torch.device(device))  # fmt: skip


def attention_flops(lm: CausalLM, lengths: list[int]) -> float:
    cfg = lm.model.config.get_text_config()
    return sum(4 * cfg.num_hidden_layers * cfg.hidden_size * n * n / 2 for n in lengths)


def run(lm: CausalLM, method: str, samples: list, batch_tokens: int, device: str) -> dict:
    """Score ``samples`` with ``method`` once (after a warm-up); returns time, tokens, FLOPs and memory."""
    resolved = ResolvedModel(lm.name, Path(), lm.fingerprint, lm.dtype_name)
    if method == "ifd":
        scorer = IFD(resolved, variant="cherry", template="alpaca", batch_tokens=batch_tokens)
        units = [Unit(s.content_id, s) for s in samples]
    else:
        prompts = load_prompts(None)
        sentences = [prompts[i] for i in SelectITConfig(k=5).resolved(1, len(prompts)).prompt_indices()]
        scorer = SelectITRating(resolved, sentences, batch_tokens)
        units = [u for s in samples for u in scorer.units(s)]
    scorer.compute(units[:16], lm)  # warm-up: kernels, allocator
    lm.stats.clear()
    lengths: list[int] = []
    original = lm._decode_batch

    def recording(items):  # the real lengths of what is decoded, for attention FLOPs
        lengths.extend(len(s.ids) for s in items)
        return original(items)

    lm._decode_batch = recording
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    try:
        scorer.compute(units, lm)
        _sync(device)
    finally:
        lm._decode_batch = original
    seconds = time.perf_counter() - start
    stats = dict(lm.stats)
    body, head = linear_params(lm.model)
    real = stats["decoder_tokens"] - stats["padding_tokens"]
    flops = 2 * body * real + 2 * head * stats["output_positions"] + attention_flops(lm, lengths)
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return {"seconds": seconds, "tokens": real, "padding": stats["padding_tokens"], "flops": flops,
            "memory_gib": memory, "records": len(samples)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--models", default="llama2-7b,smollm2,gemma3-270m")
    parser.add_argument("--methods", default="ifd,selectit")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--tiny", action="store_true", help="CPU: a tiny random Llama and 40 records")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n = 40 if args.tiny else args.n
    models = ["tiny"] if args.tiny else args.models.split(",")
    records = json.loads(DATA.read_text(encoding="utf-8"))[:n]
    samples = [record_to_sample(r, i, DATA) for i, r in enumerate(records)]
    peak = matmul_peak_tflops(device, dtype, size=2048 if device == "cpu" else 8192)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"{gpu}, {str(dtype).removeprefix('torch.')}; matmul peak measured now: {peak:.1f} TFLOP/s; "
          f"{n} records of {DATA.name}; batch tokens {args.batch_tokens}")  # fmt: skip
    print()
    print("| model | method | records/s | tokens/s | padding | TFLOP/s | MFU | peak memory GiB | Alpaca-52k |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in models:
        if name in ("llama2-7b", "tiny"):
            tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2").path)
            lm = random_llama(LLAMA2_7B if name == "llama2-7b" else TINY, tokenizer, device, dtype)
        else:
            lm = CausalLM.load(name, device=device, dtype=str(dtype).removeprefix("torch."))
        for method in args.methods.split(","):
            r = run(lm, method, samples, args.batch_tokens, device)
            tflops = r["flops"] / r["seconds"] / 1e12
            projected = ALPACA_52K / (r["records"] / r["seconds"])
            rows.append({"model": name, "method": method, **r, "tflops": tflops, "mfu": tflops / peak})
            print(f"| {name} | {method} | {r['records'] / r['seconds']:.1f} | {r['tokens'] / r['seconds']:,.0f} | "
                  f"{r['padding'] / max(1, r['tokens']):.1%} | {tflops:.2f} | {tflops / peak:.1%} | "
                  f"{r['memory_gib']:.1f} | {projected / 60:.1f} min |")  # fmt: skip
        del lm
        if device == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps({"device": gpu, "peak_tflops": peak, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
