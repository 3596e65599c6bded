"""BIG-Bench Hard (Suzgun et al., 2022): 27 tasks, each with its 3-shot chain-of-thought prompt.

``bbh_loss`` (the CPU suite): the loss of each reference answer, stated as the chain-of-thought exemplars end
("So the answer is (B)."), after the task's description and the question in the instruction template, as the other
loss metrics read their references: small proxies rank models more reliably by such losses than by what they
generate. ``bbh_accuracy`` (the GPU suite): exact match of the answer of a greedy 3-shot chain-of-thought reply, the
paper's protocol as open-instruct's ``eval/bbh/run_eval.py`` runs it: the task's prompt, ``Q: {input}``, ``A: Let's
think step by step.``; the reply ends where the model starts the next question; the prediction is what follows the
first "the answer is" up to the next period, else the whole reply stripped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.errors import InputError
from tunesift.models.generate import generate

COT_START = "A: Let's think step by step."
STOP = ("\n\nQ:",)
_ANSWER = re.compile(r"[tT]he answer is (.*?)\.")


@dataclass(frozen=True)
class BBHItem:
    task: str
    input: str
    target: str


def read_bbh(folder: str | Path, n: int | None = None) -> list[BBHItem]:
    """``n`` items taken in turn from the 27 tasks (sorted by name, each in file order), so any ``n`` covers the
    tasks evenly; all when None."""
    tasks = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
            tasks.append([BBHItem(path.stem, e["input"], e["target"]) for e in examples])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"not a BBH task file: {err}", path=path) from None
    if not tasks:
        raise InputError("no BBH task files (<task>.json)", path=folder)
    turns = [task[i] for i in range(max(map(len, tasks))) for task in tasks if i < len(task)]
    return turns[:n]


def cot_prompt(folder: str | Path, task: str) -> str:
    """The task's 3-shot chain-of-thought prompt: its description and three solved questions (the canary line and
    the ``-----`` under it removed, as open-instruct reads them)."""
    path = Path(folder) / "cot-prompts" / f"{task}.txt"
    if not path.exists():
        raise InputError(f"no chain-of-thought prompt for task {task!r}", path=path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[2:]).strip()


def cot_prompts(folder: str | Path, items: Sequence[BBHItem]) -> dict[str, str]:
    """The chain-of-thought prompt of every task among ``items``, read once a task."""
    return {task: cot_prompt(folder, task) for task in {i.task for i in items}}


def description(prompt: str) -> str:
    """The task's one-paragraph description: the prompt's text before its first exemplar."""
    return prompt.split("\n\nQ:", 1)[0].strip()


def loss_pairs(items: Sequence[BBHItem], prompts: dict[str, str]) -> list[tuple[str, str]]:
    """(instruction, reference) for ``bbh_loss``: the task's description and the question; the answer sentence."""
    return [(f"{description(prompts[i.task])}\n\nQ: {i.input}", f"So the answer is {i.target}.") for i in items]


def generation_prompt(prompt: str, item: BBHItem) -> str:
    return f"{prompt}\n\nQ: {item.input}\n{COT_START}"


def extract(reply: str) -> str:
    """The prediction of a reply: after the first "the answer is" up to its period, else the whole reply."""
    found = _ANSWER.search(reply)
    return found.group(1).strip() if found else reply.strip()


def accuracy(lm: Any, items: Sequence[BBHItem], prompts: dict[str, str], max_new_tokens: int = 256,
             batch_size: int = 8) -> dict[str, Any]:  # fmt: skip
    """Exact match of each greedy 3-shot chain-of-thought reply's prediction with the target."""
    replies = generate(lm, [generation_prompt(prompts[i.task], i) for i in items], max_new_tokens, stop=STOP,
                       batch_size=batch_size)  # fmt: skip
    predicted = [extract(r) for r in replies]
    correct = [int(p == i.target) for p, i in zip(predicted, items, strict=True)]
    return {"accuracy": float(np.mean(correct)) if correct else math.nan, "n": len(items), "items": correct,
            "predicted": predicted, "replies": replies}  # fmt: skip
