"""A causal LM that returns the NLL of chosen target tokens, computing no more than that needs.

Three savings over the obvious one-sample-per-forward loop, none of which changes a number beyond
float rounding:

* sequences are sorted by length and packed into batches under a token budget (right padding and an
  attention mask), so little compute goes to padding;
* the longest token prefix shared by a batch (the template's preamble) is run once and reused through
  the KV cache, as far as no scored position needs its hidden state;
* the output layer (and the log-sum-exp over the vocabulary) runs only at positions whose next token
  is scored, never over the whole sequence.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tunesift.models.output_layer import token_nll
from tunesift.models.registry import DEFAULT_MODEL, ResolvedModel, resolve_model

# A shared prefix shorter than this is not worth a forward pass of its own.
MIN_SHARED_PREFIX = 8
# Fixed cost of one forward pass (Python, kernel launches), in tokens' worth of compute.
BATCH_OVERHEAD_TOKENS = 32


@dataclass(frozen=True)
class TargetSpan:
    """Token ids of one text and where its targets begin.

    The targets are ``ids[max(start, 1):]``: token ``t`` is scored from the hidden state at ``t - 1``
    (the first token of a text has nothing before it); ``start == len(ids)`` scores nothing inside the
    text and asks for the next token after it (:meth:`CausalLM.next_token_probs`). ``group`` keeps texts
    of one kind (e.g. all conditioned texts of one template variant) in the same batches, so they share
    their prefix.
    """

    ids: tuple[int, ...]
    start: int
    group: str = ""

    @property
    def first_target(self) -> int:
        return max(self.start, 1)

    @property
    def n_targets(self) -> int:
        return max(len(self.ids) - self.first_target, 0)


def weighted_mean(hidden: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """SGPT's position-weighted mean, per row of a right-padded batch ``(B, T, d)``: the ``t``-th of a row's
    ``L`` real tokens weighs ``t / (L (L + 1) / 2)``, padding 0; float32 whatever the hidden states' dtype."""
    positions = torch.arange(1, hidden.shape[1] + 1, dtype=torch.float32, device=hidden.device)
    length = torch.tensor(list(lengths), dtype=torch.float32, device=hidden.device)[:, None]
    weights = torch.where(positions[None, :] <= length, positions[None, :], 0.0) / (length * (length + 1) / 2)
    return torch.einsum("bt,btd->bd", weights, hidden.float())


def cache_keyword(decoder: torch.nn.Module) -> str:
    """The name under which ``decoder`` takes and returns its KV cache: ``cache`` since transformers
    deprecated ``past_key_values`` (removed in 5.40), ``past_key_values`` in the releases before."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix common to every sequence."""
    first = sequences[0]
    limit = min(len(s) for s in sequences)
    for pos in range(limit):
        token = first[pos]
        if any(s[pos] != token for s in sequences):
            return pos
    return limit


def _cut_group(lengths: Sequence[int], prefix: int, batch_tokens: int) -> list[tuple[int, int]]:
    """Split lengths (sorted ascending) into runs minimising the tokens the decoder computes.

    A run ``[i, j)`` costs ``(j - i) * (max_len - prefix) + prefix`` tokens (padding included, the shared
    prefix run once) plus ``BATCH_OVERHEAD_TOKENS``; it may hold at most ``batch_tokens`` tokens. Exact
    dynamic programming over the cut points: cheap next to one forward pass.
    """
    n = len(lengths)
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[j - 1]
        for i in range(j - 1, -1, -1):
            size = j - i
            if size > 1 and size * longest > batch_tokens:
                break
            cost = best[i] + size * (longest - prefix) + prefix + BATCH_OVERHEAD_TOKENS
            if cost < best[j]:
                best[j], cut[j] = cost, i
    runs = []
    j = n
    while j > 0:
        runs.append((cut[j], j))
        j = cut[j]
    return runs[::-1]


def plan_batches(spans: Sequence[TargetSpan], batch_tokens: int) -> list[list[int]]:
    """Indices of spans grouped into batches of one group each, sorted by length, ``B * max_len <= budget``.

    Cut points are chosen to waste as little compute on padding as possible (see :func:`_cut_group`).
    """
    groups: dict[str, list[int]] = {}
    for i in sorted(range(len(spans)), key=lambda i: (spans[i].group, len(spans[i].ids), i)):
        groups.setdefault(spans[i].group, []).append(i)
    batches: list[list[int]] = []
    for members in groups.values():
        lengths = [len(spans[i].ids) for i in members]
        prefix = min(
            shared_prefix_length([spans[i].ids for i in members]), min(spans[i].first_target for i in members) - 1
        )
        prefix = prefix if prefix >= MIN_SHARED_PREFIX else 0
        batches.extend(members[i:j] for i, j in _cut_group(lengths, prefix, batch_tokens))
    return batches


class TokenizerSide:
    """The text side of a backend, from a Hugging Face tokenizer (``self.tokenizer``): shared by the
    in-process model and a server backend, which tokenises locally and sends token ids."""

    tokenizer: Any

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids, by default with the tokenizer's own special tokens (a BOS where the model uses one)."""
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone, without special tokens (0 for an empty text)."""
        return len(self.encode(text, add_special_tokens=False)) if text else 0

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The tokenizer's chat template as text; a BOS it writes is dropped where :meth:`encode` adds one."""
        from tunesift.data.templates import render_chat

        return render_chat(self.tokenizer, messages, add_generation_prompt)


@dataclass
class CausalLM(TokenizerSide):
    """A Hugging Face causal LM and its tokenizer, loaded for scoring (eval mode, no gradients)."""

    model: torch.nn.Module
    tokenizer: object
    name: str = "model"
    fingerprint: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def load(
        cls, name_or_path: str | ResolvedModel = DEFAULT_MODEL, device: str | None = None, dtype: str | None = None
    ) -> CausalLM:
        """Load a packaged model by short name, a checkpoint directory or hub id, or a resolved model, on
        ``device`` in ``dtype`` (default: a resolved model's own, else ``auto``: bf16 on a GPU that has it)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from tunesift.models.precision import attention_implementation, pick_device, resolve_dtype, torch_dtype

        given = isinstance(name_or_path, ResolvedModel)
        resolved = name_or_path if given else resolve_model(name_or_path)
        where = pick_device(device)
        name = resolve_dtype(dtype or (resolved.dtype if given else "auto"), where)
        tokenizer = AutoTokenizer.from_pretrained(resolved.path)
        attn = attention_implementation(where, name)
        from tunesift.models.quiet import loading_quietly

        with loading_quietly():
            model = AutoModelForCausalLM.from_pretrained(
                resolved.path, dtype=torch_dtype(name), attn_implementation=attn
            )
        model.to(where).eval()
        return cls(model=model, tokenizer=tokenizer, name=resolved.name, fingerprint=resolved.fingerprint,
                   device=torch.device(where))  # fmt: skip

    def __post_init__(self) -> None:
        # Work done so far, for benchmarks: tokens through the decoder (padding included), padding,
        # prefix tokens served from the KV cache instead, and positions given the output layer.
        self.stats: Counter[str] = Counter()
        self.model.eval()
        self._decoder = self.model.get_decoder()
        self._cache_kwarg = cache_keyword(self._decoder)
        self._lm_head = self.model.get_output_embeddings()
        self._softcap = getattr(self.model.config, "final_logit_softcapping", None)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        self._pad_id = pad if pad is not None else 0

    @property
    def dtype_name(self) -> str:
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    @torch.inference_mode()
    def target_nll(
        self,
        spans: Sequence[TargetSpan],
        batch_tokens: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Per-token NLL (natural log) of each span's targets, in the order of ``spans``.

        ``on_batch`` is called with the number of spans finished after each forward pass (progress).
        """
        results: list[np.ndarray] = [np.empty(0, dtype=np.float64)] * len(spans)
        for batch in plan_batches(spans, batch_tokens):
            todo = [i for i in batch if spans[i].n_targets > 0]
            if todo:
                for i, nll in zip(todo, self._batch_nll([spans[i] for i in todo]), strict=True):
                    results[i] = nll
            if on_batch is not None:
                on_batch(len(batch))
        return results

    @torch.inference_mode()
    def next_token_probs(
        self,
        texts: Sequence[TargetSpan],
        candidates: Sequence[int],
        batch_tokens: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Probabilities of the candidate tokens right after each text, renormalised over the candidates.

        Renormalising over a few tokens equals a softmax over their logits alone, so only the last
        hidden state and those rows of the output layer are computed, never the whole vocabulary.
        Each text is a span with ``start == len(ids)`` (nothing scored inside it).
        """
        rows = torch.tensor(list(candidates), device=self.device)
        weight = self._lm_head.weight[rows]
        bias = None if self._lm_head.bias is None else self._lm_head.bias[rows]
        out = np.full((len(texts), len(candidates)), np.nan)
        for batch in plan_batches(texts, batch_tokens):
            items = [texts[i] for i in batch]
            hidden, prefix = self._decode_batch(items)
            last = torch.tensor([len(s.ids) - 1 - prefix for s in items], device=self.device)
            logits = torch.nn.functional.linear(
                hidden[torch.arange(len(items), device=self.device), last], weight, bias
            )
            logits = logits.float()
            if self._softcap:
                logits = torch.tanh(logits / self._softcap) * self._softcap
            self.stats["output_positions"] += len(items)
            out[batch] = torch.softmax(logits, dim=-1).double().cpu().numpy()
            if on_batch is not None:
                on_batch(len(batch))
        return out

    @torch.inference_mode()
    def mean_hidden_and_loss(
        self, texts: Sequence[Sequence[int]], batch_tokens: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the mean of the last hidden state (after the final norm) over all its tokens, not
        normalised, and the mean NLL of its tokens after the first (HF ``labels=input_ids``).

        Cherry's pre-experienced embedding and prompt perplexity (METHODS.md §1) in one pass; a
        one-token text has no loss (NaN).
        """
        spans = [TargetSpan(tuple(ids), start=1) for ids in texts]
        width = self.model.config.get_text_config().hidden_size
        means = np.zeros((len(spans), width), dtype=np.float32)
        losses = np.full(len(spans), np.nan)
        for batch in plan_batches(spans, batch_tokens):
            items = [spans[i] for i in batch]
            hidden, _ = self._decode_batch(items)  # start=1 needs every position: no shared prefix
            for row, (i, span) in enumerate(zip(batch, items, strict=True)):
                n = len(span.ids)
                means[i] = hidden[row, :n].float().mean(dim=0).cpu().numpy()
                if n > 1:
                    targets = torch.tensor(span.ids[1:], device=self.device)
                    losses[i] = float(self._nll(hidden[row, : n - 1], targets).double().mean())
            self.stats["output_positions"] += sum(len(s.ids) - 1 for s in items)
        return means, losses

    @torch.inference_mode()
    def weighted_mean_hidden(self, texts: Sequence[Sequence[int]], batch_tokens: int = 4096) -> np.ndarray:
        """Per text: the position-weighted mean of the last hidden state (after the final norm), weight
        ``t / sum(1..L)`` for the ``t``-th of its ``L`` real tokens, in float32, not normalised (RDS+,
        METHODS.md §13). Texts are batched with right padding, which gets weight 0: a batch equals batch size 1.
        No output layer is run."""
        spans = [TargetSpan(tuple(ids), start=1) for ids in texts]  # start=1: every position, no shared prefix
        width = self.model.config.get_text_config().hidden_size
        pooled = np.zeros((len(spans), width), dtype=np.float32)
        for batch in plan_batches(spans, batch_tokens):
            rows = [i for i in batch if spans[i].ids]
            items = [spans[i] for i in rows]
            if not items:
                continue
            hidden, _ = self._decode_batch(items)
            pooled[rows] = weighted_mean(hidden, [len(s.ids) for s in items]).cpu().numpy()
        return pooled

    def _decode_batch(self, items: Sequence[TargetSpan]) -> tuple[torch.Tensor, int]:
        """Last hidden states of a batch, from its shared prefix on; returns them and the prefix length.

        Hidden states are needed from the position before each first target on; a prefix shared by
        the whole batch that ends before every such position is run once and kept as KV cache.
        """
        first_needed = min(s.first_target for s in items) - 1
        shared = min(shared_prefix_length([s.ids for s in items]), first_needed)
        prefix = shared if shared >= MIN_SHARED_PREFIX and len(items) > 1 else 0

        batch = len(items)
        width = max(len(s.ids) for s in items) - prefix
        input_ids = torch.full((batch, width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((batch, prefix + width), dtype=torch.long)
        attention[:, :prefix] = 1
        for row, span in enumerate(items):
            rest = span.ids[prefix:]
            input_ids[row, : len(rest)] = torch.tensor(rest, dtype=torch.long)
            attention[row, prefix : prefix + len(rest)] = 1

        past = None
        if prefix:
            head = torch.tensor([items[0].ids[:prefix]], dtype=torch.long, device=self.device)
            out = self._decoder(input_ids=head, use_cache=True)
            past = getattr(out, self._cache_kwarg)
            past.batch_repeat_interleave(batch)
        self.stats["batches"] += 1
        self.stats["decoder_tokens"] += batch * width + prefix
        self.stats["padding_tokens"] += batch * width - sum(len(s.ids) - prefix for s in items)
        self.stats["prefix_tokens_reused"] += (batch - 1) * prefix
        positions = torch.arange(prefix, prefix + width, device=self.device).unsqueeze(0).expand(batch, -1)
        hidden = self._decoder(
            input_ids=input_ids.to(self.device),
            attention_mask=attention.to(self.device),
            position_ids=positions,
            use_cache=past is not None,
            **{self._cache_kwarg: past},
        ).last_hidden_state
        return hidden, prefix

    def _batch_nll(self, items: Sequence[TargetSpan]) -> list[np.ndarray]:
        hidden, prefix = self._decode_batch(items)
        rows, cols, targets, counts = [], [], [], []
        for row, span in enumerate(items):
            first = span.first_target
            n = len(span.ids) - first
            rows.extend([row] * n)
            cols.extend(range(first - 1 - prefix, len(span.ids) - 1 - prefix))
            targets.extend(span.ids[first:])
            counts.append(n)
        self.stats["output_positions"] += len(rows)
        picked = hidden[torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)]
        nll = self._nll(picked, torch.tensor(targets, device=self.device))
        return [part.numpy() for part in torch.split(nll.double().cpu(), counts)]

    def _nll(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return token_nll(hidden, self._lm_head.weight, targets, self._lm_head.bias, self._softcap)
