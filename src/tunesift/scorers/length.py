"""``length`` (METHODS.md §25.1): how many tokens a sample's chain of thought holds, by a model's tokenizer.

``score = len(tok.encode(thinking, add_special_tokens=False))``, longest first: OpenThoughts3's best question filter
for math (response length, +4 % over random filtering at equal size). The thinking is :func:`split_trace`'s (the whole
response where it holds no marker). ``length_total`` counts the whole sample as it is trained (prompt and response):
a subset's manifest says which share of it is longer than ``--training-length`` (``truncated_frac``), since a proxy
trained at 512 tokens sees only the start of a 6,000-token trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import prompt_text
from tunesift.data.schemas import split_trace
from tunesift.options import Option
from tunesift.scorers.base import Progress, Scorer, Unit

VERSION = 1
WHITESPACE = "whitespace"


class WhitespaceTokens:
    """Words as tokens: for tests and a quick look; any model's tokenizer otherwise."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, list[list[str]]]:
        return {"input_ids": [t.split() for t in texts]}


def token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    """Tokens of each text, without special tokens: one batched call (a fast tokenizer spreads it over the cores)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


class Length(Scorer):
    """Tokens of each sample's chain of thought (and of the whole sample as trained)."""

    method = "length"
    summary = (
        "Chain-of-thought length (reasoning pools): the thinking's tokens by a model's tokenizer, longest first "
        "(OpenThoughts3's best filter for math); the manifest says how much of a subset a training length cuts."
    )
    columns = ("length", "length_total")
    subset_columns = ("length", "length_total")
    default_rule = "top"
    options = (
        Option("tokenizer", str, "smollm2-135m-instruct", "Whose tokens are counted: a packaged model's short name, a "
               "checkpoint folder or hub id, or whitespace (words)."),
        Option("training_length", int, 2048, "The training length in use: the manifest's truncated_frac is the share "
               "of the selected samples longer than it.", at_least=1),
    )  # fmt: skip

    name = "length"
    result_fields = ("length", "length_total", "skip_reason")
    chunk_size = 512

    def __init__(self, tokenizer: str = "smollm2-135m-instruct", training_length: int = 2048) -> None:
        self.tokenizer = tokenizer
        self.training_length = training_length
        self.fingerprint = WHITESPACE
        if tokenizer != WHITESPACE:
            from tunesift.models.registry import resolve_model

            self.resolved = resolve_model(tokenizer, option="tokenizer")
            self.fingerprint = self.resolved.fingerprint

    @classmethod
    def build(cls, pool: Any, executor: Any, *, tokenizer: str, training_length: int) -> Length:
        return cls(tokenizer, training_length)

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": VERSION, "tokenizer": self.fingerprint}

    def table_config(self) -> dict[str, Any]:
        return {**self.cache_config(), "tokenizer_name": self.tokenizer, "training_length": self.training_length}

    @classmethod
    def subset_facts(cls, config: dict[str, Any], rows: Sequence[dict[str, Any]], indices: Sequence[int]) -> dict[
            str, Any]:  # fmt: skip
        """The share of the subset longer than the training length in use (METHODS.md §25.1), and that length."""
        limit = config.get("training_length")
        totals = [t for i in indices if (t := rows[i].get("length_total")) is not None]
        share = sum(t > limit for t in totals) / len(totals) if totals and limit else None
        return {"truncated_frac": share, "training_length": limit}

    def load_backend(self, device: str | None = None) -> Any:
        if self.tokenizer == WHITESPACE:
            return WhitespaceTokens()
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.resolved.path)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        samples = [unit.payload for unit in units]
        thinking = [split_trace(s.output).thinking for s in samples]
        totals = token_counts(backend, [f"{prompt_text(s)}\n{s.output}" for s in samples])
        has = [k for k, t in enumerate(thinking) if t.strip()]
        counts = dict(zip(has, token_counts(backend, [thinking[k] for k in has]), strict=True))
        rows = []
        for k, total in enumerate(totals):
            if k not in counts:
                rows.append({"length": None, "length_total": total, "skip_reason": "no_thinking"})
            else:
                rows.append({"length": counts[k], "length_total": total, "skip_reason": None})
        if on_progress is not None:
            on_progress(len(units))
        return rows

    def describe(self) -> str:
        return "length (thinking tokens)"
