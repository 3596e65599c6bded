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


import pytest  # noqa: E402

from tunesift.scorers.judge import AlpaGasus  # noqa: E402


@pytest.mark.parametrize(
    "failure",
    [
        {"ifd": None, "skip_reason": "error: RuntimeError: CUDA out of memory", "error": True},  # an exception
        {"alpagasus": None, "skip_reason": "request_failed: HTTP 503 after 5 attempts", "transient": True},
        {"alpagasus": None, "skip_reason": "request_failed: HTTP 400 (not retried)", "transient": False},
        {"alpagasus": None, "skip_reason": "bad_response: not JSON: '<html>'", "transient": False},  # N2
        {"alpagasus": None, "skip_reason": "bad_response: not a chat completion: {}", "transient": False},
        {"alpagasus": None, "judge_reply": "Looks fine.", "skip_reason": "unparseable_reply"},
        {"alpagasus": None, "judge_reply": "3/10", "skip_reason": "other_scale: 3/10"},
        {"tags": None, "tag_reply": "no json here", "skip_reason": "unparseable_reply"},
        {"ifd": None, "skip_reason": "too_long: 600 tokens > 512"},
        {"vec": None, "skip_reason": "empty_text"},
    ],
    ids=["exception", "transient", "refused", "not-json", "not-a-completion", "unparseable", "other-scale",
         "tags-unparseable", "too-long", "empty"],
)  # fmt: skip
def test_the_store_refuses_every_kind_of_failure(tmp_path, failure):
    """Whoever hands it the row (an executor, a shard merge, a scorer's own code), the store keeps only results:
    a row that stands in place of a value is refused, so the next run asks for it again."""
    store = ScoreStore(tmp_path, {"scorer": "s"})
    assert store.append([{"id": "bad", **failure}, {"id": "good", "ifd": 0.5, "skip_reason": None}]) == 1
    store.write_shard("b1", [{"id": "bad2", **failure}])
    assert store.merge_shards() == 0
    assert set(store.load()) == {"good"}
    assert not AlpaGasus.cacheable(None, failure)  # the scorers' view is the store's rule
