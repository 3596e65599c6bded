"""Nuggets (Li et al., NAACL 2024, "One-Shot Learning as Instruction Data Prospector"): a sample's golden score
is the share of anchor tasks whose response the model predicts better with the sample as a one-shot
demonstration than zero-shot (docs/methods.md §10).

Followed from pldlgb/nuggets along its code path: ``tasks/alpaca.py`` (the ``sp`` prompt:
``Instruction:\\n{instruction}\\n`` [``Input:\\n{input}\\n``] ``Response:\\n`` then the response; fields
stripped; ``stratified_sampling`` -> ``build_exemplar_from_examples``: a demonstration is the candidate's prompt
and response, nothing appended (``exemplar_seperator`` is defined but never used on this path);
``post_process``: the golden score is the share of anchors with ``lm_log_p`` one-shot ``>`` zero-shot, the
log-probability summed over the anchor's response tokens) and ``instruction_main.py`` with its loader
(``tokenize_demonstration``: the demonstration tokenised on its own, with the tokenizer's special tokens;
``tokenize``: an anchor's prompt and response as one text, without them, its response tokens from the
prompt's token count on; the anchor's tokens follow the demonstration's KV cache directly; zero-shot is the
anchor's tokens alone, once per anchor).

Zero-shot and one-shot score the very same anchor tokens. Every one-shot text of a candidate is in one batch
group, so the causal LM runs the shared demonstration once per batch and reuses its KV cache for the anchors
(``CausalLM._decode_batch``). Cost: ``M`` zero-shot anchor passes once per worker, then ``M`` anchor
continuations per sample. A sample that is itself an anchor is not scored against its own copy (the share is
over the other anchors).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.models.causal_lm import TargetSpan
from tunesift.options import BATCH_TOKENS, CHUNK_SIZE, LM_OPTIONS, MODEL_HELP, Option, model_option
from tunesift.scorers.base import CausalLMScorer, Progress, Unit

if TYPE_CHECKING:
    from tunesift.data.pools import Pool
    from tunesift.models.backend import LMBackend

NUGGETS_VERSION = 2  # 2: the authors' code path (no separator, their tokenisation)
DEFAULT_ANCHORS = 100  # the paper's anchor set: 100 tasks
NUGGETS_COLUMNS = ("nuggets", "nuggets_wins", "nuggets_anchors")


@dataclass(frozen=True)
class Task:
    """An (instruction, input, response) triple, stripped as the reference's ``dataset_preprocess`` does."""

    instruction: str
    input: str
    output: str

    @classmethod
    def of(cls, sample: Sample) -> Task:
        return cls(sample.instruction.strip(), sample.input.strip(), sample.output.strip())

    def query(self) -> str:
        """The ``sp`` prompt up to the response."""
        if self.input:
            return f"Instruction:\n{self.instruction}\nInput:\n{self.input}\nResponse:\n"
        return f"Instruction:\n{self.instruction}\nResponse:\n"

    def demonstration(self) -> str:
        return self.query() + self.output


def anchor_span(lm: LMBackend, anchor: Task, demonstration: Task | None) -> TargetSpan:
    """The anchor's response scored after its prompt (prompt and response tokenised as one text, no special
    tokens), after ``demonstration``'s own tokens (one-shot: with the tokenizer's special tokens) or alone
    (zero-shot); the anchor's tokens are the same either way."""
    query = lm.encode(anchor.query(), add_special_tokens=False)
    tokens = lm.encode(anchor.query() + anchor.output, add_special_tokens=False)
    head = lm.encode(demonstration.demonstration()) if demonstration is not None else []
    group = "zero" if demonstration is None else hashlib.sha256(demonstration.demonstration().encode()).hexdigest()
    return TargetSpan(tuple(head + tokens), start=len(head) + len(query), group=group)


@dataclass
class AnchoredLM:
    """A causal LM with the zero-shot response log-probabilities of the anchors, computed once per worker."""

    lm: Any  # an LMBackend
    zero: np.ndarray  # per anchor: the summed log-probability of its response, zero-shot


class Nuggets(CausalLMScorer):
    """A unit per sample: its wins over the anchors as a one-shot demonstration."""

    method = "nuggets"
    summary = ("Nuggets: the share of anchor tasks the model answers better with the sample as a one-shot "
               "demonstration than zero-shot.")  # fmt: skip
    columns = NUGGETS_COLUMNS
    options = (
        model_option("The model whose one-shot gain is measured. " + MODEL_HELP),
        Option("anchors", Path | None, None, "Anchor tasks: a pool file of your own (every valid record; default: a "
               "seeded sample of --n-anchors of the pool)."),
        Option("n_anchors", int, DEFAULT_ANCHORS,
               "Anchors sampled from the pool when no --anchors file is given (the paper: 100)."),
        Option("anchor_seed", int, 0, "Seed of that sample."),
        BATCH_TOKENS,
        CHUNK_SIZE,
        *LM_OPTIONS,
    )  # fmt: skip

    name = "nuggets"
    result_fields = ("nuggets", "nuggets_wins", "nuggets_anchors", "skip_reason")

    def __init__(self, model: Any, anchors: Sequence[Task], batch_tokens: int = 4096,
                 chunk_size: int | None = None) -> None:  # fmt: skip
        if not anchors:
            raise ConfigError("anchors", "the anchor set is empty")
        self.model = model
        self.anchors = tuple(anchors)
        self.batch_tokens = batch_tokens
        self.chunk_size = chunk_size or 16

    @classmethod
    def build(cls, pool: Any, executor: Any, *, model: Any, anchors: Any, n_anchors: int, anchor_seed: int,
              batch_tokens: int, chunk_size: int | None, **where: Any) -> Nuggets:  # fmt: skip
        from tunesift.models.backend import model_ref

        tasks = load_anchors(pool, anchors, n_anchors, anchor_seed)
        return cls(model_ref(model, executor, **where), tasks, batch_tokens, chunk_size)

    def anchors_sha256(self) -> str:
        payload = json.dumps([[a.instruction, a.input, a.output] for a in self.anchors], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "nuggets", "version": NUGGETS_VERSION, "anchors_sha256": self.anchors_sha256(),
                "n_anchors": len(self.anchors), **self.model.key()}  # fmt: skip

    def describe(self) -> str:
        return f"Nuggets ({self.model.name}, {len(self.anchors)} anchors)"

    def load_backend(self, device: str | None = None) -> AnchoredLM:
        lm = super().load_backend(device)
        spans = [anchor_span(lm, a, None) for a in self.anchors]
        for anchor, span in zip(self.anchors, spans, strict=True):
            if span.n_targets == 0:
                raise ConfigError("anchors", f"an anchor has no response tokens: {anchor.instruction[:60]!r}")
        zero = np.array([-float(nll.sum()) for nll in lm.target_nll(spans, self.batch_tokens)])
        return AnchoredLM(lm, zero)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        lm, limit = backend.lm, backend.lm.context_length
        spans, used = [], []
        results: list[dict[str, Any] | None] = [None] * len(units)
        for u, unit in enumerate(units):
            demo = Task.of(unit.payload)
            which = [j for j, a in enumerate(self.anchors) if a != demo]  # never its own copy
            mine = [anchor_span(lm, self.anchors[j], demo) for j in which]
            if limit is not None and any(len(s.ids) > limit for s in mine):
                results[u] = {"nuggets": None, "nuggets_wins": None, "nuggets_anchors": None,
                              "skip_reason": "too_long_for_context"}  # fmt: skip
                continue
            spans.extend(mine)
            used.append((u, which))
        nll = lm.target_nll(spans, self.batch_tokens)
        one_shot = np.array([-float(x.sum()) for x in nll])
        position = 0
        for u, which in used:
            icl = one_shot[position : position + len(which)]
            position += len(which)
            wins = int(np.sum(icl > backend.zero[which])) if which else 0
            share = wins / len(which) if which else None
            results[u] = {"nuggets": share, "nuggets_wins": wins, "nuggets_anchors": len(which),
                          "skip_reason": None if which else "no_other_anchor"}  # fmt: skip
            if on_progress is not None:
                on_progress(1)
        return [r for r in results if r is not None]


def load_anchors(pool: Pool, anchors: str | Path | None, n_anchors: int = DEFAULT_ANCHORS, seed: int = 0) -> list[Task]:
    """The user's anchor file (every valid record with a response; the others are counted on stderr), or a
    seeded sample of ``n_anchors`` of the pool's records with a response."""
    import sys

    from tunesift.data.pools import read_pool
    from tunesift.errors import TunesiftError

    if anchors is not None:
        try:
            source = read_pool(anchors, on_error="skip")
        except TunesiftError as err:
            raise ConfigError("anchors", f"cannot read the anchor set: {err}") from None
        records = list(source)
        tasks = [Task.of(s) for s in records if isinstance(s, Sample) and s.output.strip()]
        if not tasks:
            raise ConfigError("anchors", f"{anchors}: no valid record with a response to use as an anchor")
        if len(tasks) < len(records):
            print(f"tunesift: --anchors {anchors}: {len(records) - len(tasks)} of {len(records)} records left out "
                  f"(invalid, or no response); {len(tasks)} used", file=sys.stderr)  # fmt: skip
        return tasks
    if n_anchors < 1:
        raise ConfigError("n-anchors", f"must be at least 1, got {n_anchors}")
    valid = [s for s in pool if isinstance(s, Sample) and s.output.strip()]
    if not valid:
        raise ConfigError("anchors", "the pool has no valid record to sample anchors from")
    picks = np.random.default_rng(seed).choice(len(valid), size=min(n_anchors, len(valid)), replace=False)
    return [Task.of(valid[int(i)]) for i in sorted(picks)]
