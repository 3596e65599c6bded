"""``length`` (METHODS.md §25.1): how many tokens a sample's chain of thought holds, by a model's tokenizer.

``score = len(tok.encode(thinking, add_special_tokens=False))``, longest first: OpenThoughts3's best question filter
for math (response length, +4 % over random filtering at equal size). The thinking is :func:`split_trace`'s (the whole
response where it holds no marker). ``length_total`` counts the whole sample as it is trained (prompt and response):
a subset's manifest says which share of it is longer than ``--training-length`` (``truncated_frac``), since a proxy
trained at 512 tokens sees only the start of a 6,000-token trace.

For a pool of questions without traces, ``--length-of generated`` has a solver (the local model, or an endpoint with
``--base-url``) write one answer at temperature 1.0 and counts that answer's tokens (OpenThoughts3's length filter
for math and science questions); the answer is kept in the score store like a pass-rate sample, and a failed request
is a null row with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import Sample, prompt_text
from tunesift.data.schemas import split_trace
from tunesift.errors import ConfigError
from tunesift.options import CHAT_OPTIONS, Option
from tunesift.scorers.base import PoolContext, Progress, Scorer, Unit
from tunesift.scorers.solve import Solve, question_of, texts_or_failure

VERSION = 1
WHITESPACE = "whitespace"
LENGTH_OF = ("response", "generated")
GENERATE_TEMPERATURE = 1.0


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
        Option("length_of", str, "response", "What is counted: the record's own response, or one answer a solver "
               "generates for its question (a pool of questions alone; --model, --base-url)."),
        Option("model", str | None, None, "Solver for --length-of generated: with --base-url, the model the endpoint "
               "serves; without, a local model (default smollm2-135m-instruct)."),
        Option("max_tokens", int, 4096, "Longest answer the solver writes, in tokens.", at_least=1),
        *CHAT_OPTIONS,
    )  # fmt: skip

    name = "length"
    result_fields = ("length", "length_total", "skip_reason")
    chunk_size = 512

    def __init__(self, tokenizer: str = "smollm2-135m-instruct", training_length: int = 2048,
                 solver: Any = None) -> None:  # fmt: skip
        self.tokenizer = tokenizer
        self.training_length = training_length
        self.solve = Solve(solver, 1) if solver is not None else None
        self.fingerprint = WHITESPACE
        if tokenizer != WHITESPACE:
            from tunesift.models.registry import resolve_model

            self.resolved = resolve_model(tokenizer, option="tokenizer")
            self.fingerprint = self.resolved.fingerprint

    @classmethod
    def build(cls, pool: Any, executor: Any, *, tokenizer: str, training_length: int, length_of: str,
              model: str | None, max_tokens: int, **where: Any) -> Length:  # fmt: skip
        if length_of not in LENGTH_OF:
            raise ConfigError("length-of", f"choose one of {', '.join(LENGTH_OF)}, got {length_of!r}")
        if length_of == "response":
            if model is not None or where.get("base_url"):
                raise ConfigError("length-of", "a solver (--model, --base-url) writes answers only with --length-of "
                                  "generated")  # fmt: skip
            return cls(tokenizer, training_length)
        from tunesift.models.chat import chat_ref
        from tunesift.models.solver import SolverSpec

        return cls(tokenizer, training_length, SolverSpec(chat_ref(model, executor, **where), GENERATE_TEMPERATURE,
                                                          max_tokens))  # fmt: skip

    @property
    def needs_response(self) -> bool:  # type: ignore[override]
        """A pool of questions alone is what --length-of generated is for."""
        return self.solve is None

    def stages(self) -> Sequence[Scorer]:
        return (self,) if self.solve is None else (self.solve,)

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        """The record's counts; for a generated answer, its text until :meth:`finish` counts every answer at once."""
        if self.solve is None:
            return self.combine(sample, results[0])
        texts, failed = texts_or_failure(results[0])
        if failed:
            return {"length": None, "length_total": None, "skip_reason": failed}
        return {"length": None, "length_total": None, "skip_reason": "uncounted",
                "_count": (question_of(sample), texts[0])}  # fmt: skip

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        owners = [row for row in rows if "_count" in row]
        if not owners:
            return
        pairs = [row.pop("_count") for row in owners]
        tokenizer = self.load_backend()
        totals = token_counts(tokenizer, [f"{question}\n{text}" for question, text in pairs])
        thinking = [split_trace(text).thinking for _, text in pairs]
        counts = token_counts(tokenizer, thinking)
        for row, n, total, text in zip(owners, counts, totals, thinking, strict=True):
            row.update({"length": n if text.strip() else None, "length_total": total,
                        "skip_reason": None if text.strip() else "empty_answer"})  # fmt: skip

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": VERSION, "tokenizer": self.fingerprint}

    def table_config(self) -> dict[str, Any]:
        config = {**self.cache_config(), "tokenizer_name": self.tokenizer, "training_length": self.training_length}
        if self.solve is not None:
            config["length_of"] = {"generated": self.solve.cache_config()}
        return config

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
