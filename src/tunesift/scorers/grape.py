"""GRAPE (Zhang et al. 2025, arXiv 2502.04194; METHODS.md §25.5): among several responses to one instruction, keep
the one the model to be tuned finds most probable.

``grape = -(1/|A|) sum_t log p(a_t | Q, a_<t)``: the response's length-normalised log-likelihood under the target
model with the training template, i.e. minus the conditioned loss IFD already computes (its numerator). So GRAPE is
IFD's computation under IFD's cache key: a pool already scored with ``ifd`` (same model, template, length) costs
nothing more, and one scored with ``grape`` first gives ``ifd`` for free. It is a per-response score; the choice per
question is ``--per-question best:grape``. Worked example: token log-probs [-0.2, -0.4] and [-0.1, -0.5, -0.9] give
grape -0.3 and -0.5: the first response is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import Sample
from tunesift.scorers.ifd import IFD


def grape(token_logprobs: Sequence[float]) -> float:
    """The mean log-probability of a response's tokens (the one-response reference of the worked example)."""
    return sum(token_logprobs) / len(token_logprobs)


class GRAPE(IFD):
    """The target model's mean log-likelihood of each response given its instruction (higher: more probable)."""

    method = "grape"
    summary = (
        "GRAPE: the target model's length-normalised log-likelihood of each response (minus IFD's conditioned loss); "
        "with --per-question best:grape, the response the model to be tuned finds most probable."
    )
    columns = ("grape", "loss_cond", "n_tokens")
    subset_columns = columns  # set here: IFD's own would be inherited
    default_rule = "top"
    options = IFD.options

    def describe(self) -> str:
        return "GRAPE (-loss_cond)"

    def combine(self, sample: Sample, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
        row = super().combine(sample, results)
        loss = row.get("loss_cond")
        return {"grape": None if loss is None else -loss, "loss_cond": loss, "n_tokens": row.get("n_tokens"),
                "skip_reason": row.get("skip_reason")}  # fmt: skip
