"""Self-curation (Humpback): the paper's prompt, reading "Score: N", an endpoint over HTTP on localhost, the
local judge against a one-sample full-vocabulary reference, and ``tunesift run self-curation``."""

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
from tunesift.data.pools import read_pool
from tunesift.scorers.judge import UnparseableReply
from tunesift.scorers.self_curation import curation_messages, parse_curation


@pytest.mark.parametrize(
    ("reply", "score"),
    [("The answer is complete.\nScore: 5", 5.0), ("Reasoning.\n\nScore: 4", 4.0), ("Score: 2\nwait.\nScore: 3", 3.0),
     ("score:1", 1.0), ("Score: **4**", 4.0), ("Score: 4/5", 4.0), ("Score: 5.0", 5.0)],
)  # fmt: skip
def test_reads_the_last_score_line(reply, score):
    assert parse_curation(reply) == score


@pytest.mark.parametrize(
    ("reply", "reason"),
    [("A good answer.", "no_score_line"), ("Score: 8/10", "other_scale: 8/10"), ("Score: 0", "not_on_the_scale: 0"),
     ("Score: 4.5", "not_on_the_scale: 4.5"), ("5", "no_score_line")],
)  # fmt: skip
def test_unreadable_replies_are_errors_with_a_reason(reply, reason):
    with pytest.raises(UnparseableReply) as err:
        parse_curation(reply)
    assert err.value.reason == reason and err.value.reply == reply


def test_the_prompt_is_the_papers_table_1():
    from tunesift.data.schemas import record_to_sample

    sample = record_to_sample({"instruction": "Name a colour.", "input": "Be brief.", "output": "Blue."}, 0, "alpaca")
    [message] = curation_messages(sample)
    text = message["content"]
    assert message["role"] == "user"
    assert text.startswith("Below is an instruction from an user and a candidate answer. Evaluate whether or not")
    lines = text.split("\n")
    assert [line[:3] for line in lines[1:6]] == ["1: ", "2: ", "3: ", "4: ", "5: "]  # one line per scale point
    assert lines[5].endswith("engaging and insightful.")
    assert lines[6] == ('Please first provide a brief reasoning you used to derive the rating score, and then write '
                        '"Score: <rating>" in the last line.')  # fmt: skip
    assert text.endswith("in the last line.\n\nName a colour.\nBe brief.\nBlue.\n")


REPLIES = {"great": "Clear and complete.\nScore: 5", "fine": "Minor issues.\nScore: 4",
           "blog": "Reads like a blog.\nScore: 3", "chat": "I think it is good."}  # fmt: skip


def _reply(content: str) -> str:
    """The reply for a record whose answer ends in one of REPLIES' keys ("OK" to the probe before any work)."""
    last = content.rstrip("\n").rsplit("\n", 1)[-1].split()[-1]
    return REPLIES[last] if last in REPLIES else "OK"


@pytest.fixture
def chat_server():
    s = ChatServer(_reply)
    yield s
    s.close()


def _pool(tmp_path, kinds):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([{"instruction": f"Task {i}.", "input": "", "output": f"An answer: {k}"}
                                for i, k in enumerate(kinds)]))  # fmt: skip
    return path


def test_endpoint_scores_and_keeps_unreadable_replies(tmp_path, chat_server, store_dir):
    path = _pool(tmp_path, ["great", "fine", "chat", "blog"])
    table = api.score_self_curation(path, model="judge", base_url=chat_server.url)
    assert [r["self_curation"] for r in table.rows] == [5.0, 4.0, None, 3.0]
    assert table.rows[2]["skip_reason"] == "no_score_line"
    assert table.rows[2]["judge_reply"] == "I think it is good."
    calls = chat_server.requests
    assert [r["self_curation"] for r in api.score_self_curation(path, model="judge", base_url=chat_server.url).rows] \
        == [5.0, 4.0, None, 3.0]  # fmt: skip
    # the three scores from the cache; the unreadable reply was never stored (a failure is no result): asked
    # again, after the start-up probe that precedes any request
    assert chat_server.requests == calls + 2


def test_run_self_curation_keeps_the_5s_or_a_threshold(tmp_path, chat_server, store_dir):
    path = _pool(tmp_path, ["fine", "great", "blog", "great", "chat"])
    out = tmp_path / "sub.json"
    base = ["run", "self-curation", str(path), "--model", "j", "--base-url", chat_server.url]
    result = CliRunner().invoke(app, [*base, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "sub.manifest.json").read_text())["selected_indices"] == [1, 3]
    result = CliRunner().invoke(app, [*base, "--threshold", "4", "--out", str(tmp_path / "a4.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a4.manifest.json").read_text())["selected_indices"] == [1, 3, 0]


def reference_rating(model, tok, sample) -> float:
    """One sample, obvious code: the chat-rendered prompt, then "Score:", the full-vocabulary softmax at the
    next position read at " 1".." 5", renormalised, and the expectation."""
    prompt = tok.apply_chat_template(curation_messages(sample), tokenize=False, add_generation_prompt=True)
    for prefix, space in (("Score:", " "), ("Score: ", ""), ("Score:", "")):  # the first where digits are 1 token
        text = prompt + prefix
        ids = tok(text, return_tensors="pt").input_ids
        after = [tok(text + f"{space}{d}").input_ids for d in range(1, 6)]
        if all(a[:-1] == ids[0].tolist() for a in after):
            break
    digits = [a[-1] for a in after]
    with torch.no_grad():
        probs = torch.softmax(model(ids).logits[0, -1].double(), dim=-1)[digits]
    return float(np.dot(np.arange(1, 6), (probs / probs.sum()).numpy()))


def test_local_judge_matches_the_one_sample_reference(tmp_path, tiny_model_dir, store_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(6)))
    table = api.score_self_curation(path, model=str(tiny_model_dir), batch_tokens=1500)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for row, sample in zip(table.rows, read_pool(path).samples, strict=True):
        assert 1.0 <= row["self_curation"] <= 5.0
        assert row["self_curation"] == pytest.approx(reference_rating(model, tok, sample), abs=1e-6)


@pytest.mark.slow
@pytest.mark.ci
def test_smollm2_self_curation_matches_reference_on_3_records():
    from tunesift.data.schemas import record_to_sample
    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.registry import resolve_model
    from tunesift.scorers.self_curation import SelfCuration

    lm = CausalLM.load("smollm2")
    scorer = SelfCuration(resolve_model("smollm2"))
    backend = scorer.load_backend("cpu")
    assert backend.prefix == "Score: "  # SmolLM2 splits the space from the digit
    samples = [record_to_sample(r, i, "alpaca") for i, r in enumerate(alpaca_records(3))]
    rows = scorer.compute([u for s in samples for u in scorer.units(s)], backend)
    for row, sample in zip(rows, samples, strict=True):
        assert 1.0 <= row["self_curation"] <= 5.0
        assert row["self_curation"] == pytest.approx(reference_rating(lm.model, lm.tokenizer, sample), abs=1e-4)


def test_the_rubric_types_the_sources_apostrophes():
    """The paper's Table 1 and distilabel's template write U+2019 in "user’s", "person’s", ...; a small rater's
    score moves by about 0.1 with the straight apostrophe, so the source's character is kept."""
    from tunesift.scorers.self_curation import PROMPT

    rubric = PROMPT.split("Please first provide")[0]
    assert rubric.count("\u2019") == 10 and "'" not in rubric
    assert "respond to the user\u2019s instruction" in rubric and "other people\u2019s perspective" in rubric
