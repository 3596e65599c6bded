"""Balanced-by-source random (METHODS.md §16): the worked quotas, round robin against the closed form, the seed,
and ``run random --balance-by`` end to end."""

from __future__ import annotations

import collections
import json

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.selectors.random import balanced_quotas, balanced_select


def _round_robin_quotas(sizes, k):
    """The reference's loop: one per non-exhausted source per round, until k are taken."""
    taken = [0] * len(sizes)
    total = 0
    while total < min(k, sum(sizes)):
        for s, n in enumerate(sizes):
            if total < k and taken[s] < n:
                taken[s] += 1
                total += 1
    return taken


def test_worked_example_quotas():
    assert balanced_quotas([5, 2, 10], 11) == [5, 2, 4]
    assert balanced_quotas([5, 2, 10], 12) == [5, 2, 5]
    assert balanced_quotas([5, 2, 10], 13) == [5, 2, 6]
    assert balanced_quotas([5, 2, 10], 99) == [5, 2, 10]  # over the pool: everything
    assert balanced_quotas([3, 3, 3], 4) == [2, 1, 1]  # the left-over goes to the earliest source


def test_closed_form_equals_round_robin_on_random_sizes():
    import random

    rng = random.Random(0)
    for _ in range(300):
        sizes = [rng.randint(1, 20) for _ in range(rng.randint(1, 6))]
        k = rng.randint(1, sum(sizes) + 3)
        assert balanced_quotas(sizes, k) == _round_robin_quotas(sizes, k)


def test_seed_changes_the_members_not_the_quotas():
    sources = ["A"] * 5 + ["B"] * 2 + ["C"] * 10
    a, b, again = (balanced_select(sources, 11, random_state=s) for s in (0, 1, 0))
    assert a == again and a != b
    for chosen in (a, b):
        assert collections.Counter(sources[i] for i in chosen) == {"A": 5, "B": 2, "C": 4}
        assert len(set(chosen)) == 11


def _pool(tmp_path, field="dataset"):
    records = alpaca_records(17)
    for i, record in enumerate(records):  # sources in order of first appearance: B (2), A (5), C (10)
        record[field] = "B" if i < 2 else "A" if i < 7 else "C"
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize("field", ["dataset", "source"])
def test_run_random_balance_by_through_the_cli(tmp_path, store_dir, field):
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "random", str(_pool(tmp_path, field)), "--balance-by", "auto",
                                      "--count", "11", "--seed", "3", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert collections.Counter(r[field] for r in json.loads(out.read_text())) == {"B": 2, "A": 5, "C": 4}
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    assert manifest["steps"][-1]["select"]["balance"] == "auto"


def test_a_balance_field_no_record_has_is_one_line_exit_2(tmp_path, store_dir):
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "random", str(_pool(tmp_path)), "--balance-by", "origin",
                                      "--count", "5", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and "option 'balance-by'" in result.output and "'origin'" in result.output
    assert not out.exists()
