"""Embed (the embedding-retrieval baseline of Ivison et al. 2025 and Yin & Rush 2025): each pool sample's highest
cosine to a query set of the target task, on all-MiniLM-L6-v2 sentence embeddings (docs/methods.md §20).

The pool's vectors are the ones the diversity selectors use (the text ``instruction\\ninput\\noutput``), kept
binary in the store; a query example is embedded the same way.
"""

from __future__ import annotations

from typing import Any

from tunesift.data.queries import read_queries
from tunesift.options import CHUNK_SIZE
from tunesift.scorers.embedding import MiniLMEmbedding
from tunesift.scorers.targeted import QUERY, VectorTargeted


class Embed(VectorTargeted):
    """The best cosine between a sample's MiniLM embedding and the query examples'."""

    method = "embed"
    summary = "Embed (targeted): highest all-MiniLM-L6-v2 cosine to a query set of the target task."
    columns = ("embed", "embed_by_query")
    options = (QUERY, CHUNK_SIZE)
    vector_name = "embedding"

    def __init__(self, tasks: Any, index: MiniLMEmbedding) -> None:
        super().__init__(tasks)
        self.index = index

    @classmethod
    def build(cls, pool: Any, executor: Any, *, query: Any, chunk_size: int | None) -> Embed:
        return cls(read_queries(query), MiniLMEmbedding(chunk_size=chunk_size))
