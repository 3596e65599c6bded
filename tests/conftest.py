"""Shared fixtures: real records from ../shared/data and tiny random models built from a config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TUNESIFT_SHARED_DATA") or ROOT.parent / "shared" / "data")
ALPACA_9K = SHARED_DATA / "instruct" / "alpaca_random_9k.json"
# Nothing in the tests touches the network: a set or model missing from a cache is an error at once, not a timeout.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    """Most tests read real records: without the shared data the run fails at once, never passes on skips."""
    if not ALPACA_9K.exists():
        raise pytest.UsageError(f"shared data not found: looked for {ALPACA_9K} (put ../shared beside the checkout, "
                                "or set TUNESIFT_SHARED_DATA to its data folder)")  # fmt: skip


def alpaca_records(n: int) -> list[dict]:
    return json.loads(ALPACA_9K.read_text(encoding="utf-8"))[:n]


def make_tokenizer(add_bos: bool, vocab_size: int = 700):
    """A byte-level BPE trained on real Alpaca text, with or without a BOS the tokenizer adds itself."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [r["instruction"] + "\n" + r["input"] + "\n" + r["output"] for r in alpaca_records(300)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<eos>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    return tok


def make_llama(vocab_size: int, seed: int = 0, hidden: int = 48, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def make_gemma3(vocab_size: int, seed: int = 0):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=2048,
        final_logit_softcapping=5.0,
        sliding_window=64,
    )
    return Gemma3ForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tok_nobos():
    return make_tokenizer(add_bos=False)


@pytest.fixture(scope="session")
def tok_bos():
    return make_tokenizer(add_bos=True)


@pytest.fixture(scope="session")
def tiny_llama(tok_nobos):
    return make_llama(len(tok_nobos))


@pytest.fixture
def tiny_model_dir(tmp_path, tok_nobos):
    """A tiny checkpoint on disk, loadable by name as a user's own model directory."""
    folder = tmp_path / "tiny-model"
    make_llama(len(tok_nobos), hidden=64, layers=2).save_pretrained(folder)
    tok_nobos.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_reward_dir(tmp_path, tok_nobos):
    """A tiny one-label BERT sequence classifier with the test tokenizer: a reward model's shape."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok_nobos), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1, pad_token_id=tok_nobos.pad_token_id)  # fmt: skip
    folder = tmp_path / "reward"
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tok_nobos.save_pretrained(folder)
    return folder


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    """Keep every cache of a test inside its tmp folder."""
    monkeypatch.setenv("TUNESIFT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "scores"
