"""DEITA (METHODS.md §6): the worked examples, the prompts byte for byte, and the scorer against a reference
written here one text at a time (full logits of the whole prompt, the six digit columns, softmax, expectation),
on real Alpaca records and LIMA's multi-turn conversations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, alpaca_records, make_llama
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.pools import read_pool
from tunesift.errors import ConfigError
from tunesift.models.causal_lm import CausalLM
from tunesift.models.registry import ResolvedModel
from tunesift.scorers.deita import DEITA, digit_ids, evol, expected_score

# METHODS.md §6, copied here by hand: the prompts the reference code sends.
COMPLEXITY = ("You are a helpful assistant. Please identify the complexity score of the following user query. \n"
              "##Query: {q}  \n##Complexity: ")  # fmt: skip
QUALITY = ("You are a helpful assistant. Please identify the quality score of the Response corresponding to the "
           "Question. \n #Question#:\n{q}\n#Response#:\n{a} \n##Quality: ")  # fmt: skip


def _softmax(logits):
    e = np.exp(np.asarray(logits, dtype=np.float64) - max(logits))
    return e / e.sum()


def test_worked_examples():
    assert expected_score(_softmax([1, 2, 3, 4, 5, 6])) == pytest.approx(5.4329, abs=5e-5)
    assert expected_score(_softmax([0, 0, 0, 0, 0, math.log(3)])) == pytest.approx(4.125)
    assert evol([2.0, 3.0], [4.0, 5.0]) == 23.0


@torch.no_grad()
def reference_score(model, tok, text):
    """One text: full logits of the prompt, the next-token row at the six bare digits, softmax, expectation."""
    ids = tok(text)["input_ids"]
    digits = [tok(d, add_special_tokens=False)["input_ids"][0] for d in "123456"]
    row = model(torch.tensor([ids])).logits[0, -1].double()
    p = torch.softmax(row[digits], dim=-1)
    return float(sum((d + 1) * p[d] for d in range(6)))


def reference_sample(model, tok, turns):
    """EVOL of (query, reply) turns, each turn on its own."""
    c = [reference_score(model, tok, COMPLEXITY.format(q=q)) for q, _ in turns]
    q = [reference_score(model, tok, QUALITY.format(q=u, a=a)) for u, a in turns]
    return sum(x * y for x, y in zip(c, q, strict=True)), sum(c), sum(q)


def test_scorer_equals_the_one_text_reference_on_real_records(tok_bos):
    model = make_llama(len(tok_bos), seed=3)
    lm = CausalLM(model=model, tokenizer=tok_bos)
    scorer = DEITA(ResolvedModel("tiny", lm.name, "t"), batch_tokens=1024)
    alpaca = read_pool(SHARED_DATA / "instruct" / "alpaca_random_9k.json").samples[:12]
    lima = [s for s in read_pool(SHARED_DATA / "instruct" / "lima_train.json").samples if s.is_conversation][:4]
    for sample in [*alpaca, *lima]:
        units = scorer.units(sample)
        row = scorer.combine(sample, scorer.compute(units, lm))
        turns = [(f"{t.user}\n{t.input}" if t.input else t.user, t.assistant) for t in sample.turns]
        want, c, q = reference_sample(model, tok_bos, turns)
        assert row["deita"] == pytest.approx(want, abs=1e-5)
        assert row["deita_complexity"] == pytest.approx(c, abs=1e-5)
        assert row["deita_quality"] == pytest.approx(q, abs=1e-5)
        assert len(row["turns"]) == len(turns)
        assert all(1.0 <= t["complexity"] <= 6.0 and 1.0 <= t["quality"] <= 6.0 for t in row["turns"])
    batched = scorer.compute([u for s in alpaca for u in scorer.units(s)], lm)  # all at once = one at a time
    single = [r for s in alpaca for u in scorer.units(s) for r in scorer.compute([u], lm)]
    assert [r["score"] for r in batched] == pytest.approx([r["score"] for r in single], abs=1e-6)


def test_a_digit_that_is_not_one_token_is_an_error(tok_bos):
    class Split(CausalLM):
        def encode(self, text, add_special_tokens=True):
            return [5, 6] if text == "4" else super().encode(text, add_special_tokens)

    lm = Split(model=make_llama(len(tok_bos)), tokenizer=tok_bos, name="split")
    with pytest.raises(ConfigError, match="rater split: the digit '4' is not one token"):
        digit_ids(lm)


def test_a_text_too_long_is_a_null_with_its_reason(tok_bos):
    lm = CausalLM(model=make_llama(len(tok_bos)), tokenizer=tok_bos)
    lm.model.config.max_position_embeddings = 40
    sample = read_pool(SHARED_DATA / "instruct" / "alpaca_random_9k.json").samples[0]
    scorer = DEITA(ResolvedModel("tiny", lm.name, "t"))
    row = scorer.combine(sample, scorer.compute(scorer.units(sample), lm))
    assert row["deita"] is None and row["skip_reason"] == "too_long_for_context"


def test_run_deita_end_to_end(tmp_path, tiny_model_dir, store_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(30)))
    out = tmp_path / "subset.json"
    result = CliRunner().invoke(app, ["run", "deita", str(pool), "--rate", "0.2", "--out", str(out), "--model",
                                      str(tiny_model_dir), "--scores-out", str(tmp_path / "s.jsonl")])  # fmt: skip
    assert result.exit_code == 0, result.output
    subset = json.loads(out.read_text())
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(subset) == 6 and all({"deita", "deita_complexity", "deita_quality"} <= r.keys() for r in subset)
    best = max(r["deita"] for r in rows if r["deita"] is not None)
    assert max(r["deita"] for r in subset) == pytest.approx(best)  # score-first: the top sample is admitted
    table = api.score_deita(pool, model=str(tiny_model_dir))  # the store serves the same scores
    assert [r["deita"] for r in table.rows] == [r["deita"] for r in rows]


@pytest.mark.slow
@pytest.mark.ci
def test_smollm2_deita_matches_reference_on_4_records():
    from tunesift.data.schemas import record_to_sample
    from tunesift.models.registry import resolve_model

    lm = CausalLM.load("smollm2")
    scorer = DEITA(resolve_model("smollm2"))
    for i, record in enumerate(alpaca_records(4)):
        sample = record_to_sample(record, i, "alpaca")
        row = scorer.combine(sample, scorer.compute(scorer.units(sample), lm))
        query = f"{record['instruction']}\n{record['input']}" if record["input"] else record["instruction"]
        want, c, q = reference_sample(lm.model, lm.tokenizer, [(query, record["output"])])
        assert row["deita"] == pytest.approx(want, abs=1e-4)
        assert 1.0 <= c <= 6.0 and 1.0 <= q <= 6.0
        assert row["deita_complexity"] == pytest.approx(c, abs=1e-5)
