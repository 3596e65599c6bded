"""DEITA's score-first diversity filter (METHODS.md §6): best first, a sample admitted only below ``tau``
cosine similarity to every admitted one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.selectors.base import Candidates, Selector, as_matrix, check_budget


def deita_filter(
    scores: Sequence[float | None], x: np.ndarray, k: int, *, tau: float = 0.9, block: int = 512
) -> list[int]:
    """DEITA's score-first diversity filter.

    Samples go highest score first (ties by index); one is admitted only if its cosine similarity to
    *every sample admitted so far* is below ``tau``; stop at ``k``. (Nearest-neighbour distance over the
    whole set, as a known port does, is a different method.) Samples without a score are never admitted.
    """
    x = as_matrix(x)
    if len(scores) != x.shape[0]:
        raise ConfigError("scores", f"{len(scores)} scores for {x.shape[0]} embeddings")
    k = check_budget(k, x.shape[0])
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    order = sorted((i for i, s in enumerate(scores) if s is not None and np.isfinite(s)), key=lambda i: (-scores[i], i))
    admitted: list[int] = []
    bank = np.empty((k, x.shape[1]), dtype=np.float32)
    for begin in range(0, len(order), block):
        candidates = order[begin : begin + block]
        # similarity to everything admitted before this block, at once; then in order within the block
        worst = (
            (unit[candidates] @ bank[: len(admitted)].T).max(axis=1) if admitted else np.full(len(candidates), -np.inf)
        )
        start = len(admitted)
        for c, before in zip(candidates, worst, strict=True):
            if before >= tau:
                continue
            if len(admitted) > start and float((bank[start : len(admitted)] @ unit[c]).max()) >= tau:
                continue
            bank[len(admitted)] = unit[c]
            admitted.append(c)
            if len(admitted) == k:
                return admitted
    return admitted


BY = Option("by", str | None, None, "The score column ranked by (default: the scorer's own).")


class DeitaFilter(Selector):
    """DEITA's score-first diversity filter: best first, a sample admitted only below ``tau`` cosine
    similarity to every admitted one."""

    name = "deita"
    options = (BY, Option("tau", float, 0.9, "deita: admit a sample only below this cosine similarity to every "
                          "admitted one."))  # fmt: skip
    embeds = True

    def check(self, n: int) -> None:
        if not 0 < self.params["tau"] <= 1:
            raise ConfigError("tau", f"a cosine similarity in (0, 1], got {self.params['tau']}")

    def select(self, candidates: Candidates, size: int) -> list[int]:
        by = self.params["by"] or candidates.score_field
        scores = [candidates.value(i, by) for i in candidates.indices]
        return deita_filter(scores, candidates.vectors(), size, tau=self.params["tau"])
