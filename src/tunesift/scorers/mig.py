"""What MIG selects on (METHODS.md §14): each sample's INSTAG tags (its labels) and its quality, the mean over its
DEITA-rated turns of complexity x quality. Scoring is INSTAG's and DEITA's own units, in the same store: tags or
ratings already computed by ``score instag`` / ``score deita`` with the same model are reused, and only what is
missing is computed. The selection itself is :mod:`tunesift.selectors.mig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.options import API_KEY_ENV, BASE_URL, CONCURRENCY, DTYPE, RETRIES, TIMEOUT, Option
from tunesift.scorers.base import Method, PoolContext, Scorer
from tunesift.scorers.deita import DEITA
from tunesift.scorers.instag import MAX_NEW_TOKENS, MIN_TAG_COUNT, InsTag


def mig_quality(deita_row: dict[str, Any]) -> float | None:
    """MIG's quality: the mean of complexity x quality over the rated turns (DEITA's EVOL divided by the turns)."""
    turns = deita_row.get("turns") or []
    if deita_row.get("deita") is None or not turns:
        return None
    return float(sum(t["complexity"] * t["quality"] for t in turns) / len(turns))


class MIGScores(Method):
    """INSTAG tags and DEITA ratings of every sample, for MIG: ``instag_tags`` (labels) and ``mig_quality``."""

    method = "mig"
    summary = ("MIG: information gain on a label graph of INSTAG tags, weighted by DEITA quality (scores INSTAG "
               "and DEITA, reusing what the store holds).")  # fmt: skip
    columns = ("mig_quality", "instag_tags", "deita", "instag")
    column_kinds: ClassVar[dict[str, str]] = {"instag_tags": "list"}
    options = (
        Option("model", str | None, None, "The INSTAG tagger: with --base-url, the name the endpoint serves (real use "
               "needs an endpoint tagger: a 135M model rarely writes valid JSON); without, a local causal LM "
               "(default smollm2-135m-instruct)."),
        Option("rater", str | None, None, "The DEITA rater, a causal LM run here (default: --model when it is local, "
               "else smollm2-135m-instruct)."),
        BASE_URL, API_KEY_ENV, CONCURRENCY, TIMEOUT, RETRIES,
        Option("max_new_tokens", int, MAX_NEW_TOKENS, "Longest tag list the tagger may write, in tokens.", at_least=1),
        Option("min_tag_count", int, MIN_TAG_COUNT, "INSTAG's frequency filter: tags seen fewer times over the pool "
               "are dropped (lower it for a small pool).", at_least=0),
        Option("semantic", bool, True, "INSTAG's semantic merge of tags (all-MiniLM-L6-v2).",
               flag="--semantic/--no-semantic"),
        DTYPE,
    )  # fmt: skip
    needs_response = True

    def __init__(self, instag: InsTag, deita: DEITA) -> None:
        self.instag = instag
        self.deita = deita

    @classmethod
    def build(cls, pool: Any, executor: Any, *, model: str | None, rater: str | None, base_url: str | None,
              api_key_env: str, concurrency: int, timeout: float, retries: int, max_new_tokens: int,
              min_tag_count: int, semantic: bool, dtype: str | None) -> MIGScores:  # fmt: skip
        where = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency, "timeout": timeout,
                 "retries": retries, "dtype": dtype}  # fmt: skip
        instag = InsTag.build(pool, executor, model=model, max_new_tokens=max_new_tokens, min_tag_count=min_tag_count,
                              semantic=semantic, chunk_size=None, **where)  # fmt: skip
        rater_name = rater or (model if base_url is None else None) or "smollm2-135m-instruct"
        try:
            deita = DEITA.build(pool, executor, model=rater_name, batch_tokens=4096, chunk_size=None, dtype=dtype)
        except ConfigError as err:  # the rater's own flag, where the user gave --rater
            raise ConfigError("rater", err.message) if rater and err.option == "model" else err from None
        return cls(instag, deita)

    def stages(self) -> Sequence[Scorer]:
        return (self.instag, self.deita)

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        tags = self.instag.combine(sample, results[0])
        rated = self.deita.combine(sample, results[1])
        return {**rated, **tags, "mig_quality": mig_quality(rated),
                "skip_reason": tags["skip_reason"] or rated["skip_reason"]}  # fmt: skip

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        self.instag.finish(pool, rows, context)
        for row in rows:
            if row.get("mig_quality") is not None and row.get("instag_tags") is None and not row.get("skip_reason"):
                row["skip_reason"] = "no_instag_tags"

    def table_config(self) -> dict[str, Any]:
        return {"method": "mig", "instag": self.instag.table_config(), "deita": self.deita.cache_config()}

    def table_columns(self) -> tuple[str, ...]:
        return ("mig_quality", "instag_tags", "instag", "deita", "deita_complexity", "deita_quality")
