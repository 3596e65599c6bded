"""IFD, perplexity and SelectIT from an inference server, against a localhost server written here that
answers as vLLM's OpenAI-compatible ``/v1/completions`` does (``echo`` + ``logprobs``), its log-probabilities
computed from the tiny HF model one prompt at a time (obvious code: full logits, log-softmax, gather).
"""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import alpaca_records
from localhost import JsonServer
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.errors import ConfigError

SERVED = "tiny-served"


class FakeVLLM(JsonServer):
    """``POST /v1/completions`` as vLLM serves it. ``misbehave`` (a mode) applies to prompts longer than
    ``long`` tokens, so the startup probe (a short prompt) passes and chosen samples fail."""

    def __init__(self, model_dir, misbehave: str | None = None, long: int = 10_000) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.misbehave, self.long = misbehave, long
        super().__init__()

    @torch.no_grad()
    def choice(self, ids: list[int], index: int, as_ids: bool) -> dict:
        logits = self.model(torch.tensor([ids])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        prompt = [None] + [float(logprobs[t - 1, ids[t]]) for t in range(1, len(ids))]
        generated = int(logprobs[-1].argmax())
        values = [*prompt, float(logprobs[-1, generated])]
        tokens = [*ids, generated]
        bad = len(ids) > self.long and self.misbehave
        if bad == "short":
            values = values[: len(ids) - 3]
        if bad == "shift":
            tokens = tokens[1:] + tokens[:1]
        if bad == "slow":
            time.sleep(1.5)
        return {"index": index, "text": "", "finish_reason": "length",
                "logprobs": {"token_logprobs": values if bad != "no_logprobs" else None,
                             "tokens": [f"token_id:{t}" if as_ids else str(t) for t in tokens]}}  # fmt: skip

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        if path != "/v1/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        if body.get("model") != SERVED:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
        assert body["echo"] is True and body["max_tokens"] == 1 and body["logprobs"] >= 1
        prompts = body["prompt"] if isinstance(body["prompt"][0], list) else [body["prompt"]]
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        return 200, {"object": "text_completion", "model": SERVED,
                     "choices": [self.choice(p, i, as_ids) for i, p in enumerate(prompts)]}  # fmt: skip


@pytest.fixture
def served(tiny_model_dir):
    server = FakeVLLM(tiny_model_dir)
    yield server
    server.close()


@pytest.fixture
def pool30(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(30)))
    return path


def _server(server, tiny_model_dir, **extra):
    return {"model": SERVED, "base_url": server.url, "tokenizer": str(tiny_model_dir), **extra}


@pytest.mark.parametrize("variant", ["cherry", "superfilter"])
def test_server_ifd_equals_the_in_process_ifd(variant, served, pool30, tiny_model_dir, store_dir):
    local = api.score_ifd(pool30, model=str(tiny_model_dir), variant=variant)
    remote = api.score_ifd(pool30, variant=variant, **_server(served, tiny_model_dir))
    assert [r["id"] for r in local.rows] == [r["id"] for r in remote.rows]
    assert sum(r["ifd"] is not None for r in remote.rows) >= 25
    for a, b in zip(local.rows, remote.rows, strict=True):
        for key in ("ifd", "loss_cond", "loss_direct"):
            assert (a[key] is None) == (b[key] is None)
            if a[key] is not None:
                assert b[key] == pytest.approx(a[key], abs=1e-5), (a["index"], key)
    assert remote.config["model_fingerprint"].startswith("server:")  # its own cache key: never mixed
    assert remote.config["model_fingerprint"] != local.config["model_fingerprint"]
    requests = served.requests
    again = api.score_ifd(pool30, variant=variant, **_server(served, tiny_model_dir))
    assert served.requests == requests + 1  # the startup probe only: every score came from the cache
    assert [r["ifd"] for r in again.rows] == [r["ifd"] for r in remote.rows]


def test_server_perplexity_and_selectit_equal_the_in_process_ones(served, tmp_path, tiny_model_dir, store_dir):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(8)))
    local = api.score_indicators(path, model=str(tiny_model_dir))
    remote = api.score_indicators(path, **_server(served, tiny_model_dir))
    for a, b in zip(local.rows, remote.rows, strict=True):
        assert b["ppl"] == pytest.approx(a["ppl"], rel=1e-5)
        assert b["len_response"] == a["len_response"]
    local_s = api.score_selectit(path, models=[str(tiny_model_dir)], k=2)
    remote_s = api.score_selectit(path, models=[SERVED], k=2, base_url=served.url, tokenizer=str(tiny_model_dir))
    for a, b in zip(local_s.rows, remote_s.rows, strict=True):
        assert b["selectit"] == pytest.approx(a["selectit"], abs=1e-5)


@pytest.mark.parametrize(
    ("mode", "reason", "long"),
    [
        ("short", "the reply scores", 120),
        ("shift", "the reply's token 0 is", 120),
        ("no_logprobs", "no logprobs.token_logprobs", 120),
        ("slow", "request_failed", 300),  # a timeout: few samples, each waits out every attempt
    ],
)
def test_a_bad_reply_is_a_null_score_with_its_reason(mode, reason, long, tiny_model_dir, pool30, store_dir):
    server = FakeVLLM(tiny_model_dir, misbehave=mode, long=long)
    try:
        table = api.score_ifd(pool30, **_server(server, tiny_model_dir, timeout=0.5, retries=1))
    finally:
        server.close()
    bad = [r for r in table.rows if r["ifd"] is None and r["skip_reason"] and reason in r["skip_reason"]]
    good = [r for r in table.rows if r["ifd"] is not None]
    assert bad and good, table.skipped()  # the long samples fail, each with its reason; the others are scored
    assert all(r["loss_cond"] is None for r in bad)  # never a default score
    again = api.score_ifd(pool30, **_server(FakeVLLM(tiny_model_dir), tiny_model_dir))
    assert sum(r["ifd"] is not None for r in again.rows) > len(good)  # failures were not cached: retried


def test_server_down_wrong_model_or_no_logprobs_is_one_line(tiny_model_dir, pool30, store_dir, served):
    with pytest.raises(ConfigError, match=r"base-url.*cannot use the server"):
        api.score_ifd(pool30, model=SERVED, base_url="http://127.0.0.1:9/v1", tokenizer=str(tiny_model_dir),
                      retries=0, timeout=2)  # fmt: skip
    with pytest.raises(ConfigError, match=r"'model'.*refused model 'other'"):
        api.score_ifd(pool30, model="other", base_url=served.url, tokenizer=str(tiny_model_dir))
    blind = FakeVLLM(tiny_model_dir, misbehave="no_logprobs", long=0)
    try:
        with pytest.raises(ConfigError, match="no usable prompt log-probabilities"):
            api.score_ifd(pool30, **_server(blind, tiny_model_dir))
    finally:
        blind.close()
    with pytest.raises(ConfigError, match="'tokenizer'"):
        api.score_ifd(pool30, model="not-here", base_url=served.url)  # no tokenizer resolves from the name
    with pytest.raises(ConfigError, match="'dtype'"):
        api.score_ifd(pool30, dtype="bfloat16", **_server(served, tiny_model_dir))


def test_cli_scores_from_a_server(served, pool30, tiny_model_dir, store_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["score", "ifd", str(pool30), "--out", str(out), "--model", SERVED,
                                 "--base-url", served.url, "--tokenizer", str(tiny_model_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30 and sum(r["ifd"] is not None for r in rows) >= 25
    down = runner.invoke(app, ["score", "ifd", str(pool30), "--out", str(tmp_path / "b.jsonl"), "--model", SERVED,
                               "--base-url", "http://127.0.0.1:9/v1", "--tokenizer", str(tiny_model_dir),
                               "--retries", "0"])  # fmt: skip
    assert down.exit_code == 2
    assert down.output.strip().count("\n") == 0 and "option 'base-url'" in down.output
