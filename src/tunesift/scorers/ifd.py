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
from tunesift.models.causal_lm import CausalLM, TargetSpan

Variant = Literal["cherry", "superfilter"]
VARIANTS: tuple[str, ...] = ("cherry", "superfilter")
# Bump when the computation changes, so cached scores from older code are not reused.
SCORER_VERSION = 1

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
        return IFDConfig(variant=self.variant, template=template, max_length=max_length)


@dataclass(frozen=True)
class IFDScore:
    """One sample's result. ``ifd`` is None exactly when ``skip_reason`` says why."""

    ifd: float | None
    loss_cond: float | None
    loss_direct: float | None
    n_tokens: int
    skip_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Prepared:
    cond: TargetSpan
    direct: TargetSpan


class IFDScorer:
    """Scores samples with one causal LM; all texts of a call go through batched forward passes."""

    name = "ifd"
    columns = ("ifd", "loss_cond", "loss_direct", "n_tokens")

    def __init__(self, lm: CausalLM, config: IFDConfig | None = None, token_budget: int = 4096) -> None:
        self.lm = lm
        self.config = (config or IFDConfig()).resolved()
        self.token_budget = token_budget
        self.template: Template = get_template(self.config.template, lm.tokenizer)
        self._bos_len = len(lm.encode(""))

    def describe(self) -> dict[str, Any]:
        """The full configuration a score depends on: the key of the score cache, and the record of it."""
        return {
            "scorer": self.name,
            "version": SCORER_VERSION,
            "variant": self.config.variant,
            "template": self.config.template,
            "max_length": self.config.max_length,
            "model": self.lm.name,
            "model_fingerprint": self.lm.fingerprint,
            "dtype": self.lm.dtype_name,
        }

    def prepare(self, sample: Sample) -> _Prepared | IFDScore:
        """Build the conditioned and direct token sequences, or the skip result (METHODS.md §1-2)."""
        budget = self.config.max_length
        prompt = self.template.prompt(sample.instruction, sample.input)
        n_prompt = len(self.lm.encode(prompt))
        if n_prompt >= budget:
            return IFDScore(None, None, None, 0, SKIP_PROMPT_FILLS_BUDGET)
        cond_ids = self.lm.encode(prompt + sample.output)[:budget]
        cond = TargetSpan(tuple(cond_ids), start=n_prompt, group=f"cond:{sample.has_input}")
        if self.config.variant == "cherry":
            prefix = self.template.direct_prefix
            n_prefix = len(self.lm.encode(prefix))
            direct_ids = self.lm.encode(prefix + sample.output)[: budget - n_prompt + n_prefix]
            direct = TargetSpan(tuple(direct_ids), start=n_prefix, group="direct")
        else:
            direct_ids = self.lm.encode(sample.output)[: budget - n_prompt + 1]
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
        """Score samples in order; ``on_progress`` receives a count of finished texts (2 per sample)."""
        prepared = [self.prepare(s) for s in samples]
        todo = [i for i, p in enumerate(prepared) if isinstance(p, _Prepared)]
        spans: list[TargetSpan] = []
        for i in todo:
            spans.extend((prepared[i].cond, prepared[i].direct))
        nll = self.lm.target_nll(spans, self.token_budget, on_batch=on_progress)
        by_index = dict(zip(todo, range(len(todo)), strict=True))
        out: list[IFDScore] = []
        for i, p in enumerate(prepared):
            if isinstance(p, IFDScore):
                out.append(p)
                continue
            k = by_index[i]
            cond_nll, direct_nll = nll[2 * k], nll[2 * k + 1]
            out.append(self._combine(float(cond_nll.mean()), float(direct_nll.mean()), len(cond_nll)))
        return out
