"""INSTAG: reading the tagger's JSON, the normalisation and the coverage sampling against hand-computed cases,
an endpoint tagger over HTTP on localhost, the local tagger against a one-sample generation reference,
``tunesift run instag`` and the report's tag table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import alpaca_records
from localhost import ChatServer
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.scorers.instag import PROMPT, normalise_tags, parse_tags, rule_form
from tunesift.scorers.judge import UnparseableReply
from tunesift.selectors.instag import coverage_select


@pytest.mark.parametrize(
    ("reply", "tags"),
    [('[{"tag": "Math", "explanation": "arithmetic"}]', ["Math"]),
     ('Sure!\n```json\n[{"tag": "poetry", "explanation": "a poem"}, {"tag": "Creative Writing"}]\n```',
      ["poetry", "Creative Writing"]),
     ('[{"tag": "a"}, {"tag": " a "}, {"tag": "b"}]', ["a", "b"])],
)  # fmt: skip
def test_parse_tags(reply, tags):
    assert parse_tags(reply) == tags


@pytest.mark.parametrize(
    ("reply", "reason"),
    [("Math, poetry", "no_json_list"), ("[{'tag': 'x'}]", "bad_json"), ("[]", "no_tags"),
     ('[{"name": "x"}]', "item_without_tag"), ('["math"]', "item_without_tag")],
)  # fmt: skip
def test_unreadable_tag_replies(reply, reason):
    with pytest.raises(UnparseableReply) as err:
        parse_tags(reply)
    assert err.value.reason == reason


def test_rule_form_lowercases_strips_and_stems():
    assert rule_form("Creative-Writing!") == rule_form("creative writing") == "creativ write"
    assert rule_form("Questions & Answers") == "question answer"


def test_normalisation_hand_computed():
    raw = [["Creative Writing", "poetry"], ["creative-writing", "Poems"], ["Math", "arithmetic"], ["math"],
           ["math", "Arithmetic"], None]  # fmt: skip
    # rules only: the two spellings of creative writing and of math merge; poetry and poems stay apart
    tags, info = normalise_tags(raw, min_count=1, embed=None, min_support=99)
    assert tags == [["creative writing", "poetry"], ["creative writing", "poems"], ["arithmetic", "math"], ["math"],
                    ["arithmetic", "math"], None]  # fmt: skip
    assert (info["raw_tags"], info["after_rules"], info["after_association"]) == (8, 5, 5)

    # semantic: "poetry" and "poems" embed identically (cosine distance 0 <= 0.05); the representative is the
    # more frequent, ties alphabetical by stemmed form ("poem" < "poetri")
    def embed(names):
        axis = {n: i for i, n in enumerate(names)}
        axis["poems"] = axis["poetry"]  # the same direction; every other tag its own axis
        return np.eye(len(names))[[axis[n] for n in names]]

    tags, info = normalise_tags(raw, min_count=1, embed=embed, min_support=99)
    assert tags[0] == ["creative writing", "poems"] and tags[1] == ["creative writing", "poems"]
    assert info["after_semantic"] == 4
    # association: arithmetic occurs twice, both times with math (support 2, confidence 1.0): merged into math
    tags, info = normalise_tags(raw, min_count=1, embed=None, min_support=2, min_confidence=0.99)
    assert tags[2] == ["math"] and tags[4] == ["math"] and info["after_association"] == 4
    # frequency filtering counts raw tags: only "math" (twice) survives min_count=2
    tags, _ = normalise_tags(raw, min_count=2, embed=None)
    assert tags == [[], [], [], ["math"], ["math"], None]


def test_coverage_selection_hand_computed():
    tags = [["a", "b"], ["a", "b", "c"], ["a"], ["d"], ["b", "c"], None]
    # pass 1 (most tags first): 1 covers a,b,c; 0 and 4 add nothing; 2 nothing; 3 adds d.
    # pass 2 over 0, 4, 2 with an empty cover: 0 (a, b), then 4 adds c: four chosen.
    assert coverage_select(tags, 4) == [1, 3, 0, 4]
    assert coverage_select(tags, 10) == [1, 3, 0, 4, 2]  # the untagged sample is never taken
    assert coverage_select([[], ["x"]], 2) == [1]


def _tags(*names):
    return json.dumps([{"tag": n, "explanation": "why"} for n in names])


REPLIES = {"poem": _tags("Creative Writing", "Poetry"), "sum": _tags("Math", "Arithmetic"),
           "story": _tags("creative writing", "Storytelling", "Humor"), "essay": _tags("Creative-Writing"),
           "chat": "Hello! How can I help?"}  # fmt: skip


@pytest.fixture
def tag_server():
    # the probe before any work gets "OK"; a tagging request, its scripted reply
    s = ChatServer(
        lambda content: REPLIES[content.split("[begin]\n", 1)[1].split()[0]] if "[begin]" in content else "OK"
    )
    yield s
    s.close()


def _pool(tmp_path, words):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([{"instruction": f"{w} please.", "input": "", "output": f"ok {i}"}
                                for i, w in enumerate(words)]))  # fmt: skip
    return path


def test_endpoint_tagger_and_run_instag(tmp_path, tag_server, store_dir):
    path = _pool(tmp_path, ["poem", "sum", "story", "chat", "essay", "sum"])
    table = api.score_instag(path, model="tagger", base_url=tag_server.url, min_tag_count=1, semantic=False)
    assert [r["instag_tags"] for r in table.rows] == [["creative writing", "poetry"], ["arithmetic", "math"],
        ["creative writing", "humor", "storytelling"], None, ["creative writing"], ["arithmetic", "math"]]  # fmt: skip
    assert [r["instag"] for r in table.rows] == [2.0, 2.0, 3.0, None, 1.0, 2.0]
    assert table.rows[3]["skip_reason"] == "no_json_list" and table.rows[3]["tag_reply"] == REPLIES["chat"]
    assert tag_server.requests == 1 + 5  # the probe, then one request a query: the two equal ones share one
    out, scores = tmp_path / "sub.json", tmp_path / "scores.jsonl"
    result = CliRunner().invoke(app, ["run", "instag", str(path), "--count", "3", "--model", "t", "--base-url",
                                      tag_server.url, "--min-tag-count", "1", "--no-semantic", "--out", str(out),
                                      "--scores-out", str(scores)])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = [json.loads(line)["instag_tags"] for line in scores.read_text().splitlines()]
    chosen = json.loads((tmp_path / "sub.manifest.json").read_text())["selected_indices"]
    assert chosen == coverage_select(written, 3) == [2, 0, 1]
    assert json.loads(out.read_text())[0]["instag_tags"] == ["creative writing", "humor", "storytelling"]
    # the report shows the most frequent tags, pool vs selection
    from tunesift.report import make_report

    stats = make_report(path, [scores], [out], out=tmp_path / "r.md", fmt="md")
    tags = stats["scores"][0]["tags"]
    assert tags["top"][0]["tag"] == "creative writing" and tags["top"][0]["pool"]["n"] == 3
    assert tags["top"][0]["sub"]["n"] == 2 and tags["distinct"] == {"pool": 6, "sub": 6}
    assert "Most frequent tags" in (tmp_path / "r.md").read_text()


def reference_reply(model, tok, query: str, max_new_tokens: int) -> str:
    """One query at a time: the chat-rendered prompt, greedy generation, decoded without special tokens."""
    text = tok.apply_chat_template([{"role": "user", "content": PROMPT.format(query=query)}], tokenize=False,
                                   add_generation_prompt=True)  # fmt: skip
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id)  # fmt: skip
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_local_tagger_matches_one_query_generation(tmp_path, tiny_model_dir, store_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesift.models.registry import resolve_model
    from tunesift.scorers.instag import InsTag

    records = alpaca_records(3)
    scorer = InsTag(resolve_model(str(tiny_model_dir)), max_new_tokens=12)
    backend = scorer.load_backend("cpu")
    queries = [f"{r['instruction']}\n{r['input']}" if r["input"] else r["instruction"] for r in records]
    from tunesift.scorers.base import Unit

    results = scorer.compute([Unit(str(i), q) for i, q in enumerate(queries)], backend)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for result, query in zip(results, queries, strict=True):
        want = reference_reply(model, tok, query, 12)
        assert result["tag_reply"] == want
        assert result["tags"] is None and result["skip_reason"] == "no_json_list"  # a random model writes no JSON


@pytest.mark.slow
@pytest.mark.ci
def test_smollm2_instag_tagger_matches_one_query_generation():
    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.registry import resolve_model
    from tunesift.scorers.base import Unit
    from tunesift.scorers.instag import InsTag, parse_tags

    lm = CausalLM.load("smollm2")
    scorer = InsTag(resolve_model("smollm2"), max_new_tokens=40)
    queries = [r["instruction"] for r in alpaca_records(2)]
    results = scorer.compute([Unit(str(i), q) for i, q in enumerate(queries)], scorer.load_backend("cpu"))
    for result, query in zip(results, queries, strict=True):
        reply = reference_reply(lm.model, lm.tokenizer, query, 40)
        assert result["tag_reply"] == reply
        try:
            want = parse_tags(reply)
        except UnparseableReply as err:  # an unreadable reply: null with its reason, never a default
            assert result["tags"] is None and result["skip_reason"] == err.reason
        else:
            assert result["tags"] == want
