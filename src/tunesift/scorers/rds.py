"""RDS+ (Ivison et al. 2025, "Large-Scale Data Selection for Instruction Tuning"): the pool samples whose
representation is closest to a query set of the target task (METHODS.md §13).

Followed from ``hamishivi/automated-instruction-selection`` (``minimal_multitask/compute_influence_cosinesim.py``
with ``--pooling weighted_mean``, ``utils.py`` ``encode_with_messages_format``, ``get_top_aggregated_influences.py``
with ``--aggregation_method round_robin --selection_method max``): the whole conversation in the Tulu format
(``<|user|>\\n...\\n<|assistant|>\\n...EOS``), cut on the right to ``max_length`` tokens, through the base model;
the last hidden state (after the final norm) averaged with weight ``t / sum(1..L)`` on the ``t``-th token;
L2-normalised; a sample's score is its highest cosine to any query example. The authors run batch size 1;
here batches are right-padded and padding gets weight 0, so a batch equals batch size 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.data.queries import read_queries
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.models.registry import ResolvedModel
from tunesift.options import BATCH_TOKENS, CHUNK_SIZE, DTYPE, Option, model_option
from tunesift.scorers.base import CausalLMScorer, Progress, Unit
from tunesift.scorers.targeted import QUERY, VectorTargeted
from tunesift.store import encode_vector

# Bump when the computation changes, so vectors from older code are not reused.
RDS_VERSION = 1
TEMPLATES = ("tulu", "chat")
TULU_TAGS = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"}


def tulu_text(sample: Sample, eos: str | None) -> str:
    """The authors' ``encode_with_messages_format`` text: every message stripped, in Tulu tags, each reply
    followed by the tokenizer's EOS as text, the whole stripped (the last newline goes)."""
    from tunesift.data.templates import messages

    parts = []
    for message in messages(sample):
        end = (eos or "") if message["role"] == "assistant" else ""
        parts.append(TULU_TAGS[message["role"]] + message["content"].strip() + end + "\n")
    return "".join(parts).strip()


def pool_normalised(pooled: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """Unit vectors (float32) of pooled states, and per row None or why it has none (non-finite, norm 0)."""
    wide = pooled.astype(np.float64)
    norms = np.linalg.norm(wide, axis=1)
    reasons: list[str | None] = []
    for row, norm in zip(wide, norms, strict=True):
        if not np.all(np.isfinite(row)) or not np.isfinite(norm):
            reasons.append("non_finite_hidden_state")
        elif norm == 0:
            reasons.append("zero_norm_representation")
        else:
            reasons.append(None)
    safe = np.where((norms > 0) & np.isfinite(norms), norms, 1.0)
    return (wide / safe[:, None]).astype(np.float32), reasons


def check_index_options(template: str, max_length: int) -> None:
    if template not in TEMPLATES:
        raise ConfigError("template", f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    if max_length < 1:
        raise ConfigError("max-length", f"must be at least 1, got {max_length}")


class RDSIndex(CausalLMScorer):
    """A unit per sample: its RDS+ representation (unit length), kept binary in the store: the pool's index,
    served again to every later query set."""

    name = "rds"
    result_fields = ("vec", "skip_reason")
    vector_field = "vec"
    chunk_size = 256

    def __init__(self, model: ResolvedModel, template: str = "tulu", max_length: int = 2048,
                 batch_tokens: int = 4096, chunk_size: int | None = None) -> None:  # fmt: skip
        check_index_options(template, max_length)
        self.model = model
        self.template = template
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.chunk_size = chunk_size or type(self).chunk_size

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "rds", "version": RDS_VERSION, **self.model.key(), "template": self.template,
                "max_length": self.max_length, "pooling": "weighted_mean"}  # fmt: skip

    def describe(self) -> str:
        return "RDS+ index"

    def text(self, sample: Sample, backend: Any) -> str:
        if self.template == "chat":
            from tunesift.data.templates import messages

            return backend.render_chat(messages(sample), add_generation_prompt=False)
        return tulu_text(sample, getattr(backend.tokenizer, "eos_token", None))

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        ids = [backend.encode(self.text(u.payload, backend))[: self.max_length] for u in units]
        vectors, reasons = pool_normalised(backend.weighted_mean_hidden(ids, self.batch_tokens))
        if on_progress is not None:
            on_progress(len(units))
        return [{"vec": None if why else encode_vector(v), "skip_reason": why}
                for v, why in zip(vectors, reasons, strict=True)]  # fmt: skip


class RDS(VectorTargeted):
    """RDS+: each pool sample's highest cosine to the query set, on a causal LM's weighted-mean representation."""

    method = "rds"
    summary = ("RDS+ (targeted): highest cosine to a query set of the target task, on the model's "
               "position-weighted mean last hidden state.")  # fmt: skip
    columns = ("rds", "rds_by_query")
    options = (
        QUERY,
        model_option("The base model whose hidden states represent samples (the model to be fine-tuned, where it "
                     "fits): " + "packaged short name, checkpoint folder or hub id."),
        Option("template", str, "tulu", "tulu: the authors' literal <|user|>/<|assistant|> text (RDS+); chat: the "
               "tokenizer's chat template (not RDS+)."),
        Option("max_length", int, 2048, "Tokens per sample, cut on the right (the authors': 2048)."),
        BATCH_TOKENS,
        CHUNK_SIZE,
        DTYPE,
        Option("base_url", str | None, None, "Refused: an inference server returns no hidden states; RDS+ runs "
               "the model here (locally or on the Ray executor)."),
    )  # fmt: skip
    vector_name = "RDS+ representation"

    def __init__(self, tasks: Any, index: RDSIndex) -> None:
        super().__init__(tasks)
        self.index = index

    @classmethod
    def build(cls, pool: Any, executor: Any, *, query: Any, model: Any, template: str, max_length: int,
              batch_tokens: int, chunk_size: int | None, dtype: str | None, base_url: str | None) -> RDS:  # fmt: skip
        from tunesift.models.backend import model_ref

        if base_url is not None:
            raise ConfigError("base-url", "rds needs the model's hidden states, which an inference server does not "
                              "return; drop --base-url to run the model here")  # fmt: skip
        tasks = read_queries(query)
        check_index_options(template, max_length)  # before a model is resolved
        return cls(tasks, RDSIndex(model_ref(model, executor, dtype=dtype), template, max_length, batch_tokens,
                                   chunk_size))  # fmt: skip
