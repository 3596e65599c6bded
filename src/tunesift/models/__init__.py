"""Model backends: causal LMs that score target spans."""

from tunesift.models.causal_lm import CausalLM, TargetSpan
from tunesift.models.registry import DEFAULT_MODEL, PACKAGED, resolve_model

__all__ = ["DEFAULT_MODEL", "PACKAGED", "CausalLM", "TargetSpan", "resolve_model"]
