"""Is a gap between two fine-tunes real? A paired bootstrap over evaluation items.

Both arms are evaluated on the same items, so the comparison resamples items (with replacement) and
recomputes each arm's metric on the same resample: the item-to-item spread that both models share
cancels. An arm may hold several models (random subsets with different seeds, a method trained with
several data orders); each replicate also resamples those models, so their training noise is in the
interval too. A metric is a ratio of sums over items, ``sum(num) / sum(den)``: the token-weighted loss
(NLL sums over token counts) or an accuracy (correct over 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

VERDICTS = ("better", "worse", "not distinguishable")


@dataclass(frozen=True)
class Interval:
    """``diff`` = metric(A) - metric(B), each arm's metric the mean over its models; ``low``..``high`` its
    percentile interval; ``verdict`` from A's side (lower loss, higher accuracy is better)."""

    diff: float
    low: float
    high: float
    verdict: str
    n_items: int
    n_a: int
    n_b: int
    level: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _as_matrix(arm: Sequence[Sequence[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in model] for model in arm], dtype=float)


def paired_bootstrap(
    a: Sequence[Sequence[float | None]],
    b: Sequence[Sequence[float | None]],
    den: Sequence[float],
    *,
    higher_is_better: bool,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Interval of metric(A) - metric(B) with ``a`` and ``b`` the per-item numerators of each arm's models
    (a list per model, items in the same order) and ``den`` the per-item denominators they share.

    Items a model skipped (None) are left out for every model. A difference whose interval lies above zero
    makes A better when higher is better (worse otherwise); an interval holding zero is not distinguishable.
    """
    num_a, num_b = _as_matrix(a), _as_matrix(b)
    den_arr = np.asarray(den, dtype=float)
    if num_a.ndim != 2 or num_b.ndim != 2 or num_a.shape[1] != den_arr.size or num_b.shape[1] != den_arr.size:
        raise ValueError("every model needs one value per item, as many as the denominators")
    keep = ~(np.isnan(num_a).any(axis=0) | np.isnan(num_b).any(axis=0)) & (den_arr > 0)
    num_a, num_b, den_arr = num_a[:, keep], num_b[:, keep], den_arr[keep]
    n = den_arr.size
    if n == 0:
        raise ValueError("no item is scored by every model")
    diff = float((num_a @ np.ones(n)).mean() / den_arr.sum() - (num_b @ np.ones(n)).mean() / den_arr.sum())
    rng = np.random.default_rng(seed)
    # counts[r, i]: how often replicate r drew item i (a multinomial resample of the n items)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    totals = counts @ den_arr
    per_model_a = (counts @ num_a.T) / totals[:, None]  # (replicates, models of A)
    per_model_b = (counts @ num_b.T) / totals[:, None]
    pick_a = rng.integers(0, num_a.shape[0], size=(n_boot, num_a.shape[0]))
    pick_b = rng.integers(0, num_b.shape[0], size=(n_boot, num_b.shape[0]))
    replicates = (np.take_along_axis(per_model_a, pick_a, axis=1).mean(axis=1)
                  - np.take_along_axis(per_model_b, pick_b, axis=1).mean(axis=1))  # fmt: skip
    tail = (1 - level) / 2
    low, high = (float(x) for x in np.quantile(replicates, [tail, 1 - tail]))
    return Interval(diff, low, high, verdict(low, high, higher_is_better), n, num_a.shape[0], num_b.shape[0], level)


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    """better / worse when the whole interval is on one side of zero, else not distinguishable."""
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "not distinguishable"
