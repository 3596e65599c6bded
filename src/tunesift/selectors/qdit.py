"""QDIT (Bukharin et al., EMNLP Findings 2024, "Data Diversity Matters for Robust Instruction Tuning"): greedy
maximisation of ``f(S) = (1 - alpha) d(S) + alpha q(S)``, facility-location diversity over prompt embeddings plus
quality (METHODS.md §15).

``d(S) = (1/N) sum_v max(0, max_{a in S} cos(v, a))`` over the N candidates (a gain is at most 1), ``q`` the quality
column min-max scaled to [0, 1] over the candidates; ``alpha`` weighs quality (0: pure diversity, 1: the quality
ranking). The greedy loop is facility location's (:func:`~tunesift.selectors.facility_location.greedy_coverage`,
exact incremental gains, the kernel in blocks), with the cosine kernel clipped at 0.
"""

from __future__ import annotations

import numpy as np

from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.selectors.base import Candidates, Selector, as_matrix
from tunesift.selectors.facility_location import greedy_coverage
from tunesift.selectors.neighbours import NEIGHBOURS, nearest, neighbours_for, sparse_greedy


def scaled_quality(values: np.ndarray) -> np.ndarray:
    """Quality min-max scaled to [0, 1] (all equal: all 0, so only diversity decides)."""
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values, dtype=np.float64) if high == low else (values - low) / (high - low)


def qdit_select(x: np.ndarray, quality: np.ndarray, k: int, *, alpha: float = 0.5, block: int = 512,
                max_kernel_bytes: int = 2 << 30, neighbours: int | None = None) -> list[int]:  # fmt: skip
    """QDIT's greedy picks (positions in pick order) from unit embeddings ``x`` and raw ``quality``: the exact dense
    greedy, or (``neighbours``, and by default beyond 20,000 candidates) the lazy greedy over each point's nearest
    neighbours (:mod:`tunesift.selectors.neighbours`)."""
    check_alpha(alpha)
    x = as_matrix(x)
    n = x.shape[0]
    quality = np.asarray(quality, dtype=np.float64)
    weight, bonus = (1.0 - alpha) / n, alpha * scaled_quality(quality)
    neighbours = neighbours_for(n, neighbours)
    if neighbours is not None:
        ids, sims = nearest(x, neighbours + 1, metric="ip")  # + 1: each point is its own nearest
        return sparse_greedy(ids, sims, k, weight=weight, bonus=bonus)
    return greedy_coverage(lambda rows: x[rows] @ x.T, n, k, weight=weight, bonus=bonus, block=block,
                           max_kernel_bytes=max_kernel_bytes)  # fmt: skip


def check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError("alpha", f"the weight of quality must be in [0, 1], got {alpha}")


class QDIT(Selector):
    """Quality-diversity greedy over the candidates' MiniLM prompt embeddings and a quality column."""

    name = "qdit"
    embeds = True
    minilm_text = "prompt"
    options = (
        Option("alpha", float, 0.5, "QDIT's weight of quality in [0, 1] (0: diversity only, 1: the quality ranking)."),
        Option("by", str | None, None, "The quality column (default: the method's score: DEITA, a reward, a judge)."),
        NEIGHBOURS,
    )  # fmt: skip

    def check(self, n: int) -> None:
        check_alpha(self.params["alpha"])

    def select(self, candidates: Candidates, size: int) -> list[int]:
        by = self.params["by"] or candidates.score_field
        values = [candidates.value(i, by) for i in candidates.indices]
        scored = [p for p, v in enumerate(values) if v is not None]
        if not scored:
            return []
        vectors = np.asarray(candidates.vectors())[scored]
        quality = np.array([values[p] for p in scored], dtype=np.float64)
        picks = qdit_select(vectors, quality, size, alpha=self.params["alpha"], neighbours=self.params["neighbours"])
        return [scored[p] for p in picks]
