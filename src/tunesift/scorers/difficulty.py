"""``difficulty`` (METHODS.md §25.4): an LLM rates each question 1-10 (OpenThoughts3: LLM-rated difficulty was the
best question filter for code, +6 % over random filtering at equal size).

The prompts are Sky-T1's, packaged with attribution: the AoPS grading prompt and criteria for math from NovaSky-AI's
SkyThought (``skythought/tools/util/prompts.py``, Apache-2.0), and for code the ICPC grading prompt and criteria that
OpenThoughts ships as its Sky-T1 ICPC difficulty map (``open-thoughts``, Apache-2.0), each followed by one line that
fixes the reply's form: "End with your rating as [[N]] where N is an integer from 1 to 10." Whitespace is
normalised (the originals are built with backslash continuations) and the math examples' LaTeX is kept as written
(the original, not a raw string, turns ``\\frac`` into a form feed). A reply is read in this order: a JSON object with
a numeric ``difficulty``; else the **last** ``[[x]]``; else the last ``[x]``; else null ("no_rating"); a rating
outside [1, 10] is null ("off_scale"), never clipped. An endpoint samples at temperature 0.7 (the method's); a local
model writes its reply greedily (a 1-10 scale is not one token a score, so the probability read of the 0-5 judges
does not apply).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import partial
from typing import Any

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.models.chat import EndpointSpec
from tunesift.options import Option
from tunesift.scorers.judge import ChatJudge, JudgeScorer, Rubric, UnparseableReply

VERSION = 1
TEMPERATURE = 0.7
LOW, HIGH = 1.0, 10.0
SUFFIX = "End with your rating as [[N]] where N is an integer from 1 to 10."

AOPS_CRITERIA = " ".join(
    r"""
All levels are estimated and refer to averages. The following is a rough standard based on the USA tier system AMC 8 -
AMC 10 - AMC 12 - AIME - USAMO/USAJMO - IMO, representing Middle School - Junior High - High School - Challenging High
School - Olympiad levels. Other contests can be interpolated against this.
Notes:
Multiple choice tests like AMC are rated as though they are free-response. Test-takers can use the answer choices as
hints, and so correctly answer more AMC questions than Mathcounts or AIME problems of similar difficulty.
Some Olympiads are taken in 2 sessions, with 2 similarly difficult sets of questions, numbered as one set. For these
the first half of the test (questions 1-3) is similar difficulty to the second half (questions 4-6).
Scale
1: Problems strictly for beginner, on the easiest elementary school or middle school levels (MOEMS, MATHCOUNTS
Chapter, AMC 8 1-20, AMC 10 1-10, AMC 12 1-5, and others that involve standard techniques introduced up to the middle
school level), most traditional middle/high school word problems.
2: For motivated beginners, harder questions from the previous categories (AMC 8 21-25, harder MATHCOUNTS States
questions, AMC 10 11-20, AMC 12 5-15, AIME 1-3), traditional middle/high school word problems with extremely complex
problem solving.
3: Advanced Beginner problems that require more creative thinking (harder MATHCOUNTS National questions, AMC 10 21-25,
AMC 12 15-20, AIME 4-6).
4: Intermediate-level problems (AMC 12 21-25, AIME 7-9).
5: More difficult AIME problems (10-12), simple proof-based Olympiad-style problems (early JBMO questions, easiest
USAJMO 1/4).
6: High-leveled AIME-styled questions (13-15). Introductory-leveled Olympiad-level questions (harder USAJMO 1/4 and
easier USAJMO 2/5, easier USAMO and IMO 1/4).
7: Tougher Olympiad-level questions, may require more technical knowledge (harder USAJMO 2/5 and most USAJMO 3/6,
extremely hard USAMO and IMO 1/4, easy-medium USAMO and IMO 2/5).
8: High-level Olympiad-level questions (medium-hard USAMO and IMO 2/5, easiest USAMO and IMO 3/6).
9: Expert Olympiad-level questions (average USAMO and IMO 3/6).
10: Historically hard problems, generally unsuitable for very hard competitions (such as the IMO) due to being
exceedingly tedious, long, and difficult (e.g. very few students are capable of solving on a worldwide basis).
Examples
For reference, here are problems from each of the difficulty levels 1-10:
<1: Jamie counted the number of edges of a cube, Jimmy counted the numbers of corners, and Judy counted the number of
faces. They then added the three numbers. What was the resulting sum? (2003 AMC 8, Problem 1)
1: How many integer values of $x$ satisfy $|x| < 3\pi$? (2021 Spring AMC 10B, Problem 1)
2: A fair $6$-sided die is repeatedly rolled until an odd number appears. What is the probability that every even
number appears at least once before the first occurrence of an odd number? (2021 Spring AMC 10B, Problem 18)
3: Triangle $ABC$ with $AB=50$ and $AC=10$ has area $120$. Let $D$ be the midpoint of $\overline{AB}$, and let $E$ be
the midpoint of $\overline{AC}$. The angle bisector of $\angle BAC$ intersects $\overline{DE}$ and $\overline{BC}$ at
$F$ and $G$, respectively. What is the area of quadrilateral $FDBG$? (2018 AMC 10A, Problem 24)
4: Define a sequence recursively by $x_0=5$ and\[x_{n+1}=\frac{x_n^2+5x_n+4}{x_n+6}\]for all nonnegative integers
$n.$ Let $m$ be the least positive integer such that\[x_m\leq 4+\frac{1}{2^{20}}.\]In which of the following
intervals does $m$ lie?
$\textbf{(A) } [9,26] \qquad\textbf{(B) } [27,80] \qquad\textbf{(C) } [81,242]\qquad\textbf{(D) } [243,728]
\qquad\textbf{(E) } [729,\infty)$
(2019 AMC 10B, Problem 24 and 2019 AMC 12B, Problem 22)
5: Find all triples $(a, b, c)$ of real numbers such that the following system holds:\[a+b+c=\frac{1}{a}+\frac{1}{b}+
\frac{1}{c},\]\[a^2+b^2+c^2=\frac{1}{a^2}+\frac{1}{b^2}+\frac{1}{c^2}.\](JBMO 2020/1)
6: Let $\triangle ABC$ be an acute triangle with circumcircle $\omega,$ and let $H$ be the intersection of the
altitudes of $\triangle ABC.$ Suppose the tangent to the circumcircle of $\triangle HBC$ at $H$ intersects $\omega$ at
points $X$ and $Y$ with $HA=3,HX=2,$ and $HY=6.$ The area of $\triangle ABC$ can be written in the form $m\sqrt{n},$
where $m$ and $n$ are positive integers, and $n$ is not divisible by the square of any prime. Find $m+n.$ (2020 AIME
I, Problem 15)
7: We say that a finite set $\mathcal{S}$ in the plane is balanced if, for any two different points $A$, $B$ in
$\mathcal{S}$, there is a point $C$ in $\mathcal{S}$ such that $AC=BC$. We say that $\mathcal{S}$ is centre-free if
for any three points $A$, $B$, $C$ in $\mathcal{S}$, there is no point $P$ in $\mathcal{S}$ such that $PA=PB=PC$.
Show that for all integers $n\geq 3$, there exists a balanced set consisting of $n$ points.
Determine all integers $n\geq 3$ for which there exists a balanced centre-free set consisting of $n$ points.
(IMO 2015/1)
8: For each positive integer $n$, the Bank of Cape Town issues coins of denomination $\frac1n$. Given a finite
collection of such coins (of not necessarily different denominations) with total value at most most $99+\frac{1}{2}$,
prove that it is possible to split this collection into $100$ or fewer groups, such that each group has total value
at most $1$. (IMO 2014/5)
9: Let $k$ be a positive integer and let $S$ be a finite set of odd prime numbers. Prove that there is at most one way
(up to rotation and reflection) to place the elements of $S$ around the circle such that the product of any two
neighbors is of the form $x^2+x+k$ for some positive integer $x$. (IMO 2022/3)
10: Prove that there exists a positive constant $c$ such that the following statement is true: Consider an integer
$n > 1$, and a set $\mathcal S$ of $n$ points in the plane such that the distance between any two different points in
$\mathcal S$ is at least 1. It follows that there is a line $\ell$ separating $\mathcal S$ such that the distance from
any point of $\mathcal S$ to $\ell$ is at least $cn^{-1/3}$.
(A line $\ell$ separates a set of points S if some segment joining two points in $\mathcal S$ crosses $\ell$.) (IMO
2020/6)
""".split()
)
MATH_PROMPT = (
    "You will be given a math problem. Your job is to grade the difficulty level from 1-10 according to the AoPS "
    "standard. Here is the standard: {criteria} Problem to be labeled: {problem}. Please put your estimation of the "
    "difficulty inside [[level]]. Important: You should place the difficulty from 1-10 into the [[]], not the "
    "solution of the problem."
)
ICPC_CRITERIA = " ".join(
    """
A 10-point scale for ICPC problems could be structured as follows, where level 1 represents the easiest problems and
level 10 represents the most challenging:
Level 1: Basic implementation problems requiring simple input/output handling and straightforward calculations.
Typically solvable with a single loop or basic conditional statements. Examples include summing numbers or finding
the maximum in an array.
Level 2: Problems involving basic data structures like arrays and strings, requiring simple algorithms like linear
search or basic sorting. May include simple mathematical concepts like prime numbers or basic geometry.
Level 3: Problems requiring knowledge of standard algorithms like binary search, complete sorting algorithms, or basic
graph traversal (DFS/BFS). May include simple dynamic programming problems with clear state transitions.
Level 4: Problems combining multiple basic concepts, requiring careful implementation and moderate optimization.
Includes medium-difficulty dynamic programming problems and basic graph algorithms like shortest paths.
Level 5: Problems requiring solid understanding of data structures like segment trees, binary indexed trees, or
disjoint set unions. May include more complex graph algorithms like minimum spanning trees or network flow basics.
Level 6: Advanced dynamic programming problems with non-obvious state representations. Problems requiring combination
of multiple algorithms or data structures. May include basic game theory or basic number theory concepts.
Level 7: Problems requiring advanced algorithmic knowledge like heavy-light decomposition, suffix arrays, or advanced
geometric algorithms. Includes complex optimization problems and harder network flow applications.
Level 8: Problems requiring deep mathematical insights combined with complex algorithmic implementations. May include
advanced number theory, complex geometric algorithms, or problems requiring multiple non-obvious observations.
Level 9: Problems requiring extensive knowledge of advanced algorithms and mathematical concepts, often needing
multiple key insights to solve. May include advanced string algorithms like suffix automata, or complex mathematical
optimizations.
Level 10: The most challenging problems, often requiring novel approaches or insights not covered in standard
competitive programming material. These problems might combine multiple advanced concepts in non-obvious ways,
require complex proofs for correctness, or need highly optimized implementations to meet strict time limits.
This scale corresponds roughly to the difficulty progression you might see from early regional contests (levels 1-4)
through regional finals (levels 4-7) to world finals problems (levels 7-10).
""".split()
)
CODE_PROMPT = (
    "You will be given a code problem. Your job is to grade the difficulty level from 1-10 according to the ICPC "
    "standard. Here is the standard: {criteria} Problem to be labeled: {problem}."
)
CODE_SYSTEM = "You are a code problem difficulty labeler."
DOMAINS = {"math": (None, MATH_PROMPT, AOPS_CRITERIA), "code": (CODE_SYSTEM, CODE_PROMPT, ICPC_CRITERIA)}

_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
_DOUBLE = re.compile(r"\[\[" + _NUMBER + r"\]\]")
_SINGLE = re.compile(r"\[" + _NUMBER + r"\]")
_OBJECT = re.compile(r"\{[^{}]*\}")


def parse_difficulty(reply: str) -> float:
    """§25.4's parse: a JSON object with a numeric ``difficulty``, else the last ``[[x]]``, else the last ``[x]``;
    :class:`UnparseableReply` when none is there or the rating is outside [1, 10]."""
    value = None
    for text in (reply.strip(), *reversed(_OBJECT.findall(reply))):
        try:
            found = json.loads(text)
        except ValueError:
            continue
        rating = found.get("difficulty") if isinstance(found, dict) else None
        if isinstance(rating, int | float) and not isinstance(rating, bool):
            value = float(rating)
            break
    if value is None:
        matches = _DOUBLE.findall(reply) or _SINGLE.findall(reply)
        if not matches:
            raise UnparseableReply(reply, "no_rating")
        value = float(matches[-1])
    if not LOW <= value <= HIGH:
        raise UnparseableReply(reply, f"off_scale: {value:g}")
    return value


def difficulty_messages(domain: str, sample: Sample) -> list[dict[str, str]]:
    """The rating request for one question (its instruction, and its input on the next line when it has one)."""
    system, prompt, criteria = DOMAINS[domain]
    problem = f"{sample.instruction}\n{sample.input}" if sample.input else sample.instruction
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": prompt.format(criteria=criteria, problem=problem) + "\n" + SUFFIX}]


def _rubric(domain: str) -> Rubric:
    """A partial, not a lambda: a scorer is pickled to Ray's workers."""
    return Rubric("difficulty", tuple(range(1, 11)), partial(difficulty_messages, domain), parse_difficulty, (), ())


class Difficulty(JudgeScorer):
    """An LLM's 1-10 difficulty rating of each question (Sky-T1's AoPS prompt for math, ICPC for code)."""

    method = "difficulty"
    summary = (
        "Difficulty (reasoning pools): an LLM rates each question 1-10 with Sky-T1's AoPS (math) or ICPC (code) "
        "prompt; unreadable or off-scale replies are null with the raw reply kept."
    )
    columns = ("difficulty",)
    subset_columns = ("difficulty", "judge_reply")
    default_rule = "top"
    needs_response = False  # a pool of questions alone
    options = (
        Option("domain", str, "math", "Which prompt: math (AoPS scale) or code (ICPC scale)."),
        Option("max_tokens", int, 512, "Longest reply the rater writes (its reasoning, then [[N]]).", at_least=1),
        *JudgeScorer.method_options,
    )  # fmt: skip

    name = "difficulty"
    result_fields = ("difficulty", "judge_reply", "probs", "skip_reason", "transient")
    version = VERSION

    def __init__(self, judge: Any, domain: str = "math", max_tokens: int = 512, batch_tokens: int = 4096,
                 chunk_size: int | None = None) -> None:  # fmt: skip
        if domain not in DOMAINS:
            raise ConfigError("domain", f"choose one of {', '.join(DOMAINS)}, got {domain!r}")
        self.domain = domain
        self.max_tokens = max_tokens
        self.rubric = _rubric(domain)
        system, prompt, criteria = DOMAINS[domain]
        text = f"{system}\n{prompt}\n{criteria}\n{SUFFIX}"
        self.prompt_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if isinstance(judge, EndpointSpec):
            from dataclasses import replace

            judge = replace(judge, temperature=TEMPERATURE)
        super().__init__(judge, batch_tokens, chunk_size)

    @classmethod
    def build(cls, pool: Any, executor: Any, *, domain: str, max_tokens: int, model: Any, batch_tokens: int,
              chunk_size: int | None, **where: Any) -> Difficulty:  # fmt: skip
        from tunesift.models.chat import chat_ref

        return cls(chat_ref(model, executor, **where), domain, max_tokens, batch_tokens, chunk_size)

    def cache_config(self) -> dict[str, Any]:
        config = super().cache_config()
        if isinstance(self.judge, EndpointSpec):
            config.update(self.judge.client(self.max_tokens).describe())
        return {**config, "domain": self.domain, "max_tokens": self.max_tokens}

    def check_ready(self) -> None:
        if isinstance(self.judge, EndpointSpec):
            self.judge.client(self.max_tokens).probe()

    def load_backend(self, device: str | None = None) -> Any:
        if isinstance(self.judge, EndpointSpec):
            return ChatJudge(self.judge.client(self.max_tokens), self.rubric)
        from tunesift.models.backend import load_lm
        from tunesift.models.chat import LocalChat

        return ChatJudge(LocalChat(load_lm(self.judge, device), self.max_tokens), self.rubric)

    def describe(self) -> str:
        return f"difficulty ({self.domain})"
