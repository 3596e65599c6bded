"""A cheap head fitted to a teacher's scores, and judged on rows it never saw (METHODS.md §22).

The head is a linear model on sentence vectors, fitted in float64: ridge regression on the teacher's raw score
(``RidgeCV``, the intercept unpenalised, the alpha chosen by its efficient leave-one-out), or a logistic
regression for ``P(score >= t)``. Before a head scores a pool, :func:`evaluate` gives every labelled row an
out-of-fold prediction (five folds, rows with the same text in one fold, the alpha search inside each fold) and
measures how well they reproduce the teacher: Spearman first, then Pearson, and at the teacher's threshold
precision, recall, F1, ROC-AUC and the top-k agreements beside the random baseline, plus a learning curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesift.errors import ConfigError

HEADS = ("ridge", "logistic")
#: RidgeCV's alpha grid unless the user gives one (METHODS.md §22).
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
FOLDS = 5
TOP_RATES = (0.05, 0.10, 0.20)
#: Fewer positives than this at the threshold: F1 and AUC are flagged unreliable.
MIN_POSITIVES = 10
#: Labelled rows of each learning-curve point (up to the labelled count, which is always the last point).
CURVE = (250, 500, 1000, 2000, 4000, 8000, 16000)
#: Rows scored per block: the pool's vectors are never all in memory at once.
BLOCK = 65536


@dataclass(frozen=True)
class Head:
    """A fitted head: ``score = x @ weights + bias`` (ridge), or its logistic (``logistic``); ``alpha`` is the
    chosen ridge penalty, or the inverse regularisation ``C`` of the logistic head."""

    kind: str
    weights: np.ndarray
    bias: float
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores of the rows of ``x`` (float64), a block at a time."""
        out = np.empty(len(x), dtype=np.float64)
        for begin in range(0, len(x), BLOCK):
            block = np.asarray(x[begin : begin + BLOCK], dtype=np.float64)
            out[begin : begin + BLOCK] = block @ self.weights + self.bias
        if self.kind == "logistic":
            out = 1.0 / (1.0 + np.exp(-out))
        return out


def fit_head(x: np.ndarray, y: np.ndarray, kind: str = "ridge", alphas: Sequence[float] = ALPHAS,
             threshold: float | None = None) -> Head:  # fmt: skip
    """The head on every row of ``x`` (float64). ``logistic`` needs ``threshold`` and both classes at it;
    ``class_weight="balanced"`` where under 20 % of the rows are positive (METHODS.md §22)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if kind == "ridge":
        from sklearn.linear_model import RidgeCV

        model = RidgeCV(alphas=list(alphas), fit_intercept=True).fit(x, y)
        return Head("ridge", np.asarray(model.coef_, dtype=np.float64), float(model.intercept_), float(model.alpha_))
    if kind != "logistic":
        raise ConfigError("head", f"choose one of {', '.join(HEADS)}, got {kind!r}")
    if threshold is None:
        raise ConfigError("teacher-threshold", "the logistic head predicts P(score >= t): give the teacher's threshold")
    positive = y >= threshold
    if positive.sum() < FOLDS or (~positive).sum() < FOLDS:
        raise ConfigError("head", f"the logistic head needs at least {FOLDS} rows on each side of {threshold:g}; "
                          f"{int(positive.sum())} of {len(y)} are at or above it: use --head ridge")  # fmt: skip
    from sklearn.linear_model import LogisticRegressionCV

    weight = "balanced" if positive.mean() < 0.2 else None
    model = LogisticRegressionCV(Cs=10, cv=FOLDS, max_iter=1000, class_weight=weight).fit(x, positive)
    return Head("logistic", np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0]),
                float(model.C_[0]))  # fmt: skip


def integer_scale(y: np.ndarray) -> bool:
    """The teacher scores whole numbers (a 0-5 rating): the head's prediction is then rounded to the scale."""
    return bool(np.all(np.isfinite(y)) and np.all(y == np.round(y)))


def fold_of(y: np.ndarray, groups: Sequence[str], seed: int, k: int = FOLDS) -> np.ndarray:
    """Each row's fold: stratified by the integer score (or five quantile bins of a continuous one, or where a
    score is too rare to reach every fold), rows with the same text (``groups``) always in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y, dtype=np.float64)
    strata = np.round(y).astype(np.int64) if integer_scale(y) else None
    if strata is None or np.unique(strata, return_counts=True)[1].min() < k:
        edges = np.quantile(y, [0.2, 0.4, 0.6, 0.8])
        strata = np.searchsorted(edges, y, side="right")
    _, group_ids = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    folds = np.empty(len(y), dtype=np.int64)
    import warnings

    with warnings.catch_warnings():  # a rare stratum: the split is still valid, only less balanced
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), strata, group_ids)):
            folds[test] = f
    return folds


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: np.ndarray, kind: str, alphas: Sequence[float],
                threshold: float | None) -> np.ndarray:  # fmt: skip
    """Every row's prediction by a head fitted, alpha search included, on the other folds only."""
    pred = np.empty(len(y), dtype=np.float64)
    for f in np.unique(folds):
        test = folds == f
        head = fit_head(x[~test], y[~test], kind, alphas, threshold)
        pred[test] = head.predict(x[test])
    return pred


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """The rows of the ``k`` largest values, ties broken by the lower row index."""
    order = np.lexsort((np.arange(len(values)), -np.asarray(values, dtype=np.float64)))
    return order[:k]


def topk_agreement(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float]:
    """``topk_overlap`` = |T_k(pred) & T_k(y)| / k and the tie-aware ``topk_precision`` = the share of T_k(pred)
    whose teacher score reaches the k-th largest one; ``random`` = k / n."""
    chosen = top_k(pred, k)
    v_k = np.sort(np.asarray(y, dtype=np.float64))[::-1][k - 1]
    overlap = len(set(chosen.tolist()) & set(top_k(y, k).tolist())) / k
    return {"k": k, "topk_overlap": overlap, "topk_precision": float(np.mean(y[chosen] >= v_k)),
            "random": k / len(y)}  # fmt: skip


def predicted_positive(pred: np.ndarray, kind: str, threshold: float, scale: tuple[float, float] | None) -> np.ndarray:
    """Which rows the head calls positive at the threshold: the logistic head where P >= 0.5; the ridge head where
    its prediction, clipped to the teacher's scale and rounded half to even on a whole-number scale, reaches it."""
    if kind == "logistic":
        return pred >= 0.5
    if scale is not None:
        return np.round(np.clip(pred, *scale)) >= threshold
    return pred >= threshold


def _correlation(a: np.ndarray, b: np.ndarray, rank: bool) -> float | None:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    if rank:
        from scipy.stats import spearmanr

        return float(spearmanr(a, b).statistic)
    return float(np.corrcoef(a, b)[0, 1])


def metrics(y: np.ndarray, pred: np.ndarray, threshold: float | None, kind: str = "ridge") -> dict[str, Any]:
    """How well ``pred`` reproduces the teacher's ``y`` (METHODS.md §22, worked example B)."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    n = len(y)
    out: dict[str, Any] = {"n": n, "spearman": _correlation(y, pred, rank=True),
                           "pearson": _correlation(y, pred, rank=False)}  # fmt: skip
    out["top_k"] = {f"{round(r * 100)}%": topk_agreement(y, pred, max(1, math.floor(r * n))) for r in TOP_RATES}
    if threshold is None:
        return out
    positive = y >= threshold
    scale = (float(y.min()), float(y.max())) if integer_scale(y) else None
    called = predicted_positive(pred, kind, threshold, scale)
    hits = int(np.sum(positive & called))
    precision = hits / int(called.sum()) if called.any() else None
    recall = hits / int(positive.sum()) if positive.any() else None
    f1 = None if not precision or not recall else 2 * precision * recall / (precision + recall)
    auc = None
    if positive.any() and not positive.all():
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(positive, pred))  # the trapezoid: a tie between the classes counts 1/2
    out["at_threshold"] = {"threshold": threshold, "positives": int(positive.sum()), "precision": precision,
                           "recall": recall, "f1": f1, "roc_auc": auc,
                           "reliable": bool(positive.sum() >= MIN_POSITIVES)}  # fmt: skip
    return out


def rate_matched(y_labelled: np.ndarray, threshold: float, scores: np.ndarray) -> tuple[float, float]:
    """``(p, tau)``: the teacher's pass rate ``p = mean(y >= t)`` on the labelled rows, and the pool score ``tau``
    above which the same share of the pool lies (``np.quantile(scores, 1 - p)``): a ridge head shrinks toward the
    mean, so ``score >= t`` would keep too few. ``p = 0`` keeps nothing (tau is infinite)."""
    p = float(np.mean(np.asarray(y_labelled) >= threshold))
    if p == 0.0 or len(scores) == 0:
        return p, math.inf
    return p, float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - p))


@dataclass
class Evaluation:
    """The held-out figures of a head, and the learning curve (Spearman by labelled rows)."""

    figures: dict[str, Any]
    curve: list[dict[str, Any]]
    oof: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {**self.figures, "learning_curve": self.curve}


def evaluate(x: np.ndarray, y: np.ndarray, groups: Sequence[str], *, kind: str = "ridge",
             alphas: Sequence[float] = ALPHAS, threshold: float | None = None,
             seed: int = 0) -> Evaluation:  # fmt: skip
    """Out-of-fold figures for the labelled rows (in their seeded order), and Spearman on the first 250, 500, ...
    rows of that order, each split into its own folds."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    folds = fold_of(y, groups, seed)
    oof = out_of_fold(x, y, folds, kind, alphas, threshold)
    figures = metrics(y, oof, threshold, kind)
    curve = []
    for m in [c for c in CURVE if c < len(y)] + [len(y)]:
        if m < 2 * FOLDS:
            continue
        try:  # the first m rows split into folds of their own (all of them: the figures' own predictions)
            pred = oof if m == len(y) else out_of_fold(x[:m], y[:m], fold_of(y[:m], list(groups)[:m], seed), kind,
                                                       alphas, threshold)  # fmt: skip
        except ConfigError:  # too few positives for a logistic head on so few rows
            continue
        curve.append({"labelled": m, "spearman": _correlation(y[:m], pred, rank=True)})
    return Evaluation(figures, curve, oof)
