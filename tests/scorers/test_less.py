"""LESS (METHODS.md §26): the worked example's four formulas, the checkpoint weights, what is and is not
scale-invariant, the projection, the adapters' size, the leak test, invalid rows and queries, a reference built on
peft one sample at a time, the warm-up's resume, the pool's features reused by a second query set, and reruns."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.models.lora_grads import Example, WarmupConfig, attach_lora, linear_schedule, warm_up
from tunesift.scorers.less import (
    adam_transform,
    aggregate,
    checkpoint_weights,
    normalise,
    project,
    rademacher_block,
    select_top,
    warmup_rows,
)

runner = CliRunner()

# ----- §26.13 worked example -----

W_LRS = [1.6877e-05, 1.2859e-05]
STEPS = [105, 211]
CKPT = [
    {"m": [1e-4, -2e-4, 5e-5], "v": [1e-8, 4e-8, 2.5e-9], "q": [1e-3, -1e-3, 0], "A": [1e-3, 0, -1e-3],
     "B": [5e-4, -1e-3, 5e-4]},
    {"m": [0, 1e-4, -1e-4], "v": [4e-8, 1e-8, 1e-8], "q": [2e-4, 2e-4, -4e-4], "A": [2e-4, 4e-4, -2e-4],
     "B": [-3e-4, 1e-4, 3e-4]},
]  # fmt: skip


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _score(row, formula, R=None):
    """One train row's score, written out: each checkpoint's cosine, weighted by its learning rate."""
    w = checkpoint_weights(W_LRS)
    total = 0.0
    for i, c in enumerate(CKPT):
        gamma = adam_transform(np.array(c[row]), np.array(c["m"]), np.array(c["v"]), STEPS[i], formula)
        q = np.array(c["q"])
        if R is not None:
            gamma, q = gamma @ R, q @ R
        total += w[i] * _cos(gamma, q)
    return total


def test_worked_example_weights_and_intermediate_values():
    np.testing.assert_allclose(checkpoint_weights(W_LRS), [0.567561, 0.432439], atol=1e-6)
    expected = {("A", 0): [1.311437, -0.805307, -0.473408], ("A", 1): [0.089443, 0.915811, -0.777235],
                ("B", 0): [0.984063, -1.240347, 0.841417], ("B", 1): [-0.134097, 0.707107, -0.423418]}  # fmt: skip
    for (row, i), gamma in expected.items():
        c = CKPT[i]
        got = adam_transform(np.array(c[row]), np.array(c["m"]), np.array(c["v"]), STEPS[i])
        np.testing.assert_allclose(got, gamma, atol=1e-6)


FOUR = [("less_code", 0.902780, 0.798077), ("paper", 0.871513, 0.745168), ("torch", 0.861903, 0.723798),
        ("sgd", 0.644146, 0.167510)]  # fmt: skip


@pytest.mark.parametrize(("formula", "a", "b"), FOUR)
def test_worked_example_scores_for_all_four_formulas(formula, a, b):
    assert _score("A", formula) == pytest.approx(a, abs=1e-6)
    assert _score("B", formula) == pytest.approx(b, abs=1e-6)


def test_worked_example_with_an_explicit_projection():
    R = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    assert _score("A", "less_code", R) == pytest.approx(0.912177, abs=1e-6)
    assert _score("B", "less_code", R) == pytest.approx(0.726472, abs=1e-6)


def test_worked_example_aggregation_and_selection():
    s = np.array([[0.9, 0.1, 0.4, 0.5], [0.2, 0.3, 0.6, 0.7]])
    tasks = [0, 0, 1, 1]
    overall, by_task = aggregate(s, tasks, "subtask_mean_max")
    np.testing.assert_allclose(overall, [0.5, 0.65])
    np.testing.assert_allclose(by_task, [[0.5, 0.45], [0.25, 0.65]])
    np.testing.assert_allclose(aggregate(s, tasks, "max")[0], [0.9, 0.7])
    np.testing.assert_allclose(aggregate(s, tasks, "mean")[0], [0.475, 0.45])
    # unequal task sizes, labels out of order: grouped by label, never reshaped
    np.testing.assert_allclose(aggregate(np.array([[1.0, 0.0, 0.5]]), [1, 0, 1], "subtask_mean_max")[1], [[0.0, 0.75]])
    assert select_top([0.3, 0.9, float("nan"), 0.9, 0.1], 0.5) == [1, 3]
    assert select_top([0.3, None, 0.2], 5) == [0, 2]


# ----- §26.14 tests -----


def test_checkpoint_weights_of_a_linear_schedule_tend_to_7_5_3_1():
    steps, epochs = 4000, 4
    factor = linear_schedule(steps, 0)
    means = [np.mean([factor(t) for t in range(e * steps // epochs, (e + 1) * steps // epochs)]) for e in range(4)]
    np.testing.assert_allclose(checkpoint_weights(means) * 16, [7, 5, 3, 1], atol=0.01)
    factor = linear_schedule(52, 2)  # 13 steps an epoch, 2 warm-up steps: the CPU default's two checkpoints
    # the rate logged at each step is the one after it (the Trainer logs after the scheduler's step)
    means = [np.mean([factor(t + 1) for t in range(e * 13, (e + 1) * 13)]) for e in range(2)]
    np.testing.assert_allclose(checkpoint_weights(means), [0.573, 0.427], atol=2e-3)


def test_the_query_side_is_scale_invariant_the_train_side_is_not():
    c = CKPT[0]
    m, v, q, g = (np.array(c[k]) for k in ("m", "v", "q", "A"))
    assert _cos(adam_transform(g, m, v, 105), q * 1000) == pytest.approx(_cos(adam_transform(g, m, v, 105), q))
    one, thousand = adam_transform(g, m, v, 105), adam_transform(g * 1000, m, v, 105)
    assert _cos(one, thousand) < 0.99  # the update's direction moves with the gradient's size


def test_projection_is_seeded_linear_chunk_free_and_close_to_exact_cosines():
    rng = np.random.default_rng(0)
    P, k = 10_000, 1024
    g = rng.standard_normal((40, P)).astype(np.float32)
    first = project(g, k, seed=0)
    assert np.array_equal(first, project(g, k, seed=0)) and not np.allclose(first, project(g, k, seed=1))
    np.testing.assert_allclose(project(g, k, 0, chunk=1024), first, rtol=1e-4, atol=1e-2)  # chunk: memory only
    np.testing.assert_allclose(project(g[:7], k, 0), first[:7], rtol=1e-5, atol=1e-3)  # the buffer: nothing
    np.testing.assert_allclose(project(2 * g[:1] + g[1:2], k, 0), 2 * first[:1] + first[1:2], rtol=1e-4, atol=1e-2)
    # one matrix: the rows of block b, whichever call makes them
    signs = np.concatenate([rademacher_block(0, b, k) for b in range(10)])[:P]
    np.testing.assert_allclose(first[:3], g[:3] @ signs, rtol=1e-4, atol=1e-2)
    assert set(np.unique(signs)) == {-1.0, 1.0} and abs(signs.mean()) < 0.01
    # 20 random pairs of gradients that share a direction to some degree: projected cosines near the exact ones
    base = rng.standard_normal((20, P))
    pairs = [(base[i], base[i] * 0.5 + rng.standard_normal(P)) for i in range(20)]
    a = project(np.array([p[0] for p in pairs], dtype=np.float32), k, 3)
    b = project(np.array([p[1] for p in pairs], dtype=np.float32), k, 3)
    errors = [abs(_cos(a[i], b[i]) - _cos(*pairs[i])) for i in range(20)]
    assert np.mean(errors) < 0.05 and max(errors) < 0.15


def test_normalise_names_a_row_with_no_direction():
    unit, why = normalise(np.array([[3.0, 4.0], [0.0, 0.0], [np.nan, 1.0]]))
    np.testing.assert_allclose(unit[0], [0.6, 0.8])
    assert why == [None, "zero_norm_gradient", "non_finite_gradient"]


#: The packaged models' attention shapes: SmolLM2-135M (30 layers, 576 wide, 9 heads, 3 KV) and Gemma-3-270M (18 layers,
#: 640 wide, 4 heads of 256, 1 KV); the vocabulary and MLP do not carry adapters.
SHAPES = {"smollm2": ("Llama", {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
                                "num_key_value_heads": 3}),
          "gemma3": ("Gemma3", {"hidden_size": 640, "num_hidden_layers": 18, "num_attention_heads": 4,
                                "num_key_value_heads": 1, "head_dim": 256})}  # fmt: skip


@pytest.mark.parametrize(("family", "expected"), [("smollm2", 921_600), ("gemma3", 737_280)])
def test_the_adapters_of_the_packaged_models_have_the_specified_size(family, expected):
    """Built on the meta device from the packaged models' shapes: only LoRA A and B are trainable, and they hold
    §26.5's count."""
    import transformers

    arch, shape = SHAPES[family]
    config_class = getattr(transformers, "Gemma3TextConfig" if arch == "Gemma3" else "LlamaConfig")
    model_class = getattr(transformers, f"{arch}ForCausalLM")
    with torch.device("meta"):
        model = model_class(config_class(vocab_size=64, intermediate_size=64, **shape))
        params = attach_lora(model, 8, 32.0, 0.1, seed=0)
    assert sum(p.numel() for _, p in params) == expected
    assert all(".lora_A" in n or ".lora_B" in n for n, _ in params)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [n for n, _ in params]


def _pool(tmp_path, n=70):
    records = alpaca_records(n)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    return path, records


def _score_less(pool, query, model, **options):
    options = {"template": "alpaca", "max_length": 256, "warmup_lr": 1e-3, **options}
    return api.score("less", pool, query=[query], model=str(model), **options)


def test_leak_test_a_pool_record_as_the_only_query_scores_one_and_ranks_first(tmp_path, tiny_model_dir, store_dir):
    pool, records = _pool(tmp_path)
    query = tmp_path / "q.json"
    query.write_text(json.dumps([records[17]]))
    table = _score_less(pool, query, tiny_model_dir, train_grad="sgd", proj_dim=0)
    scores = [row["less"] for row in table.rows]
    assert scores[17] == pytest.approx(1.0, abs=1e-6) and int(np.argmax(scores)) == 17
    assert all(s < 0.999 for i, s in enumerate(scores) if i != 17)
    assert table.config["checkpoints"] == [1, 2] and sum(table.config["weights"]) == pytest.approx(1.0)


def _reference_score(tiny_model_dir, states, records, query_records, epochs, weights, formula="less_code"):
    """One sample at a time on peft's LoRA and transformers' own loss (full logits, labels -100 on the prompt),
    the Adam update and the cosines written out in numpy: what the table must hold with proj_dim 0."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesift.data.templates import get_template

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = get_template("alpaca")

    def grads(state, samples):
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).float()
        model = get_peft_model(
            base,
            LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
        )
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        ours = list(state["lora"].values())
        with torch.no_grad():
            for (_, p), value in zip(named, ours, strict=True):
                p.copy_(value)
        model.eval()
        out = []
        for s in samples:
            prompt = template.prompt(s["instruction"], s.get("input", ""))
            ids = tok(prompt + s["output"] + tok.eos_token)["input_ids"][:256]
            labels = [-100] * len(tok(prompt)["input_ids"]) + ids[len(tok(prompt)["input_ids"]) :]
            model.zero_grad()
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels[: len(ids)]])).loss
            loss.backward()
            out.append(torch.cat([p.grad.reshape(-1) for _, p in named]).double().numpy())
        return out

    pool_samples, query_samples = records, query_records
    total = np.zeros(len(pool_samples))
    for e, w in zip(epochs, weights, strict=True):
        state = states[e - 1]
        m = np.concatenate([t.reshape(-1).double().numpy() for t in state["exp_avg"].values()])
        v = np.concatenate([t.reshape(-1).double().numpy() for t in state["exp_avg_sq"].values()])
        q = grads(state, query_samples)[0]
        for i, g in enumerate(grads(state, pool_samples)):
            total[i] += w * _cos(adam_transform(g, m, v, state["step"], formula), q)
    return total


def test_scores_equal_a_peft_reference_one_sample_at_a_time(tmp_path, tiny_model_dir, store_dir):
    pool, records = _pool(tmp_path)
    query = tmp_path / "q.json"
    query.write_text(json.dumps([alpaca_records(100)[90]]))
    table = _score_less(pool, query, tiny_model_dir, proj_dim=0)
    warm = sorted((store_dir.parent / "less").glob("*/epoch*.pt"))
    assert [p.name for p in warm] == ["epoch1.pt", "epoch2.pt", "epoch3.pt", "epoch4.pt"]
    states = [torch.load(p, weights_only=False) for p in warm]
    assert len(states[0]["lrs"]) == math.ceil(64 / 8) and states[1]["step"] == 16  # 64 warm-up rows, batch 8
    first = records[:12]
    expected = _reference_score(tiny_model_dir, states, first, json.loads(query.read_text()), [1, 2],
                                table.config["weights"])  # fmt: skip
    np.testing.assert_allclose([row["less"] for row in table.rows[:12]], expected, atol=2e-5)
    rows = warmup_rows(70, 0)
    assert len(rows) == 64 and rows.tolist() == sorted(set(rows.tolist())) and len(warmup_rows(2000, 0)) == 100


def test_warm_up_resumes_after_an_epoch_to_the_same_state(tiny_llama):
    """Killed after its first epoch's checkpoint was written, the warm-up goes on from that file to the same
    adapters, moments and learning rates as a run never stopped."""
    import copy
    import io

    class Killed(Exception):
        pass

    def run(saved=None, kill_after=None):
        model = copy.deepcopy(tiny_llama).float()
        params = attach_lora(model, 8, 32.0, 0.1, seed=0)
        examples = [Example(tuple(range(5 + i % 7, 25 + i % 7)), 10, False) for i in range(20)]
        files = {}

        def save(epoch, state):
            buffer = io.BytesIO()
            torch.save(state, buffer)
            files[epoch] = buffer.getvalue()
            if epoch == kill_after:
                raise Killed

        try:
            return warm_up(model, params, examples, WarmupConfig(lr=1e-3, epochs=3, batch=4), saved, save), files
        except Killed:
            return None, files

    whole, _ = run()
    _, files = run(kill_after=1)
    resumed, _ = run(saved=torch.load(io.BytesIO(files[1]), weights_only=False))
    for a, b in zip(whole[1:], resumed, strict=True):
        for key in ("lora", "exp_avg", "exp_avg_sq"):
            assert all(torch.equal(a[key][n], b[key][n]) for n in a[key]), key
        assert a["lrs"] == b["lrs"] and a["step"] == b["step"]
    name = next(iter(whole[0]["lora"]))
    assert not torch.equal(whole[0]["lora"][name], whole[2]["lora"][name])  # it trained


def test_a_second_query_set_pays_only_its_own_gradients_and_reruns_are_identical(tmp_path, tiny_model_dir, store_dir,
                                                                                 monkeypatch):  # fmt: skip
    from tunesift.scorers.less import LESSFeatures

    pool, _ = _pool(tmp_path)
    q1, q2 = tmp_path / "q1.json", tmp_path / "q2.json"
    q1.write_text(json.dumps(alpaca_records(100)[80:83]))
    q2.write_text(json.dumps(alpaca_records(100)[90:92]))
    first = _score_less(pool, q1, tiny_model_dir, proj_dim=1024)
    counted = []
    real = LESSFeatures.compute

    def count(self, units, backend, on_progress=None):
        counted.append((self.side, len(units)))
        return real(self, units, backend, on_progress)

    monkeypatch.setattr(LESSFeatures, "compute", count)
    second = _score_less(pool, q2, tiny_model_dir, proj_dim=1024)
    assert {side for side, _ in counted} == {"query"} and sum(n for _, n in counted) == 2 * 2  # 2 checkpoints
    assert [r["less"] for r in first.rows] != [r["less"] for r in second.rows]
    again = _score_less(pool, q1, tiny_model_dir, proj_dim=1024, store_dir=tmp_path / "fresh")
    assert [r["less"] for r in again.rows] == [r["less"] for r in first.rows]  # bit-identical


def test_invalid_rows_and_queries(tmp_path, tiny_model_dir, store_dir):
    pool, records = _pool(tmp_path)
    long_prompt = {"instruction": "word " * 400, "input": "", "output": "a reply"}
    records[5] = long_prompt
    pool.write_text(json.dumps(records))
    query = tmp_path / "q.json"
    query.write_text(json.dumps([long_prompt, alpaca_records(100)[95]]))
    table = _score_less(pool, query, tiny_model_dir, proj_dim=1024, max_length=160)
    from transformers import AutoTokenizer

    from tunesift.data.templates import get_template

    tok, template = AutoTokenizer.from_pretrained(tiny_model_dir), get_template("alpaca")
    fills = {i for i, r in enumerate(records)
             if len(tok(template.prompt(r["instruction"], r.get("input", "")))["input_ids"]) >= 160}  # fmt: skip
    assert 5 in fills and len(fills) < len(records) // 2
    assert {i for i, r in enumerate(table.rows) if r["less"] is None} == fills
    assert all(table.rows[i]["skip_reason"] == "no_label_tokens" for i in fills)
    assert table.config["dropped_queries"] == [{"task": "q", "record": 0, "reason": "no_label_tokens"}]
    query.write_text(json.dumps([long_prompt]))
    result = runner.invoke(
        app,
        [
            "score",
            "less",
            str(pool),
            "--query",
            str(query),
            "--model",
            str(tiny_model_dir),
            "--template",
            "alpaca",
            "--max-length",
            "160",
            "--out",
            str(tmp_path / "s.jsonl"),
        ],
    )
    assert result.exit_code == 2 and "q.json: no usable example" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--checkpoints", "5"], "within 1..4"),
    (["--checkpoints", "1,1"], "each once"),
    (["--proj-dim", "500"], "is not one of"),
    (["--adam-formula", "adam"], "is not one of"),
    (["--warmup-lr", "0"], "warmup"),
])  # fmt: skip
def test_bad_options_are_one_line_before_any_work(tmp_path, tiny_model_dir, store_dir, flags, message):
    pool, _ = _pool(tmp_path, 10)
    query = tmp_path / "q.json"
    query.write_text(json.dumps(alpaca_records(3)))
    result = runner.invoke(app, ["run", "less", str(pool), "--query", str(query), "--model", str(tiny_model_dir),
                                 "--rate", "0.5", "--out", str(tmp_path / "s.json"), *flags])  # fmt: skip
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (store_dir.parent / "less").exists()  # no warm-up was trained


def test_run_less_selects_the_top_rate_with_a_manifest(tmp_path, tiny_model_dir, store_dir):
    pool, records = _pool(tmp_path, 40)
    query = tmp_path / "q.json"
    query.write_text(json.dumps([records[3]]))
    out = tmp_path / "subset.json"
    result = runner.invoke(app, ["run", "less", str(pool), "--query", str(query), "--model", str(tiny_model_dir),
                                 "--template", "alpaca", "--train-grad", "sgd", "--proj-dim", "0", "--rate", "0.1",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    subset = json.loads(out.read_text())
    assert len(subset) == 4 and subset[0]["instruction"] == records[3]["instruction"]
    assert subset[0]["less"] == pytest.approx(1.0, abs=1e-6)
    manifest = json.loads((tmp_path / "subset.manifest.json").read_text())
    config = manifest["scorer_config"]
    assert config["method"] == "less" and config["checkpoints"] == [1, 2] and config["proj_dim"] == 0
    assert manifest["counts"]["selected"] == 4 and manifest["selected_indices"][0] == 3


def test_a_query_whose_loss_is_nan_is_dropped_not_every_score_poisoned(tmp_path, tiny_model_dir, store_dir,
                                                                       monkeypatch):  # fmt: skip
    """LESS issue #27: one NaN query made every score NaN. Here it is dropped, named with its reason, and the scores
    are those of the query set without it."""
    import tunesift.models.lora_grads as lora_grads

    pool, _ = _pool(tmp_path, 30)
    good = alpaca_records(100)[90]
    poisoned = {"instruction": "POISON " + good["instruction"], "input": "", "output": good["output"]}
    real = lora_grads.flat_grad

    marker = []  # the poisoned query's prompt ids: its gradient is reported as a non-finite loss

    def nan_for_the_poisoned(model, params, example):
        poisoned_ids = tuple(marker[0]) == example.ids[: len(marker[0])]
        return None if poisoned_ids else real(model, params, example)

    from transformers import AutoTokenizer

    from tunesift.data.templates import get_template

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    marker.append(tok(get_template("alpaca").prompt(poisoned["instruction"], ""))["input_ids"])
    monkeypatch.setattr(lora_grads, "flat_grad", nan_for_the_poisoned)
    both, alone = tmp_path / "both.json", tmp_path / "alone.json"
    both.write_text(json.dumps([good, poisoned]))
    alone.write_text(json.dumps([good]))
    with_nan = _score_less(pool, both, tiny_model_dir, proj_dim=1024)
    assert with_nan.config["dropped_queries"] == [{"task": "both", "record": 1, "reason": "non_finite_loss"}]
    without = _score_less(pool, alone, tiny_model_dir, proj_dim=1024)
    assert [r["less"] for r in with_nan.rows] == [r["less"] for r in without.rows]
    assert all(np.isfinite(r["less"]) for r in with_nan.rows)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "template"), [("smollm2-135m-instruct", "chat"), ("gemma-3-270m", "alpaca")])
def test_the_packaged_models_on_a_cpu(tmp_path, store_dir, model, template):
    """SmolLM2 has a chat template, Gemma-3-270M base none (auto takes alpaca): both warm up and score every record."""
    pool, _ = _pool(tmp_path, 12)
    query = tmp_path / "q.json"
    query.write_text(json.dumps(alpaca_records(30)[25:27]))
    table = api.score("less", pool, query=[query], model=model, proj_dim=1024)
    scores = [r["less"] for r in table.rows]
    assert all(s is not None and -1 <= s <= 1 for s in scores) and len(set(scores)) == len(scores)
    assert table.config["template"] == template and sum(table.config["weights"]) == pytest.approx(1.0)
