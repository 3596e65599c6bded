"""Math reasoning accuracy (the ``reasoning-gpu`` suite, METHODS.md §25.8): MATH500, AIME24 and AMC23 problems in the
training template with Qwen2.5-Math's instruction as the system prompt, a greedy reply, and its final answer (after
any ``</think>``) checked against the reference by the ``verified`` scorer's verifier (math-verify where installed,
else its boxed-answer fallback): 1 when equal, 0 otherwise, a reply the verifier could not decide counted as wrong
and reported (``undecided``). A CPU ranks proxies by the reference solutions' loss instead (``math500_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.data.schemas import split_trace
from tunesift.models.generate import generate

SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
#: Each set's problem and answer fields (its file: tunesift.data.evalsets.SOURCES).
SETS = {"math500": ("problem", "answer"), "aime24": ("problem", "answer"), "amc23": ("problem", "answer")}


def read_problems(folder: str | Path, name: str, n: int | None = None) -> list[tuple[str, str]]:
    """(problem, reference answer) pairs of a reasoning set in ``folder`` (``reasoning/``), in file order; a number
    (AMC's 27.0) as its text."""
    from tunesift.data.evalsets import SOURCES
    from tunesift.eval.evaluation.metrics import read_pairs

    problem, answer = SETS[name]
    file = Path(SOURCES[name].files[0]).name

    def pick(record: dict[str, Any]) -> tuple[str, str]:
        value = record[answer]
        return record[problem], value if isinstance(value, str) else f"{value:g}"

    return read_pairs(Path(folder) / file, n, pick, name)


def accuracy(lm: Any, items: Sequence[tuple[str, str]], template: Any, max_new_tokens: int = 2048,
             verifier: str = "auto") -> dict[str, Any]:  # fmt: skip
    """The share of problems whose greedy reply's final answer the verifier finds equal to the reference."""
    from tunesift.scorers.verified import Verified, fallback_verify

    scorer = Verified(verifier, workers=1)
    check = scorer.load_backend()
    prompts = [template.prompt(problem, "", (), SYSTEM) for problem, _ in items]
    replies = generate(lm, prompts, max_new_tokens)
    correct, undecided = [], 0
    for reply, (_, reference) in zip(replies, items, strict=True):
        final = split_trace(reply).final
        score = fallback_verify(reference, final) if check is fallback_verify else check(reference, final)[0]
        undecided += score is None
        correct.append(int(score == 1.0))
    return {"accuracy": float(np.mean(correct)) if correct else math.nan, "n": len(items), "undecided": undecided,
            "verifier": scorer.verifier, "items": correct, "replies": replies}  # fmt: skip
