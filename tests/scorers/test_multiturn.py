"""Conversations scored turn by turn (METHODS.md §5), against a per-turn reference computed one turn at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, make_llama
from reference import reference_loss

from tunesift import api
from tunesift.data.pools import read_pool
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.ifd import IFDConfig, IFDScorer
from tunesift.scorers.selectit import SelectITRater, load_prompts
from tunesift.scorers.turns import aggregate

PRE = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"


def alpaca_turn_prompt(turns, t):
    """Alpaca text for turn t written out by hand: the preamble once, earlier turns with their replies."""
    past = "".join(f"### Instruction:\n{u}\n\n### Response:{a}\n\n" for u, a in turns[:t])
    return PRE + past + f"### Instruction:\n{turns[t][0]}\n\n### Response:"


def chat_turn_prompt(tok, turns, t, system):
    messages = [{"role": "system", "content": system}] if system else []
    for u, a in turns[:t]:
        messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": turns[t][0]})
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    without = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    return prompt, prompt[len(without) :]


def reference_turns(model, tok, turns, template, max_length, system=""):
    out = []
    for t, (_, answer) in enumerate(turns):
        if template == "chat":
            prompt, prefix = chat_turn_prompt(tok, turns, t, system)
        else:
            prompt, prefix = alpaca_turn_prompt(turns, t), "### Response:"
        n_prompt = len(tok(prompt).input_ids)
        if n_prompt >= max_length:
            out.append(None)
            continue
        cond, n = reference_loss(model, tok, prompt + answer, prompt, max_length)
        direct, _ = reference_loss(
            model, tok, prefix + answer, prefix, max_length - n_prompt + len(tok(prefix).input_ids)
        )
        out.append((cond / direct, n))
    return out


def test_aggregation_rules():
    values, weights = [0.5, None, 0.9], [10, 5, 30]
    assert aggregate(values, weights, "mean") == pytest.approx(0.7)
    assert aggregate(values, weights, "min") == 0.5 and aggregate(values, weights, "max") == 0.9
    assert aggregate(values, weights, "last") == 0.9 and aggregate([0.5, None], [1, 1], "last") is None
    assert aggregate(values, weights, "wmean") == pytest.approx((0.5 * 10 + 0.9 * 30) / 40)
    assert aggregate([None, None], [1, 1], "mean") is None


def test_lima_multiturn_records_match_per_turn_reference(tok_bos):
    records = [r for r in json.loads((SHARED_DATA / "instruct" / "lima_train.json").read_text()) if r.get("history")]
    assert len(records) == 29
    model = make_llama(len(tok_bos), seed=7)
    lm = CausalLM(model=model, tokenizer=tok_bos)
    path = SHARED_DATA / "instruct" / "lima_train.json"
    samples = [s for s in read_pool(path).samples if s.is_conversation]
    results = IFDScorer(lm, IFDConfig(template="chat", max_length=1024)).score(samples)
    n_turns = 0
    for record, sample, got in zip(records, samples, results, strict=True):
        turns = [*map(tuple, record["history"]), (record["instruction"], record["output"])]
        want = reference_turns(model, tok_bos, turns, "chat", 1024)
        assert len(got.turns) == len(turns) == len(sample.turns)
        n_turns += len(turns)
        for w, g in zip(want, got.turns, strict=True):
            if w is None:
                assert g.skip_reason == "prompt_fills_budget"
            else:
                assert g.ifd == pytest.approx(w[0], abs=1e-5) and g.n_tokens == w[1]
        scored = [w[0] for w in want if w is not None]
        if scored:
            assert got.ifd == pytest.approx(np.mean(scored), abs=1e-5)
        else:
            assert got.ifd is None and got.skip_reason.startswith("no_turn_scored")
    assert n_turns > 58


@pytest.mark.parametrize("rule", ["mean", "min", "max", "last", "wmean"])
def test_sharegpt_and_messages_with_the_alpaca_template(tmp_path, tok_nobos, store_dir, rule):
    conversations = [
        {
            "conversations": [
                {"from": "human", "value": "Name a fruit."},
                {"from": "gpt", "value": "An apple."},
                {"from": "human", "value": "Another one?"},
                {"from": "gpt", "value": "A pear, which is sweet."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Count to three."},
                {"role": "assistant", "content": "1, 2, 3."},
                {"role": "user", "content": "Now backwards."},
                {"role": "assistant", "content": "3, 2, 1."},
                {"role": "user", "content": "Thanks!"},
                {"role": "assistant", "content": "You are welcome."},
            ]
        },
    ]
    model_dir = tmp_path / "m"
    model = make_llama(len(tok_nobos), seed=8)
    model.save_pretrained(model_dir)
    tok_nobos.save_pretrained(model_dir)
    for k, record in enumerate(conversations):
        path = tmp_path / f"c{k}.jsonl"
        path.write_text(json.dumps(record) + "\n")
        table = api.score_ifd(path, model=str(model_dir), turn_rule=rule)
        (row,) = table.rows
        pool = read_pool(path)
        turns = [(t.user, t.assistant) for t in pool.samples[0].turns]
        want = reference_turns(model, tok_nobos, turns, "alpaca", 512)
        assert [t["ifd"] for t in row["turns"]] == pytest.approx([w[0] for w in want], abs=1e-5)
        weights = [w[1] for w in want]
        assert row["ifd"] == pytest.approx(aggregate([w[0] for w in want], weights, rule), abs=1e-5)
        assert row["n_tokens"] == sum(weights) and table.config["turn_rule"] == rule


def test_selectit_rates_each_turn_with_its_history(tmp_path, tok_nobos):
    model = make_llama(len(tok_nobos), seed=9)
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"instruction": "And 3+3?", "input": "", "output": "6", "history": [["2+2?", "4"]]}]))
    (sample,) = read_pool(path).samples
    sentence = load_prompts()[0]
    ratings = SelectITRater(CausalLM(model=model, tokenizer=tok_nobos)).rate(
        [(sample, sentence, 0), (sample, sentence, 1)]
    )
    texts = [
        f"{sentence}\n\nInstruction:2+2?\nResponse:4\nThe answer is: \n",
        f"{sentence}\n\nInstruction:User: 2+2?\nAssistant: 4\nUser: And 3+3?\nResponse:6\nThe answer is: \n",
    ]
    digits = [tok_nobos("\n" + str(d), add_special_tokens=False).input_ids[-1] for d in range(1, 6)]
    for text, rating in zip(texts, ratings, strict=True):
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([tok_nobos(text).input_ids])).logits[0, -1].double(), -1)[digits]
        np.testing.assert_allclose(rating.probs, (probs / probs.sum()).numpy(), atol=1e-6)


def test_another_turn_rule_reuses_the_cached_turns(tmp_path, tok_nobos, store_dir, monkeypatch):
    model_dir = tmp_path / "m"
    make_llama(len(tok_nobos), seed=10).save_pretrained(model_dir)
    tok_nobos.save_pretrained(model_dir)
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"instruction": "And 3+3?", "output": "6", "history": [["2+2?", "4"], ["1+1?", "2"]]}]))
    first = api.score_ifd(path, model=str(model_dir), turn_rule="mean").rows[0]
    monkeypatch.setattr(CausalLM, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")))
    again = api.score_ifd(path, model=str(model_dir), turn_rule="max").rows[0]
    turn_ifds = [t["ifd"] for t in first["turns"]]
    assert [t["ifd"] for t in again["turns"]] == turn_ifds
    assert first["ifd"] == pytest.approx(np.mean(turn_ifds)) and again["ifd"] == max(turn_ifds)
