"""Random selection: a seeded uniform sample of the candidates, the baseline every method is measured against;
balanced by source (Ivison et al. 2025, METHODS.md §16), the baseline at-scale studies compare with."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.selectors.base import SEED, Candidates, Selector, check_budget

#: ``--balance-by auto``: the first of these fields that some record has.
SOURCE_FIELDS = ("dataset", "source")


def random_select(n: int, k: int, *, random_state: int = 0) -> list[int]:
    """A seeded uniform sample of k of n indices (the baseline every comparison includes)."""
    k = check_budget(k, n)
    return [int(i) for i in np.random.default_rng(random_state).choice(n, size=k, replace=False)]


def balanced_quotas(sizes: Sequence[int], k: int) -> list[int]:
    """How many each source gives: round robin, one per non-exhausted source per round, until ``k`` are taken.
    Closed form: the largest ``t`` with ``sum min(n_s, t) <= k``; each source ``min(n_s, t)``, and what is left one
    each to the first sources (in order) holding more than ``t``."""
    k = min(k, sum(sizes))
    low, high = 0, max(sizes, default=0)
    while low < high:  # the largest t with sum(min(n, t)) <= k
        mid = (low + high + 1) // 2
        if sum(min(n, mid) for n in sizes) <= k:
            low = mid
        else:
            high = mid - 1
    quotas = [min(n, low) for n in sizes]
    left = k - sum(quotas)
    for s, n in enumerate(sizes):
        if left == 0:
            break
        if n > low:
            quotas[s] += 1
            left -= 1
    return quotas


def balanced_select(sources: Sequence[Hashable], k: int, *, random_state: int = 0) -> list[int]:
    """Positions of ``k`` samples balanced across ``sources`` (one label per sample; sources in order of first
    appearance): each source's quota as :func:`balanced_quotas`, a seeded random sample within it, the whole
    shuffled with the seed."""
    k = check_budget(k, len(sources))
    members: dict[Hashable, list[int]] = {}
    for pos, source in enumerate(sources):
        members.setdefault(source, []).append(pos)
    groups = list(members.values())
    rng = np.random.default_rng(random_state)
    chosen: list[int] = []
    for group, quota in zip(groups, balanced_quotas([len(g) for g in groups], k), strict=True):
        chosen.extend(int(group[i]) for i in rng.permutation(len(group))[:quota])
    return [chosen[i] for i in rng.permutation(len(chosen))]


class Random(Selector):
    """A seeded uniform sample of the candidates: the baseline every method is measured against; with ``balance``
    (``--balance-by FIELD``), the same number from every source as far as each has them."""

    name = "random"
    options = (
        SEED,
        Option("balance", str | None, None, "Balance by source: the record field naming each record's source "
               "(auto: dataset, else source); Ivison et al.'s round-robin quota.", flag="--balance-by"),
    )  # fmt: skip

    def select(self, candidates: Candidates, size: int) -> list[int]:
        field = self.params["balance"]
        if field is None:
            return random_select(len(candidates.indices), size, random_state=self.params["random_state"])
        values = source_values(candidates, field)
        return balanced_select(values, size, random_state=self.params["random_state"])


def source_values(candidates: Candidates, field: str) -> list[Any]:
    """Each candidate's source (a missing one is its own source, ``None``); a field no record has is refused."""
    names = SOURCE_FIELDS if field == "auto" else (field,)
    for name in names:
        values = candidates.record_field(name)
        if any(v is not None for v in values):
            return [v if isinstance(v, Hashable) else str(v) for v in values]
    raise ConfigError("balance-by", f"no record has a {' or '.join(repr(n) for n in names)} field to balance by")
