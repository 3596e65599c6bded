"""Pairwise comparison of two tuned models on one of Cherry's test sets: generate both models' answers
(greedy), then judge them in both orders (:mod:`tunesift.eval.pairwise`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError, InputError

TESTSETS = {  # file, field holding the question
    "vicuna": ("vicuna_test_set.jsonl", "text"),
    "koala": ("koala_test_set.jsonl", "prompt"),
    "wizardlm": ("wizardlm_test_set.jsonl", "Instruction"),
    "sinstruct": ("sinstruct_test_set.jsonl", "instruction"),
    "lima": ("lima_test_set.jsonl", "conversations"),
}


def read_testset(folder: Path, name: str, n: int | None = None) -> list[str]:
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
        if name == "sinstruct" and record.get("instances"):
            extra = record["instances"][0].get("input", "")
            text = f"{text}\n\n{extra}" if extra else text
        questions.append(text if isinstance(text, str) else str(text))
    return questions[:n]


def answers(run_or_model: str, questions: list[str], template: str, device: str | None,
            max_new_tokens: int = 256) -> list[str]:  # fmt: skip
    from tunesift.data.templates import get_template
    from tunesift.eval.metrics import generate
    from tunesift.eval.suite import model_path
    from tunesift.models.causal_lm import CausalLM

    lm = CausalLM.load(model_path(run_or_model), device=device)
    tmpl = get_template(template, lm.tokenizer)
    return [a.strip() for a in generate(lm, [tmpl.prompt(q, "") for q in questions], max_new_tokens)]


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
) -> dict[str, Any]:
    """Winning score of ``run_a`` over ``run_b`` (> 1: A is better) with its win/tie/loss counts."""
    from tunesift.eval.pairwise import judge_pairwise
    from tunesift.eval.suite import default_eval_dir
    from tunesift.scorers.judge import EndpointJudge, LocalChat

    folder = Path(data_dir) if data_dir else default_eval_dir()
    questions = read_testset(folder, testset, n)
    a = answers(run_a, questions, template, device)
    b = answers(run_b, questions, template, device)
    if base_url:
        if not judge_model:
            raise ConfigError("model", "an endpoint judge needs the model name the server serves")
        judge: Any = EndpointJudge(base_url, judge_model, api_key_env=api_key_env)
    else:
        from tunesift.models.causal_lm import CausalLM

        judge = LocalChat(CausalLM.load(judge_model or "smollm2-135m-instruct", device=device))
    result = judge_pairwise(questions, a, b, judge.complete)
    return {"a": run_a, "b": run_b, "testset": testset, "n": len(questions), **result.summary(),
            "errors": [e for e in result.errors if e]}  # fmt: skip
