"""Where a model runs: dtype and device rules, bf16 against fp32, caches kept apart, hub ids and hub datasets
from a local Hugging Face cache with the network off."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import alpaca_records
from scipy.stats import spearmanr
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.errors import ConfigError, InputError
from tunesift.models.precision import attention_implementation, pick_device, resolve_dtype
from tunesift.models.registry import resolve_model

REVISION = "0123456789abcdef0123456789abcdef01234567"


def test_dtype_rules():
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype(None, "cpu") == "float32"
    assert resolve_dtype("auto", "cuda", bf16_supported=True) == "bfloat16"
    assert resolve_dtype("auto", "cuda:1", bf16_supported=False) == "float32"  # a pre-Ampere GPU
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    assert resolve_dtype("float16", "cuda", bf16_supported=False) == "float16"
    with pytest.raises(ConfigError, match=r"'dtype'.*CUDA device only"):
        resolve_dtype("float16", "cpu")
    with pytest.raises(ConfigError, match=r"'dtype'.*no bfloat16"):
        resolve_dtype("bfloat16", "cuda", bf16_supported=False)
    with pytest.raises(ConfigError, match=r"'dtype'.*unknown dtype 'fp8'"):
        resolve_dtype("fp8", "cpu")
    assert attention_implementation("cpu", "float32") == "sdpa"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_a_cuda_device_on_a_cpu_machine_is_one_line(tmp_path, tiny_model_dir, store_dir):
    with pytest.raises(ConfigError, match=r"'device'.*no CUDA device"):
        pick_device("cuda")
    with pytest.raises(ConfigError, match=r"'device'.*unknown device"):
        pick_device("gpu0")
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(4)))
    result = CliRunner().invoke(app, ["score", "ifd", str(pool), "--out", str(tmp_path / "s.jsonl"), "--model",
                                      str(tiny_model_dir), "--dtype", "float16"])  # fmt: skip
    assert result.exit_code == 2 and "option 'dtype'" in result.output and "\n" not in result.output.strip()
    result = CliRunner().invoke(app, ["score", "ifd", str(pool), "--out", str(tmp_path / "s.jsonl"), "--model",
                                      str(tiny_model_dir), "--device", "cuda"])  # fmt: skip
    assert result.exit_code == 2 and "option 'device'" in result.output


def test_bf16_agrees_with_fp32_and_their_caches_stay_apart(tmp_path, tiny_model_dir, store_dir):
    """bf16 on this CPU against fp32, 20 real records: IFD within 0.02 (bf16 keeps 8 bits of mantissa; a
    loss of ~6.5 nats is off by ~0.02 at worst, and the ratio of two such losses by about as much), and the
    ranking nearly the same."""
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(20)))
    fp32 = api.score_ifd(pool, model=str(tiny_model_dir), dtype="float32")
    bf16 = api.score_ifd(pool, model=str(tiny_model_dir), dtype="bfloat16")
    assert fp32.config["dtype"] == "float32" and bf16.config["dtype"] == "bfloat16"
    pairs = [(a["ifd"], b["ifd"]) for a, b in zip(fp32.rows, bf16.rows, strict=True) if a["ifd"] is not None]
    assert len(pairs) >= 18
    assert max(abs(a - b) for a, b in pairs) < 0.02
    assert spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic > 0.9
    assert any(a != b for a, b in pairs)  # really computed in bf16, not served from the fp32 cache
    stores = sorted(p.name for p in store_dir.glob("ifd-*.jsonl"))
    assert len(stores) == 2, stores  # one store per dtype
    auto = api.score_ifd(pool, model=str(tiny_model_dir))  # auto on a CPU is fp32: the fp32 cache serves it
    assert auto.config["dtype"] == "float32" and [r["ifd"] for r in auto.rows] == [r["ifd"] for r in fp32.rows]


def _hub_cache(tmp_path, repo_type: str, repo_id: str):
    """An HF hub cache laid out as huggingface_hub writes it: blobs aside, a snapshot per revision, refs/main."""
    org, name = repo_id.split("/")
    root = tmp_path / "hub" / f"{repo_type}s--{org}--{name}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(REVISION)
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    return snapshot


def test_a_hub_id_loads_from_the_local_cache_offline(tmp_path, tiny_model_dir, store_dir, monkeypatch):
    snapshot = _hub_cache(tmp_path, "model", "acme/tiny-llama")
    for item in tiny_model_dir.iterdir():
        shutil.copy(item, snapshot / item.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_model("acme/tiny-llama")
    assert resolved.path == snapshot and resolved.fingerprint == f"hf:acme/tiny-llama@{REVISION}"
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(6)))
    by_id = api.score_ifd(pool, model="acme/tiny-llama")
    by_dir = api.score_ifd(pool, model=str(tiny_model_dir))
    assert by_id.config["model_fingerprint"] == f"hf:acme/tiny-llama@{REVISION}"
    for a, b in zip(by_id.rows, by_dir.rows, strict=True):
        assert a["ifd"] == pytest.approx(b["ifd"], abs=1e-6)
    with pytest.raises(ConfigError, match=r"'model'.*acme/absent is not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_model("acme/absent")


def test_a_hub_dataset_pool_loads_from_the_local_cache_offline(tmp_path, store_dir, monkeypatch):
    snapshot = _hub_cache(tmp_path, "dataset", "acme/pool")
    (snapshot / "data").mkdir()
    records = alpaca_records(7)
    (snapshot / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    pool = api.read_pool("hf:acme/pool")
    assert pool.container == "hub" and len(pool) == 7
    assert [s.instruction for s in pool.samples] == [r["instruction"] for r in records]
    assert len(api.read_pool("hf:acme/pool:train")) == 7
    with pytest.raises(InputError, match="hf:acme/pool:test"):
        api.read_pool("hf:acme/pool:test")
    with pytest.raises(ConfigError, match=r"'data'.*acme/nothing is not in the Hugging Face cache"):
        api.read_pool("hf:acme/nothing")
