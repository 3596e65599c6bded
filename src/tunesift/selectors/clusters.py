"""Cluster-based selectors: Cherry's pre-experienced sampling (METHODS.md §1) and per-cluster top-k.

Both cluster with scikit-learn's k-means (the authors' own call: ``KMeans(n_clusters, random_state=0)``)
and return positions into the embedding matrix, deterministic given ``random_state``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.selectors.base import SEED, Candidates, Selector


def kmeans_labels(x: np.ndarray, n_clusters: int = 100, *, random_state: int = 0) -> np.ndarray:
    """Cluster label of every row (k-means, scikit-learn's defaults otherwise); fewer rows than clusters
    gives one cluster per row."""
    from sklearn.cluster import KMeans

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ConfigError("embeddings", f"expected a non-empty (n, d) matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ConfigError("embeddings", "holds NaN or infinite values")
    if n_clusters < 1:
        raise ConfigError("clusters", f"must be a positive number, got {n_clusters}")
    n_clusters = min(n_clusters, x.shape[0])
    if x.shape[0] >= FAISS_FROM and n_clusters > 1:
        labels = _faiss_kmeans(x, n_clusters, random_state)
        if labels is not None:
            return labels
    return KMeans(n_clusters=n_clusters, random_state=random_state).fit(x).labels_.astype(np.int64)


#: Rows from which k-means runs on faiss where it is installed (``tunesift[scale]``): scikit-learn's Lloyd on a
#: million rows and a thousand clusters takes the better part of an hour here, faiss' a couple of minutes.
FAISS_FROM = 200_000


def _faiss_kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    """k-means++ seeds, then faiss' k-means (20 iterations, centres trained on at most 256 rows each), every row
    assigned to its nearest centre; None where faiss is not installed."""
    from sklearn.cluster import kmeans_plusplus

    from tunesift.selectors.neighbours import faiss_module

    faiss = faiss_module()
    if faiss is None:
        return None

    x = np.ascontiguousarray(x, dtype=np.float32)
    # k-means++ seeds (scikit-learn's, as its KMeans starts) on a sample, then faiss' Lloyd iterations
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.choice(len(x), min(len(x), 8 * k), replace=False))]
    seeds, _ = kmeans_plusplus(sample, k, random_state=seed)
    kmeans = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, max_points_per_centroid=256, verbose=False)
    kmeans.train(x, init_centroids=np.ascontiguousarray(seeds, dtype=np.float32))
    _, labels = kmeans.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


def middle_band_sample(
    labels: Sequence[int], perplexity: Sequence[float], per_cluster: int = 10, low: float = 25, high: float = 75
) -> list[int]:
    """Cherry's pre-experienced sample: per cluster (in label order), the members whose perplexity lies
    within its ``low``-``high`` percentile band (inclusive), in dataset order, then every
    ``floor(count / per_cluster)``-th of them, at most ``per_cluster``. A cluster with fewer than
    ``per_cluster`` members, or a band that small, is taken whole.
    """
    labels = np.asarray(labels)
    ppl = np.asarray(perplexity, dtype=np.float64)
    if len(labels) != len(ppl):
        raise ConfigError("perplexity", f"{len(ppl)} perplexities for {len(labels)} cluster labels")
    if not np.all(np.isfinite(ppl)):
        raise ConfigError("perplexity", "holds NaN or infinite values: drop those samples first")
    if not 0 <= low <= high <= 100:
        raise ConfigError("band", f"need 0 <= low <= high <= 100, got {low}, {high}")
    chosen: list[int] = []
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        if len(members) < per_cluster:
            chosen.extend(int(i) for i in members)
            continue
        values = ppl[members]
        lower, upper = np.percentile(values, low), np.percentile(values, high)
        band = members[(values >= lower) & (values <= upper)]
        if len(band) < per_cluster:
            chosen.extend(int(i) for i in band)
        else:
            chosen.extend(int(i) for i in band[:: len(band) // per_cluster][:per_cluster])
    return chosen


def cluster_top_k(labels: Sequence[int], scores: Sequence[float | None], k: int) -> list[int]:
    """The ``k`` best-scored members of every cluster (highest first, ties by position), clusters in label
    order; unscored members are never taken."""
    if k < 1:
        raise ConfigError("per-cluster", f"must be a positive number, got {k}")
    labels = np.asarray(labels)
    if len(labels) != len(scores):
        raise ConfigError("scores", f"{len(scores)} scores for {len(labels)} cluster labels")
    chosen: list[int] = []
    for cluster in np.unique(labels):
        members = [int(i) for i in np.flatnonzero(labels == cluster)]
        scored = [i for i in members if scores[i] is not None and np.isfinite(scores[i])]
        chosen.extend(sorted(scored, key=lambda i: (-scores[i], i))[:k])
    return chosen


class ClusterTop(Selector):
    """k-means on the candidates' embeddings, then the best-scored samples of each cluster."""

    name = "cluster-top"
    options = (
        Option("by", str | None, None, "The score column ranked by (default: the scorer's own)."),
        Option("clusters", int, 100, "k-means clusters on the embeddings."),
        Option("per_cluster", int | None, None, "Samples taken per cluster (default: budget / clusters).", at_least=1),
        SEED,
    )
    embeds = True

    def check(self, n: int) -> None:
        clusters, per_cluster = self.params["clusters"], self.params["per_cluster"]
        if not 1 <= clusters <= n:
            raise ConfigError("clusters", f"must be between 1 and the number of records to cluster ({n}), got "
                              f"{clusters}")  # fmt: skip
        if per_cluster is not None and per_cluster < 1:
            raise ConfigError("per-cluster", f"must be at least 1, got {per_cluster}")

    def select(self, candidates: Candidates, size: int) -> list[int]:
        by = self.params["by"] or candidates.score_field
        idx = candidates.indices
        labels = kmeans_labels(candidates.vectors(), self.params["clusters"], random_state=self.params["random_state"])
        n_clusters = len(set(labels.tolist()))
        per_cluster = self.params["per_cluster"] or max(1, math.ceil(size / n_clusters))
        picks = cluster_top_k(labels, [candidates.value(i, by) for i in idx], per_cluster)
        return sorted(picks, key=lambda p: (-candidates.value(idx[p], by), idx[p]))[:size]
