"""RDS+ (METHODS.md §13): the Tulu text, position-weighted pooling over real tokens only, the max cosine over the
query set, round-robin across tasks, the pool's vectors reused by a new query set, and the query set's errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.pools import read_pool
from tunesift.models.causal_lm import CausalLM, weighted_mean
from tunesift.scorers.rds import RDSIndex, tulu_text
from tunesift.scorers.targeted import max_similarity
from tunesift.selectors.round_robin import round_robin


def _write(path, records):
    path.write_text(json.dumps(records))
    return path


# ----- METHODS.md §13 worked examples -----


def test_worked_example_1_pooling_normalisation_and_max_cosine():
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [7.0, -3.0], [5.0, 5.0]]])  # two padding rows at the end
    pooled = weighted_mean(h, [3])[0].numpy()
    np.testing.assert_allclose(pooled, [4 / 6, 5 / 6], atol=1e-7)
    unit = pooled / np.linalg.norm(pooled)
    np.testing.assert_allclose(unit, [0.624695, 0.780869], atol=1e-6)
    queries = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    best = max_similarity(unit[None, :].astype(np.float32), queries, [2])
    assert best[0, 0] == pytest.approx(0.999512, abs=1e-6)  # the max, not the mean 0.812104
    # the authors' weights over the padded row (1/15 ... 5/15) would give another vector
    assert not np.allclose(weighted_mean(h, [5])[0].numpy(), pooled)


def test_worked_example_2_round_robin_across_two_tasks():
    scores = np.array([[0.9, 0.95], [0.8, 0.2], [0.1, 0.7], [0.8, 0.6]])
    assert round_robin(scores, 2) == [0, 1]  # B pops 0 (taken): its turn is spent, A takes 1 next round
    assert round_robin(scores, 3) == [0, 1, 2]
    assert sorted(round_robin(scores.max(axis=1), 3)) == [0, 1, 3]  # ranking by the max instead
    assert round_robin(scores, 10) == [0, 1, 2, 3]


def _round_robin_reference(scores, k):
    """Hand-written from the authors' agg.py: per task a stable sort, then each task pops its head in turn."""
    lists = [sorted(range(len(scores)), key=lambda i, t=t: -scores[i][t]) for t in range(len(scores[0]))]
    taken = []
    while len(taken) < k and any(lists):
        for order in lists:
            if len(taken) >= k:
                break
            if order:
                i = order.pop(0)
                if i not in taken:
                    taken.append(i)
    return taken


def test_round_robin_equals_a_hand_written_reference_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        scores = rng.integers(0, 4, size=(int(rng.integers(1, 12)), int(rng.integers(1, 4)))).astype(float)
        k = int(rng.integers(1, len(scores) + 2))
        assert round_robin(scores, k) == _round_robin_reference(scores.tolist(), k)


def test_max_similarity_blockwise_equals_one_row_at_a_time(monkeypatch):
    import tunesift.scorers.targeted as targeted

    monkeypatch.setattr(targeted, "BLOCK_ROWS", 7)
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(50, 16)).astype(np.float32)
    queries = rng.normal(size=(9, 16)).astype(np.float32)
    rows = rng.permutation(50)[:30]
    got = max_similarity(pool, queries, [2, 3, 4], rows)
    for r, i in enumerate(rows):
        sims = [float(pool[i] @ q) for q in queries]
        assert got[r].tolist() == pytest.approx([max(sims[:2]), max(sims[2:5]), max(sims[5:])], abs=1e-5)


# ----- the text -----


def test_tulu_text_of_records_and_conversations(tmp_path):
    path = _write(tmp_path / "p.json", [
        {"instruction": " Add the numbers. ", "input": "2, 3", "output": "5\n"},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"},
                      {"role": "assistant", "content": ""}]},
    ])  # fmt: skip
    first, second = read_pool(path).samples
    # each message stripped at its ends only: the space before the input's blank line stays, as in the authors' code
    assert tulu_text(first, "</s>") == "<|user|>\nAdd the numbers. \n\n2, 3\n<|assistant|>\n5</s>"
    assert tulu_text(second, "</s>") == ("<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello</s>\n"
                                         "<|user|>\nBye\n<|assistant|>\n</s>")  # fmt: skip
    assert tulu_text(first, None).endswith("<|assistant|>\n5")


# ----- an independent one-sample-at-a-time reference -----


def reference_rds(model, tok, records, queries, max_length=2048):
    """The authors' cos.py written out again: batch size 1, hidden_states[-1], weights t/sum, normalise, max cos."""

    def text(rec):
        user = (rec["instruction"] + "\n\n" + rec["input"] if rec.get("input") else rec["instruction"]).strip()
        return f"<|user|>\n{user}\n<|assistant|>\n{rec['output'].strip()}{tok.eos_token or ''}\n".strip()

    def embed(rec):
        ids = tok(text(rec), max_length=max_length, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            h = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0].double()
        n = h.shape[0]
        w = torch.arange(1, n + 1, dtype=torch.float64) / (n * (n + 1) / 2)
        e = (w[:, None] * h).sum(0)
        return e / e.norm()

    q = torch.stack([embed(r) for r in queries])
    return [float((q @ embed(r)).max()) for r in records]


def test_tiny_model_matches_the_reference_and_batching_changes_nothing(tmp_path, tiny_model_dir, tok_nobos, store_dir):
    from transformers import AutoModelForCausalLM

    records = alpaca_records(12)
    pool = _write(tmp_path / "pool.json", records)
    query = _write(tmp_path / "q.json", alpaca_records(20)[15:18])
    together = api.score("rds", pool, query=[query], model=str(tiny_model_dir), batch_tokens=4096)
    alone = api.score("rds", pool, query=[query], model=str(tiny_model_dir), batch_tokens=1, store_dir=tmp_path / "b1")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    want = reference_rds(model, tok_nobos, records, alpaca_records(20)[15:18])
    for row, w, b in zip(together.rows, want, alone.rows, strict=True):
        assert row["rds"] == pytest.approx(w, abs=1e-5) and b["rds"] == pytest.approx(row["rds"], abs=1e-6)
    assert together.config["query"][0]["n"] == 3 and together.config["pooling"] == "weighted_mean"


def test_truncation_cuts_on_the_right_as_the_tokenizer_does(tmp_path, tiny_model_dir, tok_nobos, store_dir):
    from transformers import AutoModelForCausalLM

    records = alpaca_records(4)
    pool = _write(tmp_path / "pool.json", records)
    query = _write(tmp_path / "q.json", records[:1])
    table = api.score("rds", pool, query=query, model=str(tiny_model_dir), max_length=9)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    want = reference_rds(model, tok_nobos, records, records[:1], max_length=9)
    assert [r["rds"] for r in table.rows] == pytest.approx(want, abs=1e-5)
    assert table.rows[0]["rds"] == pytest.approx(1.0, abs=1e-6)  # a query that is a pool sample


@pytest.mark.slow
@pytest.mark.ci
def test_smollm2_matches_the_authors_computation_on_alpaca_records(tmp_path, store_dir):
    records = alpaca_records(8)
    queries = [{"instruction": "Add the numbers.", "input": "2, 3", "output": "5"}, *alpaca_records(30)[25:28]]
    lm = CausalLM.load("smollm2", device="cpu", dtype="float32")
    text = tulu_text(read_pool(_write(tmp_path / "one.json", queries[:1])).samples[0], lm.tokenizer.eos_token)
    ids = lm.encode(text)
    assert text == "<|user|>\nAdd the numbers.\n\n2, 3\n<|assistant|>\n5<|im_end|>" and len(ids) == 26 and ids[-1] == 2
    table = api.score("rds", _write(tmp_path / "pool.json", records), query=_write(tmp_path / "q.json", queries),
                      backend=lm)  # fmt: skip
    want = reference_rds(lm.model, lm.tokenizer, records, queries)
    assert [r["rds"] for r in table.rows] == pytest.approx(want, abs=1e-5)


# ----- the index is reused -----


def test_a_second_query_set_is_served_from_the_pools_cached_vectors(tmp_path, tiny_model_dir, store_dir, monkeypatch):
    pool = _write(tmp_path / "pool.json", alpaca_records(10))
    first = _write(tmp_path / "a.json", alpaca_records(14)[10:12])
    second = _write(tmp_path / "b.json", alpaca_records(20)[16:19])
    computed: list[str] = []
    original = RDSIndex.compute

    def counting(self, units, backend, on_progress=None):
        computed.extend(u.key for u in units)
        return original(self, units, backend, on_progress)

    monkeypatch.setattr(RDSIndex, "compute", counting)
    api.score("rds", pool, query=first, model=str(tiny_model_dir))
    assert len(computed) == 12
    computed.clear()
    table = api.score("rds", pool, query=second, model=str(tiny_model_dir))
    query_ids = {s.content_id for s in read_pool(second).samples}
    assert set(computed) == query_ids  # no forward pass over the pool: only the new query's three
    assert all(isinstance(r["rds"], float) for r in table.rows)
    store = next(store_dir.glob("rds-*.f32"))
    assert store.stat().st_size == 15 * 64 * 4  # 15 samples x the tiny model's 64 floats, binary


def test_several_tasks_round_robin_in_the_subset_and_the_manifest_counts_pool_queries(tmp_path, tiny_model_dir,
                                                                                       store_dir):  # fmt: skip
    records = alpaca_records(16)
    pool = _write(tmp_path / "pool.json", records)
    a = _write(tmp_path / "math.json", records[:2])
    b = _write(tmp_path / "chat.json", alpaca_records(22)[18:21])
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "rds", str(pool), "--query", str(a), "--query", str(b), "--count", "5",
                                      "--model", str(tiny_model_dir), "--out", str(out),
                                      "--scores-out", str(tmp_path / "s.jsonl")])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    by_task = np.array([r["rds_by_query"] for r in rows])
    assert [r["rds"] for r in rows] == pytest.approx(by_task.max(axis=1).tolist())
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    assert manifest["selected_indices"] == round_robin(by_task, 5)
    assert manifest["selected_indices"][0] in (0, 1)  # the first task's own examples are in the pool: cosine 1
    assert [q["in_pool"] for q in manifest["scorer_config"]["query"]] == [2, 0]
    assert [q["task"] for q in manifest["scorer_config"]["query"]] == ["math", "chat"]
    assert [r["rds"] for r in json.loads(out.read_text())] == [rows[i]["rds"] for i in manifest["selected_indices"]]


# ----- bad input: one line naming --query and the file, exit 2, nothing written -----


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "q.json").write_text("[]") and [d / "q.json"], "q.json: "),
        (lambda d: _write(d / "q.json", [{"instruction": 5, "output": "x"}]) and [d / "q.json"], "record 0"),
        (lambda d: (d / "q.json").write_text("not json at all") and [d / "q.json"], "q.json"),
        (lambda d: [d / "missing.json"], "missing.json"),
        (lambda d: _write(d / "q.json", alpaca_records(1)) and [d / "q.json", d / "q.json"], "given twice"),
    ],
)
def test_bad_query_sets_are_one_line_exit_2(tmp_path, tiny_model_dir, store_dir, make, message):
    pool = _write(tmp_path / "pool.json", alpaca_records(4))
    flags = [x for q in make(tmp_path) for x in ("--query", str(q))]
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "rds", str(pool), *flags, "--count", "2", "--model", str(tiny_model_dir),
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "option 'query'" in line and message in line and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not store_dir.exists()


def test_query_on_a_method_without_one_and_rds_without_a_query_or_with_a_server(tmp_path, tiny_model_dir, store_dir):
    pool = _write(tmp_path / "pool.json", alpaca_records(4))
    q = _write(tmp_path / "q.json", alpaca_records(1))
    runner = CliRunner()
    no = runner.invoke(app, ["score", "ifd", str(pool), "--query", str(q), "--out", str(tmp_path / "s.jsonl")])
    assert no.exit_code == 2 and "--query" in no.output
    missing = runner.invoke(app, ["score", "rds", str(pool), "--model", str(tiny_model_dir),
                                  "--out", str(tmp_path / "s.jsonl")])  # fmt: skip
    assert missing.exit_code == 2 and "--query FILE" in missing.output
    served = runner.invoke(app, ["score", "rds", str(pool), "--query", str(q), "--base-url", "http://localhost:9/v1",
                                 "--out", str(tmp_path / "s.jsonl")])  # fmt: skip
    assert served.exit_code == 2 and "hidden states" in served.output and "base-url" in served.output
    assert not (tmp_path / "s.jsonl").exists()


def test_a_non_finite_representation_is_null_with_its_reason():
    from tunesift.scorers.rds import pool_normalised

    vectors, reasons = pool_normalised(np.array([[3.0, 4.0], [np.nan, 1.0], [0.0, 0.0]], dtype=np.float32))
    assert reasons == [None, "non_finite_hidden_state", "zero_norm_representation"]
    assert vectors[0].tolist() == pytest.approx([0.6, 0.8]) and math.isclose(float(np.linalg.norm(vectors[0])), 1.0)
