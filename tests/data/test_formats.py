"""Every pool format, streaming reads, round trips, and the bad pools users actually have."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesift.data.pools import read_pool, write_records
from tunesift.data.sample import Sample, Turn
from tunesift.errors import InputError

SHAREGPT = {
    "id": "c1",
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello!"},
        {"from": "human", "value": "Name a colour."},
        {"from": "gpt", "value": "Blue."},
    ],
}
MESSAGES = {
    "messages": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"},
        {"role": "user", "content": "thanks"},  # no reply: kept in the record, nothing to score
    ]
}
LLAMA_FACTORY = {
    "instruction": "And then?",
    "input": "",
    "output": "The end.",
    "history": [["Tell a story.", "Once..."]],
}
ALPACA = {"instruction": "Add 2 and 2.", "input": "", "output": "4", "extra": [{"k": None}]}


def test_schemas_are_detected_and_turns_read(tmp_path):
    path = tmp_path / "mixed.jsonl"
    for record in (SHAREGPT, MESSAGES, LLAMA_FACTORY, ALPACA):
        path.write_text(json.dumps(record) + "\n")
        (sample,) = read_pool(path).samples
        assert sample.record == record
    sharegpt = read_pool(_one(tmp_path, SHAREGPT)).samples[0]
    assert sharegpt.system == "Be brief." and sharegpt.turns == (Turn("Hi", "Hello!"), Turn("Name a colour.", "Blue."))
    messages = read_pool(_one(tmp_path, MESSAGES)).samples[0]
    assert messages.turns == (Turn("2+2?", "4"), Turn("And 3+3?", "6"))
    lf = read_pool(_one(tmp_path, LLAMA_FACTORY)).samples[0]
    assert lf.turns == (Turn("Tell a story.", "Once..."), Turn("And then?", "The end."))
    assert lf.instruction == "And then?" and lf.is_conversation


def _one(tmp_path, record, name="one.json"):
    path = tmp_path / name
    path.write_text(json.dumps([record]))
    return path


def test_format_override(tmp_path):
    with pytest.raises(InputError, match="field 'instruction'"):
        read_pool(_one(tmp_path, SHAREGPT), fmt="alpaca")


@pytest.mark.parametrize("container", ["json", "jsonl", "parquet", "hf"])
def test_every_container_reads_and_writes(tmp_path, container):
    records = [ALPACA, {"instruction": "b", "input": "ctx", "output": "c", "extra": [{"k": "v"}]}]
    path = tmp_path / {"json": "p.json", "jsonl": "p.jsonl", "parquet": "p.parquet", "hf": "p_hf"}[container]
    write_records(path, records, container)
    pool = read_pool(path)
    assert pool.container == container and len(pool) == 2
    assert [s.record["instruction"] for s in pool.samples] == ["Add 2 and 2.", "b"]
    assert pool.samples[1].input == "ctx" and pool.samples[1].record["extra"] == [{"k": "v"}]


def test_records_arrow_cannot_hold_are_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="cannot be stored in Arrow"):
        write_records(tmp_path / "x.parquet", [{"a": [1, {"k": 2}]}], "parquet")


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
ALPACA_RECORDS = st.lists(
    st.fixed_dictionaries({"instruction": TEXT, "input": TEXT, "output": TEXT}), min_size=1, max_size=8
)
CONVERSATIONS = st.lists(
    st.builds(
        lambda pairs: {
            "conversations": [m for u, a in pairs for m in ({"from": "human", "value": u}, {"from": "gpt", "value": a})]
        },
        st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.one_of(ALPACA_RECORDS, CONVERSATIONS), container=st.sampled_from(["json", "jsonl", "parquet"]))
def test_any_valid_pool_round_trips_unchanged(tmp_path, records, container):
    path = tmp_path / f"rt.{container}"
    write_records(path, records, container)
    pool = read_pool(path)
    assert [s.record for s in pool.samples] == records
    assert all(isinstance(s, Sample) for s in pool.samples)


def test_reading_streams_without_growing_memory(tmp_path):
    path = tmp_path / "big.json"
    n = 60_000
    record = {"instruction": "Explain the thing in detail please.", "input": "", "output": "x" * 300}
    with open(path, "w") as handle:
        handle.write("[" + ",".join(json.dumps(record) for _ in range(n)) + "]")
    size = path.stat().st_size
    tracemalloc.start()
    pool = read_pool(path)
    count = sum(1 for _ in pool)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n == len(pool)
    assert peak < size / 10, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB pool"
