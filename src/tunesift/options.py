"""Options as data: each is declared once, with its type, default and help, where its idea lives.

A method declares its options on its class (:mod:`tunesift.scorers`), a selector on its class
(:mod:`tunesift.selectors`); the CLI builds every flag from these declarations and the Python API checks
every value against them, so ``--batch-tokens``, ``batch_tokens=`` and a recipe's ``batch_tokens:`` are one
option with one name. The vocabulary shared by several methods (a model, where it runs, a server) is here.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """An option: the keyword ``name``, its type and default, the help a user sees, and the CLI flag
    (``--name-with-dashes`` unless ``flag`` says otherwise). ``split`` reads a comma-separated list."""

    name: str
    type: Any
    default: Any
    help: str
    flag: str | None = None
    split: bool = False
    at_least: float | None = None  # the declared range of a number, checked wherever the value comes from
    above: float | None = None
    writes: bool = False  # a Path option the command writes (a work folder); any other Path option is read

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def reads_file(self) -> bool:
        """Whether the option names a file the command reads: typed ``Path`` (or a list of them), not ``writes``."""
        if self.writes:
            return False
        return any(k is Path or typing.get_args(k) == (Path,) for k in _types(self.type))

    @property
    def key(self) -> str:
        """How an error names the option: its flag without the dashes."""
        return self.cli_flag.split("/")[0].lstrip("-")

    def check(self, value: Any) -> Any:
        """``value`` in the declared type (a recipe's or ``-o``'s string converted), or a ConfigError naming
        the option; None only where the type allows it."""
        allowed = _types(self.type)
        if value is None:
            if type(None) in allowed:
                return None
            raise ConfigError(self.key, "needs a value")
        if self.split and isinstance(value, (str, list, tuple)):
            return split_list(value)
        repeated = next((k for k in allowed if typing.get_origin(k) is list), None)
        if repeated is not None:  # a repeatable option (--query A --query B); a recipe may give one value
            (kind,) = typing.get_args(repeated)
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            try:
                return [_convert(kind, v) for v in values]
            except (TypeError, ValueError):
                raise ConfigError(self.key, f"expected {kind.__name__} values, got {value!r}") from None
        if not isinstance(value, (str, int, float, Path)):
            return value  # an object the Python API hands in (a resolved model, a loaded rule): the method's to read
        for kind in allowed:
            try:
                converted = _convert(kind, value)
            except (TypeError, ValueError):
                continue
            return self._in_range(converted)
        names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed if k is not type(None))
        raise ConfigError(self.key, f"expected {names}, got {value!r}")

    def _in_range(self, value: Any) -> Any:
        if not is_number(value):
            return value
        if not math.isfinite(value):
            raise ConfigError(self.key, f"must be a finite number, got {value!r}")
        if self.at_least is not None and value < self.at_least:
            raise ConfigError(self.key, f"must be at least {self.at_least:g}, got {value!r}")
        if self.above is not None and value <= self.above:
            raise ConfigError(self.key, f"must be more than {self.above:g}, got {value!r}")
        return value


def split_list(value: Any) -> list[Any]:
    """A list option's values, however given: ``a,b``, a repeated flag (``--x a --x b,c``), a recipe's YAML list or
    its ``"a, b"``; each text split on commas and stripped, empty pieces dropped, order kept. The one parser of
    list options, for every command."""
    if value is None:
        return []
    items = [value] if isinstance(value, (str, Path)) else list(value)
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out += [piece.strip() for piece in item.split(",") if piece.strip()]
        else:
            out.append(item)
    return out


def is_number(value: Any, whole: bool = False) -> bool:
    """A number as YAML, JSON or a caller gives it: an int (or, unless ``whole``, a float), never a bool (which
    Python counts as an int) nor a string that spells one."""
    return not isinstance(value, bool) and isinstance(value, int if whole else (int, float))


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _convert(kind: Any, value: str | int | float | Path) -> Any:
    """``value`` as ``kind`` (a string as a recipe or ``-o`` writes it converted); TypeError or ValueError if it
    is not one. A bool is never taken for a number."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
    elif kind in (int, float) and not isinstance(value, bool):
        if isinstance(value, (int, str)) or (kind is float and isinstance(value, float)):
            return kind(value)
    elif kind in (str, Path) and isinstance(value, (str, Path)):
        return kind(value)
    raise TypeError(kind)


def _types(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def check_values(options: tuple[Option, ...], given: dict[str, Any], where: str) -> dict[str, Any]:
    """Every declared option's value: ``given`` (each checked against its type) over the defaults; an
    option that is not declared is a ConfigError naming it and listing what ``where`` takes."""
    declared = {o.name: o for o in options}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        takes = ", ".join(sorted(declared)) or "no options"
        raise ConfigError(unknown[0].replace("_", "-"), f"{where} has no such option; it takes {takes}")
    return {name: o.check(given[name]) if name in given else o.default for name, o in declared.items()}


# ----- the vocabulary shared by several methods -----

MODEL_HELP = (
    "Packaged model short name (smollm2-135m-instruct, gemma-3-270m), a local HF checkpoint directory, or a "
    "hub id (org/name, from the local HF cache; downloaded where the network allows); with --base-url, "
    "the name the server serves."
)
DTYPE = Option("dtype", str | None, None, "auto | float32 | bfloat16 | float16: auto is bfloat16 on a CUDA GPU that "
               "has it, else float32. Part of the cache key.")  # fmt: skip
BASE_URL = Option("base_url", str | None, None, "OpenAI-compatible server, e.g. http://localhost:8000/v1 (vLLM) or "
                  "https://api.openai.com/v1.")  # fmt: skip
API_KEY_ENV = Option("api_key_env", str, "OPENAI_API_KEY", "Environment variable holding the server's API key.")
CONCURRENCY = Option("concurrency", int, 8, "Requests in flight at once.", at_least=1)
TIMEOUT = Option("timeout", float, 60.0, "Seconds before a request is abandoned (then retried).", above=0)
RETRIES = Option("retries", int, 4, "Retries with exponential backoff on 429, 5xx and network errors.", at_least=0)
TOKENIZER = Option("tokenizer", str | None, None, "With --base-url: the tokenizer whose token ids are sent (checkpoint "
                   "folder or hub id; default: --model, where that resolves locally).")  # fmt: skip
#: A causal LM in this process, or on a server (prompt log-probabilities, as vLLM serves them).
LM_OPTIONS = (DTYPE, BASE_URL, TOKENIZER, API_KEY_ENV, CONCURRENCY, TIMEOUT, RETRIES)
#: A chat model: an endpoint, or a local model in its dtype.
CHAT_OPTIONS = (BASE_URL, API_KEY_ENV, CONCURRENCY, TIMEOUT, RETRIES, DTYPE)
#: The batch size of every forward pass, in tokens: one name across CLI, API, recipes and backends.
BATCH_TOKENS = Option("batch_tokens", int, 4096, "Tokens per forward batch (batch size x longest text).", at_least=1)
CHUNK_SIZE = Option(
    "chunk_size",
    int | None,
    None,
    "Samples scored between two writes to the score store (a kill loses at most one chunk; default: the "
    "method's own); on Ray, the samples of one actor batch.",
    at_least=1,
)
TURNS = Option("turn_rule", str, "mean", "How a conversation's turn scores combine: mean, min, max, last, wmean.",
               flag="--turns")  # fmt: skip


def model_option(help_text: str = MODEL_HELP, default: str | None = "smollm2-135m-instruct") -> Option:
    return Option("model", str | None if default is None else str, default, help_text)
