"""Where a model runs and in which precision: the one place that knows the rules.

``--device`` is a torch device (``cpu``, ``cuda``, ``cuda:N``; default ``cuda`` where torch sees one).
``--dtype auto`` is bfloat16 on a CUDA device that supports it, else float32: a 7B model in fp32 runs
several times slower on a GPU and needs twice the memory, while on a CPU bf16 is slow and fp32 is exact.
float16 is for GPUs only (its range overflows on CPU kernels). The dtype a model ran in is part of every
cache key, so fp32 and bf16 scores never mix.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tunesift.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_DTYPE = "auto"


def pick_device(device: str | None) -> str:
    """The device to run on: ``device`` checked against this machine, else cuda where torch sees one, else cpu."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError("device", f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", f"{device} asked for, but torch sees no CUDA device on this machine; "
                              "use --device cpu")  # fmt: skip
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ConfigError("device", f"{device} asked for, but this machine has {torch.cuda.device_count()} "
                              "CUDA device(s)")  # fmt: skip
    elif parsed.type != "cpu":
        raise ConfigError("device", f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return device


def resolve_dtype(requested: str | None, device: str, *, bf16_supported: bool | None = None) -> str:
    """The concrete dtype for ``requested`` on ``device`` (a device type, or a device such as ``cuda:1``).

    ``bf16_supported`` says whether that CUDA device has bfloat16 (None: ask torch, or assume so where this
    process sees no GPU, as a Ray driver scheduling onto remote GPUs does; the worker checks again).
    """
    requested = requested or DEFAULT_DTYPE
    if requested not in DTYPES:
        raise ConfigError("dtype", f"unknown dtype {requested!r}; choose one of {', '.join(DTYPES)}")
    on_cuda = device.startswith("cuda")
    if requested == "auto":
        if not on_cuda:
            return "float32"
        return "bfloat16" if _bf16_on_cuda(bf16_supported) else "float32"
    if requested == "float16" and not on_cuda:
        raise ConfigError("dtype", "float16 runs on a CUDA device only; on a CPU use float32 (or bfloat16)")
    if requested == "bfloat16" and on_cuda and not _bf16_on_cuda(bf16_supported):
        raise ConfigError("dtype", "this GPU has no bfloat16 support; use --dtype float16 or float32")
    return requested


def _bf16_on_cuda(known: bool | None) -> bool:
    if known is not None:
        return known
    import torch

    return not torch.cuda.is_available() or torch.cuda.is_bf16_supported()


def torch_dtype(name: str) -> Any:
    """The torch dtype of a concrete dtype name."""
    import torch

    if name not in DTYPES or name == "auto":
        raise ConfigError("dtype", f"expected a concrete dtype, got {name!r}")
    return getattr(torch, name)


def attention_implementation(device: str, dtype: str) -> str:
    """FlashAttention 2 where it is installed and can run (CUDA, half precision), else PyTorch SDPA."""
    half = dtype in ("bfloat16", "float16")
    if device.startswith("cuda") and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"
