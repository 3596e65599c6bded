"""Set-level selection over score columns."""

from tunesift.selectors.rules import RULES, Budget, Selection, select_by_rule, select_cherry, select_superfilter

__all__ = ["RULES", "Budget", "Selection", "select_by_rule", "select_cherry", "select_superfilter", "select_top"]
