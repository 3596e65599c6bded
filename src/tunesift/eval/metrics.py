"""Evaluate a (tuned) model: held-out response loss, MMLU by answer-letter likelihood, GSM8K by greedy
generation, and the readers for the evaluation sets in ``../shared/data/eval``.

Likelihood metrics reuse the scoring backend (length batches, shared prefixes through the KV cache, the
output layer only where a token is scored), so they are cheap enough for a CPU; generation is for GPUs.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.errors import ConfigError, InputError

LETTERS = ("A", "B", "C", "D")
_CALCULATOR = re.compile(r"<<[^>]*>>")
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


# ----- evaluation sets -----


def read_alpaca_eval(path: str | Path, n: int | None = None) -> list[tuple[str, str]]:
    """(instruction, reference output) pairs of an AlpacaEval outputs file, in file order."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    return [(r["instruction"], r["output"]) for r in records[:n]]


def read_gsm8k(path: str | Path, n: int | None = None) -> list[tuple[str, str]]:
    """(question, reference solution) pairs, the calculator annotations ``<<...>>`` removed."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if n is not None and len(pairs) >= n:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                pairs.append((record["question"], _CALCULATOR.sub("", record["answer"])))
            except (json.JSONDecodeError, KeyError) as err:
                raise InputError(f"not a GSM8K record: {err}", path=path, record=number) from None
    return pairs


@dataclass(frozen=True)
class MMLUItem:
    subject: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # A-D


def _read_mmlu_csv(path: Path) -> list[MMLUItem]:
    subject = path.stem.rsplit("_", 1)[0]
    items = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle)):
            if len(row) != 6 or row[5] not in LETTERS:
                raise InputError("expected question, four choices and an answer letter", path=path, record=number)
            items.append(MMLUItem(subject, row[0], (row[1], row[2], row[3], row[4]), row[5]))
    return items


def read_mmlu(folder: str | Path, n: int | None = None, seed: int = 0) -> tuple[list[MMLUItem], dict[str, list]]:
    """``n`` test questions drawn with ``seed`` from every subject (all when None), in (subject, file) order,
    and each subject's five dev exemplars."""
    folder = Path(folder)
    tests = [item for path in sorted((folder / "test").glob("*_test.csv")) for item in _read_mmlu_csv(path)]
    if not tests:
        raise InputError("no <subject>_test.csv files", path=folder / "test")
    if n is not None and n < len(tests):
        keep = sorted(np.random.default_rng(seed).choice(len(tests), size=n, replace=False).tolist())
        tests = [tests[i] for i in keep]
    dev = {path.stem.rsplit("_", 1)[0]: _read_mmlu_csv(path) for path in sorted((folder / "dev").glob("*_dev.csv"))}
    return tests, dev


def _format_subject(subject: str) -> str:
    return " ".join(subject.split("_"))


def mmlu_prompt(item: MMLUItem, shots: Sequence[MMLUItem]) -> str:
    """Hendrycks et al.'s prompt: the subject line, k solved exemplars, the question ending in ``Answer:``."""

    def block(q: MMLUItem, with_answer: bool) -> str:
        lines = [q.question, *(f"{letter}. {choice}" for letter, choice in zip(LETTERS, q.choices, strict=True))]
        return "\n".join(lines) + "\nAnswer:" + (f" {q.answer}\n\n" if with_answer else "")

    head = f"The following are multiple choice questions (with answers) about {_format_subject(item.subject)}.\n\n"
    return head + "".join(block(s, True) for s in shots) + block(item, False)


# ----- likelihood metrics -----


def response_loss(lm: Any, pairs: Sequence[tuple[str, str]], template: Any, max_length: int = 1024,
                  token_budget: int = 4096) -> dict[str, float]:  # fmt: skip
    """Mean NLL of reference responses after the prompt (the template's): token-weighted over the set,
    and the mean of per-sample means. Pairs whose prompt fills ``max_length`` are counted as skipped."""
    from tunesift.models.causal_lm import TargetSpan

    spans = []
    skipped = 0
    for instruction, response in pairs:
        prompt = template.prompt(instruction, "")
        start = len(lm.encode(prompt))
        ids = lm.encode(prompt + response)[:max_length]
        if start >= len(ids):
            skipped += 1
            continue
        spans.append(TargetSpan(tuple(ids), start, group="eval"))
    nll = lm.target_nll(spans, token_budget)
    tokens = sum(len(x) for x in nll)
    return {
        "loss": float(sum(x.sum() for x in nll) / tokens) if tokens else math.nan,
        "loss_per_sample": float(np.mean([x.mean() for x in nll])) if nll else math.nan,
        "n": len(spans),
        "tokens": int(tokens),
        "skipped": skipped,
    }


def letter_token_ids(lm: Any) -> list[int]:
    """The token of each answer letter as it follows ``Answer:`` (a space and the letter)."""
    base = lm.tokenizer("Answer:", add_special_tokens=False)["input_ids"]
    ids = []
    for letter in LETTERS:
        full = lm.tokenizer(f"Answer: {letter}", add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ConfigError("model", f"{lm.name}: ' {letter}' is not one token after 'Answer:'")
        ids.append(full[-1])
    return ids


def mmlu_accuracy(lm: Any, items: Sequence[MMLUItem], dev: dict[str, list[MMLUItem]], shots: int = 5,
                  token_budget: int = 8192) -> dict[str, Any]:  # fmt: skip
    """Share of questions whose most likely answer letter (over A-D) is right, k-shot from the dev split;
    questions of one subject share their exemplars' KV cache."""
    from tunesift.models.causal_lm import TargetSpan

    spans = []
    for item in items:
        ids = lm.encode(mmlu_prompt(item, dev.get(item.subject, [])[:shots]))
        spans.append(TargetSpan(tuple(ids), start=len(ids), group=item.subject))
    probs = lm.next_token_probs(spans, letter_token_ids(lm), token_budget)
    predicted = [LETTERS[int(np.argmax(p))] for p in probs]
    correct = [p == item.answer for p, item in zip(predicted, items, strict=True)]
    return {"accuracy": float(np.mean(correct)) if correct else math.nan, "n": len(items),
            "predicted": predicted}  # fmt: skip


# ----- GSM8K by generation -----


def extract_answer(text: str) -> str | None:
    """The final number of a solution: after ``####`` when there is one, else the last number; commas,
    a trailing period and ``.0`` removed. None when the text has no number."""
    tail = text.split("####", 1)[1] if "####" in text else text
    numbers = _NUMBER.findall(tail)
    if not numbers:
        return None
    return normalize_number(numbers[0] if "####" in text else numbers[-1])


def normalize_number(text: str) -> str:
    text = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value == int(value) else repr(value)


def gsm8k_prompt(question: str, shots: Sequence[tuple[str, str]]) -> str:
    solved = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots)
    return f"{solved}Question: {question}\nAnswer:"


def generate(lm: Any, prompts: Sequence[str], max_new_tokens: int = 256, stop: Sequence[str] = (),
             batch_size: int = 8) -> list[str]:  # fmt: skip
    """Greedy continuations (left padding, batched), cut at the first stop string."""
    import torch

    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    outputs = []
    for begin in range(0, len(prompts), batch_size):
        encoded = [lm.encode(p) for p in prompts[begin : begin + batch_size]]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for r, e in enumerate(encoded):
            ids[r, width - len(e) :] = torch.tensor(e)
            mask[r, width - len(e) :] = 1
        with torch.inference_mode():
            out = lm.model.generate(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                                    max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)  # fmt: skip
        for row in out[:, width:]:
            text = tok.decode(row, skip_special_tokens=True)
            for s in stop:
                text = text.split(s, 1)[0]
            outputs.append(text)
    return outputs


def gsm8k_accuracy(lm: Any, items: Sequence[tuple[str, str]], shots: Sequence[tuple[str, str]],
                   max_new_tokens: int = 256) -> dict[str, Any]:  # fmt: skip
    """Exact match of the final number of a greedy few-shot solution with the reference's."""
    replies = generate(lm, [gsm8k_prompt(q, shots) for q, _ in items], max_new_tokens, stop=("\n\nQuestion:",))
    answers = [extract_answer(r) for r in replies]
    correct = [a is not None and a == extract_answer(ref) for a, (_, ref) in zip(answers, items, strict=True)]
    return {"accuracy": float(np.mean(correct)) if correct else math.nan, "n": len(items),
            "no_answer": sum(a is None for a in answers)}  # fmt: skip
