"""BM25 against a query set (METHODS.md §18): the worked example to 4 decimals, rank-bm25 as the oracle, the
epsilon floor, repeated query tokens, mean and max aggregation, and the method end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.scorers.bm25 import BM25Index, tokenize

rank_bm25 = pytest.importorskip("rank_bm25")

DOCS = ["Solve the equation 2x plus 3 equals 7.", "Write a poem about the sea.", "What is the capital of France?",
        "Translate the sentence into French.", "Name the capital city of Peru."]  # fmt: skip
ALGEBRA = "Solve for x: x plus 5 equals 9. Answer: 4"
GEOGRAPHY = "What is the capital of Italy? Answer: Rome"


def test_tokens_as_the_reference_makes_them_empty_ones_dropped():
    assert tokenize("2x + 3\nThe END.") == ["2x", "3", "the", "end"]


def test_worked_example_per_query_scores_and_ranking():
    index = BM25Index(DOCS)
    scores = index.scores([ALGEBRA, GEOGRAPHY])
    np.testing.assert_allclose(scores[:, 0], [2.9150, 0, 0, 0, 0], atol=5e-5)
    np.testing.assert_allclose(scores[:, 1], [0.1985, 0.2278, 3.1402, 0.2459, 0.9106], atol=5e-5)
    vocab = index.vectorizer.vocabulary_
    assert index.idf[vocab["the"]] == pytest.approx(0.2244, abs=5e-5)  # in every document: floored, not 0 or < 0
    assert index.idf[vocab["capital"]] == pytest.approx(0.3365, abs=5e-5)
    assert index.idf[vocab["poem"]] == pytest.approx(1.0986, abs=5e-5)
    mean = scores.mean(axis=1)
    assert sorted(range(5), key=lambda i: (-mean[i], i)) == [2, 0, 4, 3, 1]
    oracle = rank_bm25.BM25Okapi([tokenize(d) for d in DOCS])
    for q, column in ((ALGEBRA, 0), (GEOGRAPHY, 1)):
        np.testing.assert_allclose(scores[:, column], oracle.get_scores(tokenize(q)), atol=1e-9)


def test_a_repeated_query_token_counts_twice_and_mean_ranks_like_the_concatenation():
    index = BM25Index(DOCS)
    once, twice = index.scores(["capital", "capital capital"]).T
    np.testing.assert_allclose(twice, 2 * once)
    both = index.scores([ALGEBRA, GEOGRAPHY, ALGEBRA + " " + GEOGRAPHY])
    np.testing.assert_allclose(both[:, :2].mean(axis=1) * 2, both[:, 2], atol=1e-9)


def test_the_sparse_index_equals_rank_bm25_on_300_random_texts():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)] + ["the", "a", "of"]
    docs = [" ".join(rng.choice(words, size=int(rng.integers(1, 25)))) for _ in range(300)]
    queries = [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) + " unseen" for _ in range(7)]
    oracle = rank_bm25.BM25Okapi([tokenize(d) for d in docs])
    got = BM25Index(docs).scores(queries)
    for column, q in enumerate(queries):
        np.testing.assert_allclose(got[:, column], oracle.get_scores(tokenize(q)), atol=1e-9)


def _write(path, records):
    path.write_text(json.dumps(records))
    return path


def test_the_method_mean_max_tasks_and_the_subset(tmp_path, store_dir):
    pool = _write(tmp_path / "pool.json", [{"instruction": d, "input": "", "output": "ok"} for d in DOCS])
    query = _write(tmp_path / "q.json", [
        {"instruction": "Solve for x: x plus 5 equals 9.", "output": "Answer: 4"},
        {"instruction": "What is the capital of Italy?", "output": "Answer: Rome"},
    ])  # fmt: skip
    index = BM25Index(DOCS)
    want = index.scores([ALGEBRA.replace(" Answer", "\nAnswer"), GEOGRAPHY.replace(" Answer", "\nAnswer")])
    table = api.score("bm25", pool, query=query)
    assert [r["bm25"] for r in table.rows] == pytest.approx(want.mean(axis=1).tolist())
    high = api.score("bm25", pool, query=query, aggregate="max")
    assert [r["bm25"] for r in high.rows] == pytest.approx(want.max(axis=1).tolist())
    # records sharing a task field form one query: one document, its texts joined by newlines
    grouped = _write(tmp_path / "g.json", [{**r, "task": "mixed"} for r in json.loads(query.read_text())])
    one = api.score("bm25", pool, query=grouped)
    joined = index.scores(["Solve for x: x plus 5 equals 9.\nAnswer: 4\nWhat is the capital of Italy?\nAnswer: Rome"])
    assert [r["bm25"] for r in one.rows] == pytest.approx(joined[:, 0].tolist())
    # two files: two tasks, round-robin in the subset
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "bm25", str(pool), "--query", str(query), "--query", str(grouped),
                                      "--count", "3", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    assert manifest["selected_indices"] == [2, 0, 4] and manifest["scorer_config"]["aggregate"] == "mean"
    first = json.loads(out.read_text())[0]
    assert first["bm25_by_query"] == pytest.approx([want[2].mean(), joined[2, 0]])


def test_bad_aggregate_is_one_line_exit_2(tmp_path, store_dir):
    pool = _write(tmp_path / "pool.json", alpaca_records(3))
    q = _write(tmp_path / "q.json", alpaca_records(1))
    result = CliRunner().invoke(app, ["score", "bm25", str(pool), "--query", str(q), "--aggregate", "median",
                                      "--out", str(tmp_path / "s.jsonl")])  # fmt: skip
    assert result.exit_code == 2 and "option 'aggregate'" in result.output and not (tmp_path / "s.jsonl").exists()
