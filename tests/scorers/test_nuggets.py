"""Nuggets pinned to a one-sample reference (each anchor's full one-shot and zero-shot text through the model,
no cache, no batching), the demonstration's KV cache reused across anchors, anchors from a file or sampled,
and ``tunesift run nuggets``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, alpaca_records, make_llama
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.pools import read_pool
from tunesift.data.schemas import record_to_sample
from tunesift.errors import ConfigError
from tunesift.models.causal_lm import CausalLM
from tunesift.models.registry import ResolvedModel
from tunesift.scorers.nuggets import AnchoredLM, Nuggets, Task, load_anchors


def prompt(t: dict) -> str:
    """The reference's sp prompt (tasks/alpaca.py), fields stripped."""
    i, x = t["instruction"].strip(), t["input"].strip()
    return f"Instruction:\n{i}\nInput:\n{x}\nResponse:\n" if x else f"Instruction:\n{i}\nResponse:\n"


def anchor_logp(model, tok, anchor: dict, demo: str | None) -> float:
    """The authors' code path, one text at a time: the demonstration tokenised on its own with the tokenizer's
    special tokens (tokenize_demonstration), then the anchor's prompt and response as one text without them
    (tokenize), summed log-probability of the tokens from the prompt's token count on; no separator."""
    query = prompt(anchor)
    head = tok(demo).input_ids if demo is not None else []
    tokens = tok(query + anchor["output"].strip(), add_special_tokens=False).input_ids
    start = len(head) + len(tok(query, add_special_tokens=False).input_ids)
    ids = head + tokens
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return float(sum(logp[k - 1, ids[k]] for k in range(start, len(ids))))


def reference_golden(model, tok, candidate: dict, anchors: list[dict]) -> float:
    """Share of anchors with one-shot log p > zero-shot log p, over the anchors that are not the candidate."""
    demo = prompt(candidate) + candidate["output"].strip()

    def key(t):
        return (t["instruction"].strip(), t["input"].strip(), t["output"].strip())

    others = [a for a in anchors if key(a) != key(candidate)]
    wins = sum(anchor_logp(model, tok, a, demo) > anchor_logp(model, tok, a, None) for a in others)
    return wins / len(others)


def test_golden_scores_equal_the_one_sample_reference(tok_bos):
    model = make_llama(len(tok_bos), seed=5)
    lm = CausalLM(model=model, tokenizer=tok_bos)
    records = json.loads((SHARED_DATA / "instruct" / "alpaca_random_9k.json").read_text())[:14]
    anchors = records[8:14]
    scorer = Nuggets(ResolvedModel("tiny", lm.name, "t"), [Task(a["instruction"].strip(), a["input"].strip(),
                                                                  a["output"].strip()) for a in anchors])  # fmt: skip
    path_records = [*records[:8], anchors[0]]  # the last one is an anchor itself: scored on the other five
    samples = [record_to_sample(r, i, "alpaca") for i, r in enumerate(path_records)]
    zero = np.array([anchor_logp(model, tok_bos, a, None) for a in anchors])
    rows = scorer.compute([u for s in samples for u in scorer.units(s)], AnchoredLM(lm, zero))
    want = [reference_golden(model, tok_bos, record, anchors) for record in path_records]
    assert [r["nuggets"] for r in rows] == pytest.approx(want, abs=1e-12)
    assert len(set(want)) > 2  # the scores tell the samples apart
    assert [r["nuggets_anchors"] for r in rows] == [6] * 8 + [5]
    assert lm.stats["prefix_tokens_reused"] > 0  # each demonstration ran once per batch, its KV cache reused


def test_zero_shot_pass_and_api(tmp_path, tiny_model_dir, store_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(10)))
    table = api.score_nuggets(pool, model=str(tiny_model_dir), n_anchors=4, anchor_seed=2)
    tasks = load_anchors(read_pool(pool), None, 4, 2)
    assert len(tasks) == 4
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    anchors = [{"instruction": t.instruction, "input": t.input, "output": t.output} for t in tasks]
    for row, record in zip(table.rows, alpaca_records(10), strict=True):
        assert row["nuggets"] == pytest.approx(reference_golden(model, tok, record, anchors), abs=1e-12)
    assert sum(r["nuggets_anchors"] == 3 for r in table.rows) == 4  # the four anchors skip their own copy
    assert len({r["nuggets"] for r in table.rows}) > 1


def test_anchor_file_and_bad_anchors(tmp_path, tiny_model_dir, store_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(6)))
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text("\n".join(json.dumps(r) for r in alpaca_records(9)[6:]))
    assert [t.instruction for t in load_anchors(read_pool(pool), anchors)] == \
        [r["instruction"].strip() for r in alpaca_records(9)[6:]]  # fmt: skip
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ConfigError, match="anchors"):
        load_anchors(read_pool(pool), empty)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["score", "nuggets", str(pool), "--anchors", str(other), "--out",
                                      str(tmp_path / "s.jsonl"), "--model", str(tiny_model_dir)])  # fmt: skip
    assert result.exit_code == 2 and "anchors" in result.output


def test_an_anchor_file_with_an_invalid_record_uses_every_valid_one(tmp_path, capsys):
    """As the help says: every valid record (with a response) is an anchor; the others are counted."""
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(3)))
    good = alpaca_records(9)[6:]
    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps([good[0], {"instruction": 5}, good[1], {**good[2], "output": ""}]))
    tasks = load_anchors(read_pool(pool), anchors)
    assert [t.instruction for t in tasks] == [good[0]["instruction"].strip(), good[1]["instruction"].strip()]
    assert "2 of 4 records left out" in capsys.readouterr().err


def test_run_nuggets_takes_the_highest_golden_scores(tmp_path, tiny_model_dir, store_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(12)))
    out, scores = tmp_path / "sub.json", tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["run", "nuggets", str(pool), "--rate", "0.25", "--n-anchors", "5",
                                      "--model", str(tiny_model_dir), "--out", str(out), "--scores-out",
                                      str(scores)])  # fmt: skip
    assert result.exit_code == 0, result.output
    v = [json.loads(line)["nuggets"] for line in scores.read_text().splitlines()]
    chosen = json.loads((tmp_path / "sub.manifest.json").read_text())["selected_indices"]
    assert chosen == sorted(range(12), key=lambda i: (-v[i], i))[:3]


@pytest.mark.slow
@pytest.mark.ci
def test_smollm2_nuggets_matches_reference_on_2_records():
    from tunesift.models.registry import resolve_model

    lm = CausalLM.load("smollm2")
    records = alpaca_records(5)
    anchors = records[2:5]
    scorer = Nuggets(resolve_model("smollm2"), [Task(a["instruction"].strip(), a["input"].strip(),
                                                     a["output"].strip()) for a in anchors])  # fmt: skip
    zero = np.array([anchor_logp(lm.model, lm.tokenizer, a, None) for a in anchors])
    samples = [record_to_sample(r, i, "alpaca") for i, r in enumerate(records[:2])]
    rows = scorer.compute([u for s in samples for u in scorer.units(s)], AnchoredLM(lm, zero))
    for row, record in zip(rows, records[:2], strict=True):
        assert row["nuggets"] == pytest.approx(reference_golden(lm.model, lm.tokenizer, record, anchors), abs=1e-12)
