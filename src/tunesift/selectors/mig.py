"""MIG (Chen et al., ACL Findings 2025, "MIG: Automatic Data Selection for Instruction Tuning by Maximizing
Information Gain in Semantic Space"): greedy information gain on a label graph (METHODS.md §14).

Followed from ``mig/label.py`` (``SimLabelGraph``) and ``mig/sampler.py`` (``MIGSampler``): labels are a sample's
INSTAG tags, its quality the mean of complexity x quality over its DEITA-rated turns; the label graph keeps
cosine similarities of the labels' embeddings at or above ``sim_threshold``, weighs the off-diagonal by
``prop_weight`` and normalises every column; a sample's vector (its quality on each of its labels) is propagated
through it, ``u = v P``. Each step picks the sample with the largest first-order gain ``u . phi'(x)`` where ``x``
sums the picked vectors and ``phi(x) = (x + a)^b``. Here ``V``, ``P`` and ``U`` are sparse, and a pick updates only
the gains of samples sharing a label with it (the labels whose ``phi'`` changed), never a dense ``N x L`` matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.errors import ConfigError, TunesiftError
from tunesift.options import Option
from tunesift.selectors.base import Candidates, Selector, check_budget

PHI_A, PHI_B, PHI_ALPHA = 1e-6, 0.8, 1.0


def label_graph(embeddings: np.ndarray, *, sim_threshold: float = 0.9, prop_weight: float = 1.0) -> Any:
    """``P`` (sparse CSR, L x L): label cosines below ``sim_threshold`` set to 0, the off-diagonal times
    ``prop_weight``, every column divided by its sum. Computed a block of rows at a time."""
    from scipy import sparse

    e = np.asarray(embeddings, dtype=np.float32)
    n = len(e)
    rows, cols, vals = [], [], []
    for begin in range(0, n, 1024):
        block = e[begin : begin + 1024] @ e.T
        r, c = np.nonzero(block >= sim_threshold)
        rows.append(r + begin)
        cols.append(c)
        vals.append(block[r, c].astype(np.float64))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    v = np.where(r == c, v, prop_weight * v)
    w = sparse.csr_matrix((v, (r, c)), shape=(n, n))
    sums = np.asarray(w.sum(axis=0)).ravel()
    return (w @ sparse.diags(np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0))).tocsr()


def propagate(labels: Sequence[Sequence[int]], quality: Sequence[float], graph: Any, *, norm: bool = False) -> Any:
    """``U = V P`` (sparse CSR, N x L): a sample's quality on each of its labels (a label once; ``norm``: quality
    divided by its number of labels), through the label graph."""
    from scipy import sparse

    indptr, indices, data = [0], [], []
    for tags, q in zip(labels, quality, strict=True):
        unique = sorted(set(tags))
        indices.extend(unique)
        data.extend([q / len(unique) if norm and unique else q] * len(unique))
        indptr.append(len(indices))
    v = sparse.csr_matrix((np.array(data, dtype=np.float64), np.array(indices, dtype=np.int64), np.array(indptr)),
                          shape=(len(labels), graph.shape[0]))  # fmt: skip
    return (v @ graph).tocsr()


def phi_prime(x: np.ndarray, phi_type: str = "pow", a: float = PHI_A, b: float = PHI_B,
              alpha: float = PHI_ALPHA) -> np.ndarray:  # fmt: skip
    """``phi'(x)``: ``b (x + a)^(b - 1)`` (``pow``) or ``alpha exp(-alpha x)`` (``exp``)."""
    return b * np.power(x + a, b - 1.0) if phi_type == "pow" else alpha * np.exp(-alpha * x)


def mig_greedy(u: Any, k: int, *, phi_type: str = "pow") -> list[int]:
    """MIG's picks (row positions of ``u``, in pick order): each step the largest ``u_i . phi'(x)`` among rows not
    yet picked (ties: the first), then ``x += u_j``. Gains are kept up to date incrementally: only the labels of
    ``u_j`` change ``phi'``, so only the rows holding those labels change gain."""
    n, n_labels = u.shape
    k = check_budget(k, n)
    rows = u.tocsr()
    columns = u.tocsc()
    x = np.zeros(n_labels, dtype=np.float64)
    slope = phi_prime(x, phi_type)
    gains = rows @ slope
    available = np.ones(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < k:
        j = int(np.argmax(np.where(available, gains, -np.inf)))
        chosen.append(j)
        available[j] = False
        start, end = rows.indptr[j], rows.indptr[j + 1]
        touched, amounts = rows.indices[start:end], rows.data[start:end]
        if not len(touched):
            continue
        x[touched] += amounts
        new = phi_prime(x[touched], phi_type)
        gains += columns[:, touched] @ (new - slope[touched])
        slope[touched] = new
    return chosen


def check_mig(sim_threshold: float, phi_type: str) -> None:
    if not 0.0 < sim_threshold <= 1.0:
        raise ConfigError("sim-threshold", f"must be in (0, 1], got {sim_threshold}")
    if phi_type not in ("pow", "exp"):
        raise ConfigError("phi-type", f"choose pow or exp, got {phi_type!r}")


class MIG(Selector):
    """MIG's information-gain greedy over the candidates' INSTAG tags and DEITA quality."""

    name = "mig"
    options = (
        Option("by", str | None, None, "The quality column (default: the method's: mig_quality, the mean over turns "
               "of DEITA complexity x quality)."),
        Option("labels", str, "instag_tags", "The column holding each sample's labels (INSTAG's normalised tags)."),
        Option("sim_threshold", float, 0.9, "Label-graph edges: label cosines (all-MiniLM-L6-v2) at or above this."),
        Option("prop_weight", float, 1.0, "Weight of a neighbouring label in the propagation (0: no graph).",
               at_least=0),
        Option("norm", bool, False, "Divide a sample's quality by its number of labels (the CLI default: no).",
               flag="--norm/--no-norm"),
        Option("phi_type", str, "pow", "pow: phi(x) = (x + 1e-6)^0.8; exp: 1 - exp(-x)."),
    )  # fmt: skip

    def check(self, n: int) -> None:
        check_mig(self.params["sim_threshold"], self.params["phi_type"])

    def select(self, candidates: Candidates, size: int) -> list[int]:
        by = self.params["by"] or candidates.score_field
        positions, tags, quality = [], [], []
        for pos, index in enumerate(candidates.indices):
            labels = candidates.rows[index].get(self.params["labels"])
            value = candidates.value(index, by)
            if labels is not None and value is not None:
                positions.append(pos)
                tags.append(list(labels))
                quality.append(value)
        if not positions:  # the column exists (checked before scoring): its values are what is missing
            unlabelled = sum(candidates.rows[i].get(self.params["labels"]) is None for i in candidates.indices)
            raise TunesiftError(f"MIG: no candidate has both {self.params['labels']} and {by} ({unlabelled} of "
                                f"{len(candidates.indices)} have no {self.params['labels']}: the tagger's replies "
                                "failed or could not be read; the skip reasons say which)")  # fmt: skip
        vocabulary = sorted({t for row in tags for t in row})
        where = {t: i for i, t in enumerate(vocabulary)}
        embeddings = candidates.embed_texts(vocabulary) if vocabulary else np.zeros((0, 1), dtype=np.float32)
        graph = label_graph(embeddings, sim_threshold=self.params["sim_threshold"],
                            prop_weight=self.params["prop_weight"])  # fmt: skip
        u = propagate([[where[t] for t in row] for row in tags], quality, graph, norm=self.params["norm"])
        edges = int((graph.nnz - np.count_nonzero(graph.diagonal())) // 2)
        self.details = {"labels": len(vocabulary), "edges": edges,
                        "mean_degree": round(2 * edges / len(vocabulary), 4) if vocabulary else 0.0,
                        "candidates": len(positions)}  # fmt: skip
        return [positions[p] for p in mig_greedy(u, size, phi_type=self.params["phi_type"])]
