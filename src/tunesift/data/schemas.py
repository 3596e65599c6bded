"""Records as samples: the schemas a pool's records come in, and where a chain of thought sits in them (METHODS.md
§25.0).

A record's ``reference`` field, where it has one, is the answer a response is checked against. A record is read as
one of: ``alpaca`` (``instruction``/``input``/``output``, LLaMA-Factory's ``history``),
``sharegpt`` (``conversations`` of ``from``/``value``), ``messages`` (OpenAI-style ``role``/``content``; an assistant
message's ``reasoning_content`` or ``reasoning`` is its chain of thought), one of the reasoning column layouts known
by their keys (:data:`LAYOUTS`: s1K, MATH/NuminaMath, GSM8K, ``prompt``/``completion``, ``query``/``response``), or
any columns through a field map (``--fields instruction=problem,output=solution,reference=answer``). The container
(JSON, JSONL, parquet, a dataset folder) is :mod:`tunesift.data.pools`' business.

A response a model is trained on holds its thinking: ``<think>\\n{thinking}\\n</think>\\n\\n{final}`` when the two come
apart (a ``reasoning_content`` field, a ``thinking`` column), the text as it is when they come together (``<think>``
or OpenThoughts' markers inside it). A scorer that needs one part asks for it with :func:`split_trace`. The record is
never changed: a subset writes it back as it came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunesift.data.sample import Sample, Turn
from tunesift.errors import ConfigError, InputError

SCHEMAS: tuple[str, ...] = ("alpaca", "sharegpt", "messages")
OUTPUT_FIELDS = ("output", "response")
USER_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
              "system": "system"}  # fmt: skip
#: An assistant message's chain of thought (DeepSeek's API and most R1 distillations; OpenAI-style APIs).
REASONING_KEYS = ("reasoning_content", "reasoning")
#: A record's own reference answer, whatever its schema (a field map names its own).
REFERENCE = "reference"


# ----- traces -----


@dataclass(frozen=True)
class Trace:
    """A response's chain of thought and final answer; ``form`` says how they were told apart: ``think`` (before
    and after the last ``</think>``), ``markers`` (OpenThoughts' begin/end of thought and solution), ``unclosed``
    (a ``<think>`` never closed: the whole text is thinking, there is no final answer) or ``none`` (no marker: the
    text is both)."""

    thinking: str
    final: str
    form: str


_BEGIN_THOUGHT, _END_THOUGHT = "<|begin_of_thought|>", "<|end_of_thought|>"
_BEGIN_SOLUTION, _END_SOLUTION = "<|begin_of_solution|>", "<|end_of_solution|>"


def split_trace(text: str) -> Trace:
    """METHODS.md §25.0's ``split_trace``: with ``</think>``, the thinking is the text before the last one (one
    leading ``<think>`` stripped) and the final answer the text after it, stripped; with OpenThoughts' markers, what
    lies between them; otherwise both are the text."""
    if "</think>" in text:
        head, _, tail = text.rpartition("</think>")
        head = head.lstrip()
        if head.startswith("<think>"):
            head = head[len("<think>") :]
        return Trace(head.strip(), tail.strip(), "think")
    if _BEGIN_THOUGHT in text and _END_THOUGHT in text:
        thinking = text.split(_BEGIN_THOUGHT, 1)[1].split(_END_THOUGHT, 1)[0]
        final = text.split(_END_THOUGHT, 1)[1]
        if _BEGIN_SOLUTION in final:
            final = final.split(_BEGIN_SOLUTION, 1)[1]
        final = final.split(_END_SOLUTION, 1)[0]
        return Trace(thinking.strip(), final.strip(), "markers")
    if text.lstrip().startswith("<think>"):
        return Trace(text.lstrip()[len("<think>") :].strip(), "", "unclosed")
    return Trace(text, text, "none")


def trained_response(thinking: str, final: str) -> str:
    """The response a model is trained on when the thinking and the final answer come apart (§25.0)."""
    return f"<think>\n{thinking}\n</think>\n\n{final}" if thinking else final


# ----- references -----


def last_boxed(text: str) -> str | None:
    """The content of the last brace-matched ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``; None without one."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for k in range(brace, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : k]
    return None


def gsm8k_answer(text: str) -> str | None:
    """GSM8K's final answer: the number after the last ``####`` (thousands separators dropped); None without one."""
    if "####" not in text:
        return None
    value = text.rsplit("####", 1)[1].strip().replace(",", "")
    return value or None


#: How a reference is taken from its field: as it is, the last ``\boxed{}``, or GSM8K's ``#### N``.
EXTRACT = {"boxed": last_boxed, "gsm8k": gsm8k_answer}


# ----- field maps and layouts -----

#: What a field map may fill (``--fields TARGET=FIELD``).
TARGETS = ("instruction", "input", "output", "thinking", "reference", "system")
_PATH = re.compile(r"^([^\[\]:]+)((?:\[\d+\])*)(?::(\w+))?$")


@dataclass(frozen=True)
class FieldMap:
    """Which of a record's fields holds each part of a sample: ``TARGET -> FIELD`` where FIELD may index a list
    (``thinking_trajectories[0]``) and, for the reference, name how it is taken (``solution:boxed``,
    ``answer:gsm8k``)."""

    fields: tuple[tuple[str, str], ...]
    name: str = "fields"

    @classmethod
    def parse(cls, given: Any, option: str = "fields") -> FieldMap | None:
        """``instruction=problem,output=solution`` (or a list of such items, or a mapping); None for nothing."""
        from tunesift.options import split_list

        if given is None or isinstance(given, FieldMap):
            return given
        items = list(given.items()) if isinstance(given, dict) else []
        if not isinstance(given, dict):
            for item in split_list(given):
                target, sep, source = str(item).partition("=")
                if not sep:
                    raise ConfigError(option, f"TARGET=FIELD, got {item!r}")
                items.append((target.strip(), source.strip()))
        seen: dict[str, str] = {}
        for target, source in items:
            if target not in TARGETS:
                raise ConfigError(option, f"unknown target {target!r}: map {', '.join(TARGETS)}")
            match = _PATH.match(str(source))
            if not source or match is None:
                raise ConfigError(option, f"{target}={source!r}: expected FIELD, FIELD[0] or FIELD:boxed")
            if match.group(3) and (target != "reference" or match.group(3) not in EXTRACT):
                raise ConfigError(option, f"{target}={source}: only the reference is taken with "
                                  f":{' or :'.join(EXTRACT)}")  # fmt: skip
            if target in seen:
                raise ConfigError(option, f"{target} is mapped twice")
            seen[target] = str(source)
        if not seen:
            return None
        if "instruction" not in seen:  # without output: a pool of questions alone (pass-rate, difficulty, ...)
            raise ConfigError(option, "map at least instruction=FIELD (and output=FIELD where records hold a response)")
        return cls(tuple(seen.items()), option)

    def get(self, target: str) -> str | None:
        return dict(self.fields).get(target)

    def describe(self) -> str:
        return ",".join(f"{t}={s}" for t, s in self.fields)


#: Column layouts of reasoning pools, known by their keys (checked in this order; a record with an
#: ``instruction`` is Alpaca's): s1K, MATH with its ``answer`` (MATH500), MATH whose answer is the solution's last
#: ``\boxed{}`` (Minerva, NuminaMath), GSM8K, and two plain pairs.
LAYOUTS: dict[str, FieldMap] = {
    "s1k": FieldMap((("instruction", "question"), ("thinking", "thinking_trajectories[0]"), ("output", "attempt"),
                     ("reference", "solution")), "s1k"),
    "math": FieldMap((("instruction", "problem"), ("output", "solution"), ("reference", "answer")), "math"),
    "math-boxed": FieldMap((("instruction", "problem"), ("output", "solution"), ("reference", "solution:boxed")),
                           "math-boxed"),
    "gsm8k": FieldMap((("instruction", "question"), ("output", "answer"), ("reference", "answer:gsm8k")), "gsm8k"),
    "prompt-completion": FieldMap((("instruction", "prompt"), ("output", "completion")), "prompt-completion"),
    "query-response": FieldMap((("instruction", "query"), ("output", "response")), "query-response"),
}  # fmt: skip
_LAYOUT_KEYS = {"s1k": {"question", "thinking_trajectories", "attempt"}, "math": {"problem", "solution", "answer"},
                "math-boxed": {"problem", "solution"},
                "gsm8k": {"question", "answer"}, "prompt-completion": {"prompt", "completion"},
                "query-response": {"query", "response"}}  # fmt: skip


def detect_schema(record: Any) -> str:
    """The schema of a record from its keys: sharegpt, messages, alpaca, or a reasoning layout of :data:`LAYOUTS`."""
    if isinstance(record, dict):
        if "conversations" in record:
            return "sharegpt"
        if "messages" in record:
            return "messages"
        if "instruction" not in record:
            keys = set(record)
            for name, needed in _LAYOUT_KEYS.items():
                if needed <= keys:
                    return name
    return "alpaca"


def _lookup(record: dict[str, Any], source: str, path: Path, index: int, required: bool,
            number: bool = False) -> str | None:  # fmt: skip
    """A field map's FIELD, FIELD[k]... or FIELD:how of ``record`` as a string (None where absent and optional);
    ``number``: a number is taken as its text (AMC's answer 27.0)."""
    match = _PATH.match(source)
    assert match is not None  # checked when the map was parsed
    name, indices, how = match.group(1), re.findall(r"\[(\d+)\]", match.group(2)), match.group(3)
    value: Any = record.get(name)
    where = name
    for k in indices:
        if value is None:
            break
        if not isinstance(value, list):
            raise InputError(f"expected a list, found {type(value).__name__}", path=path, record=index, field=where)
        where += f"[{k}]"
        value = value[int(k)] if int(k) < len(value) else None
    if value is None:
        if required:
            raise InputError("missing (the field map reads it)", path=path, record=index, field=where)
        return None
    if number and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"expected a string, found {type(value).__name__}", path=path, record=index, field=where)
    return EXTRACT[how](value) if how else value


def _mapped(record: dict[str, Any], index: int, path: Path, fields: FieldMap) -> Sample:
    def part(target: str, required: bool = False) -> str | None:
        source = fields.get(target)
        return None if source is None else _lookup(record, source, path, index, required, target == "reference")

    thinking = part("thinking") or ""
    final = part("output", required=True) or ""
    turn = Turn(user=part("instruction", required=True) or "", assistant=trained_response(thinking, final),
                input=part("input") or "")  # fmt: skip
    return Sample(index=index, turns=(turn,), record=record, system=part("system") or "",
                  reference=part("reference"))  # fmt: skip


def _text(record: dict[str, Any], name: str, path: Path, index: int, required: bool) -> str:
    if name not in record or record[name] is None:
        if required:
            hint = ""
            if name == "instruction" and detect_schema(record) == "alpaca":
                keys = ", ".join(sorted(map(str, record))[:8])
                hint = (f" (its fields: {keys}: name them with --fields instruction=FIELD,output=FIELD,"
                        "reference=FIELD)")  # fmt: skip
            raise InputError(f"missing (a string is required){hint}", path=path, record=index, field=name)
        return ""
    value = record[name]
    if not isinstance(value, str):
        raise InputError(f"expected a string, found {type(value).__name__}", path=path, record=index, field=name)
    return value


def _alpaca(record: dict[str, Any], index: int, path: Path) -> Sample:
    output_field = next((name for name in OUTPUT_FIELDS if name in record), "output")
    last = Turn(
        user=_text(record, "instruction", path, index, required=True),
        assistant=_text(record, output_field, path, index, required=True),
        input=_text(record, "input", path, index, required=False),
    )
    history = record.get("history") or []
    if not isinstance(history, list):
        raise InputError("expected a list of [user, assistant] pairs", path=path, record=index, field="history")
    turns = []
    for k, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise InputError("expected a [user, assistant] pair of strings", path=path, record=index,
                             field=f"history[{k}]")  # fmt: skip
        turns.append(Turn(pair[0], pair[1]))
    system = _text(record, "system", path, index, required=False)
    return Sample(index=index, turns=(*turns, last), record=record, system=system)


def _conversation(record: dict[str, Any], index: int, path: Path, key: str, role_key: str, text_key: str) -> Sample:
    messages = record.get(key)
    if not isinstance(messages, list):
        raise InputError("expected a list of messages", path=path, record=index, field=key)
    if not messages:
        raise InputError("is an empty conversation", path=path, record=index, field=key)
    system, turns, pending = "", [], None
    for k, message in enumerate(messages):
        where = f"{key}[{k}]"
        if not isinstance(message, dict):
            raise InputError("expected an object", path=path, record=index, field=where)
        role_name = message.get(role_key)
        role = USER_ROLES.get(role_name) if isinstance(role_name, str) else None
        if role is None:
            raise InputError(f"unknown role {role_name!r} (expected one of {', '.join(USER_ROLES)})", path=path,
                             record=index, field=f"{where}.{role_key}")  # fmt: skip
        text = message.get(text_key)
        if not isinstance(text, str):
            raise InputError(f"expected a string, found {type(text).__name__}", path=path, record=index,
                             field=f"{where}.{text_key}")  # fmt: skip
        if role == "system":
            if k != 0:
                raise InputError("a system message may only come first", path=path, record=index, field=where)
            system = text
        elif role == "user":
            if pending is not None:
                raise InputError("two user messages in a row", path=path, record=index, field=where)
            pending = text
        else:
            if pending is None:
                raise InputError("an assistant message with no user message before it", path=path, record=index,
                                 field=where)  # fmt: skip
            reasoning = next((message[r] for r in REASONING_KEYS if message.get(r) is not None), "")
            if not isinstance(reasoning, str):
                name = next(r for r in REASONING_KEYS if message.get(r) is not None)
                raise InputError(f"expected a string, found {type(reasoning).__name__}", path=path, record=index,
                                 field=f"{where}.{name}")  # fmt: skip
            turns.append(Turn(pending, trained_response(reasoning, text)))
            pending = None
    if not turns:
        raise InputError("has no assistant turn", path=path, record=index, field=key)
    # A last user message with no reply is kept in the record but has nothing to score.
    return Sample(index=index, turns=tuple(turns), record=record, system=system)


def record_to_sample(record: Any, index: int, path: str | Path, schema: str | None = None,
                     fields: FieldMap | None = None) -> Sample:  # fmt: skip
    """Validate one record of the given (or detected) schema, or read it through ``fields``; raise
    :class:`InputError` naming the field."""
    from tunesift.data.pools import refuse_surrogate

    path = path if isinstance(path, Path) else Path(path)
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, found {type(record).__name__}", path=path, record=index)
    refuse_surrogate(record, path, index)  # a record's own defect: --on-error skip leaves it out
    if fields is not None:
        return _mapped(record, index, path, fields)
    schema = schema or detect_schema(record)
    if schema in LAYOUTS:
        return _mapped(record, index, path, LAYOUTS[schema])
    if schema == "sharegpt":
        sample = _conversation(record, index, path, "conversations", "from", "value")
    elif schema == "messages":
        sample = _conversation(record, index, path, "messages", "role", "content")
    else:
        sample = _alpaca(record, index, path)
    if record.get(REFERENCE) is None:
        return sample
    return replace(sample, reference=_lookup(record, REFERENCE, path, index, True, number=True))
