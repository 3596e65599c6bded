"""What every selector shares: the budget, the selection it returns, and the registry selectors join.

A selector looks at the whole set of candidates (their score columns, their embeddings) and returns the
chosen ones in rank order; it never calls a model. Each is one class that declares its name and options and
registers itself when its module is imported; the recipes' ``select`` step finds it here by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tunesift.discovery import import_submodules
from tunesift.errors import ConfigError
from tunesift.options import Option, is_number

CHUNK_ROWS = 4096  # rows of a distance/similarity block computed at once: nothing builds an N x N matrix

#: Every registered selector by name.
SELECTORS: dict[str, type[Selector]] = {}


@dataclass(frozen=True)
class Budget:
    """How many to keep: a ``rate`` of the base count the rule defines, or an exact ``count``."""

    rate: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.count is None):
            raise ConfigError("rate/count", "give exactly one of --rate or --count")
        if self.rate is not None and not is_number(self.rate):
            raise ConfigError("rate", f"expected a number in (0, 1], got {self.rate!r}")
        if self.count is not None and not is_number(self.count, whole=True):
            raise ConfigError("count", f"expected a whole number, got {self.count!r}")
        if self.rate is not None and not 0.0 < self.rate <= 1.0:
            raise ConfigError("rate", f"must be in (0, 1], got {self.rate}")
        if self.count is not None and self.count < 1:
            raise ConfigError("count", f"must be a positive number, got {self.count}")

    def check(self, n_pool: int) -> None:
        """Refuse, before any work, a budget that cannot select anything or asks more than there is."""
        if self.count is not None and self.count > n_pool:
            raise ConfigError("count", f"{self.count} is more than the pool's {n_pool} records")
        if self.rate is not None and int(self.rate * n_pool) == 0:
            raise ConfigError("rate", f"{self.rate} of {n_pool} records rounds to 0; give a larger rate or --count")

    def size(self, base: int, available: int) -> int:
        wanted = int(self.rate * base) if self.rate is not None else self.count
        return min(wanted, available)


@dataclass(frozen=True)
class Selection:
    """Chosen pool indices in rank order, with the counts a manifest reports."""

    indices: list[int]
    n_pool: int
    n_scored: int
    n_candidates: int
    rule: str
    steps: tuple[dict[str, Any], ...] = ()  # the steps that made it, every select option resolved
    why_empty: str | None = None  # for an empty selection: why, in one line
    dedup: dict[str, Any] | None = None  # a recipe's dedup step: method, counts, every dropped sample and its twin
    details: dict[str, Any] | None = None  # what the selector says of its work (MIG's label graph)
    why_short: str | None = None  # fewer than the budget asked for: why, in one line
    decontaminate: dict[str, Any] | None = None  # a recipe's decontaminate step: every drop, its set and item
    per_question: dict[str, Any] | None = None  # a recipe's per_question step: the mode, questions, what it dropped


@dataclass
class Candidates:
    """What a selector sees: the candidates (pool indices, in their current order), a score column's value
    of any of them (None where unscored), the score rows, and their embeddings on demand."""

    indices: list[int]
    value: Callable[[int, str], float | None]
    rows: list[dict[str, Any]]
    score_field: str
    vectors: Callable[[], np.ndarray]
    response_chars: Callable[[], list[int]]
    #: a field of the candidates' own records (``dataset``, ``source``), None where a record lacks it
    record_field: Callable[[str], list[Any]] = lambda name: []
    #: unit MiniLM vectors of other texts (MIG's labels), computed by the recipe executor, not the selector
    embed_texts: Callable[[list[str]], np.ndarray] = lambda texts: _no_embedder()
    #: the candidates' samples themselves (s1K reads the question, trace, reference and domain), in their order
    samples: Callable[[], list[Any]] = lambda: []


def _no_embedder() -> np.ndarray:
    raise ConfigError("embedder", "this selection embeds texts: run it through a recipe")


SEED = Option("random_state", int, 0, "Seed of the random, k-center or k-means selection.", flag="--seed")
#: How a selector that reads embeddings gets them (a recipe's select step may set these).
EMBED_OPTIONS = (
    Option("embedder", str, "minilm", "minilm (all-MiniLM-L6-v2) or lm (a causal LM's mean hidden state)."),
    Option("embed_model", str | None, None, "The lm embedder's model."),
    Option("embed_text", str, "prompt", "What the lm embedder reads: prompt or sample."),
    Option("embed_template", str, "alpaca", "The lm embedder's prompt template."),
)


class Selector:
    """A set-level selection method: ``name`` and its ``options`` (with their help), registered on definition.
    ``embeds``: it reads the candidates' embeddings (then the embedder options apply)."""

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    embeds: ClassVar[bool] = False
    #: what the MiniLM embedder reads for this selector: the whole sample, or (QDIT) the prompt alone
    minilm_text: ClassVar[str] = "sample"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            SELECTORS[cls.name] = cls

    @classmethod
    def all_options(cls) -> tuple[Option, ...]:
        return (*cls.options, *(EMBED_OPTIONS if cls.embeds else ()))

    def __init__(self, **options: Any) -> None:
        declared = {o.name: o for o in self.all_options()}
        for key in options:
            if key not in declared:
                raise ConfigError(key, f"select {self.name}: no such option")
        self.params = {name: o.check(options[name]) if name in options else o.default for name, o in declared.items()}

    def check(self, n: int) -> None:
        """Refuse options that cannot work on ``n`` records (the pool before any scoring, the candidates
        before selecting), naming the option; nothing is silently cut to fit."""

    def select(self, candidates: Candidates, size: int) -> list[int]:
        """Positions into ``candidates.indices``, in pick order, at most ``size``. A selector may leave what it
        wants the manifest to say in ``self.details``."""
        raise NotImplementedError


def get_selector(name: str) -> type[Selector]:
    discover()
    try:
        return SELECTORS[name]
    except KeyError:
        raise ConfigError("method", f"unknown select method {name!r}; choose one of {', '.join(SELECTORS)}") from None


def discover() -> dict[str, type[Selector]]:
    """Every registered selector, after importing each module of :mod:`tunesift.selectors` once."""
    import_submodules("tunesift.selectors")
    return SELECTORS


class Top(Selector):
    """The candidates in their current order (a recipe's ``rank`` step ordered them)."""

    name = "top"

    def select(self, candidates: Candidates, size: int) -> list[int]:
        return list(range(min(size, len(candidates.indices))))


# ----- what the embedding selectors share -----


def as_matrix(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ConfigError(name, f"expected a non-empty (n, d) matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ConfigError(name, "holds NaN or infinite values")
    return x


def check_budget(k: int, n: int) -> int:
    if k < 1:
        raise ConfigError("count", f"must be a positive number, got {k}")
    return min(k, n)


def sq_dist(x: np.ndarray, norms: np.ndarray, centres: np.ndarray, centre_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, m) between points and centres, clipped at 0 against rounding."""
    return np.maximum(norms[:, None] - 2.0 * (x @ centres.T) + centre_norms[None, :], 0.0)
