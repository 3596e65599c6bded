"""Random selection: a seeded uniform sample of the candidates, the baseline every method is measured against."""

from __future__ import annotations

import numpy as np

from tunesift.selectors.base import SEED, Candidates, Selector, check_budget


def random_select(n: int, k: int, *, random_state: int = 0) -> list[int]:
    """A seeded uniform sample of k of n indices (the baseline every comparison includes)."""
    k = check_budget(k, n)
    return [int(i) for i in np.random.default_rng(random_state).choice(n, size=k, replace=False)]


class Random(Selector):
    """A seeded uniform sample of the candidates: the baseline every method is measured against."""

    name = "random"
    options = (SEED,)

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return random_select(len(candidates.indices), size, random_state=self.params["random_state"])
