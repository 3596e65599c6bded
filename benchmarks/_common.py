"""What the benchmarks share: the data they read, the machine's matmul peak (measured in the run) and the peak
memory of a process."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "instruct" / "alpaca_random_9k.json"


def matmul_peak_gflops(size: int = 2048, reps: int = 10, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def peak_mib() -> float:
    """This process's peak resident memory so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def linear_params(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters of the decoder's linear layers, parameters of the output layer): FLOPs = 2 x params x tokens."""
    head = model.get_output_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    if not model.config.tie_word_embeddings:
        body -= head
    return body, head
