"""What the benchmarks share: the data they read and the machine's fp32 matmul peak, measured in the run."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "instruct" / "alpaca_random_9k.json"


def matmul_peak_gflops(size: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def linear_params(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters of the decoder's linear layers, parameters of the output layer): FLOPs = 2 x params x tokens."""
    head = model.get_output_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    if not model.config.tie_word_embeddings:
        body -= head
    return body, head
