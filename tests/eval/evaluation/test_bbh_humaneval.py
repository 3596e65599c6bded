"""BBH and HumanEval: the items each metric reads, worked examples of answer extraction, exact match and pass@k
with hand-computed values, the loss against a one-sample-at-a-time reference, and the sandbox that runs HumanEval's
tests (passes, fails, times out, keeps off the network, the disk and memory)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from reference import reference_loss

from tunesift.data.evalsets import eval_dir
from tunesift.data.templates import get_template
from tunesift.eval.evaluation import bbh, humaneval, metrics
from tunesift.eval.evaluation.suite import EvalSettings, check_sets, evaluate, loss_inputs
from tunesift.models.causal_lm import CausalLM

EVAL = eval_dir()
BBH = EVAL / "bbh"
HUMANEVAL = EVAL / "humaneval" / "HumanEval.jsonl.gz"


# ----- BBH -----


def test_bbh_items_are_taken_in_turn_from_the_27_tasks():
    items = bbh.read_bbh(BBH, 30)
    tasks = sorted(p.stem for p in BBH.glob("*.json"))
    assert len(tasks) == 27 and len(items) == 30
    assert [i.task for i in items[:27]] == tasks and [i.task for i in items[27:]] == tasks[:3]
    first = json.loads((BBH / f"{tasks[0]}.json").read_text())["examples"]
    assert (items[0].input, items[0].target) == (first[0]["input"], first[0]["target"])
    assert (items[27].input, items[27].target) == (first[1]["input"], first[1]["target"])
    assert len(bbh.read_bbh(BBH)) == 6511  # every item when n is None (MANIFEST.md's count)


def test_bbh_cot_prompt_drops_the_canary_and_keeps_three_solved_questions():
    prompt = bbh.cot_prompt(BBH, "boolean_expressions")
    assert prompt.startswith("Evaluate the result of a random Boolean expression.\n\nQ: ")
    assert "canary" not in prompt and "-----" not in prompt
    assert prompt.count("\nQ: ") == 3 and prompt.count("A: Let's think step by step.") == 3
    assert bbh.description(prompt) == "Evaluate the result of a random Boolean expression."


def test_bbh_loss_pairs_and_generation_prompt_worked_example():
    """date_understanding item 0: the question under the description, the reference as the exemplars end."""
    item = next(i for i in bbh.read_bbh(BBH, 27) if i.task == "date_understanding")
    prompt = bbh.cot_prompt(BBH, "date_understanding")
    ((instruction, reference),) = bbh.loss_pairs([item], {"date_understanding": prompt})
    assert instruction == ("Infer the date from context.\n\nQ: Today is Christmas Eve of 1937. What is the date "
                           "tomorrow in MM/DD/YYYY?\nOptions:\n(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938\n"
                           "(D) 12/04/1937\n(E) 12/25/2006\n(F) 07/25/1937")  # fmt: skip
    assert reference == "So the answer is (B)."
    assert bbh.generation_prompt(prompt, item) == f"{prompt}\n\nQ: {item.input}\nA: Let's think step by step."


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("\nWe evaluate A = True. So the answer is False.", "False"),
        (" 12/24/1937 plus one day is 12/25/1937. So the answer is (B).", "(B)"),
        ("the answer is 12/25/1937. Then more text", "12/25/1937"),
        ("The answer is A. Wait, the answer is B.", "A"),  # the first statement, as open-instruct's search
        ("  True \n", "True"),  # no statement: the whole reply, stripped
    ],
)
def test_bbh_extraction_worked_examples(reply, expected):
    assert bbh.extract(reply) == expected


def test_bbh_accuracy_is_exact_match_hand_computed(monkeypatch):
    """Three items, replies right, wrong and right in another case: exact match gives 1, 0, 0 -> 1/3."""
    items = [bbh.BBHItem("t", "q1", "(B)"), bbh.BBHItem("t", "q2", "True"), bbh.BBHItem("t", "q3", "valid")]
    seen = {}

    def fake_generate(lm, prompts, max_new_tokens, stop=(), batch_size=8):
        seen.update(prompts=prompts, stop=stop)
        return [" So the answer is (B).", " So the answer is False.", " So the answer is Valid."]

    monkeypatch.setattr(bbh, "generate", fake_generate)
    got = bbh.accuracy(None, items, {"t": "Task.\n\nQ: x\nA: Let's think step by step.\nSo the answer is y."})
    assert got["items"] == [1, 0, 0] and got["accuracy"] == pytest.approx(1 / 3)
    assert got["predicted"] == ["(B)", "False", "Valid"]
    assert seen["prompts"][1].endswith("\n\nQ: q2\nA: Let's think step by step.") and seen["stop"] == ("\n\nQ:",)


# ----- HumanEval -----


def test_humaneval_tasks_and_the_check_program():
    tasks = humaneval.read_humaneval(HUMANEVAL)
    assert len(tasks) == 164 and tasks[0].task_id == "HumanEval/0" and tasks[0].entry_point == "has_close_elements"
    program = tasks[0].program(tasks[0].canonical_solution)
    assert program.startswith(tasks[0].prompt + tasks[0].canonical_solution)
    assert program.endswith(f"{tasks[0].test}\n\ncheck(has_close_elements)\n")
    assert humaneval.loss_pairs(tasks[:1]) == [(tasks[0].prompt, tasks[0].canonical_solution)]
    assert humaneval.Completion().prompt("def f():\n", "") == "def f():\n"  # no template around a completion


@pytest.mark.parametrize(("n", "c", "k", "expected"),
                         [(1, 1, 1, 1.0), (1, 0, 1, 0.0), (5, 2, 1, 0.4), (5, 2, 2, 0.7), (5, 4, 2, 1.0),
                          (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5))])  # fmt: skip
def test_pass_at_k_worked_examples(n, c, k, expected):
    """1 - C(n-c, k) / C(n, k): 5 samples, 2 passing: k=1 -> 2/5; k=2 -> 1 - C(3,2)/C(5,2) = 1 - 3/10."""
    assert humaneval.pass_at_k(n, c, k) == pytest.approx(expected)


def test_the_canonical_solutions_pass_and_broken_ones_do_not():
    tasks = humaneval.read_humaneval(HUMANEVAL, 6)
    got = humaneval.score_completions(tasks, [t.canonical_solution for t in tasks])
    assert got["status"] == ["passed"] * 6 and got["accuracy"] == 1.0
    wrong = ["    return None\n", "    return []\n", tasks[2].canonical_solution]
    got = humaneval.score_completions(tasks[:3], wrong)
    assert got["status"] == ["failed", "failed", "passed"] and got["accuracy"] == pytest.approx(1 / 3)


def test_the_sandbox_stops_loops_and_refuses_the_network_the_disk_and_memory(tmp_path):
    assert humaneval.run_sandboxed("print(1)\n") == "passed"
    assert humaneval.run_sandboxed("while True:\n    pass\n", timeout=1.0) == "timeout"
    assert humaneval.run_sandboxed("import time\ntime.sleep(30)\n", timeout=1.0) == "timeout"
    net = "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))\n"
    assert humaneval.run_sandboxed(net) == "failed"
    victim = tmp_path / "keep.txt"
    victim.write_text("mine")
    assert humaneval.run_sandboxed(f"import os\nos.remove({str(victim)!r})\n") == "failed"
    assert humaneval.run_sandboxed(f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n") == "failed"
    assert victim.read_text() == "mine"
    assert humaneval.run_sandboxed("x = bytearray(4 << 30)\n", memory_bytes=512 << 20) == "failed"
    assert humaneval.run_sandboxed("import subprocess\nsubprocess.run(['true'])\n") == "failed"
    assert humaneval.run_sandboxed("import os\nos.system('true')\n") == "failed"
    assert humaneval.run_sandboxed("assert 1 == 2\n") == "failed"


def test_pass1_generates_a_greedy_completion_per_task(monkeypatch):
    tasks = humaneval.read_humaneval(HUMANEVAL, 3)

    def fake_generate(lm, prompts, max_new_tokens, stop=(), batch_size=8):
        assert prompts == [t.prompt for t in tasks] and "\ndef" in stop
        return [tasks[0].canonical_solution, "    while True:\n        pass\n", "    return 0\n"]

    monkeypatch.setattr(humaneval, "generate", fake_generate)
    got = humaneval.pass1(None, tasks, timeout=1.0)
    assert got["status"] == ["passed", "timeout", "failed"] and got["items"] == [1, 0, 0]
    assert got["accuracy"] == pytest.approx(1 / 3) and got["timeouts"] == 1


# ----- the losses, on a tiny model -----


@pytest.fixture
def tiny_lm(tiny_model_dir):
    return CausalLM.load(str(tiny_model_dir), device="cpu")


@pytest.mark.parametrize("metric", ["bbh_loss", "humaneval_loss"])
def test_the_losses_match_a_one_sample_reference(metric, tiny_lm, tiny_model_dir):
    """Token-weighted mean NLL of each reference after its prompt, against a float64 forward one sample at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = EvalSettings(template="alpaca", n_bbh=4, n_humaneval=3, max_length=300)
    pairs, read_as = loss_inputs(metric, settings, get_template("alpaca"))
    got = metrics.response_loss(tiny_lm, pairs, read_as, max_length=300, batch_tokens=700)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    total, count = 0.0, 0
    for (prompt, reference), item in zip(pairs, got["items"], strict=True):
        before = read_as.prompt(prompt, "")
        loss, n = reference_loss(model, tok, before + reference, before, 300)
        if n == 0:
            assert item is None
            continue
        assert item[1] == n and item[0] == pytest.approx(loss * n, rel=1e-4)
        total, count = total + loss * n, count + n
    assert got["tokens"] == count > 0 and got["loss"] == pytest.approx(total / count, rel=1e-4)
    if metric == "humaneval_loss":  # a completion: the prompt is the code itself, no instruction around it
        assert all(read_as.prompt(p, "") == p for p, _ in pairs)


def test_response_loss_aggregates_token_weighted_hand_computed():
    """Two references of 3 and 1 tokens with NLLs [1, 2, 3] and [4]: loss 10 / 4 = 2.5, per-sample mean (2 + 4) / 2."""

    class Fixed:
        def encode(self, text):
            return list(range(len(text)))  # a token a character

        def target_nll(self, spans, batch_tokens):
            return [np.array([1.0, 2.0, 3.0]), np.array([4.0])]

    plain = humaneval.Completion()
    got = metrics.response_loss(Fixed(), [("p", "abc"), ("p", "d")], plain)
    assert got["loss"] == 2.5 and got["loss_per_sample"] == 3.0 and got["items"] == [[6.0, 3], [4.0, 1]]


def test_the_cpu_suite_evaluates_bbh_and_humaneval(tiny_model_dir):
    settings = EvalSettings(template="plain", n_alpaca=2, n_gsm8k=2, n_mmlu=2, n_bbh=3, n_humaneval=2, max_length=300)
    got = evaluate(str(tiny_model_dir), "cpu", settings, device="cpu")
    assert got["bbh_loss"]["n"] == 3 and got["humaneval_loss"]["n"] == 2
    assert all(np.isfinite([got["bbh_loss"]["loss"], got["humaneval_loss"]["loss"]]))


def test_a_humaneval_set_cut_away_by_max_length_is_refused_before_training(tok_nobos):
    from tunesift.errors import ConfigError

    settings = EvalSettings(template="plain", n_alpaca=1, n_gsm8k=1, n_mmlu=1, n_bbh=1, n_humaneval=1, max_length=150)
    with pytest.raises(ConfigError, match=r"eval.n_humaneval.*humaneval_loss: no item is left"):
        check_sets("cpu", settings, tok_nobos, get_template("plain"))


def test_the_gpu_suite_generates_for_bbh_and_humaneval_on_a_tiny_model(tiny_model_dir):
    """The generation metrics end to end (on the CPU here): every item generated for, each reply extracted and
    scored; a random tiny model's code fails its tests and is counted, never skipped."""
    settings = EvalSettings(template="plain", n_alpaca=2, n_gsm8k=1, n_mmlu=2, n_bbh=2, n_humaneval=2, max_length=300)
    got = evaluate(str(tiny_model_dir), "gpu", settings, device="cpu")
    assert got["bbh_accuracy"]["n"] == 2 and set(got["bbh_accuracy"]["items"]) <= {0, 1}
    assert len(got["bbh_accuracy"]["replies"]) == 2
    passed = got["humaneval_pass1"]
    assert passed["n"] == 2 and len(passed["status"]) == 2 and set(passed["status"]) <= {"passed", "failed", "timeout"}
    assert passed["accuracy"] == sum(passed["items"]) / 2 and passed["isolation"]
