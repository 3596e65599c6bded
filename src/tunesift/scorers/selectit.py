"""SelectIT: uncertainty-aware self-reflection (NeurIPS 2024), as METHODS.md §3 defines it.

A rater reads a rating prompt and the sample and gives a 1-5 score; how sure it is of that score decides
how much to trust it (token level), several paraphrased prompts are pooled with a penalty for disagreement
(sentence level), and raters of one family are pooled by parameter count (model level).

Raters want instruction tuning, the larger the better: in our measurements the Gemma-3-270M *base* model
rated samples no better than chance against an external quality judgment, while SmolLM2-135M-Instruct did
somewhat better.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError, InputError
from tunesift.models.causal_lm import TargetSpan
from tunesift.models.registry import ResolvedModel
from tunesift.options import BATCH_TOKENS, CHUNK_SIZE, LM_OPTIONS, TURNS, Option, split_list
from tunesift.scorers.base import TOO_LONG, CausalLMScorer, Method, Progress, Unit
from tunesift.scorers.turns import aggregate

if TYPE_CHECKING:
    from tunesift.models.backend import LMBackend

SCORER_VERSION = 1
SCALE = (1, 2, 3, 4, 5)
LEVELS = ("token", "sentence", "model")
TOKEN_RULES = ("paper", "authors-code")
DEFAULT_PROMPTS = "rating_prompts_v1.txt"
SKIP_TOO_LONG = TOO_LONG


def load_prompts(path: str | Path | None = None) -> list[str]:
    """Rating sentences, one per non-empty line: tunesift's own five, or the user's file."""
    if path is None:
        text = resources.files("tunesift.scorers").joinpath(DEFAULT_PROMPTS).read_text(encoding="utf-8")
        source: str | Path = DEFAULT_PROMPTS
    else:
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise InputError("file not found", path=source) from None
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", path=source) from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InputError("holds no rating prompts (one per line)", path=source)
    return prompts


def prompt_id(sentence: str) -> str:
    return hashlib.sha256(sentence.encode("utf-8")).hexdigest()[:12]


def rating_text(sample: Sample, sentence: str, turn: int = -1) -> str:
    """The rating prompt of METHODS.md §3 for one assistant turn; the next token after it is the score.

    For a conversation, the earlier turns come first in the instruction as ``User: ...`` and
    ``Assistant: ...`` lines; a single turn is exactly the paper's text.
    """
    turn = turn % len(sample.turns)
    current = sample.turns[turn]
    question = f"{current.user}\n{current.input}" if current.input else current.user
    if turn:
        history = "".join(f"User: {t.user}\nAssistant: {t.assistant}\n" for t in sample.turns[:turn])
        question = f"{history}User: {question}"
    return f"{sentence}\n\nInstruction:{question}\nResponse:{current.assistant}\nThe answer is: \n"


def rating_key(text: str) -> str:
    """Cache key of one rating: the exact text the rater reads (so equal texts share their rating)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def score_token_ids(lm: LMBackend) -> list[int]:
    """Token of each digit 1..5 as it follows a newline: what tokenising ``"\\n" + d`` adds to ``"\\n"``."""
    newline = lm.encode("\n", add_special_tokens=False)
    ids = []
    for digit in SCALE:
        with_digit = lm.encode(f"\n{digit}", add_special_tokens=False)
        added = with_digit[len(newline) :]
        if with_digit[: len(newline)] != newline or len(added) != 1:
            raise ConfigError("models", f"rater {lm.name}: the score digit {digit!r} is not one token after a newline")
        ids.append(added[0])
    return ids


# ----- the three levels: pure functions of the renormalised probabilities -----


def token_level(probs: Sequence[float], rule: str = "paper") -> float:
    """``S_base * (5 * P'_max - 1) / 4`` with ``S_base = argmax`` (ties: the lowest score).

    ``rule="authors-code"`` first applies the extra softmax of the authors' code to ``P'``.
    """
    p = np.asarray(probs, dtype=np.float64)
    if rule == "authors-code":
        p = np.exp(p) / np.exp(p).sum()
    elif rule != "paper":
        raise ConfigError("token-rule", f"unknown rule {rule!r}; choose one of {', '.join(TOKEN_RULES)}")
    base = int(np.argmax(p)) + 1
    k = len(p)
    return base * float(np.abs(p - p.max()).sum()) / (k - 1)


def sentence_level(token_scores: Sequence[float], alpha: float = 0.2) -> float:
    """``mean / (1 + alpha * std)`` over the prompts, population std."""
    s = np.asarray(token_scores, dtype=np.float64)
    return float(s.mean() / (1.0 + alpha * s.std(ddof=0)))


def model_level(sentence_scores: Sequence[float], n_parameters: Sequence[float]) -> float:
    """Sentence scores weighted by each rater's share of the total parameter count."""
    weights = np.asarray(n_parameters, dtype=np.float64)
    return float(np.dot(weights / weights.sum(), np.asarray(sentence_scores, dtype=np.float64)))


@dataclass(frozen=True)
class Rating:
    """One rater's renormalised probabilities of scores 1..5 for one rating text, or why there are none.

    ``n_tokens`` counts the rated response's tokens (the weight of a turn under the ``wmean`` rule).
    """

    probs: tuple[float, ...] | None
    skip_reason: str | None = None
    n_tokens: int = 0


class SelectITRater:
    """Reads the five score-token probabilities of one rater, batched behind the shared rating sentence."""

    def __init__(self, lm: LMBackend, batch_tokens: int = 4096) -> None:
        self.lm = lm
        self.batch_tokens = batch_tokens
        self.candidates = score_token_ids(lm)
        self.context = lm.context_length

    def rate(
        self,
        units: Sequence[tuple[Sample, str] | tuple[Sample, str, int]],
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Rating]:
        """Ratings for (sample, rating sentence[, turn]) units, in order; the last turn by default."""
        texts: list[TargetSpan] = []
        where: list[int] = []
        ratings: list[Rating | None] = [None] * len(units)
        n_response = [0] * len(units)
        for i, (sample, sentence, *turn) in enumerate(units):
            t = turn[0] if turn else -1
            n_response[i] = self.lm.count_tokens(sample.turns[t].assistant)
            ids = tuple(self.lm.encode(rating_text(sample, sentence, t)))
            if self.context is not None and len(ids) > self.context:
                ratings[i] = Rating(None, SKIP_TOO_LONG, n_response[i])
                continue
            texts.append(TargetSpan(ids, start=len(ids), group=prompt_id(sentence)))
            where.append(i)
        probs = self.lm.next_token_probs(texts, self.candidates, self.batch_tokens, on_batch=on_progress)
        for i, row in zip(where, probs, strict=True):
            if np.all(np.isfinite(row)):
                ratings[i] = Rating(tuple(float(x) for x in row), None, n_response[i])
            else:
                ratings[i] = Rating(None, "non_finite_probability", n_response[i])
        return [r for r in ratings if r is not None]


@dataclass(frozen=True)
class SelectITConfig:
    """How ratings are pooled; ``level=None`` picks model with two or more raters, else sentence."""

    k: int = 5
    alpha: float = 0.2
    level: str | None = None
    token_prompt: int = 0
    token_rule: str = "paper"

    def resolved(self, n_raters: int, n_prompts: int) -> SelectITConfig:
        level = self.level or ("model" if n_raters >= 2 else "sentence")
        if level not in LEVELS:
            raise ConfigError("level", f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
        if level == "model" and n_raters < 2:
            raise ConfigError("level", "the model level needs two or more raters (--models a,b)")
        if level != "model" and n_raters != 1:
            raise ConfigError("level", f"the {level} level ranks by one rater; give one model or use --level model")
        if not 1 <= self.k <= n_prompts:
            raise ConfigError("k", f"must be between 1 and the number of rating prompts ({n_prompts}), got {self.k}")
        if level == "token" and not 0 <= self.token_prompt < n_prompts:
            raise ConfigError("token-prompt", f"must index one of the {n_prompts} prompts, got {self.token_prompt}")
        if self.alpha < 0:
            raise ConfigError("alpha", f"must be >= 0, got {self.alpha}")
        if self.token_rule not in TOKEN_RULES:
            raise ConfigError("token-rule", f"unknown rule {self.token_rule!r}; choose one of {', '.join(TOKEN_RULES)}")
        return SelectITConfig(self.k, self.alpha, level, self.token_prompt, self.token_rule)

    def prompt_indices(self) -> list[int]:
        """The prompts that are rated: the named one at token level, else the first k."""
        return [self.token_prompt] if self.level == "token" else list(range(self.k))


def combine(
    ratings: Sequence[Sequence[Sequence[Rating]]],
    rater_names: Sequence[str],
    n_parameters: Sequence[float],
    config: SelectITConfig,
    turn_rule: str = "mean",
) -> dict:
    """Every level for one sample from its ratings ``[rater][turn][prompt]``.

    A single turn gives :func:`combine_turn`'s result; a conversation combines each turn's top level
    (and ``s_model``) by ``turn_rule`` and keeps every turn's levels under ``turns``.
    """
    n_turns = len(ratings[0])
    per_turn = [combine_turn([r[t] for r in ratings], rater_names, n_parameters, config) for t in range(n_turns)]
    if n_turns == 1:
        return per_turn[0]
    weights = [ratings[0][t][0].n_tokens for t in range(n_turns)]
    top = aggregate([t["selectit"] for t in per_turn], weights, turn_rule)
    reason = None
    if top is None:
        reasons = sorted({t["skip_reason"] for t in per_turn if t["skip_reason"]})
        reason = per_turn[-1]["skip_reason"] if turn_rule == "last" else "no_turn_scored: " + "; ".join(reasons)
    s_model = aggregate([t["s_model"] for t in per_turn], weights, turn_rule)
    return {"selectit": top, "level": config.level, "s_model": s_model, "skip_reason": reason, "turns": per_turn}


def combine_turn(
    ratings: Sequence[Sequence[Rating]],
    rater_names: Sequence[str],
    n_parameters: Sequence[float],
    config: SelectITConfig,
) -> dict:
    """Every level for one turn from its ratings ``[rater][prompt]``; NaN levels carry the reason.

    Returns ``selectit`` (the top level in use), ``s_model`` and per rater its prompts' ``p`` and
    ``s_token`` and its ``s_sent``. A failure anywhere makes every level above it NaN (JSON null).
    """
    raters = []
    reasons = []
    for name, per_prompt in zip(rater_names, ratings, strict=True):
        prompts = []
        for rating in per_prompt:
            s_token = None if rating.probs is None else token_level(rating.probs, config.token_rule)
            prompts.append({"p": None if rating.probs is None else list(rating.probs), "s_token": s_token})
        failed = [r.skip_reason for r in per_prompt if r.skip_reason]
        if failed:
            reasons.append(f"{name}: {failed[0]}")
        s_sent = None if failed else sentence_level([p["s_token"] for p in prompts], config.alpha)
        raters.append({"model": name, "prompts": prompts, "s_sent": s_sent})
    s_model = None
    if len(raters) >= 2 and not reasons:
        s_model = model_level([r["s_sent"] for r in raters], n_parameters)
    if config.level == "token":
        top = raters[0]["prompts"][0]["s_token"]
    elif config.level == "sentence":
        top = raters[0]["s_sent"]
    else:
        top = s_model
    if top is not None and not math.isfinite(top):
        top = None
        reasons.append("non_finite_score")
    return {
        "selectit": top,
        "level": config.level,
        "s_model": s_model,
        "raters": raters,
        "skip_reason": "; ".join(reasons) if top is None else None,
    }


class SelectITRating(CausalLMScorer):
    """One rater's ratings on the scorer contract: a unit per (sample, turn, rating sentence), keyed by the
    exact text the rater reads, so alpha, the level, the turn rule and the raters' mix recompute nothing.
    :func:`combine` pools the raters' results into a sample's levels."""

    name = "selectit-rater"
    result_fields = ("p", "skip_reason", "n_tokens")
    unit_name = "rating"

    def __init__(self, model: ResolvedModel, sentences: Sequence[str], batch_tokens: int = 4096,
                 chunk_size: int | None = None) -> None:  # fmt: skip
        self.model = model
        self.sentences = tuple(sentences)
        self.batch_tokens = batch_tokens
        # a chunk is counted in samples: each has a rating per sentence
        self.chunk_size = (chunk_size or 128) * max(1, len(self.sentences))

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "selectit-rater", "version": SCORER_VERSION, **self.model.key()}

    def describe(self) -> str:
        return f"SelectIT ({self.model.name})"

    def units(self, sample: Sample) -> list[Unit]:
        return [
            Unit(rating_key(rating_text(sample, sentence, turn)), (sample, sentence, turn))
            for turn in range(len(sample.turns))
            for sentence in self.sentences
        ]

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        ratings = SelectITRater(backend, self.batch_tokens).rate([u.payload for u in units], on_progress=on_progress)
        return [{"p": r.probs, "skip_reason": r.skip_reason, "n_tokens": r.n_tokens} for r in ratings]

    @staticmethod
    def rating(result: dict[str, Any]) -> Rating:
        p = result["p"]
        return Rating(None if p is None else tuple(p), result["skip_reason"], result.get("n_tokens", 0))


class SelectIT(Method):
    """SelectIT (METHODS.md §3): each rater's ratings are a stage of their own (raters are loaded one at a
    time); a sample's row pools them into the token, sentence and model levels, every level kept."""

    method = "selectit"
    summary = ("SelectIT: the model rates each sample 1-5; its certainty weighs the rating (token, "
               "sentence, model level).")  # fmt: skip
    columns = ("selectit", "s_model")
    subset_columns = ("selectit",)
    options = (
        Option("models", str, "smollm2-135m-instruct", "Raters, comma-separated (packaged names or checkpoint dirs); "
               "two or more give the model level. SelectIT wants instruction-tuned raters, the larger the better: a "
               "base model such as gemma-3-270m rated no better than chance in our measurements.", split=True),
        Option("k", int, 5, "Number of rating prompts pooled at the sentence level.", flag="--k"),
        Option("alpha", float, 0.2, "Penalty on the spread of the prompts' token scores."),
        Option("prompts_file", Path | None, None, "Your own rating sentences, one per line (default: tunesift's five).",
               flag="--prompts"),
        Option("level", str | None, None,
               "token | sentence | model (default: model with two or more raters, else sentence)."),
        Option("token_prompt", int, 0, "Token level: the 0-based index of the one prompt used.", at_least=0),
        Option("token_rule", str, "paper",
               "paper (METHODS.md) or authors-code (an extra softmax, as in the authors' code)."),
        TURNS,
        BATCH_TOKENS,
        CHUNK_SIZE,
        *LM_OPTIONS,
    )  # fmt: skip

    def __init__(self, raters: Sequence[SelectITRating], n_parameters: Sequence[int], config: SelectITConfig,
                 turn_rule: str = "mean") -> None:  # fmt: skip
        self.raters = tuple(raters)
        self.n_parameters = tuple(n_parameters)
        self.config = config
        self.turn_rule = turn_rule

    @classmethod
    def build(cls, pool: Any, executor: Any, *, models: Sequence[Any] | str, k: int, alpha: float,
              prompts_file: Any, level: str | None, token_prompt: int, token_rule: str, turn_rule: str,
              batch_tokens: int, chunk_size: int | None, **where: Any) -> SelectIT:  # fmt: skip
        from tunesift.models.backend import model_ref
        from tunesift.models.registry import count_parameters
        from tunesift.scorers.turns import check_turn_rule

        models = split_list(models)
        if not models:
            raise ConfigError("models", "give at least one rater")
        check_turn_rule(turn_rule)
        prompts = load_prompts(prompts_file)
        cfg = SelectITConfig(k, alpha, level, token_prompt, token_rule).resolved(len(models), len(prompts))
        sentences = [prompts[i] for i in cfg.prompt_indices()]
        resolved = [model_ref(m, executor, **where) for m in models]
        raters = [SelectITRating(r, sentences, batch_tokens, chunk_size) for r in resolved]
        return cls(raters, [count_parameters(r) for r in resolved], cfg, turn_rule)

    def stages(self) -> Sequence[SelectITRating]:
        return self.raters

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        n = len(self.raters[0].sentences)
        per_rater = []
        for found in results:
            flat = [SelectITRating.rating(r) for r in found]
            per_rater.append([flat[t * n : (t + 1) * n] for t in range(len(sample.turns))])
        names = [r.model.name for r in self.raters]
        return combine(per_rater, names, self.n_parameters, self.config, self.turn_rule)

    def table_config(self) -> dict[str, Any]:
        cfg, sentences = self.config, list(self.raters[0].sentences)
        return {
            "scorer": "selectit",
            "version": SCORER_VERSION,
            "raters": [{**r.model.key(), "n_parameters": n} for r, n in zip(self.raters, self.n_parameters,
                                                                             strict=True)],
            "prompts": sentences,
            "prompts_sha256": hashlib.sha256("\n".join(sentences).encode("utf-8")).hexdigest(),
            "k": cfg.k,
            "alpha": cfg.alpha,
            "level": cfg.level,
            "token_prompt": cfg.token_prompt if cfg.level == "token" else None,
            "token_rule": cfg.token_rule,
            "turn_rule": self.turn_rule,
        }  # fmt: skip
