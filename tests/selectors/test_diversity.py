"""Diversity selectors pinned to obvious references on small inputs (full matrices, plain loops)."""

from __future__ import annotations

import numpy as np
import pytest

from tunesift.errors import ConfigError
from tunesift.selectors.deita import deita_filter
from tunesift.selectors.facility_location import facility_location
from tunesift.selectors.kcenter import kcenter_greedy
from tunesift.selectors.longest import longest
from tunesift.selectors.random import random_select


def points(n=80, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_kcenter_matches_brute_force():
    x = points()
    dist = np.linalg.norm(x[:, None, :].astype(np.float64) - x[None, :, :], axis=-1)
    chosen = [int(np.random.default_rng(3).integers(len(x)))]
    while len(chosen) < 15:
        nearest = dist[:, chosen].min(axis=1)
        nearest[chosen] = -1
        chosen.append(int(np.argmax(nearest)))
    assert kcenter_greedy(x, 15, random_state=3) == chosen
    assert kcenter_greedy(x, 5, seeds=[7, 9])[:2] == [7, 9]


@pytest.mark.parametrize("window", [1, 3, 16, 256])
def test_kcenter_lazy_bounds_pick_as_the_plain_loop_with_ties(window):
    # Integer points: every squared distance is exact in float32, so the many ties (repeated points, equal
    # distances on a grid) must go to the lowest index exactly as the plain loop sends them, whatever the
    # window, the frontier's growth and the points left behind by the lazy bounds.
    x = np.random.default_rng(5).integers(0, 12, size=(1500, 3)).astype(np.float32)
    xi = x.astype(np.int64)
    chosen = [int(np.random.default_rng(2).integers(len(x)))]
    nearest = ((xi - xi[chosen[0]]) ** 2).sum(axis=1)
    nearest[chosen[0]] = -1
    while len(chosen) < 120:
        best = int(np.argmax(nearest))  # the first of the highest
        chosen.append(best)
        nearest = np.minimum(nearest, ((xi - xi[best]) ** 2).sum(axis=1))
        nearest[chosen] = -1
    assert kcenter_greedy(x, 120, random_state=2, window=window) == chosen


def test_kcenter_with_duplicates_never_repeats():
    x = np.zeros((10, 3), dtype=np.float32)
    picks = kcenter_greedy(x, 10)
    assert sorted(picks) == list(range(10))


def test_facility_location_matches_plain_greedy():
    x = points(n=60, d=5, seed=1)
    n, d = x.shape
    sim = np.exp(-np.linalg.norm(x[:, None, :].astype(np.float64) - x[None, :, :], axis=-1) / d)

    def objective(s):
        return sim[:, s].max(axis=1).sum() if s else 0.0

    chosen: list[int] = []
    for _ in range(12):
        gains = [(objective([*chosen, j]) - objective(chosen), -j) for j in range(n) if j not in chosen]
        chosen.append(-max(gains)[1])
    assert facility_location(x, 12) == chosen


def test_deita_admits_against_the_admitted_set_not_nearest_neighbours():
    # A (best) ~ B at cos 0.95; B ~ C at cos 0.95; A ~ C at cos ~0.81 < 0.9.
    # DEITA: A admitted, B rejected (too close to A), C admitted (B was never admitted).
    # Nearest-neighbour distance over the whole set would reject C because of B.
    angle = np.arccos(0.95)
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([np.cos(angle), np.sin(angle), 0.0])
    c = np.array([np.cos(2 * angle), np.sin(2 * angle), 0.0])
    x = np.stack([c, a, b]).astype(np.float32)
    scores = [1.0, 3.0, 2.0]
    assert deita_filter(scores, x, k=3, tau=0.9) == [1, 0]


def reference_deita(scores, x, k, tau):
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    admitted = []
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if all(float(unit[i] @ unit[j]) < tau for j in admitted):
            admitted.append(i)
        if len(admitted) == k:
            break
    return admitted


@pytest.mark.parametrize(("tau", "block"), [(0.3, 512), (0.5, 7), (0.0, 3)])
def test_deita_matches_reference(tau, block):
    x = points(n=200, d=4, seed=2)
    scores = list(np.random.default_rng(5).random(200))
    assert deita_filter(scores, x, k=40, tau=tau, block=block) == reference_deita(scores, x, 40, tau)


def test_deita_skips_unscored_and_checks_input():
    x = points(n=4, d=3)
    assert deita_filter([None, 0.5, float("nan"), 0.1], x, k=4, tau=1.01) == [1, 3]
    with pytest.raises(ConfigError, match="scores"):
        deita_filter([1.0], x, k=1)


def test_random_and_longest():
    a, b = random_select(100, 10, random_state=1), random_select(100, 10, random_state=1)
    assert a == b and len(set(a)) == 10 and random_select(100, 10, random_state=2) != a
    assert longest([3, 9, 1, 9, 4], 3) == [1, 3, 4]


def test_bad_embeddings():
    with pytest.raises(ConfigError, match="NaN"):
        kcenter_greedy(np.array([[np.nan, 1.0]]), 1)
    with pytest.raises(ConfigError, match="positive"):
        facility_location(points(), 0)
