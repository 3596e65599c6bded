"""INSTAG (Lu et al., ICLR 2024, "#InsTag: Instruction Tagging for Analyzing Supervised Fine-tuning of Large
Language Models"): an LLM tags each query with open-ended intention tags; the tags are normalised over the
pool; complexity is a sample's number of tags; the selection takes samples in complexity order, keeping one
only if it adds a tag not yet covered (docs/methods.md §8).

The prompt is the paper's tagging prompt (§2.1) as its published reproductions send it (e.g. OPPO's
``get_prompt``: the query between ``[begin]`` and ``[end]``, then the JSON format
``[{"tag": str, "explanation": str}]``). Normalisation follows the paper's §2.2 in its order: frequency
filtering (tags seen fewer than ``alpha`` times, 20 in the paper), rule aggregation (lower case, special
characters to spaces, NLTK's Porter stemmer on every word), semantic aggregation (DBSCAN, ``min_samples=1``,
over phrase embeddings with cosine distance ``<= 0.05``; all-MiniLM-L6-v2 stands in for PhraseBERT, which
is not packaged here), association aggregation (tags ``A -> B`` with support ``>= 40`` and confidence
``>= 99 %`` merged, transitively; pair rules only, where the paper mines itemsets with FP-Growth). The
sampling is the paper's Algorithm 1 (complexity-first diverse sampling).

A tagger is an OpenAI-compatible endpoint (temperature 0) or a local causal LM generating greedily. A reply
without a readable JSON list of tags is null with the raw reply kept, never an empty tag set.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from tunesift.data.sample import Sample
from tunesift.models.chat import EndpointChat, EndpointSpec, LocalChat, chat_ref
from tunesift.models.registry import ResolvedModel
from tunesift.options import API_KEY_ENV, BASE_URL, CHUNK_SIZE, CONCURRENCY, DTYPE, RETRIES, TIMEOUT, Option
from tunesift.scorers.base import Progress, Scorer, Unit
from tunesift.scorers.judge import UnparseableReply

INSTAG_VERSION = 1
PROMPT = (
    "You are a tagging system that provides useful tags for instruction intentions to distinguish instructions "
    "for a helpful AI assistant. Below is an instruction:\n[begin]\n{query}\n[end]\nPlease provide coarse-grained "
    'tags, such as "Spelling and Grammar Check" and "Cosplay", to identify main intentions of above instruction. '
    "Your answer should be a list including titles of tags and a brief explanation of each tag. Your response "
    'have to strictly follow this JSON format: [{{"tag": str, "explanation": str}}]. Please response in English.'
)
PROMPT_SHA256 = hashlib.sha256(PROMPT.encode("utf-8")).hexdigest()
MAX_NEW_TOKENS = 512
# The paper's normalisation parameters (§2.2).
MIN_TAG_COUNT = 20
SEMANTIC_DISTANCE = 0.05
MIN_SUPPORT = 40
MIN_CONFIDENCE = 0.99
INSTAG_COLUMNS = ("instag", "instag_tags")


def tag_messages(query: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT.format(query=query)}]


def parse_tags(reply: str) -> list[str]:
    """The tags of a reply: a JSON list of ``{"tag": str, ...}`` objects, alone or inside text or a code
    fence; duplicates dropped, order kept. Anything else raises :class:`UnparseableReply`."""
    text = reply.strip()
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        raise UnparseableReply(reply, "no_json_list")
    try:
        items = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        raise UnparseableReply(reply, "bad_json") from None
    if not isinstance(items, list) or not items:
        raise UnparseableReply(reply, "no_tags")
    tags = []
    for item in items:
        tag = item.get("tag") if isinstance(item, dict) else None
        if not isinstance(tag, str) or not tag.strip():
            raise UnparseableReply(reply, "item_without_tag")
        if tag.strip() not in tags:
            tags.append(tag.strip())
    return tags


def turn_query(sample: Sample, turn: int) -> str:
    t = sample.turns[turn]
    return f"{t.user}\n{t.input}" if t.input else t.user


class InsTag(Scorer):
    """A unit per user query (keyed by the query text); a sample's raw tags are the union over its turns."""

    method = "instag"
    summary = "INSTAG: an LLM tags each query's intentions; tags normalised over the pool; complexity = number of tags."
    columns = ("instag",)
    subset_columns = INSTAG_COLUMNS
    column_kinds: ClassVar[dict[str, str]] = {"instag_tags": "list"}
    needs_response = False  # it tags the queries
    options = (
        Option("model", str | None, None, "Tagger: with --base-url, the model name the endpoint serves; without, a "
               "local causal LM generating greedily (default smollm2-135m-instruct; a 135M model rarely writes valid "
               "JSON). Real use needs an endpoint tagger."),
        BASE_URL, API_KEY_ENV, CONCURRENCY, TIMEOUT, RETRIES,
        Option("max_new_tokens", int, MAX_NEW_TOKENS, "Longest tag list the tagger may write, in tokens.", at_least=1),
        Option("min_tag_count", int, MIN_TAG_COUNT, "Frequency filtering: tags seen fewer times over the pool are "
               "dropped (the paper: 20, over a large pool; lower it for a small one).", at_least=0),
        Option("semantic", bool, True, "Merge tags within cosine distance 0.05 (all-MiniLM-L6-v2, DBSCAN), as the "
               "paper does with PhraseBERT.", flag="--semantic/--no-semantic"),
        DTYPE,
        CHUNK_SIZE,
    )  # fmt: skip

    name = "instag"
    result_fields = ("tags", "tag_reply", "skip_reason", "transient")
    unit_name = "query"

    def __init__(self, tagger: EndpointSpec | ResolvedModel, max_new_tokens: int = MAX_NEW_TOKENS,
                 chunk_size: int | None = None, min_tag_count: int = MIN_TAG_COUNT,
                 semantic: bool = True) -> None:  # fmt: skip
        self.tagger = tagger
        self.max_new_tokens = max_new_tokens
        self.chunk_size = chunk_size or 32
        self.min_tag_count = min_tag_count
        self.semantic = semantic
        self._normalisation: dict[str, Any] = {}
        if isinstance(tagger, EndpointSpec):
            tagger.client()  # checks the URL and limits on the driver

    @classmethod
    def build(cls, pool: Any, executor: Any, *, model: Any, max_new_tokens: int, min_tag_count: int,
              semantic: bool, chunk_size: int | None, **where: Any) -> InsTag:  # fmt: skip
        return cls(chat_ref(model, executor, **where), max_new_tokens, chunk_size, min_tag_count, semantic)

    def _client(self) -> EndpointChat:
        spec = self.tagger
        assert isinstance(spec, EndpointSpec)
        return spec.client(max_tokens=self.max_new_tokens)

    def cache_config(self) -> dict[str, Any]:
        if isinstance(self.tagger, EndpointSpec):
            where: dict[str, Any] = dict(self._client().describe())
        else:
            where = {"tagger": "local", "max_new_tokens": self.max_new_tokens, **self.tagger.key()}
        return {"scorer": "instag", "version": INSTAG_VERSION, "prompt_sha256": PROMPT_SHA256, **where}

    def describe(self) -> str:
        return "INSTAG tagger"

    def units(self, sample: Sample) -> list[Unit]:
        queries = [turn_query(sample, t) for t in range(len(sample.turns))]
        return [Unit(_key(q), q) for q in queries]

    def check_ready(self) -> None:
        if isinstance(self.tagger, EndpointSpec):
            self._client().probe()

    def load_backend(self, device: str | None = None) -> Any:
        """A chat model: the endpoint, or the local model generating greedily (after its chat template, or the
        bare prompt and a newline for a model without one)."""
        if isinstance(self.tagger, EndpointSpec):
            return self._client()
        from tunesift.models.backend import load_lm

        return LocalChat(load_lm(self.tagger, device), self.max_new_tokens, plain_suffix="\n")

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        results = []
        for reply, error, transient in backend.complete_all([tag_messages(u.payload) for u in units]):
            if reply is None:
                results.append({"tags": None, "tag_reply": None, "skip_reason": error, "transient": transient})
                continue
            try:
                results.append({"tags": parse_tags(reply), "tag_reply": reply, "skip_reason": None,
                                "transient": False})  # fmt: skip
            except UnparseableReply as err:
                results.append({"tags": None, "tag_reply": reply, "skip_reason": err.reason, "transient": False})
        if on_progress is not None:
            on_progress(len(units))
        return results

    def combine(self, sample: Sample, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
        failed = [r for r in results if r["tags"] is None]
        if failed:
            return {"instag_raw_tags": None, "tag_reply": failed[0]["tag_reply"],
                    "skip_reason": failed[0]["skip_reason"]}  # fmt: skip
        tags: list[str] = []
        for r in results:
            tags.extend(t for t in r["tags"] if t not in tags)
        return {"instag_raw_tags": tags, "tag_reply": None, "skip_reason": None}

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: Any) -> None:
        """The paper's normalisation over the whole pool's tags; complexity is the number of normalised tags."""
        embed = None
        if self.semantic:
            from tunesift.models.minilm import MiniLMEmbedder

            embed = MiniLMEmbedder(device="cpu").embed
        normalised, self._normalisation = normalise_tags([r.get("instag_raw_tags") for r in rows],
                                                         min_count=self.min_tag_count, embed=embed)  # fmt: skip
        for row, tags in zip(rows, normalised, strict=True):
            row["instag_tags"] = tags
            row["instag"] = None if tags is None else float(len(tags))

    def table_config(self) -> dict[str, Any]:
        return {**self.cache_config(), "normalisation": self._normalisation,
                "semantic_embedder": "all-MiniLM-L6-v2" if self.semantic else None}  # fmt: skip


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# ----- normalisation over the pool (§2.2) -----


@functools.cache
def _stemmer() -> Any:
    from nltk.stem import PorterStemmer

    return PorterStemmer()


def rule_form(tag: str) -> str:
    """Rule aggregation: lower case, special characters to spaces, each word Porter-stemmed."""
    stemmer = _stemmer()
    words = re.sub(r"[^\w\s]", " ", tag.lower()).split()
    return " ".join(stemmer.stem(w) for w in words)


class _Merge:
    """Union-find whose representative is the most frequent member (ties: alphabetical)."""

    def __init__(self, counts: Counter[str]) -> None:
        self.parent = {t: t for t in counts}
        self.counts = counts

    def find(self, t: str) -> str:
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, drop = sorted((ra, rb), key=lambda t: (-self.counts[t], t))
            self.parent[drop] = keep


def normalise_tags(
    tag_lists: Sequence[Sequence[str] | None],
    *,
    min_count: int = MIN_TAG_COUNT,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    semantic_distance: float = SEMANTIC_DISTANCE,
    min_support: int = MIN_SUPPORT,
    min_confidence: float = MIN_CONFIDENCE,
) -> tuple[list[list[str] | None], dict[str, Any]]:
    """Each sample's normalised tags (None stays None), and what every step did.

    A tag is shown by the most frequent raw form (lower-cased, special characters as spaces) among those it
    merged; ``embed`` maps tag strings to vectors for the semantic step (None skips it).
    """
    raw_counts = Counter(t for tags in tag_lists if tags for t in set(tags))
    # 1. frequency filtering, on the raw tags
    kept = {t for t, c in raw_counts.items() if c >= min_count}
    # 2. rule aggregation: one tag per stemmed form, shown by its most frequent cleaned raw form
    form = {t: rule_form(t) for t in kept}
    shown: dict[str, Counter[str]] = {}
    for t in kept:
        shown.setdefault(form[t], Counter())[" ".join(re.sub(r"[^\w\s]", " ", t.lower()).split())] += raw_counts[t]
    per_sample = [None if tags is None else sorted({form[t] for t in tags if t in kept}) for tags in tag_lists]
    counts = Counter(t for tags in per_sample if tags for t in tags)
    merge = _Merge(Counter(counts))
    # 3. semantic aggregation: DBSCAN (min_samples=1) on cosine distance: connected components within eps
    forms = sorted(counts)
    if embed is not None and len(forms) > 1:
        from sklearn.cluster import DBSCAN

        names = [shown[f].most_common(1)[0][0] for f in forms]
        vectors = np.asarray(embed(names), dtype=np.float64)
        labels = DBSCAN(eps=semantic_distance, min_samples=1, metric="cosine").fit_predict(vectors)
        for label in set(labels.tolist()):
            members = [forms[i] for i in np.flatnonzero(labels == label)]
            for other in members[1:]:
                merge.union(members[0], other)
    semantic = len({merge.find(f) for f in forms})
    # 4. association aggregation: A -> B with support >= min_support and confidence >= min_confidence
    merged = [None if tags is None else sorted({merge.find(t) for t in tags}) for tags in per_sample]
    single = Counter(t for tags in merged if tags for t in tags)
    pairs = Counter((a, b) for tags in merged if tags for a in tags for b in tags if a != b)
    for (a, b), both in sorted(pairs.items()):
        if both >= min_support and both / single[a] >= min_confidence:
            merge.union(a, b)
    final_forms = {f: merge.find(f) for f in forms}
    names = {f: shown[f].most_common(1)[0][0] for f in forms}
    out: list[list[str] | None] = []
    for tags in per_sample:
        if tags is None:
            out.append(None)
            continue
        mine = []
        for t in tags:
            name = names[final_forms[t]]
            if name not in mine:
                mine.append(name)
        out.append(sorted(mine))
    info = {"raw_tags": len(raw_counts), "after_frequency": len(kept), "after_rules": len(shown),
            "after_semantic": semantic, "after_association": len(set(final_forms.values())),
            "min_count": min_count, "semantic_distance": semantic_distance, "min_support": min_support,
            "min_confidence": min_confidence}  # fmt: skip
    return out, info
