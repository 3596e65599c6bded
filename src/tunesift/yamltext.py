"""YAML as people write it in recipes, configs and ``KEY=VALUE`` options: PyYAML follows YAML 1.1, which reads
``1e-4`` (no dot) as text, so ``learning_rate: 1e-4`` would be refused as not a number. Here every float form of
YAML 1.2 (``1e-4``, ``2E5``, ``.5``, ``-3.``) is a number; everything else reads as ``yaml.safe_load`` reads it."""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's floats."""


# 1.1's float resolver replaced by one that also takes an exponent without a dot; it is added after the int
# resolver, which is tried first, so "12" stays an int
_Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}  # fmt: skip
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\d[\d_]*)?\.[\d_]*(?:[eE][-+]?\d+)?|[-+]?\d[\d_]*[eE][-+]?\d+|[-+]?\.(?:inf|Inf|INF)"
        r"|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """``text`` as YAML, with 1.2's floats (``1e-4`` is 0.0001)."""
    return yaml.load(text, Loader=_Loader)
