"""The score store: durable appends, torn-line recovery, configurations kept apart."""

from __future__ import annotations

from tunesift.store import ScoreStore, config_hash


def test_append_load_and_torn_line(tmp_path):
    store = ScoreStore(tmp_path, {"scorer": "ifd", "a": 1})
    store.append([{"id": "x", "ifd": 0.5}, {"id": "y", "ifd": None}])
    with open(store.path, "ab") as handle:
        handle.write(b'{"id": "z", "if')  # a write cut by a kill
    assert store.load() == {"x": {"id": "x", "ifd": 0.5}, "y": {"id": "y", "ifd": None}}
    store.append([{"id": "z", "ifd": 0.7}])
    assert set(store.load()) == {"x", "y", "z"}


def test_configurations_do_not_mix(tmp_path):
    a = ScoreStore(tmp_path, {"scorer": "ifd", "max_length": 512})
    b = ScoreStore(tmp_path, {"scorer": "ifd", "max_length": 256})
    a.append([{"id": "x", "ifd": 0.1}])
    assert b.load() == {} and a.path != b.path
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
