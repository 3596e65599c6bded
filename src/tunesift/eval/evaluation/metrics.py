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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.errors import ConfigError, InputError
from tunesift.models.generate import generate

LETTERS = ("A", "B", "C", "D")
_CALCULATOR = re.compile(r"<<[^>]*>>")
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


# ----- evaluation sets -----


def read_alpaca_eval(path: str | Path, n: int | None = None) -> list[tuple[str, str]]:
    """(instruction, reference output) pairs of an AlpacaEval outputs file, in file order."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    return [(r["instruction"], r["output"]) for r in records[:n]]


def read_pairs(path: str | Path, n: int | None, pick: Callable[[dict[str, Any]], tuple[str, str]],
               what: str) -> list[tuple[str, str]]:  # fmt: skip
    """The first ``n`` (prompt, reference) pairs ``pick`` takes from the records of a JSONL file; a record without
    the fields is an error naming the file and line."""
    from tunesift.data.evalsets import jsonl_records

    pairs: list[tuple[str, str]] = []
    for number, record in jsonl_records(Path(path)):
        if n is not None and len(pairs) >= n:
            break
        try:
            pairs.append(pick(record))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"not a {what} record: {err!r}", path=path, record=number) from None
    return pairs


def read_gsm8k(path: str | Path, n: int | None = None) -> list[tuple[str, str]]:
    """(question, reference solution) pairs, the calculator annotations ``<<...>>`` removed."""
    return read_pairs(path, n, lambda r: (r["question"], _CALCULATOR.sub("", r["answer"])), "GSM8K")


def read_math500(path: str | Path, n: int | None = None) -> list[tuple[str, str]]:
    """(problem, reference solution) pairs of MATH500, in file order: the solution ends in its ``\\boxed{}`` answer,
    the form a reasoning selection should make more likely (METHODS.md §25.8)."""
    return read_pairs(path, n, lambda r: (r["problem"], r["solution"]), "MATH500")


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
                  batch_tokens: int = 4096) -> dict[str, Any]:  # fmt: skip
    """Mean NLL of reference responses after the prompt (the template's): token-weighted over the set,
    and the mean of per-sample means. Pairs whose prompt fills ``max_length`` are counted as skipped.
    ``items`` keeps each pair's (summed NLL, tokens), null when skipped, in the order of ``pairs``: what a
    paired comparison of two models resamples."""
    from tunesift.models.causal_lm import TargetSpan

    spans = []
    kept = []
    for number, (instruction, response) in enumerate(pairs):
        prompt = template.prompt(instruction, "")
        start = len(lm.encode(prompt))
        ids = lm.encode(prompt + response)[:max_length]
        if start >= len(ids):
            continue
        spans.append(TargetSpan(tuple(ids), start, group="eval"))
        kept.append(number)
    nll = lm.target_nll(spans, batch_tokens)
    tokens = sum(len(x) for x in nll)
    items: list[list[float] | None] = [None] * len(pairs)
    for number, x in zip(kept, nll, strict=True):
        items[number] = [float(x.sum()), len(x)]
    return {
        "loss": float(sum(x.sum() for x in nll) / tokens) if tokens else math.nan,
        "loss_per_sample": float(np.mean([x.mean() for x in nll])) if nll else math.nan,
        "n": len(spans),
        "tokens": int(tokens),
        "skipped": len(pairs) - len(spans),
        "items": items,
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
                  batch_tokens: int = 8192) -> dict[str, Any]:  # fmt: skip
    """Share of questions whose most likely answer letter (over A-D) is right, k-shot from the dev split;
    questions of one subject share their exemplars' KV cache."""
    from tunesift.models.causal_lm import TargetSpan

    if shots > 0:
        for subject in sorted({item.subject for item in items}):
            have = len(dev.get(subject, []))
            if have < shots:
                raise InputError(f"subject {subject!r} has {have} dev exemplars; {shots}-shot needs {shots} "
                                 f"(dev/{subject}_dev.csv): a silent zero-shot would not be MMLU")  # fmt: skip
    spans = []
    for item in items:
        ids = lm.encode(mmlu_prompt(item, dev[item.subject][:shots] if shots else []))
        spans.append(TargetSpan(tuple(ids), start=len(ids), group=item.subject))
    probs = lm.next_token_probs(spans, letter_token_ids(lm), batch_tokens)
    predicted = [LETTERS[int(np.argmax(p))] for p in probs]
    correct = [p == item.answer for p, item in zip(predicted, items, strict=True)]
    return {"accuracy": float(np.mean(correct)) if correct else math.nan, "n": len(items),
            "predicted": predicted, "items": [int(c) for c in correct]}  # fmt: skip


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


# Wei et al. (2022), Table 20: the eight chain-of-thought exemplars of lm-evaluation-harness' gsm8k-cot.
COT_EXEMPLARS: tuple[tuple[str, str], ...] = (
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
     "there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
     "been 21 - 15 = 6. The answer is 6."),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
     "they had 74 - 35 = 39. The answer is 39."),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did "
     "Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. "
     "The answer is 8."),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have "
     "now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. "
     "The answer is 9."),
    ("There were nine computers in the server room. Five more computers were installed each day, from monday to "
     "thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
     "computers were added. 9 + 20 is 29. The answer is 29."),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf "
     "balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, "
     "he had 35 - 2 = 33 golf balls. The answer is 33."),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8. The answer is 8."),
)  # fmt: skip
# A reply ends where the model starts the next question or leaves a blank line (gsm8k-cot's stop strings).
COT_STOP = ("Question:", "\n\n")
_ANSWER_IS = re.compile(r"The answer is (-?[$0-9.,]+)")


def gsm8k_prompt(question: str, shots: Sequence[tuple[str, str]] = COT_EXEMPLARS) -> str:
    solved = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots)
    return f"{solved}Question: {question}\nAnswer:"


def extract_cot_answer(reply: str) -> str | None:
    """The number after "The answer is" (gsm8k-cot's strict match), else the reply's last number (its
    flexible fallback); None when the reply holds no number."""
    match = _ANSWER_IS.search(reply)
    if match:
        number = normalize_number(match.group(1))
        try:
            float(number)
            return number
        except ValueError:
            pass  # "The answer is ." and the like: fall back to the last number
    numbers = _NUMBER.findall(reply)
    return normalize_number(numbers[-1]) if numbers else None


def gsm8k_accuracy(lm: Any, items: Sequence[tuple[str, str]], shots: int = 8,
                   max_new_tokens: int = 256) -> dict[str, Any]:  # fmt: skip
    """Exact match of a greedy 8-shot chain-of-thought reply's answer with the reference's final number."""
    if not 0 <= shots <= len(COT_EXEMPLARS):
        raise ConfigError("gsm8k_shots", f"0-{len(COT_EXEMPLARS)} chain-of-thought exemplars, got {shots}")
    prompts = [gsm8k_prompt(q, COT_EXEMPLARS[:shots]) for q, _ in items]
    replies = generate(lm, prompts, max_new_tokens, stop=COT_STOP)
    answers = [extract_cot_answer(r) for r in replies]
    correct = [a is not None and a == extract_answer(ref) for a, (_, ref) in zip(answers, items, strict=True)]
    return {"accuracy": float(np.mean(correct)) if correct else math.nan, "n": len(items),
            "no_answer": sum(a is None for a in answers), "items": [int(c) for c in correct],
            "replies": replies}  # fmt: skip
