"""The scoring methods, one module each; this package's index is the registry they fill.

Each method's class registers itself when its module is imported (:class:`~tunesift.scorers.base.Method`);
:func:`discover` imports every module of this package once, so a method added as one file here is found by
``tunesift score``, ``tunesift run``, ``tunesift methods``, ``tunesift.score(name, ...)``, the recipes and
the conformance suite. A method defined elsewhere (a plugin, a test) registers itself the same way.
"""

from __future__ import annotations

from typing import Any

from tunesift.discovery import import_submodules
from tunesift.scorers.base import METHODS, Method, Scorer, get_method

#: With no scorer, a recipe's rows carry each record's response length.
NO_SCORER_COLUMNS = ("response_chars",)


def discover() -> dict[str, type[Method]]:
    """Every registered method by name, after importing each module of this package once."""
    import_submodules(__name__)
    return METHODS


def columns_of(scorer: str | None) -> tuple[str, ...]:
    """What recipe steps may name after ``scorer`` (None: no scorer)."""
    return NO_SCORER_COLUMNS if scorer is None else get_method(scorer).columns


def column_kind(scorer: str | None, column: str) -> str:
    """What a column a recipe names holds ("number", "text", "list", "mapping", "bool"): the one place a filter's
    type is checked against."""
    return "number" if scorer is None else get_method(scorer).column_kind(column)


def check_words(scorer: str | None, column: str, words: Any, where: str, values: bool = True) -> list[str]:
    """The words a text filter over ``column`` keeps or drops, checked before any work: at least one, and (with
    ``values``) each a value the column can hold where the method knows them (langid's lower-case codes)."""
    from tunesift.errors import ConfigError
    from tunesift.options import split_list

    given = split_list(words)
    if not given:
        raise ConfigError(where, f"give at least one value of {column!r}")
    known = None if scorer is None or not values else get_method(scorer).column_values(column)
    if known is not None:
        unknown = [w for w in given if w not in known]
        if unknown:
            hint = f" (codes are lower case: {unknown[0].lower()})" if unknown[0].lower() in known else ""
            raise ConfigError(where, f"{column!r} never holds {', '.join(map(repr, unknown))}{hint}; it holds "
                              f"{', '.join(sorted(known))}")  # fmt: skip
    return given


def default_rule(score_field: str) -> str:
    """The rule ``tunesift select`` applies to a score column unless told otherwise."""
    for cls in discover().values():
        if score_field in (cls.score_field(), cls.columns[0] if cls.columns else None):
            return cls.default_rule
    return "top"


def subset_columns(score_field: str) -> tuple[str, ...]:
    """The fields a subset record gets for a score column (the column alone for an unknown one)."""
    for cls in discover().values():
        if cls.score_field() == score_field:
            return cls.subset_columns
    return (score_field,)


def check_options(scorer: str, options: dict[str, Any], where: str = "score") -> dict[str, Any]:
    """Every option the scorer declares, type-checked (an undeclared one is named in the error)."""
    return get_method(scorer).check(options, where=f"{where}: scorer {scorer!r}")


def unit_scorer_classes() -> list[type[Scorer]]:
    """Every concrete per-unit scorer class (registered or a stage of one): the conformance suite checks each."""
    discover()
    found: list[type[Scorer]] = []

    def walk(cls: type) -> None:
        for sub in cls.__subclasses__():
            if not getattr(sub, "__abstractmethods__", None) and hasattr(sub, "name") and sub not in found:
                found.append(sub)
            walk(sub)

    walk(Scorer)
    return found


__all__ = [
    "METHODS",
    "Method",
    "Scorer",
    "check_options",
    "columns_of",
    "default_rule",
    "discover",
    "get_method",
    "subset_columns",
    "unit_scorer_classes",
]
