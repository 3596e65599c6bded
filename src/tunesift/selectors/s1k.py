"""The s1K selection (Muennighoff et al. 2025, "s1: Simple test-time scaling", ``simplescaling/s1``; METHODS.md
§25.6): quality, then difficulty, then diversity weighted by trace length. The ``s1k`` recipe scores ``pass-rate``
(k = 1 at temperature 0.05, or the solvers' attempts in ``--samples``) and keeps ``pass_rate == 0`` (solved by no
solver; a row that could not be checked is dropped too, as in s1); this selector does the other two stages over what
is left.

1. Quality: drop rows missing the question, the trace or the reference; drop questions holding a figure (``![Image]``
   or ``[asy]``) unless the record's source names AIME; ``--s1-strict-regex`` adds the notebook's ``p{i}.`` and
   bold-digit rules (they drop false positives too, e.g. "exp2.").
2. (the recipe's filter)
3. Diversity: the domain is the record's ``domain`` field (s1 labels each question with an MSC code by an LLM; a pool
   without one is clustered: k-means of the MiniLM vectors). Until the budget: draw a non-empty domain uniformly,
   then a row of it with probability proportional to ``2^-rank`` (rank 0 the longest thinking, ties by index),
   remove it; seeded by ``numpy.random.default_rng(seed)``. ``--deterministic`` walks the domains round-robin in name
   order taking the longest left in each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.options import Option
from tunesift.selectors.base import SEED, Candidates, Selector

FIGURE = re.compile(r"!\[Image\]|\[asy\]")
STRICT = (re.compile(r"p\d+\."), re.compile(r"\*\*\d+\.?\*\*"))  # "p3." problem labels; "**3.**" bold numbering
SOURCE_FIELDS = ("source", "source_type", "dataset")


def quality_reason(
    question: str, thinking: str, reference: str | None, source: str, strict: bool = False
) -> str | None:
    """Why a row fails s1's quality stage, or None when it passes."""
    if not question.strip():
        return "no_question"
    if not thinking.strip():
        return "no_trace"
    if not (reference or "").strip():
        return "no_reference"
    if FIGURE.search(question) and "aime" not in source.lower():
        return "figure"
    if strict and any(rule.search(question) for rule in STRICT):
        return "strict_regex"
    return None


def rank_weights(lengths: Sequence[int]) -> np.ndarray:
    """Within a domain: ``2^-rank`` normalised, rank 0 the longest (ties by position). §25.7: lengths
    [1200, 5000, 300, 2500] -> ranks [2, 0, 3, 1] -> [0.13333, 0.53333, 0.06667, 0.26667]."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    weights = np.empty(len(lengths))
    weights[order] = 2.0 ** -np.arange(len(lengths), dtype=float)
    return weights / weights.sum()


def s1_draw(domains: Sequence[str], lengths: Sequence[int], size: int, seed: int = 0,
            deterministic: bool = False) -> list[int]:  # fmt: skip
    """Positions in pick order: domains drawn uniformly, rows within by ``2^-rank`` of length (or round-robin by
    name, longest first, with ``deterministic``)."""
    by: dict[str, list[int]] = {}
    for position in sorted(range(len(domains)), key=lambda i: (-lengths[i], i)):
        by.setdefault(domains[position], []).append(position)  # each domain longest first
    names = sorted(by)
    out: list[int] = []
    if deterministic:
        while len(out) < size and names:
            for name in list(names):
                if len(out) == size:
                    break
                out.append(by[name].pop(0))
                if not by[name]:
                    names.remove(name)
        return out
    rng = np.random.default_rng(seed)
    while len(out) < size and names:
        name = names[int(rng.integers(len(names)))]
        members = by[name]
        weights = 2.0 ** -np.arange(len(members), dtype=float)
        out.append(members.pop(int(rng.choice(len(members), p=weights / weights.sum()))))
        if not members:
            names.remove(name)
    return out


class S1K(Selector):
    """s1K's quality rules, then domain draws weighted ``2^-rank`` by thinking length (seeded or deterministic)."""

    name = "s1k"
    embeds = True  # only for records without a domain: their MiniLM vectors are clustered
    options = (
        Option("domain", str, "domain", "The record field naming each row's domain (s1: an MSC code); rows without "
               "one are clustered (k-means of MiniLM vectors)."),
        Option("clusters", int, 50, "k-means clusters for the rows without a domain.", at_least=1),
        Option("tokenizer", str, "smollm2-135m-instruct", "Whose tokens measure a trace's thinking: a packaged "
               "model's name, a checkpoint, or whitespace (words)."),
        Option("deterministic", bool, False, "Round-robin over the domains in name order, the longest left in each, "
               "instead of the seeded draws.", flag="--deterministic/--seeded"),
        Option("strict_regex", bool, False, "Add s1's notebook rules (p{i}. labels, bold digits), which drop false "
               "positives too.", flag="--s1-strict-regex/--no-s1-strict-regex"),
        SEED,
    )  # fmt: skip

    def select(self, candidates: Candidates, size: int) -> list[int]:
        from tunesift.data.schemas import split_trace

        samples = candidates.samples()
        reasons: dict[str, int] = {}
        passed: list[int] = []
        for position, sample in enumerate(samples):
            record = sample.record if isinstance(sample.record, dict) else {}
            source = " ".join(str(record.get(f, "")) for f in SOURCE_FIELDS)
            question = f"{sample.instruction}\n{sample.input}" if sample.input else sample.instruction
            why = quality_reason(question, split_trace(sample.output).thinking, sample.reference, source,
                                 self.params["strict_regex"])  # fmt: skip
            if why is None:
                passed.append(position)
            else:
                reasons[why] = reasons.get(why, 0) + 1
        thinking = [split_trace(samples[p].output).thinking for p in passed]
        lengths = _token_counts(self.params["tokenizer"], thinking)
        domains = self._domains(candidates, [samples[p] for p in passed], passed)
        picks = s1_draw(domains, lengths, size, self.params["random_state"], self.params["deterministic"])
        counts: dict[str, int] = {}
        for d in domains:
            counts[d] = counts.get(d, 0) + 1
        self.details = {"quality_dropped": reasons, "after_quality": len(passed), "domains": len(counts),
                        "deterministic": self.params["deterministic"], "seed": self.params["random_state"]}  # fmt: skip
        return [passed[p] for p in picks]

    def _domains(self, candidates: Candidates, samples: Sequence[Any], positions: Sequence[int]) -> list[str]:
        field = self.params["domain"]
        named = [s.record.get(field) if isinstance(s.record, dict) else None for s in samples]
        missing = [k for k, d in enumerate(named) if d in (None, "")]
        if missing:
            from tunesift.selectors.clusters import kmeans_labels

            vectors = candidates.vectors()[[positions[k] for k in missing]]
            labels = kmeans_labels(vectors, min(self.params["clusters"], len(missing)),
                                   random_state=self.params["random_state"])  # fmt: skip
            for k, label in zip(missing, labels.tolist(), strict=True):
                named[k] = f"cluster-{label}"
        return [str(d) for d in named]


def _token_counts(tokenizer: str, texts: list[str]) -> list[int]:
    if tokenizer == "whitespace" or not texts:
        return [len(t.split()) for t in texts]
    from transformers import AutoTokenizer

    from tunesift.models.registry import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(tokenizer, option="tokenizer").path)
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
