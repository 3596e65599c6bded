"""Reading and writing pools, and the errors bad pools get."""

from __future__ import annotations

import json

import pytest

from tunesift.data.pools import read_pool, write_records
from tunesift.errors import InputError


def write(tmp_path, name, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_reads_json_and_jsonl_and_response_field(tmp_path):
    recs = [{"instruction": "a", "input": "x", "output": "b", "extra": 1}, {"instruction": "c", "response": "d"}]
    js = write(tmp_path, "p.json", json.dumps(recs))
    jl = write(tmp_path, "p.jsonl", "\n".join(json.dumps(r) for r in recs) + "\n\n")
    for path, fmt in ((js, "json"), (jl, "jsonl")):
        pool = read_pool(path)
        assert pool.format == fmt and len(pool) == 2
        assert pool.samples[0].input == "x" and pool.samples[0].record == recs[0]
        assert pool.samples[1].output == "d" and pool.samples[1].input == "" and pool.samples[1].index == 1


def test_round_trip_keeps_records(tmp_path):
    recs = [{"instruction": "é", "input": "", "output": "ü\n", "n": [1, 2]}]
    for name, fmt in (("o.json", "json"), ("o.jsonl", "jsonl")):
        write_records(tmp_path / name, recs, fmt)
        assert [s.record for s in read_pool(tmp_path / name).samples] == recs


BAD = [
    ("truncated.json", '[{"instruction": "a", "output": "b"}', 1, None, "not valid JSON"),
    ("truncated2.json", '[{"instruction": "a", "outp', 0, None, "not valid JSON"),
    ("notlist.json", '{"instruction": "a", "output": "b"}', None, None, "expected a JSON list"),
    ("badline.jsonl", '{"instruction": "a", "output": "b"}\n{oops\n', 1, None, "line 2 is not valid JSON"),
    ("notobj.json", '[{"instruction": "a", "output": "b"}, 3]', 1, None, "expected a JSON object"),
    ("noins.json", '[{"output": "b"}]', 0, "instruction", "missing"),
    ("noout.json", '[{"instruction": "a"}]', 0, "output", "missing"),
    ("intout.json", '[{"instruction": "a", "output": 5}]', 0, "output", "expected a string"),
    ("listinput.json", '[{"instruction": "a", "input": ["x"], "output": "b"}]', 0, "input", "expected a string"),
    ("nan.json", '[{"instruction": "a", "output": NaN}]', 0, None, "not valid JSON"),
    ("inf.jsonl", '{"instruction": "a", "output": "b", "x": Infinity}', 0, None, "not valid JSON"),
    ("empty.json", "", None, None, "file is empty"),
    ("emptylist.json", "[]", None, None, "holds no records"),
]


@pytest.mark.parametrize(("name", "text", "record", "field", "message"), BAD)
def test_bad_pools_name_file_record_and_field(tmp_path, name, text, record, field, message):
    path = write(tmp_path, name, text)
    with pytest.raises(InputError) as info:
        read_pool(path)
    err = info.value
    assert err.path == str(path) and err.record == record and err.field == field
    assert message in str(err) and str(path) in str(err) and "\n" not in str(err)


def test_non_utf8_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="not UTF-8"):
        read_pool(write(tmp_path, "bin.json", b'[{"instruction": "\xff"}]'))
    with pytest.raises(InputError, match="file not found"):
        read_pool(tmp_path / "nope.json")
