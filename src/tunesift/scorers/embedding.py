"""Sentence embeddings of samples, for the diversity selectors, computed once and kept in the score store.

Two embedders:

* ``minilm``: all-MiniLM-L6-v2 (:mod:`tunesift.models.minilm`). The text of a sample is
  ``instruction\\ninput\\noutput`` (input only when present), as Superfiltering.D embeds it (METHODS.md §2).
* ``lm``: a causal LM's last hidden state averaged over every token of the sample's prompt (template,
  no response, cut to ``max_length``), not normalised, with the prompt's own loss beside it: Cherry's
  pre-experienced embedding (METHODS.md §1). ``text="sample"`` embeds the whole sample text instead.

Vectors are stored binary (float32, memory-mapped) per sample content id, so every later selector reuses
them; the driver's :func:`~tunesift.execution.driver.embed_pool` computes a pool's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesift.data.sample import prompt_text, sample_text
from tunesift.errors import ConfigError
from tunesift.models.minilm import MINILM, MiniLMEmbedder
from tunesift.models.registry import ResolvedModel
from tunesift.scorers.base import CausalLMScorer, Progress, Scorer, Unit
from tunesift.store import encode_vector

EMBEDDERS = ("minilm", "lm")
LM_TEXTS = ("prompt", "sample")
# Bump when a computation or its storage changes, so cached vectors from older code are not reused
# (2: vectors in the store's binary file, not base64 in its JSON lines).
EMBEDDING_VERSION = 2


@dataclass
class EmbeddingTable:
    """Vectors of a pool's valid samples: row ``r`` belongs to pool record ``indices[r]``.

    ``prompt_loss`` (``lm`` embedder only) is the mean NLL of the embedded text: Cherry's prompt perplexity
    is its exponential.
    """

    indices: list[int]
    vectors: np.ndarray
    config: dict[str, Any]
    prompt_loss: np.ndarray | None = None


class MiniLMEmbedding(Scorer):
    """all-MiniLM-L6-v2 vectors on the scorer contract: a unit per sample, its vector kept binary in the store."""

    name = "embedding"
    result_fields = ("vec",)
    vector_field = "vec"
    chunk_size = 256

    def __init__(self, chunk_size: int | None = None, text: str = "sample") -> None:
        if text not in LM_TEXTS:
            raise ConfigError("text", f"unknown text {text!r}; choose one of {', '.join(LM_TEXTS)}")
        self.chunk_size = chunk_size or type(self).chunk_size
        self.text = text

    def cache_config(self) -> dict[str, Any]:
        text = "instruction\\ninput\\noutput" if self.text == "sample" else "instruction\\ninput"
        return {"scorer": "embedding", "version": EMBEDDING_VERSION, "embedder": MINILM, "max_length": 256,
                "text": text}  # fmt: skip

    def describe(self) -> str:
        return "embeddings (minilm)"

    def load_backend(self, device: str | None = None) -> MiniLMEmbedder:
        return MiniLMEmbedder(device=device)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        vectors = backend.embed([sample_text(u.payload) if self.text == "sample" else prompt_text(u.payload)
                                 for u in units])  # fmt: skip
        if on_progress is not None:
            on_progress(len(units))
        return [{"vec": encode_vector(v)} for v in vectors]


class LMEmbedding(CausalLMScorer):
    """A causal LM's mean last hidden state and the embedded text's mean NLL (Cherry's pre-experienced
    embedding and prompt perplexity), on the scorer contract."""

    name = "embedding"
    result_fields = ("vec", "loss")
    vector_field = "vec"
    chunk_size = 256

    def __init__(self, model: ResolvedModel, template: str = "alpaca", text: str = "prompt", max_length: int = 512,
                 batch_tokens: int = 4096, chunk_size: int | None = None) -> None:  # fmt: skip
        if text not in LM_TEXTS:
            raise ConfigError("text", f"unknown text {text!r}; choose one of {', '.join(LM_TEXTS)}")
        self.model = model
        self.template = template
        self.text = text
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.chunk_size = chunk_size or type(self).chunk_size

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "embedding", "version": EMBEDDING_VERSION, "embedder": "lm", **self.model.key(),
                "text": self.text, "max_length": self.max_length,
                "template": self.template if self.text == "prompt" else None}  # fmt: skip

    def describe(self) -> str:
        return "embeddings (lm)"

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        from tunesift.data.templates import get_template

        samples = [u.payload for u in units]
        if self.text == "prompt":
            tmpl = get_template(self.template, backend)
            texts = [tmpl.prompt(s.instruction, s.input, s.turns[:-1], s.system) for s in samples]
        else:
            texts = [sample_text(s) for s in samples]
        ids = [backend.encode(t)[: self.max_length] for t in texts]
        means, losses = backend.mean_hidden_and_loss(ids, self.batch_tokens)
        if on_progress is not None:
            on_progress(len(units))
        return [
            {"vec": encode_vector(v), "loss": float(x) if np.isfinite(x) else None}
            for v, x in zip(means, losses, strict=True)
        ]
