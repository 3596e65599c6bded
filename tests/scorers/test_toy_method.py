"""A method defined here, in the test file only, is found everywhere through the registry: it gets
``tunesift score`` and ``tunesift run`` commands, the generic Python API, and passes the conformance checks."""

from __future__ import annotations

import json

from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.options import Option
from tunesift.scorers import discover, unit_scorer_classes
from tunesift.scorers.base import Scorer


class Vowels(Scorer):
    """The share of vowels in a response: no model, so the test needs none."""

    method = "toy-vowels"
    summary = "Share of vowels in the response (a test method)."
    columns = ("vowels",)
    options = (Option("weight", float, 1.0, "Scales the share."),)

    name = "toy-vowels"
    result_fields = ("vowels", "skip_reason")

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    @classmethod
    def build(cls, pool, executor, *, weight):
        return cls(weight)

    def cache_config(self):
        return {"scorer": "toy-vowels", "weight": self.weight}

    def load_backend(self, device=None):
        return None

    def compute(self, units, backend, on_progress=None):
        rows = []
        for unit in units:
            text = unit.payload.output
            share = sum(c in "aeiou" for c in text.lower()) / len(text) if text else None
            rows.append({"vowels": None if share is None else self_weight(self, share),
                         "skip_reason": None if text else "no_response"})  # fmt: skip
        return rows


def self_weight(scorer: Vowels, share: float) -> float:
    return scorer.weight * share


def _reference(record: dict) -> float:
    text = record["output"]
    return sum(c in "aeiou" for c in text.lower()) / len(text)


def test_a_method_defined_in_a_test_is_registered_everywhere(tmp_path, store_dir):
    assert discover()["toy-vowels"] is Vowels and Vowels in unit_scorer_classes()
    records = alpaca_records(6)
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    # the generic Python API
    table = api.score("toy-vowels", pool, weight=2.0, store_dir=store_dir)
    assert [r["vowels"] for r in table.rows] == [2.0 * _reference(r) for r in records]
    # tunesift score NAME, with its declared option
    runner = CliRunner()
    scores = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["score", "toy-vowels", str(pool), "--out", str(scores), "--weight", "0.5",
                                 "--store", str(store_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in scores.read_text().splitlines()]
    assert [x["vowels"] for x in lines] == [0.5 * _reference(r) for r in records]
    # tunesift run NAME: its default recipe (the top of its column)
    out = tmp_path / "subset.json"
    result = runner.invoke(app, ["run", "toy-vowels", str(pool), "--count", "2", "--out", str(out),
                                 "--store", str(store_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    best = sorted(range(6), key=lambda i: (-_reference(records[i]), i))[:2]
    assert [r["instruction"] for r in json.loads(out.read_text())] == [records[i]["instruction"] for i in best]
    # tunesift methods lists it with its summary
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0 and "Share of vowels in the response" in result.output
    # a bad option value is refused naming the option
    result = runner.invoke(app, ["score", "toy-vowels", str(pool), "--out", str(tmp_path / "x.jsonl"),
                                 "--weight", "lots"])  # fmt: skip
    assert result.exit_code == 2 and not (tmp_path / "x.jsonl").exists()


def test_the_toy_method_passes_the_conformance_checks(tmp_path):
    import pickle

    from tunesift.data.pools import read_pool
    from tunesift.data.sample import Sample

    scorer = Vowels(2.0)
    assert pickle.loads(pickle.dumps(scorer)).cache_config() == scorer.cache_config()
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(5)))
    samples = [s for s in read_pool(pool) if isinstance(s, Sample)]
    units = [u for s in samples for u in scorer.units(s)]
    assert scorer.compute(units, None) == [r for u in units for r in scorer.compute([u], None)]
    failed = scorer.failure("ValueError: boom")
    assert failed["vowels"] is None and not scorer.cacheable(failed)
