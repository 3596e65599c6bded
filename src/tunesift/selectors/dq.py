"""Dataset quantization (Zhou et al., ICCV 2023): split the pool into bins by greedy submodular gain on
embeddings, then sample uniformly from every bin (docs/methods.md §11).

Followed from magic-research/Dataset_Quantization ``alpaca_sample.py`` (``dataset_quantization``: ``k`` bins
generated one after another from what earlier bins left, then ``random_sample`` from each) with the
``GraphCut`` gain of ``dq/methods/methods_utils/submodular_function.py`` (``lam = 1``) maximised by
``NaiveGreedy`` of ``submodular_optimizer.py``: over the ground set ``V`` (the samples no earlier bin
took), the next pick is ``argmax_x lam * sum_{v in V} s(v, x) - 2 * sum_{s in S} s(s, x)``, ``S`` the bin so
far, ``s`` the dot product of the embeddings, ties to the earliest sample.

Because ``s`` is a dot product, both sums are one vector each (``sum_V e_v`` and ``sum_S e_s``), so a pick
costs one matrix-vector product over the samples left and no N x N matrix is built (the reference fills one: 11 GB
at Alpaca's 52k). The greedy still orders the whole pool, about ``N^2 d / 2`` multiply-adds: 40,000 vectors in a
minute here, 100,000 in about 6.5 (``benchmarks/diversity_growth.py``).

Two choices where the reference would miss the budget: bins are as equal as possible (the reference leaves
the ``N mod k`` samples no bin took unsampled), and a budget that is not a multiple of ``k`` gives
the first ``size mod k`` bins one sample more (the reference takes ``int(n / k)`` from each and returns
fewer than asked).
"""

from __future__ import annotations

import numpy as np

from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.selectors.base import SEED, Candidates, Selector, as_matrix, check_budget

DEFAULT_BINS = 10  # the reference's --k default


def bin_sizes(n: int, bins: int) -> list[int]:
    """``bins`` sizes summing to ``n``, as equal as possible (the larger first)."""
    return [n // bins + (1 if b < n % bins else 0) for b in range(bins)]


def graphcut_bins(x: np.ndarray, bins: int = DEFAULT_BINS, lam: float = 1.0) -> list[list[int]]:
    """The pool split into ``bins`` bins, each grown greedily by the GraphCut gain over what is left;
    every bin lists its samples in pick order."""
    x = as_matrix(x).astype(np.float64)
    n = x.shape[0]
    if bins < 1 or bins > n:
        raise ConfigError("bins", f"must be between 1 and the number of samples ({n}), got {bins}")
    left = np.arange(n)  # the samples no bin has taken yet, in index order
    out: list[list[int]] = []
    for size in bin_sizes(n, bins):
        # gain(x) = e_x . (lam * sum_V e_v - 2 * sum_S e_s); S starts empty and grows by one pick at a time.
        # Over what is left only (gathered once a bin): the pool's later bins cost less than its first
        rest = x[left]
        gains = rest @ (lam * rest.sum(axis=0))
        picks: list[int] = []
        for _ in range(size):
            best = int(np.argmax(gains))  # the first of equal gains: the earliest sample
            picks.append(int(left[best]))
            gains -= 2.0 * (rest @ rest[best])
            gains[best] = -np.inf  # taken (stays -inf whatever is subtracted)
        out.append(picks)
        taken = np.zeros(len(left), dtype=bool)
        taken[np.searchsorted(left, picks)] = True
        left = left[~taken]
    return out


def dq_select(x: np.ndarray, k: int, *, bins: int = DEFAULT_BINS, random_state: int = 0) -> list[int]:
    """``k`` samples: the bins of :func:`graphcut_bins`, then a seeded uniform sample of every bin (the
    first ``k mod bins`` bins give one more), bin after bin."""
    x = as_matrix(x)
    k = check_budget(k, x.shape[0])
    rng = np.random.default_rng(random_state)
    chosen: list[int] = []
    for members, take in zip(graphcut_bins(x, bins), bin_sizes(k, bins), strict=True):
        take = min(take, len(members))
        chosen.extend(int(members[p]) for p in sorted(rng.choice(len(members), size=take, replace=False)))
    return chosen


class DatasetQuantization(Selector):
    """Dataset quantization: GraphCut bins, then a seeded uniform sample of every bin to the exact budget."""

    name = "dq"
    options = (Option("bins", int, DEFAULT_BINS, "dq: bins the pool is split into before sampling."), SEED)
    embeds = True

    def check(self, n: int) -> None:
        bins = self.params["bins"]
        if not 1 <= bins <= n:
            raise ConfigError("bins", f"must be between 1 and the number of records to bin ({n}), got {bins}")

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return dq_select(candidates.vectors(), size, bins=self.params["bins"], random_state=self.params["random_state"])
