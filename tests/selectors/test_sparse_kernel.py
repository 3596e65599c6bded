"""QDIT and facility location on a sparse kernel (each point's nearest neighbours, lazy greedy): with every point as
everyone's neighbour it is the exact dense greedy pick for pick; with 32 it stays within 1 % of its objective; the
neighbours themselves against brute force, with faiss and without."""

from __future__ import annotations

import numpy as np
import pytest

from tunesift.selectors import neighbours as nb
from tunesift.selectors.facility_location import facility_location
from tunesift.selectors.neighbours import coverage_value, nearest, sparse_greedy
from tunesift.selectors.qdit import qdit_select, scaled_quality


def _clustered(n, d=24, clusters=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(clusters, size=n)] + 0.6 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(x, k, metric):
    out = []
    for i in range(len(x)):  # one row at a time, obvious code
        if metric == "ip":
            score = [float(np.dot(x[i], x[j])) for j in range(len(x))]
            out.append(sorted(range(len(x)), key=lambda j: (-score[j], j))[:k])
        else:
            score = [float(np.sum((x[i] - x[j]) ** 2)) for j in range(len(x))]
            out.append(sorted(range(len(x)), key=lambda j: (score[j], j))[:k])
    return out


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("with_faiss", [False, True])
def test_nearest_neighbours_are_the_brute_force_ones(metric, with_faiss, monkeypatch):
    if with_faiss:
        pytest.importorskip("faiss")
    else:
        monkeypatch.setattr(nb, "faiss_module", lambda: None)
    x = _clustered(150)
    ids, scores = nearest(x, 9, metric=metric, block=64)
    for i, expected in enumerate(_brute(x, 9, metric)):
        assert set(ids[i].tolist()) == set(expected), i
        assert ids[i][0] == i  # each point is its own nearest
    products = np.einsum("ij,ij->i", x[np.repeat(np.arange(150), 9)], x[ids.ravel()]).reshape(150, 9)
    want = products if metric == "ip" else 2.0 - 2.0 * products
    np.testing.assert_allclose(scores, want, atol=1e-4)


def test_sparse_greedy_with_every_neighbour_is_the_dense_greedy():
    x = _clustered(300)
    quality = np.random.default_rng(1).normal(size=300)
    n = len(x)
    for alpha in (0.0, 0.5, 0.9):
        dense = qdit_select(x, quality, 40, alpha=alpha)
        sparse = qdit_select(x, quality, 40, alpha=alpha, neighbours=n - 1)
        assert sparse == dense, alpha
    assert facility_location(x, 40, neighbours=n - 1) == facility_location(x, 40)


def test_the_lazy_greedy_is_the_plain_greedy_over_the_same_sparse_kernel():
    rng = np.random.default_rng(2)
    n, m = 120, 7
    ids = np.array([rng.choice(n, m, replace=False) for _ in range(n)])
    sims = rng.uniform(-0.2, 1.0, size=(n, m))
    bonus = rng.uniform(0, 0.3, size=n)
    kernel = np.zeros((n, n))
    for i in range(n):
        kernel[i, ids[i]] = np.maximum(sims[i], 0)
    picks, covered = [], np.zeros(n)
    for _ in range(25):  # the plain greedy: every gain recomputed from scratch each step
        gains = [np.maximum(kernel[:, j] - covered, 0).sum() + bonus[j] if j not in picks else -np.inf
                 for j in range(n)]  # fmt: skip
        j = int(np.argmax(gains))
        picks.append(j)
        covered = np.maximum(covered, kernel[:, j])
    assert sparse_greedy(ids, sims, 25, bonus=bonus) == picks


@pytest.mark.parametrize("method", ["qdit", "facility-location"])
def test_32_neighbours_keep_the_objective_within_one_percent(method):
    x = _clustered(3000, d=32, clusters=40, seed=3)
    n, k = len(x), 150
    if method == "qdit":
        quality = np.random.default_rng(4).normal(size=n)
        weight, bonus = 0.5 / n, 0.5 * scaled_quality(quality)
        dense = qdit_select(x, quality, k)
        sparse = qdit_select(x, quality, k, neighbours=32)

        def rows(r):
            return x[r] @ x.T
    else:
        weight, bonus = 1.0, None
        dense = facility_location(x, k)
        sparse = facility_location(x, k, neighbours=32)
        norms = np.einsum("ij,ij->i", x, x)

        def rows(r):
            return np.exp(-np.sqrt(np.maximum(norms[r, None] - 2 * x[r] @ x.T + norms[None, :], 0)) / x.shape[1])

    exact = coverage_value(rows, n, dense, weight=weight, bonus=bonus)
    approx = coverage_value(rows, n, sparse, weight=weight, bonus=bonus)
    assert approx >= 0.99 * exact and len(set(sparse)) == k


def test_large_pools_cluster_with_faiss_kmeans_and_find_the_same_clusters(monkeypatch):
    pytest.importorskip("faiss")
    from sklearn.metrics import adjusted_rand_score

    from tunesift.selectors import clusters

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(6, 16)) * 10
    truth = rng.integers(6, size=1200)
    x = (centres[truth] + rng.normal(size=(1200, 16))).astype(np.float32)
    monkeypatch.setattr(clusters, "FAISS_FROM", 1000)  # as if this pool were large
    labels = clusters.kmeans_labels(x, 6)
    assert adjusted_rand_score(truth, labels) == 1.0
    monkeypatch.setattr(clusters, "_faiss_kmeans", lambda *a: pytest.fail("faiss used below FAISS_FROM"))
    monkeypatch.setattr(clusters, "FAISS_FROM", 10_000)
    assert adjusted_rand_score(truth, clusters.kmeans_labels(x, 6)) == 1.0
