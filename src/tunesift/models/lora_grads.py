"""LoRA gradients for LESS (METHODS.md §26): adapters on the attention projections, the warm-up that trains them
with AdamW and keeps each epoch's Adam moments, and one sample's gradient of its mean label-token loss.

Written as a plain loop rather than a Trainer (§26.3): the batch gradient is the mean of per-sample mean-token-loss
gradients, which newer Trainers change (they normalise by tokens across accumulation steps, and so m and v).
The logits are computed at label positions only (§26.5): exact for the loss, and most of a large vocabulary's cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: The attention projections LESS adapts (LLaMA's and Gemma's names alike).
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


class LoRALinear(nn.Module):
    """``base(x) + s · B A dropout(x)`` with ``s = alpha / r``; A as peft initialises it, B zero."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float, generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        self.scale = alpha / r
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.dropout(x.float()) @ self.lora_A.T @ self.lora_B.T
        return self.base(x) + (update * self.scale).to(x.dtype)


def attach_lora(model: nn.Module, r: int, alpha: float, dropout: float, seed: int) -> list[tuple[str, nn.Parameter]]:
    """Freeze ``model`` and put a LoRA adapter on every attention projection; the trainable parameters in
    ``named_parameters`` order (the order a gradient is flattened in)."""
    for param in model.parameters():
        param.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if child_name in TARGETS and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, r, alpha, dropout, generator))
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@dataclass(frozen=True)
class Example:
    """One record as LESS reads it: its token ids (cut at ``max_len``) and where its labels (the reply) start."""

    ids: tuple[int, ...]
    start: int
    truncated: bool

    @property
    def n_labels(self) -> int:
        return max(0, len(self.ids) - self.start)


def encode(lm: Any, template: Any, sample: Any, max_len: int) -> Example:
    """The last reply as the labels, every turn before it (and the prompt) as context, in ``template``; the
    tokenizer's EOS ends the reply when it has one."""
    turn = sample.turns[-1]
    prompt = template.prompt(turn.user, turn.input, sample.turns[:-1], sample.system)
    eos = getattr(lm.tokenizer, "eos_token", None) or ""
    ids = lm.encode(prompt + turn.assistant + eos)
    start = len(lm.encode(prompt))
    return Example(tuple(ids[:max_len]), min(start, max_len), len(ids) > max_len)


def sample_loss(model: nn.Module, example: Example) -> torch.Tensor:
    """Mean cross-entropy over the label tokens, the logits computed at those positions only."""
    device = next(model.parameters()).device
    ids = torch.tensor([example.ids], device=device)
    hidden = model.get_decoder()(input_ids=ids).last_hidden_state[0]
    logits = model.get_output_embeddings()(hidden[example.start - 1 : len(example.ids) - 1]).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return nn.functional.cross_entropy(logits, ids[0, example.start :])


def flat_grad(model: nn.Module, params: Sequence[tuple[str, nn.Parameter]], example: Example) -> torch.Tensor | None:
    """One sample's gradient of its mean label-token loss over ``params`` (model in eval mode: dropout off), as one
    float32 vector; None when the loss is not finite."""
    model.eval()
    for _, p in params:
        p.grad = None
    loss = sample_loss(model, example)
    if not torch.isfinite(loss):
        return None
    loss.backward()
    return torch.cat([p.grad.reshape(-1).float() for _, p in params])


def linear_schedule(total: int, warmup: int) -> Callable[[int], float]:
    """transformers' ``get_linear_schedule_with_warmup`` as a multiplier of the peak learning rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


@dataclass(frozen=True)
class WarmupConfig:
    r: int = 8
    alpha: float = 32.0
    dropout: float = 0.1
    lr: float = 2e-5
    epochs: int = 4
    batch: int = 8
    warmup_ratio: float = 0.03
    seed: int = 0


def warm_up(model: nn.Module, params: Sequence[tuple[str, nn.Parameter]], examples: Sequence[Example],
            config: WarmupConfig, saved: dict[str, Any] | None = None,
            save: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Train the adapters on ``examples`` for ``config.epochs`` epochs (AdamW, linear schedule with warm-up steps,
    each step the mean of per-sample gradients); after each epoch ``save(epoch, state)`` gets the checkpoint:
    the adapter, each parameter's ``exp_avg``/``exp_avg_sq``, the optimizer's step, the learning rate logged at
    every step of the epoch (after the scheduler's step, as transformers' Trainer logs it and LESS reads it), and
    what resuming needs. ``saved`` is the last such state: training goes on after it."""
    opt = torch.optim.AdamW([p for _, p in params], lr=config.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    per_epoch = math.ceil(len(examples) / config.batch)
    total = per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(total, math.ceil(config.warmup_ratio * total)))
    order_rng = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout
    first, states = 0, []
    if saved is not None:
        with torch.no_grad():
            for name, p in params:
                p.copy_(saved["lora"][name])
        opt.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        order_rng.set_state(saved["order_rng"])
        torch.set_rng_state(saved["torch_rng"])
        first = saved["epoch"]
    for epoch in range(first, config.epochs):
        model.train()
        order = torch.randperm(len(examples), generator=order_rng).tolist()
        lrs = []
        for b in range(per_epoch):
            batch = order[b * config.batch : (b + 1) * config.batch]
            opt.zero_grad()
            for i in batch:
                (sample_loss(model, examples[i]) / len(batch)).backward()
            opt.step()
            schedule.step()
            lrs.append(schedule.get_last_lr()[0])  # as the Trainer logs it (after the step): LESS's weights
        state = {
            "epoch": epoch + 1,
            "lora": {name: p.detach().clone() for name, p in params},
            "exp_avg": {name: opt.state[p]["exp_avg"].clone() for name, p in params},
            "exp_avg_sq": {name: opt.state[p]["exp_avg_sq"].clone() for name, p in params},
            "step": int(opt.state[params[0][1]]["step"]),
            "lrs": lrs,
            "optimizer": opt.state_dict(),
            "schedule": schedule.state_dict(),
            "order_rng": order_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if save is not None:
            save(epoch + 1, state)
        states.append(state)
    model.eval()
    return states
