"""The output layer and its log-softmax, at the few positions that are scored, without the vocabulary-wide
temporaries PyTorch would otherwise allocate.

With Gemma's 262k-row vocabulary the output layer is the largest cost of scoring, evaluating and training
alike. Two things make it cheaper on a CPU than ``cross_entropy(lm_head(h), t)`` without changing a number
beyond float rounding:

* the logits are computed in row chunks into one reused buffer and reduced in place (a fresh gigabyte
  per call costs page faults, and ``logsumexp`` allocates its own temporaries);
* for training, :func:`linear_cross_entropy` computes the gradient with respect to the hidden states
  (and the weight, when it is trained) chunk by chunk in the forward pass, the approach of Liger-Kernel's
  fused linear cross-entropy and of Cut Cross-Entropy (Wijmans et al., 2024): the ``N x vocab`` logits,
  their log-softmax and their gradient are never held at once.

``exp`` of an argument below about -88 underflows and takes a slow path on x86 CPUs; shifted logits are
clamped at ``-80`` first, which changes no sum (``262144 * e^-80`` is far below float32's resolution of 1).
"""

from __future__ import annotations

import torch

# Rows of logits materialised at once: ~512 MiB of fp32 for Gemma's vocabulary, whatever the row count.
LOGIT_ELEMENTS_PER_CHUNK = 1 << 27
EXP_FLOOR = -80.0


def chunk_rows(vocab: int) -> int:
    return max(1, LOGIT_ELEMENTS_PER_CHUNK // vocab)


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  buffer: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """``hidden @ weight.T (+ bias)`` as float32, into ``buffer`` when the model computes in float32."""
    if buffer is not None:
        logits = torch.matmul(hidden, weight.t(), out=buffer[: hidden.shape[0]])
        return logits if bias is None else logits.add_(bias)
    return torch.nn.functional.linear(hidden, weight, bias).float()


def _buffer(hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    if hidden.dtype != torch.float32 or weight.dtype != torch.float32:
        return None
    rows = min(hidden.shape[0], chunk_rows(weight.shape[0]))
    return torch.empty((rows, weight.shape[0]), dtype=torch.float32, device=hidden.device)


def _softcap_(logits: torch.Tensor, softcap: float | None, derivative: bool = False) -> torch.Tensor | None:
    """Gemma-2's ``c * tanh(x / c)`` in place; returns ``1 - tanh^2`` (its derivative) when asked, else None."""
    if not softcap:
        return None
    logits.div_(softcap).tanh_()
    slope = 1 - logits * logits if derivative else None
    logits.mul_(softcap)
    return slope


def _shifted_exp_(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turns ``logits`` into ``exp(logits - max)`` in place; returns (log-sum-exp - max, target's logit - max)."""
    top = logits.amax(dim=-1, keepdim=True)
    logits.sub_(top)
    chosen = logits.gather(1, targets[:, None]).squeeze(1)
    logits.clamp_(min=EXP_FLOOR).exp_()
    return logits.sum(dim=-1).log_(), chosen


@torch.no_grad()
def token_nll(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None = None,
              softcap: float | None = None) -> torch.Tensor:  # fmt: skip
    """NLL (float32, natural log) of ``targets[i]`` under ``softmax(softcap(hidden[i] @ weight.T + bias))``."""
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    buffer = _buffer(hidden, weight)
    step = chunk_rows(weight.shape[0])
    for begin in range(0, hidden.shape[0], step):
        logits = _chunk_logits(hidden[begin : begin + step], weight, bias, buffer)
        _softcap_(logits, softcap)
        log_total, chosen = _shifted_exp_(logits, targets[begin : begin + step])
        out[begin : begin + step] = log_total - chosen
    return out


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed NLL of ``targets`` given ``hidden`` and the output layer's weight; gradients computed in forward."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap):  # type: ignore[override]
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        buffer = _buffer(hidden, weight)
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        step = chunk_rows(weight.shape[0])
        for begin in range(0, hidden.shape[0], step):
            rows = hidden[begin : begin + step]
            wanted = targets[begin : begin + step]
            logits = _chunk_logits(rows, weight, None, buffer)
            derivative = _softcap_(logits, softcap, derivative=True)
            log_total, chosen = _shifted_exp_(logits, wanted)
            total += (log_total - chosen).sum(dtype=torch.float64)
            probs = logits.div_(log_total.exp()[:, None])  # softmax
            probs[torch.arange(len(wanted), device=probs.device), wanted] -= 1  # d NLL / d logits
            if derivative is not None:
                probs.mul_(derivative)
            probs = probs.to(weight.dtype)
            grad_hidden[begin : begin + step] = probs @ weight
            if grad_weight is not None:
                grad_weight.addmm_(probs.t(), rows)
        ctx.save_for_backward(grad_hidden, grad_weight if grad_weight is not None else torch.empty(0))
        ctx.has_weight_grad = grad_weight is not None
        return total.to(torch.float32)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_output.to(grad_hidden.dtype)
        return grad_hidden * scale, (grad_weight * scale if ctx.has_weight_grad else None), None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         softcap: float | None = None) -> torch.Tensor:  # fmt: skip
    """``cross_entropy(softcap(hidden @ weight.T), targets, reduction="sum")`` with its gradient, in a fraction
    of the memory and time: the vocabulary-wide tensors live one chunk at a time (see the module doc)."""
    return _LinearCrossEntropy.apply(hidden, weight, targets, softcap)
