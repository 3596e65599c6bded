"""Fine-tuning: the response-only loss is exact, a tiny model learns, and a resumed run ends where an
uninterrupted one does."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import alpaca_records
from safetensors.torch import load_file

from tunesift.data.pools import read_pool
from tunesift.data.templates import get_template
from tunesift.eval.training.train import TrainConfig, build_examples, response_loss, train


@pytest.fixture
def pool_path(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(24)))
    return path


def test_response_loss_equals_hf_loss_with_masked_prompt(pool_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = build_examples(read_pool(pool_path).samples, tok, get_template("alpaca"), max_length=96)
    with torch.no_grad():
        nll, count = response_loss(model, examples[:7], pad_id=0)
    total, tokens = 0.0, 0
    for e in examples[:7]:  # one at a time, HF's own loss with the prompt masked out
        ids = torch.tensor([e.ids])
        labels = ids.clone()
        labels[0, : e.start] = -100
        with torch.no_grad():
            loss = model(ids, labels=labels).loss.item()
        n = len(e.ids) - e.start
        total += loss * n
        tokens += n
    assert count == tokens
    assert nll.item() == pytest.approx(total, rel=1e-5)
    # the response includes the EOS that ends it, and the mask starts exactly at the response
    sample = read_pool(pool_path).samples[examples[0].index]
    prompt = get_template("alpaca").prompt(sample.instruction, sample.input)
    assert examples[0].start == len(tok(prompt).input_ids)
    assert all(e.ids[-1] == tok.eos_token_id for e in examples if len(e.ids) < 96)  # not cut: ends in EOS


@pytest.mark.parametrize(("lora", "lr", "drop"), [(False, 3e-3, 0.9), (True, 3e-2, 0.99)])
def test_tiny_model_learns(tmp_path, pool_path, tiny_model_dir, lora, lr, drop):
    cfg = TrainConfig(base=str(tiny_model_dir), lora=lora, template="plain", epochs=5, batch_tokens=700,
                      max_length=128, learning_rate=lr)  # fmt: skip
    result = train(pool_path, tmp_path / "run", cfg)
    per_epoch = len(result.losses) // 5
    assert per_epoch >= 3
    first, last = result.losses[:per_epoch], result.losses[-per_epoch:]
    assert sum(last) / len(last) < drop * sum(first) / len(first)
    assert (result.model_dir / "config.json").exists() and not (tmp_path / "run" / "checkpoint").exists()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["done"] and meta["steps"] == len(result.losses)


@pytest.mark.parametrize("lora", [True, False])
def test_resume_gives_the_same_weights(tmp_path, pool_path, tiny_model_dir, lora):
    cfg = TrainConfig(base=str(tiny_model_dir), lora=lora, template="plain", epochs=2, batch_tokens=600, max_length=80,
                      learning_rate=1e-3, seed=3)  # fmt: skip
    straight = train(pool_path, tmp_path / "a", cfg)
    stopped = train(pool_path, tmp_path / "b", cfg, stop_after=3, save_every=100)
    assert stopped.steps == 3 and (tmp_path / "b" / "checkpoint").exists()
    resumed = train(pool_path, tmp_path / "b", cfg)
    assert resumed.steps == straight.steps
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-6)
    a = load_file(str(straight.model_dir / "model.safetensors"))
    b = load_file(str(resumed.model_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    base = load_file(str(next(tiny_model_dir.glob("*.safetensors"))))
    assert any(not torch.equal(base[n], a[n]) for n in base if n in a)  # training changed something


def test_unfinished_run_with_other_config_is_refused(tmp_path, pool_path, tiny_model_dir):
    from tunesift.errors import ConfigError

    cfg = TrainConfig(base=str(tiny_model_dir), template="plain", epochs=2, batch_tokens=600, max_length=80)
    train(pool_path, tmp_path / "r", cfg, stop_after=1)
    with pytest.raises(ConfigError, match="another configuration"):
        train(pool_path, tmp_path / "r", TrainConfig(**{**cfg.__dict__, "epochs": 3}))


def test_equal_sizes_train_for_equal_steps_whatever_their_lengths(tmp_path, tiny_model_dir):
    """Twelve short records and twelve long ones (several times the tokens): the same number of optimizer steps,
    ceil(12 / 5) = 3 per epoch, though the long ones need more micro-batches under the token budget."""
    from transformers import AutoTokenizer

    from tunesift.eval.training.train import build_examples, step_plan

    records = alpaca_records(300)
    by_length = sorted(records, key=lambda r: len(r["output"]))
    short, long = by_length[:12], by_length[-12:]
    assert sum(len(r["output"]) for r in long) > 5 * sum(len(r["output"]) for r in short)
    cfg = TrainConfig(base=str(tiny_model_dir), template="plain", epochs=2, batch_tokens=400, max_length=256,
                      examples_per_step=5)  # fmt: skip
    steps = {}
    for name, data in (("short", short), ("long", long)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        steps[name] = train(path, tmp_path / name, cfg).steps
        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        samples = read_pool(path).samples
        examples = build_examples(samples, tok, get_template("plain"), 256)
        plan = step_plan(samples, examples, 5, 400, 0, 0)
        assert [len({examples[i].index for b in step for i in b}) for step in plan] == [5, 5, 2]
        if name == "long":
            assert sum(len(step) for step in plan) > len(plan)  # accumulation over several micro-batches
    assert steps == {"short": 6, "long": 6}


def test_micro_batches_accumulate_to_the_one_batch_step(tmp_path, pool_path, tiny_model_dir):
    """The same steps run as one batch each or as many small micro-batches end with the same weights: the
    step's loss is its token mean either way."""
    base = dict(base=str(tiny_model_dir), template="plain", epochs=1, max_length=80, examples_per_step=6,
                learning_rate=1e-3, lora=False)  # fmt: skip
    whole = train(pool_path, tmp_path / "whole", TrainConfig(**base, batch_tokens=100_000))
    pieces = train(pool_path, tmp_path / "pieces", TrainConfig(**base, batch_tokens=160))
    assert whole.steps == pieces.steps == 4
    assert pieces.losses == pytest.approx(whole.losses, rel=1e-4)
    a = load_file(str(whole.model_dir / "model.safetensors"))
    b = load_file(str(pieces.model_dir / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.ci
def test_gemma_protocol_base_trains_and_evaluates_per_item(tmp_path):
    """The CPU protocol's base model end to end on a few records: LoRA training with a fixed number of examples
    per step (4 records, 2 per step: 2 steps), the merged model evaluated in memory on every CPU metric with
    per-item values, and the paired bootstrap against the untuned base on the same items."""

    import numpy as np

    from tunesift.eval.compare.training import _in_memory
    from tunesift.eval.evaluation.stats import paired_bootstrap
    from tunesift.eval.evaluation.suite import EvalSettings, evaluate, per_item

    settings = EvalSettings(n_alpaca=6, n_gsm8k=2, n_mmlu=3, n_bbh=3, n_humaneval=2, max_length=256)
    base = evaluate("gemma-3-270m", "cpu", settings)
    path = tmp_path / "subset.json"
    path.write_text(json.dumps(alpaca_records(4)))
    cfg = TrainConfig(base="gemma-3-270m", max_length=128, examples_per_step=2, learning_rate=1e-3)
    result = train(path, tmp_path / "run", cfg)
    assert result.steps == 2 and all(np.isfinite(result.losses))
    tuned = evaluate(tmp_path / "run", "cpu", settings, lm=_in_memory(result.model, tmp_path / "run"))
    assert tuned["mmlu"]["n"] == 3 and len(tuned["alpaca_eval_loss"]["items"]) == 6
    assert tuned["bbh_loss"]["n"] == 3 and tuned["humaneval_loss"]["n"] == 2  # Gemma's tokens: none cut at 256
    assert 0 < tuned["bbh_loss"]["loss"] < 10 and 0 < tuned["humaneval_loss"]["loss"] < 10
    assert 0.5 < tuned["alpaca_eval_loss"]["loss"] < 6
    assert tuned["alpaca_eval_loss"]["loss"] != base["alpaca_eval_loss"]["loss"]  # training changed the model
    num_tuned, den = per_item(tuned, "alpaca_eval_loss")
    num_base, den_base = per_item(base, "alpaca_eval_loss")
    assert den == den_base  # the same items and tokens: a paired comparison
    interval = paired_bootstrap([num_tuned], [num_base], den, higher_is_better=False, n_boot=500)
    assert interval.low <= interval.diff <= interval.high and interval.n_items == 6


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--epochs", "0"), ("--lora-r", "0"), ("--lora-alpha", "-1"), ("--max-length", "1"), ("--save-every", "-1"),
     ("--examples-per-step", "0"), ("--batch-tokens", "0"), ("--lr", "0")],
)  # fmt: skip
def test_a_bad_training_value_is_one_line_naming_it_before_any_work(flag, value, tmp_path, pool_path, tiny_model_dir):
    """--lora-r 0 ended in peft's traceback and --lora-alpha -1 trained; each is refused naming its own flag."""
    from typer.testing import CliRunner

    from tunesift.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(pool_path), "--base", str(tiny_model_dir), "--out", str(out),
                                      flag, value])  # fmt: skip
    assert result.exit_code == 2 and f"option '{flag.lstrip('-')}'" in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


def test_the_share_cut_at_max_length_is_recorded(tmp_path, pool_path, tiny_model_dir):
    """Issue 44: a 512-token proxy sees the start of a 6,000-token trace; the run says how many examples it cut
    (counted by hand: prompt, response and EOS longer than max_length)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = get_template("plain")
    samples = read_pool(pool_path).samples
    lengths = [len(tok(template.prompt(s.instruction, s.input, (), "") + s.output)["input_ids"]) + 1 for s in samples]
    limit = sorted(lengths)[len(lengths) // 2]
    cfg = TrainConfig(base=str(tiny_model_dir), template="plain", max_length=limit, examples_per_step=8)
    result = train(pool_path, tmp_path / "run", cfg)
    assert result.truncated_frac == pytest.approx(sum(n > limit for n in lengths) / len(lengths))
    assert 0 < result.truncated_frac < 1
    again = train(pool_path, tmp_path / "run", cfg)  # a finished run says it too
    assert again.truncated_frac == result.truncated_frac
