"""Pairwise judging of two models' answers, in both orders (Cherry LLM / AlpaGasus evaluation).

The judge sees the question and two answers and scores each 1-10 (the Vicuna prompt those papers use).
In each order a model wins, ties or loses by its score; the two orders combine by Cherry's rule: a win in
one order and a tie in the other is a win, opposite outcomes are a tie. The winning score is
``(wins - losses) / total + 1`` (above 1: the first model is better).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tunesift.scorers.judge import UnparseableReply

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
TEMPLATE = (
    "[Question]\n{question}\n\n[The Start of Assistant 1's Answer]\n{answer_1}\n\n[The End of Assistant 1's Answer]"
    "\n\n[The Start of Assistant 2's Answer]\n{answer_2}\n\n[The End of Assistant 2's Answer]\n\n[System]\n"
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above.\nPlease rate the helpfulness, relevance, accuracy, level of details of their "
    "responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\nPlease first output a single line containing only two values indicating the "
    "scores for Assistant 1 and 2, respectively. The two scores are separated by a space. In the subsequent line, "
    "please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that "
    "the order in which the responses were presented does not affect your judgment."
)
_PAIR = re.compile(r"^\D*?(\d+(?:\.\d+)?)\s*[,/ ]\s*(\d+(?:\.\d+)?)")

Outcome = str  # "win" | "tie" | "lose", from the first model's side


def pairwise_messages(question: str, answer_1: str, answer_2: str) -> list[dict[str, str]]:
    content = TEMPLATE.format(question=question, answer_1=answer_1, answer_2=answer_2)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]


def parse_pair(reply: str) -> tuple[float, float]:
    """The two scores on the reply's first non-empty line (each 0-10)."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    match = _PAIR.match(lines[0]) if lines else None
    if match:
        a, b = float(match.group(1)), float(match.group(2))
        if 0 <= a <= 10 and 0 <= b <= 10:
            return a, b
    raise UnparseableReply(reply)


def outcome(score_first: float, score_second: float) -> Outcome:
    return "win" if score_first > score_second else "lose" if score_first < score_second else "tie"


def combine(first_order: Outcome, second_order: Outcome) -> Outcome:
    """Cherry's rule over the two presentation orders (both outcomes from model A's side)."""
    pair = {first_order, second_order}
    if pair == {"win"} or pair == {"win", "tie"}:
        return "win"
    if pair == {"lose"} or pair == {"lose", "tie"}:
        return "lose"
    return "tie"  # tie/tie, or the orders disagree


def winning_score(outcomes: Sequence[Outcome]) -> float:
    counts = Counter(outcomes)
    return (counts["win"] - counts["lose"]) / len(outcomes) + 1.0 if outcomes else float("nan")


@dataclass
class PairwiseResult:
    outcomes: list[Outcome | None]  # None: a reply could not be read (see errors)
    errors: list[str | None]
    replies: list[tuple[str | None, str | None]]

    def summary(self) -> dict[str, float | int]:
        judged = [o for o in self.outcomes if o is not None]
        counts = Counter(judged)
        return {"wins": counts["win"], "ties": counts["tie"], "losses": counts["lose"],
                "unjudged": len(self.outcomes) - len(judged), "winning_score": winning_score(judged)}  # fmt: skip


def judge_pairwise(
    questions: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    complete: Callable[[list[dict[str, str]]], tuple[str | None, str | None, bool]],
) -> PairwiseResult:
    """Ask the judge twice per question (A first, then B first) and combine by Cherry's rule; an
    unreadable or failed reply leaves that question unjudged with the reason and the raw reply."""
    outcomes: list[Outcome | None] = []
    errors: list[str | None] = []
    replies = []
    for q, a, b in zip(questions, answers_a, answers_b, strict=True):
        first, error1, _ = complete(pairwise_messages(q, a, b))
        second, error2, _ = complete(pairwise_messages(q, b, a))
        replies.append((first, second))
        try:
            if first is None or second is None:
                raise ValueError(error1 or error2)
            s1 = parse_pair(first)
            s2 = parse_pair(second)
        except (UnparseableReply, ValueError) as err:
            outcomes.append(None)
            errors.append(f"unparseable_reply: {err}" if isinstance(err, UnparseableReply) else str(err))
            continue
        outcomes.append(combine(outcome(s1[0], s1[1]), outcome(s2[1], s2[0])))
        errors.append(None)
    return PairwiseResult(outcomes, errors, replies)
