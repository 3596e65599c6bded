"""What a scorer may ask of a language model, and nothing more.

Scorers see a model only through :class:`LMBackend`; none reaches into ``model.config`` or a tokenizer's
internals, so a second implementation (another runtime, an inference server) plugs in behind the same
calls. The transformers implementation is :class:`tunesift.models.causal_lm.CausalLM`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tunesift.errors import ConfigError
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
        self, spans: Sequence[TargetSpan], batch_tokens: int = 4096, on_batch: Callable[[int], None] | None = None
    ) -> list[np.ndarray]:
        """Per-token NLL of each span's targets."""

    def next_token_probs(
        self,
        texts: Sequence[TargetSpan],
        candidates: Sequence[int],
        batch_tokens: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Probabilities of ``candidates`` after each text, renormalised over them."""

    def mean_hidden_and_loss(
        self, texts: Sequence[Sequence[int]], batch_tokens: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean last hidden state and mean NLL of each text (embeddings)."""


def load_lm(model: Any, device: str | None = None) -> LMBackend:
    """The backend of a model reference: a served model's client, else the checkpoint loaded in-process
    (on ``device``, in the resolved model's dtype)."""
    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.server import ServedModel

    if isinstance(model, ServedModel):
        return model.load()
    return CausalLM.load(model, device=device)


def model_ref(
    model: Any,
    executor: Any,
    *,
    dtype: str | None = None,
    base_url: str | None = None,
    tokenizer: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 8,
    timeout: float = 60.0,
    retries: int = 4,
) -> Any:
    """What a scorer is given to load: ``model`` on the server at ``base_url`` (token ids from ``tokenizer``,
    default the model's own), else the checkpoint resolved in the dtype ``dtype`` means where ``executor``
    runs (None: a resolved model keeps its own dtype; a name gets ``auto``)."""
    from tunesift.models.registry import ResolvedModel, resolve_model
    from tunesift.models.server import ServedModel

    if isinstance(model, ServedModel):
        return model.on("server", dtype)
    if base_url is not None:
        if not isinstance(model, str) or not model:
            raise ConfigError("model", "with --base-url, give the model name the server serves")
        source = tokenizer or model
        try:
            local = resolve_model(source, option="tokenizer")
        except ConfigError as err:
            hint = "" if tokenizer else "; give --tokenizer NAME_OR_PATH (a checkpoint folder or a hub id)"
            raise ConfigError("tokenizer", f"{err.message}{hint}") from None
        served = ServedModel(base_url, model, local, api_key_env, concurrency, timeout, retries).on("server", dtype)
        served.load()  # a server that is down, or does not serve the model, is an error now, before any work
        return served
    if tokenizer is not None:
        raise ConfigError("tokenizer", "--tokenizer goes with --base-url (an in-process model uses its own)")
    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model)
    if dtype is None and isinstance(model, ResolvedModel):
        return resolved
    return resolved.on(executor.target_device(), dtype)
