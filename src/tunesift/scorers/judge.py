"""AlpaGasus: an LLM rates each response's accuracy 0-5, the number first (METHODS.md §4).

Two judges behind one result type:

* :class:`ChatJudge`: the rubric's messages to a chat model (:mod:`tunesift.models.chat`: an
  OpenAI-compatible endpoint), the reply read by the rubric. A reply whose score cannot be read is an error
  that keeps the raw reply, never a default score.
* :class:`LocalJudge`: a local causal LM; instead of sampling a reply it reads the probabilities of the
  six score tokens 0..5 right after the prompt (as SelectIT does) and reports their expectation.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.models.chat import EndpointSpec, chat_ref
from tunesift.models.registry import ResolvedModel
from tunesift.options import BATCH_TOKENS, CHAT_OPTIONS, CHUNK_SIZE, Option
from tunesift.scorers.base import Progress, Scorer, Unit

if TYPE_CHECKING:
    from tunesift.models.backend import LMBackend

SCALE = (0, 1, 2, 3, 4, 5)
# Bump when the prompt or the parsing changes, so cached ratings from older code are not reused.
# 2: a score given on another scale ("3/10") is rejected, no longer read as 3.
JUDGE_VERSION = 2

SYSTEM_PROMPT = "You are a helpful and precise assistant for checking the quality of the answer."
# AlpaGasus's rating prompt (accuracy dimension), in the authors' words.
USER_TEMPLATE = (
    "###Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{response}\n\n"
    "We would like to request your feedback on the performance of AI assistant in response to the instruction "
    "and the given input displayed following.\n\n"
    "Please rate according to the accuracy of the response to the instruction and the input. Each assistant "
    "receives a score on a scale of 0 to 5, where a higher score indicates higher level of accuracy. Please "
    "first output a single line containing the value indicating the scores. In the subsequent line, please "
    "provide a comprehensive explanation of your evaluation, avoiding any potential bias."
)

# A number at the start of the reply, optionally after "Score:" and markdown, with the scale it gives, if
# any: "4", "4.5", "Score: 4/5", "3/10", "7 out of 10".
_OUT_OF = r"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?"
_LEADING = re.compile(r"^[\s*#>`_\[(]*(?:score[\s:*]*)?(\d+(?:\.\d+)?)" + _OUT_OF + r"(?![\d.])", re.IGNORECASE)
_LABELLED = re.compile(r"\bscore\s*(?:is|of|:)?\s*(\d+(?:\.\d+)?)" + _OUT_OF + r"(?!\d)", re.IGNORECASE)


class UnparseableReply(ValueError):
    """The judge's reply holds no readable 0-5 score; ``reply`` is the raw text, ``reason`` the skip reason."""

    def __init__(self, reply: str, reason: str = "unparseable_reply") -> None:
        self.reply = reply
        self.reason = reason
        super().__init__(f"no 0-5 score at the start of the reply ({reason}): {reply[:200]!r}")


def judge_messages(sample: Sample) -> list[dict[str, str]]:
    """The chat messages that ask for one sample's rating (a conversation is judged on its last turn)."""
    user = USER_TEMPLATE.format(instruction=sample.instruction, input=sample.input, response=sample.output)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_score(reply: str) -> float:
    """The score on the reply's first non-empty line (or a line that says "score: N"), in [0, 5]."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    match = _LEADING.match(lines[0]) if lines else None
    match = match or _LABELLED.search(reply)
    if match is None:
        raise UnparseableReply(reply)
    value, scale = match.group(1), match.group(2)
    if scale is not None and float(scale) != 5.0:  # "3/10" is not 3 on the 0-5 scale: rejected, reply kept
        raise UnparseableReply(reply, f"other_scale: {value}/{scale}")
    if 0.0 <= float(value) <= 5.0:
        return float(value)
    raise UnparseableReply(reply)


@dataclass(frozen=True)
class JudgeResult:
    """One rating. ``score`` is None exactly when ``error`` says why; ``transient`` errors (network, server
    overload after every retry) are not cached, so a later run asks again."""

    score: float | None
    reply: str | None = None
    error: str | None = None
    transient: bool = False
    probs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Rubric:
    """What a judge is asked and how its answer is read: the chat ``messages`` of a sample, the ``scale`` of
    scores, ``parse`` (a reply to a score, :class:`UnparseableReply` otherwise), and for a local judge the
    ``forms`` its reply may take right before the score token, tried in order: (text after the prompt,
    the score's format), with the chat template and without."""

    column: str
    scale: tuple[int, ...]
    messages: Callable[[Sample], list[dict[str, str]]]
    parse: Callable[[str], float]
    chat_forms: tuple[tuple[str, str], ...]
    plain_forms: tuple[tuple[str, str], ...]


class ChatJudge:
    """A rubric asked of a chat model (an endpoint, or any :class:`~tunesift.models.chat.EndpointChat`-like
    object): the rubric's messages out, the reply read by the rubric's parser. A reply whose score cannot be
    read is an error that keeps the raw reply, never a default score."""

    def __init__(self, chat: Any, rubric: Rubric | None = None) -> None:
        self.chat = chat
        self.rubric = rubric or ALPAGASUS

    def describe(self) -> dict[str, object]:
        return self.chat.describe()

    def read(self, reply: str | None, error: str | None, transient: bool) -> JudgeResult:
        if reply is None:
            return JudgeResult(None, None, error, transient)
        try:
            return JudgeResult(self.rubric.parse(reply), reply)
        except UnparseableReply as err:
            return JudgeResult(None, reply, err.reason)

    def rate(self, samples: Sequence[Sample], on_progress: Callable[[float], None] | None = None) -> list[JudgeResult]:
        """Ratings in the order of ``samples`` (the chat model bounds the requests in flight)."""
        replies = self.chat.complete_all([self.rubric.messages(s) for s in samples], on_progress=on_progress)
        return [self.read(*reply) for reply in replies]


class LocalJudge:
    """A local causal LM as the judge: the expected score under its probabilities of the score tokens
    right where its reply would write the score (renormalised over the scale), after the prompt rendered
    with the model's chat template, or as plain text for a model without one."""

    def __init__(self, lm: LMBackend, batch_tokens: int = 4096, rubric: Rubric | None = None) -> None:
        self.lm = lm
        self.batch_tokens = batch_tokens
        self.rubric = rubric or ALPAGASUS
        self.chat = lm.has_chat_template
        probe = self._render([{"role": "user", "content": "x"}])
        forms = self.rubric.chat_forms if self.chat else self.rubric.plain_forms
        for prefix, score_format in forms:
            candidates = _single_tokens(lm, probe + prefix, [score_format.format(d=d) for d in self.rubric.scale])
            if candidates is not None:
                self.prefix, self.candidates = prefix, candidates
                break
        else:
            raise ConfigError("judge", f"judge {lm.name}: the scores {self.rubric.scale} are not one token each "
                              "after the prompt")  # fmt: skip

    def describe(self) -> dict[str, object]:
        return {"judge": "local", "model": self.lm.name, "model_fingerprint": self.lm.fingerprint,
                "chat_template": self.chat, "dtype": self.lm.dtype_name}  # fmt: skip

    def _render(self, messages: list[dict[str, str]]) -> str:
        if self.chat:
            return self.lm.render_chat(messages, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages)

    def _text(self, messages: list[dict[str, str]]) -> str:
        return self._render(messages) + self.prefix

    def rate(self, samples: Sequence[Sample], on_progress: Callable[[float], None] | None = None) -> list[JudgeResult]:
        from tunesift.models.causal_lm import TargetSpan

        limit = self.lm.context_length
        spans, keep = [], []
        results: list[JudgeResult | None] = [None] * len(samples)
        for i, sample in enumerate(samples):
            ids = self.lm.encode(self._text(self.rubric.messages(sample)))
            if limit is not None and len(ids) > limit:
                results[i] = JudgeResult(None, None, f"too_long: {len(ids)} tokens > the judge's {limit}")
                continue
            spans.append(TargetSpan(tuple(ids), start=len(ids), group="judge"))
            keep.append(i)
        probs = self.lm.next_token_probs(spans, self.candidates, self.batch_tokens, on_batch=on_progress)
        for i, p in zip(keep, probs, strict=True):
            if not all(math.isfinite(x) for x in p):
                results[i] = JudgeResult(None, None, "non_finite_probabilities")
            else:
                expected = float(sum(d * x for d, x in zip(self.rubric.scale, p, strict=True)))
                results[i] = JudgeResult(expected, None, None, probs=tuple(float(x) for x in p))
        return [r for r in results if r is not None]


def _single_tokens(lm: LMBackend, text: str, options: Sequence[str]) -> list[int] | None:
    """The token id of each option right after ``text``, where each is exactly one token there; else None."""
    base = lm.encode(text)
    ids = []
    for option in options:
        encoded = lm.encode(text + option)
        if encoded[: len(base)] != base or len(encoded) != len(base) + 1:
            return None
        ids.append(encoded[-1])
    return ids


# The local judge's reply starts with the score (chat), or the plain prompt ends in "Score: " (no template).
ALPAGASUS = Rubric("alpagasus", SCALE, judge_messages, parse_score, (("", "{d}"),), (("\n\nScore: ", "{d}"),))


PROMPT_SHA256 = hashlib.sha256((SYSTEM_PROMPT + "\n" + USER_TEMPLATE).encode("utf-8")).hexdigest()


class JudgeScorer(Scorer):
    """A rubric's judge on the scorer contract: a unit per sample; the judge is an endpoint
    (:class:`EndpointSpec`) or a local causal LM (a resolved model). Transient request failures are
    reported but never cached. A method sets its ``rubric``, ``name``, ``version`` and ``prompt_sha256``."""

    rubric: ClassVar[Rubric]
    version: ClassVar[int]
    prompt_sha256: ClassVar[str]
    chunk_size = 64

    method_options = (
        Option("model", str | None, None, "Judge: with --base-url, the model name the endpoint serves; without, a "
               "local model (packaged name or checkpoint dir; default smollm2-135m-instruct) read through its "
               "probabilities of the scores."),
        *CHAT_OPTIONS,
        BATCH_TOKENS,
        CHUNK_SIZE,
    )  # fmt: skip

    def __init__(self, judge: EndpointSpec | ResolvedModel, batch_tokens: int = 4096,
                 chunk_size: int | None = None) -> None:  # fmt: skip
        self.judge = judge
        self.batch_tokens = batch_tokens
        self.chunk_size = chunk_size or type(self).chunk_size
        if isinstance(judge, EndpointSpec):
            judge.client()  # checks the URL and limits now, on the driver, before any work

    @classmethod
    def build(cls, pool: Any, executor: Any, *, model: Any, batch_tokens: int, chunk_size: int | None,
              **where: Any) -> JudgeScorer:  # fmt: skip
        return cls(chat_ref(model, executor, **where), batch_tokens, chunk_size)

    def cache_config(self) -> dict[str, Any]:
        if isinstance(self.judge, EndpointSpec):
            config: dict[str, Any] = dict(self.judge.client().describe())
        else:
            config = {"judge": "local", **self.judge.key()}
        return {**config, "scorer": self.name, "version": self.version, "prompt_sha256": self.prompt_sha256}

    def check_ready(self) -> None:
        if isinstance(self.judge, EndpointSpec):
            self.judge.client().probe()

    def load_backend(self, device: str | None = None) -> Any:
        if isinstance(self.judge, EndpointSpec):
            return ChatJudge(self.judge.client(), self.rubric)
        from tunesift.models.backend import load_lm

        return LocalJudge(load_lm(self.judge, device), self.batch_tokens, self.rubric)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        return [
            {
                self.rubric.column: r.score,
                "judge_reply": r.reply,
                "probs": list(r.probs) if r.probs else None,
                "skip_reason": r.error,
                "transient": r.transient,
            }
            for r in backend.rate([u.payload for u in units], on_progress=on_progress)
        ]

    def combine(self, sample: Sample, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
        hit = results[0]
        return {self.rubric.column: hit[self.rubric.column], "judge_reply": hit["judge_reply"],
                "skip_reason": hit["skip_reason"]}  # fmt: skip


class AlpaGasus(JudgeScorer):
    """AlpaGasus's accuracy rating 0-5 (METHODS.md §4)."""

    method = "alpagasus"
    summary = "AlpaGasus: an LLM judge rates each response's accuracy 0-5 (unreadable replies: null, raw reply kept)."
    columns = ("alpagasus",)
    subset_columns = ("alpagasus", "judge_reply")
    default_rule = "alpagasus"
    pass_threshold = 4.5  # the recipe's filter: keep >= 4.5
    options = JudgeScorer.method_options

    name = "alpagasus"
    result_fields = ("alpagasus", "judge_reply", "probs", "skip_reason", "transient")
    rubric = ALPAGASUS
    version = JUDGE_VERSION
    prompt_sha256 = PROMPT_SHA256

    def describe(self) -> str:
        return "AlpaGasus judge"
