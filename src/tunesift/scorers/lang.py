"""Language identification (``lang``): each sample's language code and its confidence, from langid.py's model
(py3langid; the model ships inside the wheel, nothing downloads), read from the user's words only.

A sample is identified by its **first user turn** (the instruction with its input): the response is often in
another language on purpose (a translation), and a conversation's later turns mostly follow its first. The
confidence is langid's normalised probability of the code it picked (``norm_probs``), in [0, 1].
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Sequence
from typing import Any, ClassVar

from tunesift.data.evalsets import turn_text
from tunesift.options import Option
from tunesift.scorers.base import NO_TEXT, Progress, Scorer, Unit

VERSION = 1


class Lang(Scorer):
    """langid.py's language and confidence of each sample's first user turn."""

    method = "lang"
    summary = (
        "Language identification (langid.py, packaged): the code and confidence of each sample's first "
        "user turn; keep or drop languages with 'lang in [en, de]' in a recipe, or run lang --keep/--drop."
    )
    columns = ("lang_confidence", "lang")
    column_kinds: ClassVar[dict[str, str]] = {"lang": "text"}
    default_rule = "top"
    needs_response = False
    options = (Option("languages", list[str] | None, None, "Only these codes are candidates (langid's "
                      "set_languages; default: all 97 of its model).", split=True),)  # fmt: skip

    name = "lang"
    result_fields = ("lang", "lang_confidence", "skip_reason")
    chunk_size = 2048

    def __init__(self, languages: Sequence[str] | None = None) -> None:
        self.languages = sorted(languages) if languages else None

    @classmethod
    def build(cls, pool: Any, executor: Any, *, languages: Sequence[str] | None) -> Lang:
        if languages:
            known = set(load_identifier().nb_classes)
            unknown = sorted(set(languages) - known)
            if unknown:
                from tunesift.errors import ConfigError

                raise ConfigError("languages", f"langid does not know {', '.join(unknown)}; it knows "
                                  f"{', '.join(sorted(known))}")  # fmt: skip
        return cls(languages)

    @classmethod
    def column_values(cls, column: str) -> frozenset[str] | None:
        return langid_codes() if column == "lang" else None

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": VERSION, "languages": self.languages, "text": "first_user_turn",
                "py3langid": importlib.metadata.version("py3langid")}  # fmt: skip

    def load_backend(self, device: str | None = None) -> Any:
        identifier = load_identifier()
        if self.languages:
            identifier.set_languages(self.languages)
        return identifier

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        rows = []
        for unit in units:
            text = turn_text(unit.payload.turns[0])
            if not text.strip():
                rows.append({"lang": None, "lang_confidence": None, "skip_reason": NO_TEXT})
                continue
            code, confidence = backend.classify(text)
            rows.append({"lang": str(code), "lang_confidence": float(confidence), "skip_reason": None})
        if on_progress is not None:
            on_progress(len(units))
        return rows

    def describe(self) -> str:
        return "language id"


@functools.cache
def langid_codes() -> frozenset[str]:
    """Every language code langid's packaged model knows."""
    return frozenset(load_identifier().nb_classes)


def load_identifier() -> Any:
    """langid.py's packaged model, probabilities normalised (about a second to load)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
