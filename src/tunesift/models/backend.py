"""What a scorer may ask of a language model, and nothing more.

Scorers see a model only through :class:`LMBackend`; none reaches into ``model.config`` or a tokenizer's
internals, so a second implementation (another runtime, an inference server) plugs in behind the same
calls. The transformers implementation is :class:`tunesift.models.causal_lm.CausalLM`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from tunesift.models.causal_lm import TargetSpan

Messages = Sequence[dict[str, str]]


@runtime_checkable
class LMBackend(Protocol):
    """A causal LM that scores token spans. ``fingerprint`` identifies its weights (part of every cache key)."""

    name: str
    fingerprint: str

    @property
    def dtype_name(self) -> str: ...

    @property
    def context_length(self) -> int | None:
        """The most tokens one text may have, or None when the model sets no limit."""

    @property
    def has_chat_template(self) -> bool: ...

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids, by default with the model's own special tokens (a BOS where it uses one)."""

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone, no special tokens."""

    def render_chat(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        """The model's chat template as text, without a BOS the tokenizer adds itself."""

    def target_nll(
        self, spans: Sequence[TargetSpan], token_budget: int = 4096, on_batch: Callable[[int], None] | None = None
    ) -> list[np.ndarray]:
        """Per-token NLL of each span's targets."""

    def next_token_probs(
        self,
        texts: Sequence[TargetSpan],
        candidates: Sequence[int],
        token_budget: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Probabilities of ``candidates`` after each text, renormalised over them."""

    def mean_hidden_and_loss(
        self, texts: Sequence[Sequence[int]], token_budget: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean last hidden state and mean NLL of each text (embeddings)."""
