"""Fine-tune a causal LM on a pool or subset: LoRA (peft) or full, loss on response tokens only.

Every optimizer step sees the same number of samples (``examples_per_step``, as the references train:
Cherry and AlpaGasus 128 per step), so two subsets of equal size get equal numbers of updates whatever
their lengths; a step's samples run as length-sorted micro-batches under a token budget with their
gradients accumulated, and the loss stays the mean over the step's response tokens. The output layer
(with Gemma's 262k-row vocabulary, the dominant cost) runs only at response positions. Training is
resumable: a checkpoint (trainable weights, optimizer, scheduler, step) is written atomically every
``save_every`` steps, the step plan is a pure function of the seed, the epoch and the set of samples, so a
resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesift import progress as run_progress
from tunesift.atomic import as_created
from tunesift.data.pools import Pool
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError, as_storage_error
from tunesift.models.output_layer import linear_cross_entropy
from tunesift.options import is_number, split_list

CHECKPOINT = "checkpoint"
MODEL_DIR = "model"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fine-tune depends on (saved in ``run.json``; a resume must match it)."""

    base: str
    template: str = "alpaca"
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float | None = None  # None: 5e-4 with LoRA, 2e-5 full
    epochs: int = 1
    examples_per_step: int = 8  # samples per optimizer step (every turn of a multi-turn sample among them)
    batch_tokens: int = 2048  # tokens per micro-batch (padded width x rows); only memory and speed depend on it
    max_length: int = 512
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    append_eos: bool = True
    dtype: str = "auto"  # the base model's weights: auto is bf16 on a CUDA GPU that has it (LoRA adapters stay fp32)

    def resolved(self) -> TrainConfig:
        least = {"epochs": (self.epochs, 1), "examples-per-step": (self.examples_per_step, 1),
                 "batch-tokens": (self.batch_tokens, 1), "max-length": (self.max_length, 2),
                 "lora-r": (self.lora_r, 1), "lora-alpha": (self.lora_alpha, 1)}  # fmt: skip
        for name, (value, minimum) in least.items():
            if not is_number(value, whole=True):
                raise ConfigError(name, f"expected a whole number, got {value!r}")
            if value < minimum:
                raise ConfigError(name, f"must be at least {minimum}, got {value}")
        shares = {"lora_dropout": (self.lora_dropout, 1.0), "warmup_ratio": (self.warmup_ratio, 1.0),
                  "weight_decay": (self.weight_decay, math.inf)}  # fmt: skip
        for name, (value, below) in shares.items():
            if not is_number(value) or not 0 <= value < below:
                raise ConfigError(name, f"expected a number in [0, {below:g}), got {value!r}")
        lr = self.learning_rate if self.learning_rate is not None else (5e-4 if self.lora else 2e-5)
        if not is_number(lr) or not 0 < lr < math.inf:
            raise ConfigError("lr", f"must be a positive number, got {lr!r}")
        target = self.target_modules
        if isinstance(target, str) and target != "all-linear":
            target = tuple(split_list(target))
        return TrainConfig(**{**asdict(self), "learning_rate": lr, "target_modules": target})


@dataclass(frozen=True)
class Example:
    """One assistant turn to learn: token ids, and where the response (the scored part) begins."""

    index: int
    ids: tuple[int, ...]
    start: int
    truncated: bool = False  # longer than max_length: only its first tokens are learned


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    response_tokens: int = 0
    #: The share of the examples longer than max_length (a 6,000-token trace at 512 is learned by its start);
    #: None for a run trained before this was recorded.
    truncated_frac: float | None = None
    # The tuned model still in memory (LoRA merged, eval mode) when this call trained it; None when the
    # run was already done. Lets a caller evaluate without reloading the checkpoint it just wrote.
    model: Any = field(default=None, repr=False, compare=False)


def build_examples(samples: Sequence[Sample], tokenizer: Any, template: Any, max_length: int,
                   append_eos: bool = True) -> list[Example]:  # fmt: skip
    """Every assistant turn (history as its prompt) as token ids cut to ``max_length``; a turn whose prompt
    fills the budget teaches nothing and is left out."""
    examples = []
    eos = tokenizer.eos_token_id
    for sample in samples:
        for turn, current in enumerate(sample.turns):
            prompt = template.prompt(current.user, current.input, sample.turns[:turn], sample.system)
            n_prompt = len(tokenizer(prompt)["input_ids"])
            ids = list(tokenizer(prompt + current.assistant)["input_ids"])
            if append_eos and eos is not None:
                ids.append(eos)
            truncated = len(ids) > max_length
            ids = ids[:max_length]
            if len(ids) > n_prompt:
                examples.append(Example(sample.index, tuple(ids), n_prompt, truncated))
    return examples


def step_plan(samples: Sequence[Sample], examples: Sequence[Example], examples_per_step: int, batch_tokens: int,
              seed: int, epoch: int) -> list[list[list[int]]]:  # fmt: skip
    """One epoch's optimizer steps, each a list of micro-batches (positions in ``examples``).

    The samples, in content-id order (so the plan depends on the set, not the file order), are shuffled
    by (seed, epoch) and cut into groups of ``examples_per_step``: ``ceil(n / examples_per_step)`` steps
    for n samples, whatever their lengths. A group's examples are split into length-sorted micro-batches
    under ``batch_tokens``. A group whose samples all fell out (prompt longer than max-length) is no step.
    """
    from tunesift.models.causal_lm import TargetSpan, plan_batches

    by_sample: dict[int, list[int]] = {}
    for position, example in enumerate(examples):
        by_sample.setdefault(example.index, []).append(position)
    canonical = sorted(range(len(samples)), key=lambda i: (samples[i].content_id, i))
    shuffled = [canonical[i] for i in np.random.default_rng([seed, epoch]).permutation(len(canonical))]
    steps = []
    for begin in range(0, len(shuffled), examples_per_step):
        chosen = [p for i in shuffled[begin : begin + examples_per_step] for p in by_sample.get(samples[i].index, [])]
        if chosen:
            micro = plan_batches([TargetSpan(examples[p].ids, examples[p].start) for p in chosen], batch_tokens)
            steps.append([[chosen[j] for j in batch] for batch in micro])
    return steps


def response_tokens(example: Example) -> int:
    """How many tokens of ``example`` the loss scores (as :func:`response_loss` counts them)."""
    return len(example.ids) - max(example.start, 1)


def response_loss(model: Any, batch: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, int]:
    """Summed NLL of the response tokens of a batch (right padding), and their count; the output layer runs
    only at the positions that predict a response token."""
    device = next(model.parameters()).device
    width = max(len(e.ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for r, e in enumerate(batch):
        input_ids[r, : len(e.ids)] = torch.tensor(e.ids)
        attention[r, : len(e.ids)] = 1
        first = max(e.start, 1)
        rows += [r] * (len(e.ids) - first)
        cols += list(range(first - 1, len(e.ids) - 1))
        targets += e.ids[first:]
    hidden = model.get_decoder()(input_ids=input_ids.to(device), attention_mask=attention.to(device)).last_hidden_state
    picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    wanted = torch.tensor(targets, device=device)
    if head.bias is None:
        return linear_cross_entropy(picked, head.weight, wanted, softcap), len(targets)
    logits = head(picked).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits, wanted, reduction="sum"), len(targets)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(run_dir: Path, model, optimizer, scheduler, state: dict[str, Any]) -> None:
    """Write the checkpoint to a temporary folder, then swap it in: a kill never leaves half of one."""
    from safetensors.torch import save_file

    tmp = run_dir / f".{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        save_file({n: t.contiguous() for n, t in _trainable_state(model).items()}, str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state()}, tmp / "optimizer.pt")  # fmt: skip
        (tmp / "state.json").write_text(json.dumps(state))
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)  # no half checkpoint left behind; the last whole one stays
        storage = as_storage_error(run_dir / CHECKPOINT, err, "the last checkpoint is kept")
        if storage is not None:
            raise storage from None
        raise
    final = run_dir / CHECKPOINT
    old = run_dir / f".{CHECKPOINT}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(run_dir: Path, model, optimizer, scheduler) -> dict[str, Any]:
    from safetensors.torch import load_file

    folder = run_dir / CHECKPOINT
    weights = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    extra = torch.load(folder / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["torch_rng"])
    return json.loads((folder / "state.json").read_text())


def train(
    data: Pool | str | Path,
    out: str | Path,
    config: TrainConfig,
    *,
    device: str | None = None,
    save_every: int = 50,
    stop_after: int | None = None,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fine-tune ``config.base`` on ``data`` into ``out`` (a run folder; an unfinished run there resumes).

    Writes ``out/model`` (the tuned model, LoRA merged, with its tokenizer: loadable by every tunesift
    command) and ``out/run.json`` (configuration, per-step loss, time). ``stop_after`` ends the run after
    that many steps with a checkpoint (for tests of resuming).
    """
    if save_every < 1:
        raise ConfigError("save-every", f"must be at least 1, got {save_every}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesift.data.templates import get_template
    from tunesift.execution.driver import as_pool
    from tunesift.models.precision import attention_implementation, pick_device, torch_dtype
    from tunesift.models.registry import resolve_model

    cfg = config.resolved()
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta_path = run_dir / "run.json"
    pool = as_pool(data)
    samples = [s for s in pool if isinstance(s, Sample)]
    where = pick_device(device)
    resolved = resolve_model(cfg.base, option="base").on(where, cfg.dtype)
    described = {**asdict(cfg), "dtype": resolved.dtype, "base": resolved.name,
                 "base_fingerprint": resolved.fingerprint, "data": str(pool.path),
                 "data_ids": _ids_hash(samples)}  # fmt: skip
    if meta_path.exists():
        previous = json.loads(meta_path.read_text())
        changed = _differences(previous["config"], json.loads(json.dumps(described)))
        state_word = "a finished" if previous.get("done") else "an unfinished"
        if changed:
            raise ConfigError("out", f"{run_dir} holds {state_word} run with another configuration "
                              f"({', '.join(changed)}); use a new folder")  # fmt: skip
        if previous.get("done"):
            return TrainResult(run_dir, run_dir / MODEL_DIR, previous["steps"], previous["losses"],
                               previous["seconds"], previous["response_tokens"],
                               previous.get("truncated_frac"))  # fmt: skip
    torch.manual_seed(cfg.seed)
    dev = torch.device(where)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    attn = attention_implementation(where, resolved.dtype)
    dtype = torch_dtype(resolved.dtype)
    from tunesift.models.quiet import loading_quietly

    with loading_quietly():
        model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype, attn_implementation=attn)
    model.to(dev)
    if cfg.lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise ConfigError("lora", "LoRA needs peft: pip install 'tunesift[eval]' (or train with --full)") from None

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.target_modules) if not isinstance(cfg.target_modules, str)
                          else cfg.target_modules, task_type="CAUSAL_LM")  # fmt: skip
        with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, lora)
    model.train()
    inner = model.get_base_model() if cfg.lora else model
    template = get_template(cfg.template, tokenizer)
    examples = build_examples(samples, tokenizer, template, cfg.max_length, cfg.append_eos)
    if not examples:
        raise ConfigError("data", f"{pool.path}: no sample has a response token within max-length {cfg.max_length}")
    plans = [step_plan(samples, examples, cfg.examples_per_step, cfg.batch_tokens, cfg.seed, epoch)
             for epoch in range(cfg.epochs)]  # fmt: skip
    total_steps = sum(len(plan) for plan in plans)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warmup = int(cfg.warmup_ratio * total_steps)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state: dict[str, Any] = {"step": 0, "losses": [], "seconds": 0.0, "response_tokens": 0}
    if (run_dir / CHECKPOINT).exists():
        state = _load_checkpoint(run_dir, model, optimizer, scheduler)
    meta_path.write_text(json.dumps({"config": described, "done": False, "total_steps": total_steps}, indent=2))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=state["step"], unit="step", desc="train", dynamic_ncols=True)
    started = time.perf_counter() - state["seconds"]
    step = state["step"]
    done_before = 0
    for plan in plans:
        for position, micro_batches in enumerate(plan):
            if done_before + position < step:
                continue  # done before the resume
            count = sum(response_tokens(examples[i]) for batch in micro_batches for i in batch)
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for batch in micro_batches:  # gradient accumulation: the step's loss is its token mean
                nll, _ = response_loss(inner, [examples[i] for i in batch], pad)
                (nll / count).backward()
                total += float(nll.detach())
            loss = torch.tensor(total / count)
            optimizer.step()
            scheduler.step()
            step += 1
            state["losses"].append(float(loss.detach()))
            state["response_tokens"] += count
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{state['losses'][-1]:.3f}")
            if on_step is not None:
                on_step(step, float(loss))
            state.update(step=step, seconds=time.perf_counter() - started)
            if step % save_every == 0 or step == stop_after:
                try:
                    _save_checkpoint(run_dir, model, optimizer, scheduler, state)
                except BaseException:
                    if bar is not None:
                        bar.close()  # the bar ends before the message about why the run stopped
                    raise
                run_progress.stored("training steps", step, run_dir)
            if step == stop_after and step < total_steps:
                if bar is not None:
                    bar.close()
                return TrainResult(run_dir, run_dir / MODEL_DIR, step, state["losses"], state["seconds"],
                                   state["response_tokens"])  # fmt: skip
        done_before += len(plan)
    if bar is not None:
        bar.close()
    final = model.merge_and_unload() if cfg.lora else model
    tmp = run_dir / f".{MODEL_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    final.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    as_created(tmp)  # a colleague or a job under another user reads the model, as any file the user makes
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)
    os.replace(tmp, run_dir / MODEL_DIR)
    seconds = time.perf_counter() - started
    truncated = sum(e.truncated for e in examples) / len(examples)
    meta_path.write_text(json.dumps({"config": described, "done": True, "steps": step, "losses": state["losses"],
                                     "seconds": seconds, "response_tokens": state["response_tokens"],
                                     "examples": len(examples), "truncated_frac": truncated}, indent=2))  # fmt: skip
    shutil.rmtree(run_dir / CHECKPOINT, ignore_errors=True)
    return TrainResult(run_dir, run_dir / MODEL_DIR, step, state["losses"], seconds, state["response_tokens"],
                       truncated, model=final.eval())  # fmt: skip


def _ids_hash(samples: Sequence[Sample]) -> str:
    """The set of samples (the step plan does not depend on their order in the file)."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(s.content_id for s in samples)).encode()).hexdigest()[:16]


def _differences(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The settings that differ between two runs' configurations; where the data was read is not one
    of them (the samples' ids are)."""
    keys = (set(previous) | set(current)) - {"data"}
    return sorted(k for k in keys if previous.get(k) != current.get(k))
