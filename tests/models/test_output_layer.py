"""The chunked output layer equals PyTorch's plain cross-entropy, in value and in gradient."""

from __future__ import annotations

import pytest
import torch

from tunesift.models import output_layer
from tunesift.models.output_layer import linear_cross_entropy, token_nll


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # 7 rows of a 50-token vocabulary per chunk: several chunks and a remainder in every test below.
    monkeypatch.setattr(output_layer, "LOGIT_ELEMENTS_PER_CHUNK", 7 * 50)


def _case(seed: int, rows: int = 23, width: int = 12, vocab: int = 50, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, width, generator=g) * scale
    weight = torch.randn(vocab, width, generator=g)
    targets = torch.randint(0, vocab, (rows,), generator=g)
    return hidden, weight, targets


def _reference(hidden, weight, targets, bias=None, softcap=None):
    """Row by row, the obvious way."""
    out = []
    for h, t in zip(hidden, targets, strict=True):
        logits = weight @ h + (0 if bias is None else bias)
        if softcap:
            logits = softcap * torch.tanh(logits / softcap)
        out.append(-torch.log_softmax(logits, dim=-1)[t])
    return torch.stack(out)


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_token_nll_matches_log_softmax(softcap):
    hidden, weight, targets = _case(0)
    bias = torch.randn(weight.shape[0])
    got = token_nll(hidden, weight, targets, bias, softcap)
    torch.testing.assert_close(got, _reference(hidden, weight, targets, bias, softcap), rtol=1e-5, atol=1e-5)


def test_token_nll_with_logits_far_below_the_maximum():
    # Logits hundreds apart: exp underflows for most of the vocabulary; the clamp must change nothing.
    hidden, weight, targets = _case(1, scale=60.0)
    got = token_nll(hidden, weight, targets)
    want = _reference(hidden.double(), weight.double(), targets).float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_token_nll_in_another_dtype():
    hidden, weight, targets = _case(2)
    got = token_nll(hidden.double(), weight.double(), targets)
    torch.testing.assert_close(got, _reference(hidden, weight, targets), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("train_weight", [False, True])
def test_linear_cross_entropy_value_and_gradients(softcap, train_weight):
    hidden, weight, targets = _case(3)
    h1, w1 = hidden.clone().requires_grad_(), weight.clone().requires_grad_(train_weight)
    loss = linear_cross_entropy(h1 * 1.0, w1, targets, softcap)  # a non-leaf input, as in a model
    (2.5 * loss).backward()

    h2, w2 = hidden.clone().requires_grad_(), weight.clone().requires_grad_(train_weight)
    logits = h2 @ w2.t()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    want = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    (2.5 * want).backward()

    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-5, atol=1e-6)
    if train_weight:
        torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-6)
    else:
        assert w1.grad is None
