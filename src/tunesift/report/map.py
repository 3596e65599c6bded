"""The pool on a page: a 2-D projection of the pool's all-MiniLM-L6-v2 embeddings with each selection's samples
marked, so a diverse selection can be seen next to a top-k one.

The pool's vectors come from the score store (computed once, reused by the diversity selectors and ``embed``);
a pool larger than ``max_points`` is drawn as a seeded sample of that many points, every selected sample
included. The projection keeps neighbours, and is chosen by what it costs (``auto``): scikit-learn's t-SNE up to
5,000 points (2 s at 300, 14 s at 5,000 here, nothing to compile), UMAP up to 20,000 where umap-learn is installed
(its compilation alone is 10 s a process), PCA beyond; the report says which. Each selection's *coverage* is the share
of the pool's occupied cells of a 20 x 20 grid over the map that it reaches: a number for what the picture shows.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.errors import ConfigError

GRID = 20
MAX_POINTS = 100_000
PROJECTIONS = ("auto", "tsne", "umap", "pca")
#: ``auto`` runs t-SNE up to this many points: measured on 2 cores (benchmarks/report_map.py), t-SNE took 2.1 s at
#: 300 points and 13.5 s at 5,000, UMAP 10.2 s and 42.2 s (each in a fresh process: numba compiles it every time).
TSNE_UP_TO = 5_000
#: ``auto`` runs UMAP up to this many points, PCA beyond: on 100,000 points UMAP took 3 to 9 minutes here and up to
#: 10 GB (2 cores, seeded, so one thread), too much for a report's default; ``--projection umap`` runs it on any size.
UMAP_UP_TO = 20_000


def check_projection(projection: str) -> bool:
    """Refuse an unknown projection, or UMAP without umap-learn, before any work; whether UMAP will run."""
    if projection not in PROJECTIONS:
        raise ConfigError("projection", f"unknown projection {projection!r}; choose {', '.join(PROJECTIONS)}")
    has_umap = importlib.util.find_spec("umap") is not None
    if projection == "umap" and not has_umap:
        raise ConfigError("projection", "UMAP needs umap-learn: pip install 'tunesift[explore]' (or --projection pca)")
    return projection != "pca" and has_umap


def project(vectors: np.ndarray, projection: str = "auto", seed: int = 0) -> tuple[np.ndarray, str, dict[str, Any]]:
    """2-D coordinates of ``vectors``, the method's name and what it reports (PCA: its explained variance)."""
    use_umap = check_projection(projection)
    n = len(vectors)
    if n < 3:
        return np.zeros((n, 2)), "none (fewer than 3 points)", {}
    if projection == "tsne" or (projection == "auto" and n <= TSNE_UP_TO):
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (n - 1) / 3)  # scikit-learn needs perplexity < n
        xy = TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity,
                  random_state=seed).fit_transform(vectors)  # fmt: skip
        return xy, f"t-SNE (2-D, cosine, perplexity {perplexity:g}, seeded) of all-MiniLM-L6-v2 embeddings", {}
    if use_umap and n > 15 and (projection == "umap" or n <= UMAP_UP_TO):
        import warnings

        import umap

        # seeded, hence one thread (UMAP says so in a warning at every call: said here once instead)
        reducer = umap.UMAP(n_components=2, n_neighbors=15, metric="cosine", random_state=seed, low_memory=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            xy = reducer.fit_transform(vectors)
        return xy, "UMAP (2-D, cosine, 15 neighbours, seeded) of all-MiniLM-L6-v2 embeddings", {}
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    xy = pca.fit_transform(vectors)
    explained = [float(v) for v in pca.explained_variance_ratio_]
    return xy, "PCA (2 components) of all-MiniLM-L6-v2 embeddings", {"explained_variance": explained}


def pool_map(pool: Any, selections: Sequence[Any], *, store_dir: str | Path | None = None,
             max_points: int = MAX_POINTS, seed: int = 0, projection: str = "auto") -> dict[str, Any]:  # fmt: skip
    """The projection's statistics (method, points drawn, each selection's coverage) and, under ``_points``, what
    the map draws: coordinates, the pool index of each row and each selection's rows."""
    from tunesift.data.sample import Sample
    from tunesift.execution.driver import embed_pool

    valid = [s.index for s in pool if isinstance(s, Sample)]
    chosen = sorted({i for sel in selections for i in sel.indices})
    rng = np.random.default_rng(seed)
    drawn = valid
    if len(valid) > max_points:  # a seeded sample, every selected sample included
        sample = rng.choice(valid, size=max(0, max_points - len(chosen)), replace=False)
        drawn = sorted(set(sample.tolist()) | set(chosen))
    table = embed_pool(pool, indices=drawn, store_dir=store_dir)
    xy, method, extra = project(np.asarray(table.vectors, dtype=np.float32), projection, seed)
    row_of = {index: r for r, index in enumerate(table.indices)}
    low, high = (xy.min(axis=0), xy.max(axis=0)) if len(xy) else (np.zeros(2), np.ones(2))
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
        "method": method,
        **extra,
        "n_points": len(drawn),
        "n_pool": len(valid),
        "grid": GRID,
        "occupied_cells": occupied,
        "selections": marked,
        "_points": {
            "xy": xy,
            "indices": [int(i) for i in table.indices],
            "selected": [[row_of[i] for i in sel.indices if i in row_of] for sel in selections],
        },
    }


#: Characters of record text the map keeps for all its points together (the report stays under 30 MB at
#: 100,000 points): every record keeps ``TEXT_BUDGET / points`` of them, between 160 and 4,000.
TEXT_BUDGET = 16_000_000


def point_details(pool: Any, columns: Sequence[Any], points: dict[str, Any]) -> dict[str, Any]:
    """What hovering or pinning a point shows: each drawn record's text (instruction, input, response; cut to
    the per-record share of ``TEXT_BUDGET``) and its value in every score column (None where skipped)."""
    indices = points["indices"]
    chars = int(min(4000, max(160, TEXT_BUDGET // max(1, len(indices)))))
    texts = []
    for i in indices:
        s = pool.samples[i]
        text = "\n".join(part for part in (s.instruction, s.input, "→ " + s.output) if part)
        texts.append(text[:chars])
    scores = {c.label: [finite_or_none(c.values[i]) for i in indices] for c in columns}
    return {"text": texts, "chars": chars, "scores": scores}


def finite_or_none(value: float | None) -> float | None:
    """A score as a plain float, or None where the method skipped the record (or wrote a non-finite value)."""
    return float(value) if value is not None and np.isfinite(value) else None
