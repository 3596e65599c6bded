"""Evaluation: metrics against one-at-a-time references on a tiny model, answer extraction and the pairwise
rule on hand-made cases, and the comparison protocol end to end (tiny model, tiny sets)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from tunesift.data.templates import get_template
from tunesift.eval.evaluation import metrics
from tunesift.eval.evaluation.pairwise import combine, judge_pairwise, outcome, parse_pair, winning_score
from tunesift.models.causal_lm import CausalLM
from tunesift.scorers.judge import UnparseableReply

EVAL = SHARED_DATA / "eval"


@pytest.mark.parametrize(
    ("text", "answer"),
    [("She makes 9 * 2 = $18.\n#### 18", "18"), ("So the total is 1,234 apples.", "1234"),
     ("The answer is 5.5.", "5.5"), ("It costs $20.00", "20"), ("#### -3", "-3"), ("no number here", None),
     ("First 3, then 4, so 7", "7"), ("#### 12\nQuestion: 99", "12")],
)  # fmt: skip
def test_gsm8k_answer_extraction(text, answer):
    assert metrics.extract_answer(text) == answer


def test_gsm8k_reader_strips_calculator_annotations():
    question, solution = metrics.read_gsm8k(EVAL / "gsm8k_test.jsonl", 1)[0]
    assert question.startswith("Janet") and "<<" not in solution and metrics.extract_answer(solution) == "18"


def test_pairwise_rule_on_every_combination():
    table = {("win", "win"): "win", ("win", "tie"): "win", ("tie", "win"): "win",
             ("lose", "lose"): "lose", ("lose", "tie"): "lose", ("tie", "lose"): "lose",
             ("tie", "tie"): "tie", ("win", "lose"): "tie", ("lose", "win"): "tie"}  # fmt: skip
    for (a, b), expected in table.items():
        assert combine(a, b) == expected
    assert outcome(8, 7) == "win" and outcome(7, 7) == "tie" and outcome(6, 7) == "lose"
    assert winning_score(["win", "win", "tie", "lose"]) == pytest.approx(1.25)
    assert winning_score(["lose"] * 3) == 0.0


def test_judge_pairwise_both_orders_and_unreadable_replies():
    """Scripted judge: scores depend on which answer sits where, so both orders are exercised."""
    good = {"q1": "A", "q2": "A", "q3": None, "q4": "B"}  # which model's answer the judge prefers; None: tie

    def complete(messages):
        text = messages[1]["content"]
        q = text.split("\n")[1]
        first = text.split("[The Start of Assistant 1's Answer]\n")[1].split("\n")[0]
        if q == "q5":
            return "I cannot decide.", None, False
        if good[q] is None:
            return "5 5\nequal", None, False
        return ("9 4" if first == f"answer-{good[q]}" else "4 9") + "\nreasons", None, False

    questions = ["q1", "q2", "q3", "q4", "q5"]
    result = judge_pairwise(questions, ["answer-A"] * 5, ["answer-B"] * 5, complete)
    assert result.outcomes == ["win", "win", "tie", "lose", None]
    assert result.errors[4].startswith("unparseable_reply")
    assert result.summary() == {"wins": 2, "ties": 1, "losses": 1, "unjudged": 1, "winning_score": 1.25}
    assert parse_pair("Score: 7 8\n") == (7.0, 8.0) and parse_pair("7.5, 6") == (7.5, 6.0)
    with pytest.raises(UnparseableReply):
        parse_pair("Assistant 1 is better")


@pytest.fixture
def tiny_lm(tiny_model_dir):
    return CausalLM.load(str(tiny_model_dir), device="cpu")


def test_response_loss_matches_hf_reference(tiny_lm, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = metrics.read_alpaca_eval(EVAL / "alpaca_eval_805_gpt4_1106_preview.json", 6)
    template = get_template("alpaca")
    got = metrics.response_loss(tiny_lm, pairs, template, max_length=200, batch_tokens=600)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    total, count, means = 0.0, 0, []
    for instruction, response in pairs:
        prompt = template.prompt(instruction, "")
        ids = tok(prompt + response, return_tensors="pt").input_ids[:, :200]
        labels = ids.clone()
        labels[0, : len(tok(prompt).input_ids)] = -100
        with torch.no_grad():
            loss = model(ids, labels=labels).loss.item()
        n = int((labels[0, 1:] != -100).sum())
        total, count = total + loss * n, count + n
        means.append(loss)
    assert got["tokens"] == count and got["n"] == 6
    assert got["loss"] == pytest.approx(total / count, rel=1e-5)
    assert got["loss_per_sample"] == pytest.approx(np.mean(means), rel=1e-5)


def test_mmlu_prompt_and_accuracy_against_reference(tmp_path, tiny_lm, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (tmp_path / "test").mkdir()
    (tmp_path / "dev").mkdir()
    rows = [["What is 1+1?", "1", "2", "3", "4", "B"], ["Pick C", "x", "y", "z", "w", "C"]]
    for subject in ("toy_math", "toy_logic"):
        for split in ("test", "dev"):
            with open(tmp_path / split / f"{subject}_{split}.csv", "w", newline="") as handle:
                import csv

                csv.writer(handle).writerows(rows * (3 if split == "test" else 1))
    items, dev = metrics.read_mmlu(tmp_path, n=None)
    assert len(items) == 12 and set(dev) == {"toy_math", "toy_logic"}
    prompt = metrics.mmlu_prompt(items[0], dev["toy_logic"][:1])
    assert prompt == ("The following are multiple choice questions (with answers) about toy logic.\n\n"
                      "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
                      "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:")  # fmt: skip
    got = metrics.mmlu_accuracy(tiny_lm, items, dev, shots=2, batch_tokens=400)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    letters = [tok(f"Answer: {x}").input_ids[-1] for x in "ABCD"]
    expected = []
    for item in items:
        ids = tok(metrics.mmlu_prompt(item, dev[item.subject][:2]), return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0, -1, letters]
        expected.append("ABCD"[int(torch.argmax(logits))])
    assert got["predicted"] == expected
    assert got["accuracy"] == pytest.approx(np.mean([p == i.answer for p, i in zip(expected, items, strict=True)]))
    sample, _ = metrics.read_mmlu(EVAL / "mmlu", n=300, seed=0)
    assert len(sample) == 300 and sample == metrics.read_mmlu(EVAL / "mmlu", n=300, seed=0)[0]


def test_greedy_generation_batched_equals_one_at_a_time(tiny_lm):
    prompts = ["Question: what is two plus two?\nAnswer:", "Hi", "Name three colours of the rainbow, please."]
    batched = metrics.generate(tiny_lm, prompts, max_new_tokens=6, batch_size=3)
    single = [metrics.generate(tiny_lm, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert batched == single
    # a cap on prompt + answer (Cherry's 1,024 in pairwise runs): each prompt gets what is left of 20 tokens
    capped = metrics.generate(tiny_lm, prompts, max_new_tokens=6, max_total_tokens=20, batch_size=3)
    rooms = [min(6, 20 - len(tiny_lm.encode(p))) for p in prompts]
    assert min(rooms) < 6 and max(rooms) > 0  # the cap bites on some prompt, and some prompt has room
    assert capped == [metrics.generate(tiny_lm, [p], max_new_tokens=r, batch_size=1)[0] if r > 0 else ""
                      for p, r in zip(prompts, rooms, strict=True)]  # fmt: skip


def test_eval_pairwise_cli_over_http(tmp_path, tiny_model_dir):
    """Two models answer Cherry's Vicuna questions; an endpoint judge on localhost scores both orders."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from typer.testing import CliRunner

    from tunesift.cli import app

    seen = []

    class Judge(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body["messages"][1]["content"])
            data = json.dumps({"choices": [{"message": {"content": "7 5\nAssistant 1 is better."}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), str(tiny_model_dir), "--suite", "pairwise",
                                          "--n-questions", "3", "--judge-model", "j", "--template", "plain",
                                          "--base-url", f"http://127.0.0.1:{httpd.server_address[1]}/v1"])  # fmt: skip
    finally:
        httpd.shutdown()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index('{"a"') :].splitlines()[0])
    # the judge always prefers whichever answer it sees first: a win and a loss per question, so a tie
    assert summary["n"] == 3 and summary["ties"] == 3 and summary["winning_score"] == 1.0
    assert len(seen) == 6 and seen[0].startswith("[Question]\nHow can I improve my time management skills?")


# Replies a model might write after the 8-shot chain-of-thought prompt, each labelled by hand with the number a
# reader takes as its answer (None: it gives none).
HAND_LABELLED = [
    (
        " Janet's ducks lay 16 eggs. She eats 3 and bakes 4, so 16 - 3 - 4 = 9 are left. 9 * 2 = 18. The answer is 18.",
        "18",
    ),
    (" She sells 9 eggs for $2 each, so she makes $18. The answer is $18.", "18"),
    (" The robe takes 2 bolts of blue and 1 of white, 3 in all. The answer is 3", "3"),
    (" He pays 80,000 + 50,000 = 130,000. The answer is 130,000.", "130000"),
    (" Half of 2 is 1, so 2 + 1 = 3 bolts in total.", "3"),  # no "The answer is": the last number
    (" The answer is 5.5.", "5.5"),
    (" The answer is -4.", "-4"),
    (" First 12 then 7. The answer is 7 apples, not 12.", "7"),  # the strict match wins over the last number
    (" I do not know.", None),
    (" The answer is . Well, 42", "42"),  # an empty strict match falls back
]


@pytest.mark.parametrize(("reply", "label"), HAND_LABELLED)
def test_cot_answer_matches_the_hand_label(reply, label):
    assert metrics.extract_cot_answer(reply) == label


def test_gsm8k_accuracy_on_hand_labelled_replies(monkeypatch):
    """The 8 exemplars of Wei et al. in the prompt, replies cut at the stop strings, answers scored against the
    references' #### numbers: 3 of 4 right by hand."""
    items = metrics.read_gsm8k(EVAL / "gsm8k_test.jsonl", 4)
    refs = [metrics.extract_answer(a) for _, a in items]
    assert refs == ["18", "3", "70000", "540"]
    replies = [" 16 - 3 - 4 = 9, 9 * 2 = 18. The answer is 18.", " 2 + 1 = 3. The answer is 3.",
               " He made 200,000 - 130,000 = 70,000. The answer is 70,000.",
               " 3 * 3 * 60 = 520. The answer is 520."]  # fmt: skip
    seen = {}

    def fake_generate(lm, prompts, max_new_tokens, stop=(), **kwargs):
        seen.update(prompts=prompts, stop=stop)
        return replies

    monkeypatch.setattr(metrics, "generate", fake_generate)
    got = metrics.gsm8k_accuracy(None, items)
    assert got["accuracy"] == 0.75 and got["items"] == [1, 1, 1, 0] and got["no_answer"] == 0
    prompt = seen["prompts"][0]
    assert prompt.count("Question: ") == 9 and prompt.count("The answer is") == 8
    assert prompt.startswith("Question: There are 15 trees in the grove.")
    assert "So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.\n\n" in prompt
    assert prompt.endswith(f"Question: {items[0][0]}\nAnswer:")
    assert seen["stop"] == ("Question:", "\n\n")


def test_mmlu_subject_without_dev_exemplars_is_an_error(tmp_path, tiny_lm):
    from tunesift.errors import InputError

    items, dev = metrics.read_mmlu(EVAL / "mmlu", n=5, seed=0)
    missing = items[0].subject
    dev = {k: v for k, v in dev.items() if k != missing}
    with pytest.raises(InputError, match=f"subject '{missing}' has 0 dev exemplars"):
        metrics.mmlu_accuracy(tiny_lm, items, dev, shots=5)
    assert metrics.mmlu_accuracy(tiny_lm, items, dev, shots=0)["n"] == 5  # zero-shot when asked for


def test_pairwise_prompts_use_the_input_block_and_a_judge_is_required(tmp_path):
    from tunesift.data.templates import get_template
    from tunesift.errors import ConfigError
    from tunesift.eval.evaluation.pairwise_run import make_judge, read_testset

    questions = read_testset(EVAL, "sinstruct")
    with_input = next(q for q in questions if q.input)
    prompt = get_template("alpaca").prompt(with_input.instruction, with_input.input)
    assert f"### Instruction:\n{with_input.instruction}\n\n### Input:\n{with_input.input}" in prompt
    assert with_input.for_judge() == f"{with_input.instruction}\n\n{with_input.input}"
    with pytest.raises(ConfigError, match="needs a judge"):
        make_judge(None, None, "OPENAI_API_KEY", None)


@pytest.mark.parametrize("flag", ["--n-alpaca", "--n-gsm8k", "--n-mmlu", "--n-bbh", "--n-humaneval", "--n-questions"])
def test_an_evaluation_size_below_1_is_refused_before_any_model_loads(flag, tmp_path, monkeypatch):
    """--n-mmlu 0 started evaluating; each size is one line naming its flag, and no model is loaded."""
    from typer.testing import CliRunner

    from tunesift.cli import app
    from tunesift.models import registry

    monkeypatch.setattr(registry, "resolve_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "run"), "--suite", "cpu", flag, "0"])
    assert result.exit_code == 2 and f"option '{flag.lstrip('-')}': must be at least 1" in result.output


def test_the_reasoning_suite_scores_math500_reference_solutions(tiny_lm, tiny_model_dir):
    """Issue 44: --target math500 / suite reasoning: MATH500's reference solutions' loss given the problem, the
    same measure as GSM8K's (each pair read from the file by hand)."""
    from tunesift.eval.evaluation.suite import SUITES, EvalSettings, evaluate

    path = SHARED_DATA / "reasoning" / "math500.jsonl"
    by_hand = [(r["problem"], r["solution"]) for r in map(json.loads, path.read_text().splitlines()[:4])]
    assert metrics.read_math500(path, 4) == by_hand
    settings = EvalSettings(template="plain", n_math500=4, n_gsm8k=2, n_alpaca=2, max_length=128)
    results = evaluate(str(tiny_model_dir), "reasoning", settings, lm=tiny_lm)
    assert list(SUITES["reasoning"]) == ["math500_loss", "gsm8k_loss", "alpaca_eval_loss"]
    expected = metrics.response_loss(tiny_lm, by_hand, get_template("plain"), 128, settings.batch_tokens)
    assert results["math500_loss"]["n"] == expected["n"] >= 3
    assert results["math500_loss"]["loss"] == pytest.approx(expected["loss"])


def test_advise_races_a_reasoning_pool_on_math500():
    from tunesift.errors import ConfigError
    from tunesift.eval.advise.config import AdviseConfig, check_settings, compare_config, suite_of

    config = AdviseConfig(pool="p.jsonl", budgets=[0.1], target="math500", guard="gsm8k_loss")
    assert suite_of(config) == "reasoning" and compare_config(config, {}).suite == "reasoning"
    check_settings(config)  # GSM8K's loss is measured by the reasoning suite
    with pytest.raises(ConfigError, match="guard"):
        check_settings(AdviseConfig(pool="p.jsonl", budgets=[0.1], target="math500", guard="mmlu"))


def test_reasoning_accuracy_on_hand_written_replies(monkeypatch):
    """The reasoning-gpu suite's accuracy: the problem in the template with Qwen2.5-Math's instruction as the
    system prompt, the reply's final answer (after </think>) checked by the verifier: 2 of 3 right by hand."""
    from tunesift.eval.evaluation import reasoning

    items = reasoning.read_problems(SHARED_DATA / "reasoning", "math500", 3)
    assert [a for _, a in items] == ["\\left( 3, \\frac{\\pi}{2} \\right)", "p - q", "\\frac{14}{3}"]
    assert reasoning.read_problems(SHARED_DATA / "reasoning", "amc23", 1)[0][1] == "27"  # a number as its text
    replies = ["<think>r = 3, theta = pi/2</think> So the point is $\\boxed{(3, \\frac{\\pi}{2})}$.",
               "The sum is $\\boxed{p + q}$.", "f(-2)+f(-1)+f(0) = \\boxed{\\frac{14}{3}}"]  # fmt: skip
    seen = {}

    def fake_generate(lm, prompts, max_new_tokens, **kwargs):
        seen.update(prompts=prompts, max_new_tokens=max_new_tokens)
        return replies

    monkeypatch.setattr(reasoning, "generate", fake_generate)
    template = get_template("plain")
    got = reasoning.accuracy(None, items, template, max_new_tokens=64, verifier="fallback")
    assert got["items"] == [1, 0, 1] and got["accuracy"] == pytest.approx(2 / 3) and got["verifier"] == "fallback"
    assert seen["prompts"][0] == template.prompt(items[0][0], "", (), reasoning.SYSTEM) and seen["max_new_tokens"] == 64
    pytest.importorskip("math_verify")
    assert reasoning.accuracy(None, items, template, 64, verifier="math-verify")["items"] == [1, 0, 1]


def test_the_reasoning_gpu_suite_runs_end_to_end(tiny_lm, tiny_model_dir):
    from tunesift.eval.evaluation.suite import EvalSettings, evaluate, headline

    settings = EvalSettings(template="plain", n_math500=2, n_gsm8k=2, n_alpaca=2, n_aime24=2, n_amc23=2,
                            reasoning_max_new_tokens=4, max_length=128)  # fmt: skip
    results = evaluate(str(tiny_model_dir), "reasoning-gpu", settings, lm=tiny_lm)
    for metric in ("math500_accuracy", "aime24_accuracy", "amc23_accuracy"):
        assert results[metric]["n"] == 2 and len(results[metric]["replies"]) == 2
        assert 0.0 <= headline(results)[metric] <= 1.0
