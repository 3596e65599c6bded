"""IFD, Instruction-Following Difficulty (Cherry LLM) and its Superfiltering form (METHODS.md §1-2).

``IFD = s(A|Q) / s(A)`` (Cherry: ratio of mean NLLs) or ``exp(s(A|Q) - s(A))`` (Superfiltering: ratio
of perplexities). A high IFD means the instruction barely helps the model produce the response: a
hard, informative sample; above 1 the instruction even hurts, a sign of a misaligned pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from tunesift.data.sample import Sample
from tunesift.data.templates import TEMPLATE_NAMES, Template, get_template
from tunesift.errors import ConfigError
from tunesift.models.backend import model_ref
from tunesift.models.causal_lm import CausalLM, TargetSpan
from tunesift.models.registry import ResolvedModel
from tunesift.options import BATCH_TOKENS, CHUNK_SIZE, LM_OPTIONS, TURNS, Option, model_option
from tunesift.scorers.base import CausalLMScorer, Progress, Unit
from tunesift.scorers.turns import aggregate, check_turn_rule

Variant = Literal["cherry", "superfilter"]
VARIANTS: tuple[str, ...] = ("cherry", "superfilter")
# Bump when the computation changes, so cached scores from older code are not reused.
SCORER_VERSION = 1

# A sample's fields in SCORES (the first is the one ranked by) and the fields of its cached result.
IFD_COLUMNS = ("ifd", "loss_cond", "loss_direct", "n_tokens")
IFD_FIELDS = (*IFD_COLUMNS, "skip_reason")

SKIP_PROMPT_FILLS_BUDGET = "prompt_fills_budget"
SKIP_NO_RESPONSE_TOKENS = "no_response_tokens"
SKIP_NON_FINITE = "non_finite_loss"

_DEFAULTS: dict[str, dict[str, Any]] = {
    "cherry": {"template": "alpaca", "max_length": 512},
    "superfilter": {"template": "plain", "max_length": 1024},
}


@dataclass(frozen=True)
class IFDConfig:
    """What an IFD score depends on, apart from the model. ``None`` takes the variant's default."""

    variant: str = "cherry"
    template: str | None = None
    max_length: int | None = None
    turn_rule: str = "mean"

    def resolved(self) -> IFDConfig:
        """Fill defaults and validate (raises :class:`ConfigError` naming the option)."""
        if self.variant not in VARIANTS:
            raise ConfigError("variant", f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        defaults = _DEFAULTS[self.variant]
        template = self.template or defaults["template"]
        if template not in TEMPLATE_NAMES:
            raise ConfigError("template", f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
        max_length = self.max_length if self.max_length is not None else defaults["max_length"]
        if max_length < 2:
            raise ConfigError("max-length", f"must be at least 2 tokens, got {max_length}")
        check_turn_rule(self.turn_rule)
        return IFDConfig(variant=self.variant, template=template, max_length=max_length, turn_rule=self.turn_rule)


@dataclass(frozen=True)
class IFDScore:
    """One sample's (or one turn's) result. ``ifd`` is None exactly when ``skip_reason`` says why.

    For a conversation, ``turns`` holds each assistant turn's own result and the top-level fields are
    their combination by the configured rule (``n_tokens``: the sum).
    """

    ifd: float | None
    loss_cond: float | None
    loss_direct: float | None
    n_tokens: int
    skip_reason: str | None = None
    turns: tuple[IFDScore, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "turns"}
        if self.turns is not None:
            row["turns"] = [t.to_dict() for t in self.turns]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> IFDScore:
        turns = row.get("turns")
        return cls(row["ifd"], row["loss_cond"], row["loss_direct"], row["n_tokens"], row["skip_reason"],
                   None if turns is None else tuple(cls.from_dict(t) for t in turns))  # fmt: skip


def combine_turns(turns: Sequence[IFDScore], rule: str) -> IFDScore:
    """A conversation's result from its turns' results, by ``rule`` (METHODS.md §5); ``n_tokens`` sums."""
    weights = [t.n_tokens for t in turns]

    def combined(name: str) -> float | None:
        return aggregate([getattr(t, name) if t.ifd is not None else None for t in turns], weights, rule)

    ifd = combined("ifd")
    reason = None
    if ifd is None:
        reasons = sorted({t.skip_reason for t in turns if t.skip_reason})
        reason = turns[-1].skip_reason if rule == "last" else "no_turn_scored: " + ", ".join(reasons)
    return IFDScore(ifd, combined("loss_cond"), combined("loss_direct"), sum(weights), reason, tuple(turns))


def cache_key(config: IFDConfig, model: ResolvedModel) -> dict[str, Any]:
    """The configuration an IFD score depends on (not the turn rule, applied after): its cache key."""
    return {
        "scorer": "ifd",
        "version": SCORER_VERSION,
        "variant": config.variant,
        "template": config.template,
        "max_length": config.max_length,
        **model.key(),
    }


@dataclass(frozen=True)
class _Prepared:
    cond: TargetSpan
    direct: TargetSpan


class IFDScorer:
    """Scores samples with one causal LM; all texts of a call go through batched forward passes."""

    name = "ifd"
    columns = ("ifd", "loss_cond", "loss_direct", "n_tokens")

    def __init__(self, lm: CausalLM, config: IFDConfig | None = None, batch_tokens: int = 4096) -> None:
        self.lm = lm
        self.config = (config or IFDConfig()).resolved()
        self.batch_tokens = batch_tokens
        self.template: Template = get_template(self.config.template, lm)
        self._bos_len = len(lm.encode(""))

    def prepare(self, sample: Sample, turn: int = -1) -> _Prepared | IFDScore:
        """Token sequences of one assistant turn (the last by default), or its skip result.

        METHODS.md §1-2; for a conversation (§5) the conditioned text sees every turn before this one,
        the direct text only this turn's response.
        """
        turn = turn % len(sample.turns)
        current = sample.turns[turn]
        budget = self.config.max_length
        prompt = self.template.prompt(current.user, current.input, sample.turns[:turn], sample.system)
        n_prompt = len(self.lm.encode(prompt))
        if n_prompt >= budget:
            return IFDScore(None, None, None, 0, SKIP_PROMPT_FILLS_BUDGET)
        response = current.assistant
        cond_ids = self.lm.encode(prompt + response)[:budget]
        cond = TargetSpan(tuple(cond_ids), start=n_prompt, group=f"cond:{bool(current.input)}")
        if self.config.variant == "cherry":
            prefix = self.template.direct_prefix
            n_prefix = len(self.lm.encode(prefix))
            direct_ids = self.lm.encode(prefix + response)[: budget - n_prompt + n_prefix]
            direct = TargetSpan(tuple(direct_ids), start=n_prefix, group="direct")
        else:
            direct_ids = self.lm.encode(response)[: budget - n_prompt + 1]
            direct = TargetSpan(tuple(direct_ids), start=self._bos_len, group="direct")
        if cond.n_targets == 0 or direct.n_targets == 0:
            return IFDScore(None, None, None, 0, SKIP_NO_RESPONSE_TOKENS)
        return _Prepared(cond, direct)

    def _combine(self, loss_cond: float, loss_direct: float, n_tokens: int) -> IFDScore:
        with_finite = [x if math.isfinite(x) else None for x in (loss_cond, loss_direct)]
        if None in with_finite or loss_direct == 0.0:
            return IFDScore(None, with_finite[0], with_finite[1], n_tokens, SKIP_NON_FINITE)
        if self.config.variant == "cherry":
            ifd = loss_cond / loss_direct
        else:
            ifd = math.exp(loss_cond - loss_direct) if loss_cond - loss_direct < 700 else math.inf
        if not math.isfinite(ifd):
            return IFDScore(None, loss_cond, loss_direct, n_tokens, SKIP_NON_FINITE)
        return IFDScore(ifd, loss_cond, loss_direct, n_tokens)

    def score(self, samples: Sequence[Sample], on_progress: Callable[[int], None] | None = None) -> list[IFDScore]:
        """Score samples in order; ``on_progress`` receives a count of finished texts (2 per turn)."""
        units = [(k, t) for k, sample in enumerate(samples) for t in range(len(sample.turns))]
        prepared = [self.prepare(samples[k], t) for k, t in units]
        todo = [i for i, p in enumerate(prepared) if isinstance(p, _Prepared)]
        spans: list[TargetSpan] = []
        for i in todo:
            spans.extend((prepared[i].cond, prepared[i].direct))
        nll = self.lm.target_nll(spans, self.batch_tokens, on_batch=on_progress)
        per_unit: list[Any] = list(prepared)  # skips already are results
        for position, i in enumerate(todo):
            cond_nll, direct_nll = nll[2 * position], nll[2 * position + 1]
            per_unit[i] = self._combine(float(cond_nll.mean()), float(direct_nll.mean()), len(cond_nll))
        out: list[IFDScore] = []
        cursor = 0
        for sample in samples:
            turns = per_unit[cursor : cursor + len(sample.turns)]
            cursor += len(sample.turns)
            out.append(turns[0] if len(turns) == 1 else combine_turns(turns, self.config.turn_rule))
        return out


class IFD(CausalLMScorer):
    """IFD on the scorer contract: one unit per sample (its turns inside), computed by :class:`IFDScorer`.

    The turn rule is applied in :meth:`combine`, after the cache: changing it recomputes nothing.
    """

    method = "ifd"
    summary = "IFD (Cherry LLM / Superfiltering): how much the instruction helps the model predict the response."
    columns = IFD_COLUMNS
    default_rule = "cherry"
    options = (
        model_option(),
        Option("variant", str, "cherry",
               "cherry: ratio of mean losses; superfilter: ratio of perplexities, no template."),
        Option("template", str | None, None,
               "Prompt template: alpaca, wiz, vicuna, plain, chat. Default: alpaca (cherry), plain (superfilter)."),
        Option("max_length", int | None, None, "Token budget M per text. Default: 512 (cherry), 1024 (superfilter)."),
        TURNS,
        BATCH_TOKENS,
        CHUNK_SIZE,
        *LM_OPTIONS,
    )  # fmt: skip

    name = "ifd"
    result_fields = IFD_FIELDS
    texts_per_unit = 2

    def __init__(
        self,
        model: ResolvedModel,
        variant: str = "cherry",
        template: str | None = None,
        max_length: int | None = None,
        turn_rule: str = "mean",
        batch_tokens: int = 4096,
        chunk_size: int | None = None,
    ) -> None:
        self.model = model
        self.config = IFDConfig(variant=variant, template=template, max_length=max_length,
                                turn_rule=turn_rule).resolved()  # fmt: skip
        self.batch_tokens = batch_tokens
        self.chunk_size = chunk_size or type(self).chunk_size

    @classmethod
    def build(cls, pool: Any, executor: Any, *, model: Any, variant: str, template: str | None,
              max_length: int | None, turn_rule: str, batch_tokens: int, chunk_size: int | None,
              **where: Any) -> IFD:  # fmt: skip
        IFDConfig(variant, template, max_length, turn_rule).resolved()  # bad options fail before a model is resolved
        return cls(model_ref(model, executor, **where), variant, template, max_length, turn_rule, batch_tokens,
                   chunk_size)  # fmt: skip

    def cache_config(self) -> dict[str, Any]:
        return cache_key(self.config, self.model)

    def table_config(self) -> dict[str, Any]:
        # per-turn results are cached: the turn rule is not part of the key, only of the table's configuration
        return {**self.cache_config(), "turn_rule": self.config.turn_rule}

    def describe(self) -> str:
        return f"IFD ({self.config.variant})"

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        scorer = IFDScorer(backend, self.config, batch_tokens=self.batch_tokens)
        return [r.to_dict() for r in scorer.score([u.payload for u in units], on_progress=on_progress)]

    def combine(self, sample: Sample, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
        hit = results[0]
        if "turns" in hit:  # a conversation: combine its turns by this run's rule
            hit = combine_turns([IFDScore.from_dict(t) for t in hit["turns"]], self.config.turn_rule).to_dict()
        row = {k: hit[k] for k in IFD_FIELDS}
        if "turns" in hit:
            row["turns"] = hit["turns"]
        return row
