"""random, longest, kcenter and deita-style end to end, against the selectors called directly."""

from __future__ import annotations

import json

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.pools import read_pool
from tunesift.selectors.deita import deita_filter
from tunesift.selectors.kcenter import kcenter_greedy
from tunesift.selectors.random import random_select


@pytest.fixture
def pool_path(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(alpaca_records(30)))
    return path


def test_random_and_longest(tmp_path, pool_path):
    a = api.run_set_method("random", pool_path, tmp_path / "a.json", api.Budget(rate=0.2), random_state=3)
    assert a.selection.indices == random_select(30, 6, random_state=3)
    longest = api.run_set_method("longest", pool_path, tmp_path / "l.json", api.Budget(count=5))
    outputs = [len(r["output"]) for r in alpaca_records(30)]
    assert longest.selection.indices == sorted(range(30), key=lambda i: (-outputs[i], i))[:5]
    assert [r["response_chars"] for r in json.loads((tmp_path / "l.json").read_text())] == sorted(outputs)[::-1][:5]


def test_kcenter_and_deita_style(tmp_path, pool_path, tiny_model_dir, store_dir):
    from tunesift.models.minilm import MiniLMEmbedder

    embeddings = MiniLMEmbedder(device="cpu").embed_samples(read_pool(pool_path).samples)
    k = api.run_set_method("kcenter", pool_path, tmp_path / "k.json", api.Budget(count=5), random_state=1)
    assert k.selection.indices == kcenter_greedy(embeddings, 5, random_state=1)
    d = api.run_set_method("deita-style", pool_path, tmp_path / "d.json", api.Budget(count=8), tau=0.6,
                           model=str(tiny_model_dir))  # fmt: skip
    ifd = api.score_ifd(pool_path, model=str(tiny_model_dir)).values()
    assert d.selection.indices == deita_filter(ifd, embeddings, 8, tau=0.6)
    assert json.loads((tmp_path / "d.manifest.json").read_text())["rule"] == "deita-style"


def test_cli_run_random(tmp_path, pool_path):
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(
        app, ["run", "random", str(pool_path), "--count", "4", "--seed", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 4
