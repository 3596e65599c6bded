"""Selection rules on hand-made scores, where every answer is known."""

from __future__ import annotations

import math

import pytest

from tunesift.errors import ConfigError
from tunesift.recipes.steps import select_by_rule, select_cherry, select_superfilter
from tunesift.selectors import Budget

SCORES = [0.5, 1.0, 1.2, None, 0.9, 0.5, math.nan, 0.99, 0.1, 2.0]
#          0    1    2    3     4    5    6        7     8    9


def test_cherry_drops_above_one_keeps_exactly_one_and_ranks_highest_first():
    sel = select_cherry(SCORES, Budget(count=100))
    assert sel.indices == [1, 7, 4, 0, 5, 8]  # ties (0.5 at 0 and 5) by pool position
    assert sel.n_candidates == 6 and sel.n_pool == 10 and sel.n_scored == 8


def test_cherry_rate_counts_the_survivors():
    # 6 survivors: int(0.5 * 6) = 3
    assert select_cherry(SCORES, Budget(rate=0.5)).indices == [1, 7, 4]
    # int(0.1 * 6) = 0
    assert select_cherry(SCORES, Budget(rate=0.1)).indices == []


def test_superfilter_keeps_strictly_below_one_and_rate_counts_the_pool():
    sel = select_superfilter(SCORES, Budget(count=100))
    assert sel.indices == [7, 4, 0, 5, 8]
    # pool of 10: int(0.3 * 10) = 3
    assert select_superfilter(SCORES, Budget(rate=0.3)).indices == [7, 4, 0]


def test_count_is_capped_by_candidates_and_order_is_deterministic():
    assert select_by_rule("cherry", SCORES, Budget(count=2)).indices == [1, 7]
    assert select_by_rule("superfilter", [0.5] * 5, Budget(count=3)).indices == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs", [{}, {"rate": 0.1, "count": 3}, {"rate": 0.0}, {"rate": 1.5}, {"count": 0}, {"count": -2}]
)
def test_bad_budgets_are_rejected(kwargs):
    with pytest.raises(ConfigError):
        Budget(**kwargs)


def test_unknown_rule():
    with pytest.raises(ConfigError, match="unknown rule"):
        select_by_rule("best", SCORES, Budget(count=1))


def test_bottom_ranks_lowest_first_over_the_pool():
    scores = [0.5, None, -1.0, 0.5, math.nan, 2.0]
    chosen = select_by_rule("bottom", scores, Budget(rate=0.5))
    assert chosen.indices == [2, 0, 3] and chosen.n_candidates == 4


def test_alpagasus_keeps_at_or_above_4_5():
    scores = [4.5, 5.0, 4.49, None, 4.8, 3.0]
    assert select_by_rule("alpagasus", scores, Budget(count=10)).indices == [1, 4, 0]
    assert select_by_rule("alpagasus", scores, Budget(rate=0.34)).indices == [1, 4]  # int(0.34 x 6) = 2
