"""Set-level selection over score columns and embeddings; each selector registers itself by name."""

from tunesift.selectors.base import SELECTORS, Budget, Candidates, Selection, Selector, discover, get_selector

__all__ = ["SELECTORS", "Budget", "Candidates", "Selection", "Selector", "discover", "get_selector"]
