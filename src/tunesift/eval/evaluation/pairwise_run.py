"""Pairwise comparison of two tuned models on one of Cherry's test sets: generate both models' answers
(greedy), then judge them in both orders (:mod:`tunesift.eval.evaluation.pairwise`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift.atomic import atomic_open
from tunesift.errors import ConfigError, InputError

TESTSETS = {  # file, field holding the question
    "vicuna": ("vicuna_test_set.jsonl", "text"),
    "koala": ("koala_test_set.jsonl", "prompt"),
    "wizardlm": ("wizardlm_test_set.jsonl", "Instruction"),
    "sinstruct": ("sinstruct_test_set.jsonl", "instruction"),
    "lima": ("lima_test_set.jsonl", "conversations"),
}


@dataclass(frozen=True)
class Question:
    """One test question: what the tuned model is prompted with (instruction and input, in the template it
    was trained with) and what the judge reads (the two joined)."""

    instruction: str
    input: str = ""

    def for_judge(self) -> str:
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction


# Cherry's generation budget: prompt and answer together at most 1,024 tokens.
MAX_TOTAL_TOKENS = 1024


def read_testset(folder: Path, name: str, n: int | None = None) -> list[Question]:
    if name not in TESTSETS:
        raise ConfigError("testset", f"unknown test set {name!r}; choose one of {', '.join(TESTSETS)}")
    file, key = TESTSETS[name]
    path = folder / "cherry_testsets" / file
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        record = json.loads(line)
        if key not in record:
            raise InputError("missing", path=path, record=number, field=key)
        text = record[key]
        extra = (record.get("instances") or [{}])[0].get("input", "") if name == "sinstruct" else ""
        questions.append(Question(text if isinstance(text, str) else str(text), extra or ""))
    return questions[:n]


def answers(run_or_model: str, questions: list[Question], template: str, device: str | None,
            max_total_tokens: int = MAX_TOTAL_TOKENS, cache: Path | None = None) -> list[str]:  # fmt: skip
    """Greedy answers of one model, prompt + answer within ``max_total_tokens``; kept in ``cache`` (a file
    named by everything they depend on) so a model meets several opponents with one generation."""
    from tunesift.data.templates import get_template
    from tunesift.eval.evaluation.suite import model_path
    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.generate import generate

    if cache is not None and cache.exists():
        return json.loads(cache.read_text(encoding="utf-8"))["answers"]
    lm = CausalLM.load(model_path(run_or_model), device=device)
    tmpl = get_template(template, lm.tokenizer)
    prompts = [tmpl.prompt(q.instruction, q.input) for q in questions]
    replies = [a.strip() for a in generate(lm, prompts, max_total_tokens, max_total_tokens=max_total_tokens)]
    if cache is not None:
        with atomic_open(cache) as handle:
            json.dump({"model": lm.name, "fingerprint": lm.fingerprint, "answers": replies}, handle)
    return replies


def make_judge(judge_model: str | None, base_url: str | None, api_key_env: str, device: str | None) -> Any:
    """The pairwise judge: an endpoint (``base_url`` and the model it serves) or a local model named
    explicitly; there is no default, since a 135M model is no judge of answers."""
    from tunesift.models.chat import EndpointChat, LocalChat

    if not judge_model:
        raise ConfigError("judge-model", "pairwise judging needs a judge: --base-url URL --judge-model SERVED_NAME, "
                          "or --judge-model LOCAL_MODEL")  # fmt: skip
    if base_url:
        return EndpointChat(base_url, judge_model, api_key_env=api_key_env)
    from tunesift.models.causal_lm import CausalLM

    return LocalChat(CausalLM.load(judge_model, device=device))


def run_pairwise(
    run_a: str,
    run_b: str,
    *,
    testset: str = "vicuna",
    n: int | None = None,
    judge_model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    data_dir: Path | None = None,
    device: str | None = None,
    template: str = "alpaca",
    cache_a: Path | None = None,
    cache_b: Path | None = None,
) -> dict[str, Any]:
    """Winning score of ``run_a`` over ``run_b`` (> 1: A is better) with its win/tie/loss counts and
    shares; ``cache_a``/``cache_b`` keep each model's answers."""
    from tunesift.data.evalsets import SOURCES, eval_dir, set_folder
    from tunesift.eval.evaluation.pairwise import judge_pairwise

    judge = make_judge(judge_model, base_url, api_key_env, device)
    folder = set_folder(testset, data_dir, "testset") if testset in SOURCES else eval_dir(data_dir)
    questions = read_testset(folder, testset, n)
    a = answers(run_a, questions, template, device, cache=cache_a)
    b = answers(run_b, questions, template, device, cache=cache_b)
    result = judge_pairwise([q.for_judge() for q in questions], a, b, judge.complete)
    summary = result.summary()
    judged = summary["wins"] + summary["ties"] + summary["losses"]
    shares = {f"{k}_share": (summary[k] / judged if judged else float("nan")) for k in ("wins", "ties", "losses")}
    return {"a": run_a, "b": run_b, "testset": testset, "n": len(questions), **summary, **shares,
            "errors": [e for e in result.errors if e]}  # fmt: skip
