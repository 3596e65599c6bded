"""LESS (Xia et al., ICML 2024): the pool samples whose Adam-preconditioned LoRA gradient, after a short warm-up,
points where the query set's gradients point (METHODS.md §26).

Followed from ``princeton-nlp/LESS``: a LoRA warm-up on a random 5 % of the pool (at least 64 rows) for four epochs,
saving the Adam moments each epoch; at checkpoint i each pool sample's gradient of its mean label-token loss goes
through the Adam update of that checkpoint (``less_code``: ``(b1 m + (1-b1) g) / sqrt(b2 v + (1-b2) g^2 + eps)``),
each query's is the plain gradient; both are projected by the same +-1 matrix to ``proj_dim`` and normalised; a
sample's score is sum_i w_i cos(train_i, query_i), w_i the checkpoint's mean learning rate normalised, averaged over
a task's queries and maxed over tasks. The pool's features are stored per checkpoint (binary, memory-mapped): a new
query set costs its own gradients and one product. The warm-up's checkpoints are kept too, and resumed by epoch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.data.queries import read_queries
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.models.causal_lm import TokenizerSide
from tunesift.models.registry import ResolvedModel
from tunesift.options import CHUNK_SIZE, DTYPE, Option, model_option
from tunesift.scorers.base import CausalLMScorer, PoolContext, Progress, Scorer, Unit
from tunesift.scorers.targeted import BLOCK_ROWS, QUERY, Targeted
from tunesift.store import config_hash, encode_vector

# Bump when the computation changes, so features from older code are not reused.
LESS_VERSION = 1
FORMULAS = ("less_code", "paper", "torch")
TRAIN_GRADS = ("adam", "sgd")
AGGREGATES = ("subtask_mean_max", "max", "mean")
PROJ_DIMS = (0, 1024, 2048, 4096, 8192)
#: Rows of the projection made by one generator call, keyed (seed, block): a chunk is a whole number of blocks, so
#: the chunk size changes memory, never the matrix.
ROW_BLOCK = 1024
#: Exact mode (proj_dim 0) stores each gradient whole: only for adapters this small.
EXACT_UP_TO = 65_536
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
#: A byte's eight bits (most significant first, as numpy.unpackbits reads them) as +-1: one gather per byte.
_SIGNS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2 - 1


# --- the formulas (§26.4-26.10), on arrays: what the golden tests hold ---------------------------------------------


def adam_transform(g: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, formula: str = "less_code") -> np.ndarray:
    """The train-side gradient ``g`` through the Adam update of a checkpoint with moments ``m``, ``v`` after
    ``step`` optimizer steps (§26.6); ``sgd`` is ``g`` itself."""
    if formula == "sgd":
        return g
    m1 = BETA1 * m + (1 - BETA1) * g
    v1 = BETA2 * v + (1 - BETA2) * g * g
    if formula == "less_code":
        return m1 / np.sqrt(v1 + EPS)
    m_hat, v_hat = m1 / (1 - BETA1**step), v1 / (1 - BETA2**step)
    if formula == "paper":
        return m_hat / np.sqrt(v_hat + EPS)
    if formula == "torch":
        return m_hat / (np.sqrt(v_hat) + EPS)
    raise ConfigError("adam-formula", f"unknown formula {formula!r}; choose one of {', '.join(FORMULAS)}")


def checkpoint_weights(mean_lrs: Sequence[float]) -> np.ndarray:
    """``w_i``: each scored checkpoint's mean learning rate over its epoch's steps, normalised to sum 1."""
    lrs = np.asarray(mean_lrs, dtype=np.float64)
    return lrs / lrs.sum()


def rademacher_block(seed: int, block: int, k: int) -> np.ndarray:
    """Rows ``[block * ROW_BLOCK, (block + 1) * ROW_BLOCK)`` of the +-1 projection (unscaled), from a counter-based
    generator keyed by (seed, block): any worker makes the same rows without being sent them."""
    generator = np.random.Generator(np.random.Philox(key=np.array([seed, block], dtype=np.uint64)))
    octets = np.frombuffer(generator.bytes(ROW_BLOCK * k // 8), dtype=np.uint8)
    return _SIGNS[octets].reshape(ROW_BLOCK, k)  # each byte's 8 bits, most significant first, as +-1


def project(grads: np.ndarray, k: int, seed: int, chunk: int = 16 * ROW_BLOCK) -> np.ndarray:
    """``grads @ R`` (``(B, P)`` float32 to ``(B, k)``) with R the seeded +-1 matrix, made a block of rows at a time
    and once for all B rows; ``chunk`` (a multiple of ROW_BLOCK) is how many rows are multiplied between two
    additions to the result. Nothing P x k is held."""
    if chunk % ROW_BLOCK or chunk <= 0:
        raise ConfigError("chunk", f"the projection's chunk must be a positive multiple of {ROW_BLOCK}, got {chunk}")
    grads = np.asarray(grads, dtype=np.float32)
    width = grads.shape[1]
    out = np.zeros((grads.shape[0], k), dtype=np.float32)
    for begin in range(0, width, chunk):
        part = np.zeros_like(out)
        for row in range(begin, min(begin + chunk, width), ROW_BLOCK):
            end = min(row + ROW_BLOCK, width)
            part += grads[:, row:end] @ rademacher_block(seed, row // ROW_BLOCK, k)[: end - row]
        out += part
    return out


def normalise(features: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """Unit rows (§26.8), and per row None or why it has none (a zero or non-finite norm)."""
    wide = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(wide, axis=1)
    reasons: list[str | None] = [
        None if np.isfinite(n) and n > 0 and np.all(np.isfinite(row)) else
        ("zero_norm_gradient" if n == 0 else "non_finite_gradient") for row, n in zip(wide, norms, strict=True)
    ]  # fmt: skip
    safe = np.where(np.isfinite(norms) & (norms > 0), norms, 1.0)
    return wide / safe[:, None], reasons


def aggregate(scores: np.ndarray, tasks: Sequence[int], how: str = "subtask_mean_max") -> tuple[np.ndarray, np.ndarray]:
    """Each row's score over its per-query scores ``(n, Q)`` (query q in task ``tasks[q]``), and its per-task mean
    ``(n, K)``: ``subtask_mean_max`` the best task's mean (LESS), ``max`` the best query, ``mean`` every query's mean.
    Tasks are grouped by label, of any size."""
    labels = np.asarray(tasks)
    by_task = np.stack([scores[:, labels == t].mean(axis=1) for t in sorted(set(labels.tolist()))], axis=1)
    if how == "subtask_mean_max":
        return by_task.max(axis=1), by_task
    if how == "max":
        return scores.max(axis=1), by_task
    if how == "mean":
        return scores.mean(axis=1), by_task
    raise ConfigError("aggregate", f"unknown aggregation {how!r}; choose one of {', '.join(AGGREGATES)}")


def select_top(scores: Sequence[float | None], budget: float | int) -> list[int]:
    """§26.10: ``k = floor(fraction * N_valid)`` (or the count), the rows by score descending, ties by position;
    a row with no score (None, NaN) is never taken."""
    valid = [(i, float(s)) for i, s in enumerate(scores) if s is not None and np.isfinite(s)]
    k = int(budget) if isinstance(budget, int) else math.floor(budget * len(valid))
    return [i for i, _ in sorted(valid, key=lambda pair: (-pair[1], pair[0]))[:k]]


# --- the warm-up (§26.3): run once per (model, template, rows, configuration), kept, resumed by epoch --------------


def warmup_size(n_valid: int) -> int:
    """How many of N valid records the warm-up trains on: ``min(N, max(ceil(0.05 N), 64))``."""
    return min(n_valid, max(math.ceil(0.05 * n_valid), 64))


def warmup_rows(n_valid: int, seed: int) -> np.ndarray:
    """Positions (among the pool's valid samples) of the warm-up, drawn uniformly without replacement, sorted."""
    return np.sort(np.random.default_rng(seed).choice(n_valid, warmup_size(n_valid), replace=False))


def _warmup_folder(key: str) -> Path:
    from tunesift.store import cache_root

    return cache_root() / "less" / key


def run_warmup(model: ResolvedModel, samples: Sequence[Sample], template: str, max_len: int, config: Any,
               device: str | None = None) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The warm-up's key and its checkpoints (one per epoch, as :func:`~tunesift.models.lora_grads.warm_up` saves
    them), trained here or read back: an epoch already saved is not trained again."""
    import torch

    from tunesift import progress
    from tunesift.atomic import atomic_open
    from tunesift.data.templates import get_template
    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.lora_grads import attach_lora, encode, warm_up

    described = {"version": LESS_VERSION, **model.key(), "template": template, "max_len": max_len,
                 "warmup": vars(config), "rows": sorted(s.content_id for s in samples)}  # fmt: skip
    key = config_hash(described)
    folder = _warmup_folder(key)
    saved = sorted(folder.glob("epoch*.pt"), key=lambda p: int(p.stem[5:])) if folder.exists() else []
    states = [torch.load(p, weights_only=False) for p in saved]
    if len(states) >= config.epochs:
        return key, states[: config.epochs]
    lm = CausalLM.load(model, device=device)  # in the model's dtype, as the features are taken
    params = attach_lora(lm.model, config.r, config.alpha, config.dropout, config.seed)
    tmpl = get_template(template, lm)
    examples = [e for e in (encode(lm, tmpl, s, max_len) for s in samples) if e.n_labels > 0]
    if not examples:
        raise ConfigError("pool", "no warm-up record has a reply token to learn from (every one is cut by "
                          f"max_length {max_len} or has an empty reply)")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    print(f"tunesift: LESS warm-up: {len(examples)} records, epochs {len(states) + 1}-{config.epochs} of "
          f"{config.epochs} (each epoch kept in {folder})", file=sys.stderr, flush=True)  # fmt: skip

    def save(epoch: int, state: dict[str, Any]) -> None:
        with atomic_open(folder / f"epoch{epoch}.pt", "wb") as handle:
            torch.save(state, handle)
        progress.stored("LESS warm-up epochs", epoch, folder)

    states += warm_up(lm.model, params, examples, config, states[-1] if states else None, save)
    return key, states


def check_queries(model: ResolvedModel, tasks: Sequence[Any], template: str, max_len: int) -> str:
    """The template's name (``auto``: the tokenizer's chat template where it has one, else alpaca); and refuse,
    before any work, a task none of whose examples has a reply token within ``max_len`` (tokenised as the features
    are); the others that have none are dropped later, each with its reason."""
    from transformers import AutoTokenizer

    from tunesift.data.templates import get_template
    from tunesift.models.lora_grads import encode

    side = _Tokens(AutoTokenizer.from_pretrained(model.path))
    if template == "auto":
        template = "chat" if side.has_chat_template else "alpaca"
    layout = get_template(template, side)
    for task in tasks:
        if not any(encode(side, layout, s, max_len).n_labels for s in task.samples):
            raise ConfigError("query", f"{task.path}: no usable example: every one's prompt fills max_length "
                              f"{max_len} (no reply token is left to take a gradient of)")  # fmt: skip
    return template


@dataclass
class _Tokens(TokenizerSide):
    tokenizer: Any


def race_cost(probe_per_sample: float, load: float, n: int, options: dict[str, Any]) -> tuple[float, float]:
    """(seconds once, seconds per record) of LESS on ``n`` records, from a probe's per-record seconds: a probe of
    at most 64 records warms up on every one, so each of its records cost ``epochs + checkpoints`` gradients; on
    ``n`` records the warm-up is ``warmup_rows(n)`` records for ``epochs`` epochs, paid once, and each record costs
    one gradient per checkpoint."""
    from tunesift.options import split_list

    defaults = {o.name: o.default for o in LESS.options}
    epochs = int(options.get("warmup_epochs", defaults["warmup_epochs"]))
    scored = len(_checkpoints(options.get("checkpoints", defaults["checkpoints"]), epochs, split_list))
    gradient = probe_per_sample / (epochs + scored)
    return load + gradient * epochs * warmup_size(n), gradient * scored


# --- the per-sample features (§26.5-26.8) ----------------------------------------------------------------------------


class LESSFeatures(CausalLMScorer):
    """A unit per sample: its normalised (projected) gradient feature at one warm-up checkpoint, the pool's
    through that checkpoint's Adam update (``side = "train"``), a query's plain (``"query"``); kept binary."""

    name = "less"
    result_fields = ("vec", "skip_reason", "n_labels")
    vector_field = "vec"
    chunk_size = 256  # the projection's signs are made once a chunk: 256 records share them (§26.7's buffer)

    def __init__(self, model: ResolvedModel, side: str, checkpoint: dict[str, Any], warmup_key: str, epoch: int,
                 settings: dict[str, Any], chunk_size: int | None = None) -> None:  # fmt: skip
        self.model = model
        self.side = side
        self.checkpoint = checkpoint  # the adapter and (train side) the moments, as numpy: sent to every worker
        self.warmup_key = warmup_key
        self.epoch = epoch
        self.settings = settings  # template, max_len, lora (r, alpha, dropout, seed), proj_dim, proj_seed, formula
        self.chunk_size = chunk_size or type(self).chunk_size

    def cache_config(self) -> dict[str, Any]:
        described = {k: v for k, v in self.settings.items() if self.side == "train" or k != "formula"}
        return {"scorer": "less", "version": LESS_VERSION, **self.model.key(), "side": self.side,
                "warmup": self.warmup_key, "checkpoint": self.epoch, **described}  # fmt: skip

    def describe(self) -> str:
        return f"LESS {self.side} gradients, checkpoint {self.epoch}"

    def load_backend(self, device: str | None = None) -> Any:
        import torch

        from tunesift.data.templates import get_template
        from tunesift.models.causal_lm import CausalLM
        from tunesift.models.lora_grads import attach_lora

        lm = CausalLM.load(self.model, device=device)
        lora = self.settings["lora"]
        params = attach_lora(lm.model, lora["r"], lora["alpha"], lora["dropout"], lora["seed"])
        with torch.no_grad():
            for name, p in params:
                p.copy_(torch.from_numpy(self.checkpoint["lora"][name]))
        return lm, params, get_template(self.settings["template"], lm)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        from tunesift.models.lora_grads import encode, flat_grad

        lm, params, template = backend
        grads, reasons, labels = [], [], []
        for unit in units:
            example = encode(lm, template, unit.payload, self.settings["max_len"])
            labels.append(example.n_labels)
            grad = flat_grad(lm.model, params, example) if example.n_labels else None
            reasons.append(None if grad is not None else "no_label_tokens" if not example.n_labels else
                           "non_finite_loss")  # fmt: skip
            grads.append(grad.cpu().numpy() if grad is not None else None)
            if on_progress is not None:
                on_progress(1)
        width = sum(v.size for v in self.checkpoint["lora"].values())
        matrix = np.zeros((len(units), width), dtype=np.float32)
        for row, grad in enumerate(grads):
            if grad is None:
                continue
            if self.side == "train":
                check = self.checkpoint
                grad = adam_transform(grad, check["m"], check["v"], check["step"], self.settings["formula"])
            matrix[row] = grad
        k = self.settings["proj_dim"]
        features, norms_why = normalise(project(matrix, k, self.settings["proj_seed"]) if k else matrix)
        out = []
        for row, why in enumerate(reasons):
            why = why or norms_why[row]
            out.append({"vec": None if why else encode_vector(features[row].astype(np.float32)), "skip_reason": why,
                        "n_labels": labels[row]})  # fmt: skip
        return out


def _numpy_checkpoint(state: dict[str, Any], side: str) -> dict[str, Any]:
    lora = {name: t.numpy() for name, t in state["lora"].items()}
    if side == "query":
        return {"lora": lora}
    flat = lambda key: np.concatenate([state[key][n].reshape(-1).numpy() for n in state["lora"]])  # noqa: E731
    return {"lora": lora, "m": flat("exp_avg"), "v": flat("exp_avg_sq"), "step": state["step"]}


_VECS = "_less_rows"  # a row's place in each checkpoint's vector file, between row() and finish()


class LESS(Targeted):
    """LESS: each pool sample's learning-rate-weighted gradient cosine to a query set, after a LoRA warm-up."""

    method = "less"
    summary = ("LESS (targeted): the cosine of a sample's Adam-preconditioned LoRA gradient, after a short warm-up, "
               "to the query set's gradients, summed over checkpoints by learning rate.")  # fmt: skip
    columns = ("less", "less_by_query")
    needs_response = True  # the gradient is of the reply's tokens: an empty reply is skipped, not scored
    options = (
        QUERY,
        model_option("The model whose LoRA gradients are compared (the model to be fine-tuned, where it fits): "
                     "packaged short name, checkpoint folder or hub id."),
        Option("template", str, "auto", "How a record is laid out for the loss: auto (the tokenizer's chat template "
               "where it has one, as the fine-tune uses it, else alpaca), chat, or a text template (alpaca, ...)."),
        Option("max_length", int, 1024, "Tokens per record, cut on the right (truncated records are flagged).",
               at_least=2),
        Option("checkpoints", str, "1,2", "Warm-up epochs whose checkpoints score (all: every epoch, as the paper)."),
        Option("proj_dim", int, 8192, "Projection width: 8192 (the paper's), 4096, 2048, 1024, or 0 for exact "
               f"cosines (only for adapters up to {EXACT_UP_TO:,} parameters)."),
        Option("proj_seed", int, 0, "Seed of the +-1 projection (train and query share it).", at_least=0),
        Option("adam_formula", str, "less_code", "less_code (the authors' code) | paper (bias-corrected) | torch "
               "(eps outside the root)."),
        Option("train_grad", str, "adam", "adam (LESS) | sgd (the plain gradient, as Ivison et al.'s harness)."),
        Option("aggregate", str, "subtask_mean_max", "subtask_mean_max (each task's mean, the best task) | max | "
               "mean, over the query examples."),
        Option("warmup_epochs", int, 4, "Epochs of the LoRA warm-up.", at_least=1),
        Option("warmup_lr", float, 2e-5, "Peak learning rate of the warm-up (raise it when a tiny model's loss does "
               "not move).", above=0),
        Option("lora_r", int, 8, "LoRA rank (alpha is 4 r, LESS's ratio).", at_least=1),
        Option("seed", int, 0, "Seed of the warm-up rows, the adapters' initialisation and the order.", at_least=0),
        CHUNK_SIZE,
        DTYPE,
    )  # fmt: skip

    def __init__(self, tasks: Any, train: Sequence[LESSFeatures], query: Sequence[LESSFeatures],
                 weights: np.ndarray, how: str) -> None:  # fmt: skip
        super().__init__(tasks)
        self.train = tuple(train)
        self.query = tuple(query)
        self.weights = weights
        self.how = how
        self.dropped_queries: list[dict[str, Any]] = []

    @classmethod
    def build(cls, pool: Any, executor: Any, *, query: Any, model: Any, template: str, max_length: int,
              checkpoints: str, proj_dim: int, proj_seed: int, adam_formula: str, train_grad: str, aggregate: str,
              warmup_epochs: int, warmup_lr: float, lora_r: int, seed: int, chunk_size: int | None,
              dtype: str | None) -> LESS:  # fmt: skip
        from tunesift.models.backend import model_ref
        from tunesift.models.lora_grads import WarmupConfig
        from tunesift.options import split_list

        tasks = read_queries(query)
        for name, value, allowed in (("adam-formula", adam_formula, FORMULAS), ("train-grad", train_grad,
                                     TRAIN_GRADS), ("aggregate", aggregate, AGGREGATES), ("proj-dim", proj_dim,
                                     PROJ_DIMS)):  # fmt: skip
            if value not in allowed:
                raise ConfigError(name, f"{value!r} is not one of {', '.join(map(str, allowed))}")
        epochs = _checkpoints(checkpoints, warmup_epochs, split_list)
        samples = [s for s in pool if isinstance(s, Sample)]
        if not samples:
            raise ConfigError("pool", "no valid record to warm up on")
        resolved = model_ref(model, executor, dtype=dtype)  # auto: fp32 on a CPU, bf16 on a GPU that has it
        template = check_queries(resolved, tasks, template, max_length)  # before the warm-up: nothing to use?
        config = WarmupConfig(r=lora_r, alpha=4.0 * lora_r, lr=warmup_lr, epochs=warmup_epochs, seed=seed)
        rows = warmup_rows(len(samples), seed)
        key, states = run_warmup(resolved, [samples[i] for i in rows], template, max_length, config)
        width = sum(t.numel() for t in states[0]["lora"].values())
        if proj_dim == 0 and width > EXACT_UP_TO:
            raise ConfigError("proj-dim", f"exact cosines store {width:,} floats per record (the adapters' size); "
                              f"give a projection width ({', '.join(map(str, PROJ_DIMS[1:]))})")  # fmt: skip
        settings = {"template": template, "max_len": max_length, "proj_dim": proj_dim, "proj_seed": proj_seed,
                    "formula": adam_formula if train_grad == "adam" else "sgd",
                    "lora": {"r": lora_r, "alpha": 4.0 * lora_r, "dropout": 0.1, "seed": seed}}  # fmt: skip
        train = [LESSFeatures(resolved, "train", _numpy_checkpoint(states[e - 1], "train"), key, e, settings,
                              chunk_size) for e in epochs]  # fmt: skip
        query_side = [LESSFeatures(resolved, "query", _numpy_checkpoint(states[e - 1], "query"), key, e, settings,
                                   chunk_size) for e in epochs]  # fmt: skip
        weights = checkpoint_weights([float(np.mean(states[e - 1]["lrs"])) for e in epochs])
        return cls(tasks, train, query_side, weights, aggregate)

    def stages(self) -> Sequence[Scorer]:
        return self.train

    def table_config(self) -> dict[str, Any]:
        first = {k: v for k, v in self.train[0].cache_config().items() if k not in ("side", "checkpoint")}
        return {**first, "method": "less", "checkpoints": [s.epoch for s in self.train],
                "weights": [round(float(w), 6) for w in self.weights], "aggregate": self.how,
                "query": self.query_record(), "dropped_queries": self.dropped_queries}  # fmt: skip

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        found = [r[0] for r in results]
        why = next((r.get("skip_reason") for r in found if r.get("vec") is None), None)
        return {**self.empty_row(why), _VECS: None if why else [r["vec"] for r in found]}

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        assert context.compute is not None and context.vectors is not None
        queries = [(t, s) for t, task in enumerate(self.tasks) for s in task.samples]
        # each checkpoint's results for every query; a query unusable at any checkpoint is dropped, with its reason
        results = []
        for stage in self.query:
            found = context.compute(stage, [s for _, s in queries])
            results.append([found[stage.units(s)[0].key] for _, s in queries])
        why = [next((r[q].get("skip_reason") for r in results if r[q].get("vec") is None), None)
               for q in range(len(queries))]  # fmt: skip
        self.dropped_queries = [{"task": self.tasks[t].name, "record": s.index, "reason": reason}
                                for (t, s), reason in zip(queries, why, strict=True) if reason]  # fmt: skip
        kept = [q for q, reason in enumerate(why) if reason is None]
        labels = [queries[q][0] for q in kept]
        for t, task in enumerate(self.tasks):
            if t not in labels:
                raise ConfigError("query", f"{task.path}: no usable example (every one has no reply token, or a "
                                  "loss or gradient that is not finite)")  # fmt: skip
        positions = [pos for pos, row in enumerate(rows) if row.get(_VECS) is not None]
        scores = np.zeros((len(positions), len(kept)), dtype=np.float64)
        for i, (train, query, weight) in enumerate(zip(self.train, self.query, self.weights, strict=True)):
            qrows = np.asarray([results[i][q]["vec"] for q in kept], dtype=np.int64)
            qmat = np.asarray(context.vectors(query)[qrows], dtype=np.float64)
            matrix = context.vectors(train)
            index = np.fromiter((rows[p][_VECS][i] for p in positions), dtype=np.int64, count=len(positions))
            for begin in range(0, len(positions), BLOCK_ROWS):
                block = np.asarray(matrix[index[begin : begin + BLOCK_ROWS]], dtype=np.float64)
                scores[begin : begin + len(block)] += weight * (block @ qmat.T)
        for row in rows:
            row.pop(_VECS, None)
        if positions:
            overall, by_task = aggregate(scores, labels, self.how)
            self.set_scores(rows, positions, by_task, overall)
        self.count_in_pool(rows)


def _checkpoints(text: str, epochs: int, split: Any) -> list[int]:
    """The warm-up epochs that score: ``all`` or a list, each within 1..epochs, each once."""
    if str(text).strip() == "all":
        return list(range(1, epochs + 1))
    chosen = []
    for part in split(text):
        if not part.isdigit() or not 1 <= int(part) <= epochs or int(part) in chosen:
            raise ConfigError("checkpoints", f"{text!r}: give epochs of the warm-up, each once, within 1..{epochs} "
                              "(or all)")  # fmt: skip
        chosen.append(int(part))
    return chosen
