"""BM25 retrieval against a query set (Yin & Rush, ICLR 2025, "Compute-Constrained Data Selection"): the pool
samples whose prompt shares the most weighted words with the target task's examples (METHODS.md §18).

Followed from ``ccds/training/data_selection/bm25/matching_bm25.py``: each sample's first prompt is indexed
(lower case, newlines to spaces, ASCII punctuation deleted, split on spaces; empty tokens dropped here), scored
with ``rank_bm25.BM25Okapi``'s formula (``k1 = 1.5``, ``b = 0.75``, a negative idf floored to ``epsilon`` times the
mean idf), and the scores of the sub-task queries averaged. Here the document-term matrix is a
``scipy.sparse`` matrix built by scikit-learn's ``CountVectorizer`` and a block of queries is one sparse product:
rank-bm25's ``get_scores`` loops over every document per query token, hours on a million documents.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tunesift.data.queries import QueryTask, read_queries
from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.scorers.base import PoolContext, Scorer
from tunesift.scorers.targeted import QUERY, Targeted

AGGREGATES = ("mean", "max")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
QUERY_BLOCK = 64  # queries scored at once: memory is pool x QUERY_BLOCK floats


def tokenize(text: str) -> list[str]:
    """The reference's tokens: lower case, newlines as spaces, ASCII punctuation deleted, split on a space;
    the empty tokens that double spaces leave are dropped (a deviation: they would match each other)."""
    return [t for t in text.lower().replace("\n", " ").translate(_PUNCTUATION).split(" ") if t]


def prompt(sample: Sample) -> str:
    """What is indexed: the sample's first prompt, its input on the next line where there is one."""
    first = sample.turns[0]
    return f"{first.user}\n{first.input}" if first.input else first.user


def task_queries(task: QueryTask) -> list[str]:
    """A task file's query documents: records that share a ``task`` field form one query, the others one each;
    a query's text is its records' prompt and answer, joined by newlines (in file order)."""
    groups: dict[Any, list[str]] = {}
    for sample in task.samples:
        label = sample.record.get("task") if isinstance(sample.record, dict) else None
        key = ("task", label) if isinstance(label, str) and label else ("record", sample.index)
        groups.setdefault(key, []).append(f"{prompt(sample)}\n{sample.output}")
    return ["\n".join(texts) for texts in groups.values()]


class BM25Index:
    """BM25Okapi over a corpus: ``scores(queries)`` is ``(documents, queries)``, each column what
    ``rank_bm25.BM25Okapi(corpus).get_scores(query)`` gives (a query token repeated counts again)."""

    def __init__(self, documents: Iterable[str], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self.vectorizer = CountVectorizer(analyzer=tokenize)
        counts = self.vectorizer.fit_transform(documents).tocsr().astype(np.float64)
        n_docs = counts.shape[0]
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        average = lengths.mean() if n_docs else 0.0
        doc_freq = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = np.log((n_docs - doc_freq + 0.5) / (doc_freq + 0.5))
        idf = np.where(idf < 0, epsilon * idf.mean(), idf) if len(idf) else idf
        # each stored count tf of word w in document d becomes idf(w) tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
        norm = k1 * (1 - b + b * lengths / average) if average > 0 else np.full(n_docs, k1 * (1 - b))
        tf = counts.data
        row_norm = np.repeat(norm, np.diff(counts.indptr))
        counts.data = idf[counts.indices] * tf * (k1 + 1) / (tf + row_norm)
        self.weights = counts
        self.idf = idf

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """BM25 of every document for each query, ``(documents, len(queries))`` float64."""
        if self.weights.shape[1] == 0:
            return np.zeros((self.weights.shape[0], len(queries)))
        query_counts = self.vectorizer.transform(list(queries)).astype(np.float64)
        return np.asarray((self.weights @ query_counts.T).todense())


class BM25(Targeted):
    """BM25 of each sample's prompt against the query set: the mean (or max) over the query documents."""

    method = "bm25"
    summary = "BM25 (targeted): lexical retrieval of each prompt against a query set of the target task."
    columns = ("bm25", "bm25_by_query")
    options = (
        QUERY,
        Option("aggregate", str, "mean", "mean (the reference: ranks like one concatenated query) or max over the "
               "query documents."),
        Option("k1", float, 1.5, "BM25 term-frequency saturation (rank-bm25's default)."),
        Option("b", float, 0.75, "BM25 length normalisation (rank-bm25's default)."),
        Option("epsilon", float, 0.25, "Floor of a negative idf, as a share of the mean idf (rank-bm25's default).",
               at_least=0),
    )  # fmt: skip

    def __init__(self, tasks: Sequence[QueryTask], aggregate: str = "mean", k1: float = 1.5, b: float = 0.75,
                 epsilon: float = 0.25) -> None:  # fmt: skip
        super().__init__(tasks)
        self.aggregate = aggregate
        self.k1, self.b, self.epsilon = k1, b, epsilon

    @classmethod
    def build(cls, pool: Any, executor: Any, *, query: Any, aggregate: str, k1: float, b: float,
              epsilon: float) -> BM25:  # fmt: skip
        if aggregate not in AGGREGATES:
            raise ConfigError("aggregate", f"choose one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError("k1" if k1 < 0 else "b", "needs k1 >= 0 and b in [0, 1]")
        return cls(read_queries(query), aggregate, k1, b, epsilon)

    def stages(self) -> Sequence[Scorer]:
        return ()  # no model: everything happens over the whole pool in finish()

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        return self.empty_row()

    def table_config(self) -> dict[str, Any]:
        return {"scorer": "bm25", "method": "bm25", "aggregate": self.aggregate, "k1": self.k1, "b": self.b,
                "epsilon": self.epsilon, "index": "first prompt", "query": self.query_record()}  # fmt: skip

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        positions = [s.index for s in pool if isinstance(s, Sample)]
        index = BM25Index((prompt(s) for s in pool if isinstance(s, Sample)), self.k1, self.b, self.epsilon)
        per_task = [task_queries(task) for task in self.tasks]
        n_queries = sum(len(q) for q in per_task)
        by_task = np.empty((len(positions), len(self.tasks)))
        overall = np.zeros(len(positions)) if self.aggregate == "mean" else np.full(len(positions), -np.inf)
        for t, queries in enumerate(per_task):
            total = np.zeros(len(positions)) if self.aggregate == "mean" else np.full(len(positions), -np.inf)
            for begin in range(0, len(queries), QUERY_BLOCK):
                block = index.scores(queries[begin : begin + QUERY_BLOCK])
                if self.aggregate == "mean":
                    total += block.sum(axis=1)
                else:
                    total = np.maximum(total, block.max(axis=1))
            by_task[:, t] = total / len(queries) if self.aggregate == "mean" else total
            overall = overall + total if self.aggregate == "mean" else np.maximum(overall, total)
        if self.aggregate == "mean":
            overall = overall / n_queries
        self.set_scores(rows, positions, by_task, overall)
        self.count_in_pool(rows)
