"""The pool on a page: a 2-D projection (PCA) of the pool's all-MiniLM-L6-v2 embeddings with each selection's
samples marked, so a diverse selection can be seen next to a top-k one.

The pool's vectors come from the score store (computed once, reused by the diversity selectors and ``embed``);
a pool larger than ``max_points`` is drawn as a seeded sample of that many points, every selected sample
included. Each selection's *coverage* is the share of the pool's occupied cells of a 20 x 20 grid over the map
that it reaches: a number for what the picture shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

GRID = 20
MAX_POINTS = 20_000


def pool_map(pool: Any, selections: Sequence[Any], *, store_dir: str | Path | None = None,
             max_points: int = MAX_POINTS, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """The projection's statistics (explained variance, points drawn, each selection's coverage) and, under
    ``_points``, what the figure draws."""
    from sklearn.decomposition import PCA

    from tunesift.data.sample import Sample
    from tunesift.execution.driver import embed_pool

    valid = [s.index for s in pool if isinstance(s, Sample)]
    chosen = sorted({i for sel in selections for i in sel.indices})
    rng = np.random.default_rng(seed)
    drawn = valid if len(valid) <= max_points else sorted(
        set(rng.choice(valid, size=max_points, replace=False).tolist()) | set(chosen))  # fmt: skip
    table = embed_pool(pool, indices=drawn, store_dir=store_dir)
    pca = PCA(n_components=2, random_state=seed)
    xy = pca.fit_transform(table.vectors) if len(drawn) >= 2 else np.zeros((len(drawn), 2))
    row_of = {index: r for r, index in enumerate(table.indices)}
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    cells = np.minimum(((xy - low) / span * GRID).astype(int), GRID - 1)
    cell_id = cells[:, 0] * GRID + cells[:, 1]
    occupied = len(set(cell_id.tolist()))
    marked = []
    for sel in selections:
        rows = [row_of[i] for i in sel.indices if i in row_of]
        marked.append({"label": sel.label, "n": len(rows),
                       "coverage": len(set(cell_id[rows].tolist())) / occupied if occupied else None})  # fmt: skip
    return {
        "method": "PCA (2 components) of all-MiniLM-L6-v2 embeddings",
        "explained_variance": [float(v) for v in getattr(pca, "explained_variance_ratio_", [0.0, 0.0])],
        "n_points": len(drawn),
        "n_pool": len(valid),
        "grid": GRID,
        "occupied_cells": occupied,
        "selections": marked,
        "_points": {"xy": xy, "selected": [[row_of[i] for i in sel.indices if i in row_of] for sel in selections]},
    }
