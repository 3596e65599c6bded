"""Prompt templates that turn a sample's instruction (and input) into the text the response follows.

The texts are those of the papers' code (METHODS.md §1-2); the response is appended with no separator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tunesift.data.sample import Sample, Turn
from tunesift.errors import ConfigError


class Template(Protocol):
    """Builds ``prompt(Q)``; ``direct_prefix`` starts Cherry's "direct" text (response without instruction)."""

    name: str
    direct_prefix: str

    def prompt(self, instruction: str, input: str, history: Sequence[Turn] = (), system: str = "") -> str: ...


@dataclass(frozen=True)
class TextTemplate:
    """A fixed-text template: a preamble said once, then one block per turn.

    A single turn gives exactly the paper's prompt (preamble + turn). Earlier turns of a conversation are
    rendered as ``turn + reply + separator`` between the preamble and the last turn, as LLaMA-Factory does.
    A record's system message is not part of these templates (the ``chat`` template uses it).
    """

    name: str
    preamble: str
    preamble_with_input: str
    turn: str
    turn_with_input: str
    separator: str
    direct_prefix: str

    @property
    def no_input(self) -> str:
        return self.preamble + self.turn

    @property
    def with_input(self) -> str:
        return self.preamble_with_input + self.turn_with_input

    def prompt(self, instruction: str, input: str, history: Sequence[Turn] = (), system: str = "") -> str:
        past = "".join(
            (
                self.turn_with_input.format(instruction=t.user, input=t.input)
                if t.input
                else self.turn.format(instruction=t.user)
            )
            + t.assistant
            + self.separator
            for t in history
        )
        if input:
            return self.preamble_with_input + past + self.turn_with_input.format(instruction=instruction, input=input)
        return self.preamble + past + self.turn.format(instruction=instruction)


ALPACA = TextTemplate(
    name="alpaca",
    preamble=(
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    ),
    preamble_with_input=(
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
    ),
    turn="### Instruction:\n{instruction}\n\n### Response:",
    turn_with_input="### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
    separator="\n\n",
    direct_prefix="### Response:",
)

WIZ = TextTemplate(
    name="wiz",
    preamble="",
    preamble_with_input="",
    turn="{instruction}\n\n### Response:",
    turn_with_input="{instruction}\n{input}\n\n### Response:",
    separator="\n\n",
    direct_prefix="### Response:",
)

_VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions. "
)
VICUNA = TextTemplate(
    name="vicuna",
    preamble=_VICUNA_SYSTEM,
    preamble_with_input=_VICUNA_SYSTEM,
    turn="USER: {instruction} ASSISTANT:",
    turn_with_input="USER: {instruction}\nInput:\n{input} ASSISTANT:",
    separator=" ",
    direct_prefix="ASSISTANT:",
)

# Superfiltering (METHODS.md §2): no template at all; its direct text is the response alone.
PLAIN = TextTemplate(
    name="plain",
    preamble="",
    preamble_with_input="",
    turn="{instruction}\n",
    turn_with_input="{instruction}\n{input}\n",
    separator="\n",
    direct_prefix="",
)

TEXT_TEMPLATES: dict[str, TextTemplate] = {t.name: t for t in (ALPACA, WIZ, VICUNA, PLAIN)}
TEMPLATE_NAMES = (*TEXT_TEMPLATES, "chat")


class ChatTemplate:
    """The tokenizer's own chat template: the record's system message, the history, the user turn, then the
    generation prompt: the natural template for conversations.

    A user turn is the instruction, followed by a blank line and the input when there is one. The
    direct prefix is what the generation prompt adds (e.g. ``<|im_start|>assistant\\n``), so the direct
    loss sees the assistant header, as Cherry's sees ``### Response:``. A BOS the template writes as text
    is dropped when the tokenizer adds one itself, so BOS is never doubled.
    """

    name = "chat"

    def __init__(self, tokenizer: Any) -> None:
        """``tokenizer``: a Hugging Face tokenizer, or a backend with ``render_chat`` (an LMBackend)."""
        if hasattr(tokenizer, "render_chat"):
            if not tokenizer.has_chat_template:
                raise ConfigError("template", "'chat' needs a tokenizer with a chat template; this model has none")
            self._render_fn = tokenizer.render_chat
        else:
            if not getattr(tokenizer, "chat_template", None):
                raise ConfigError("template", "'chat' needs a tokenizer with a chat template; this model has none")
            self._render_fn = lambda messages, gen: render_chat(tokenizer, messages, gen)
        probe = [{"role": "user", "content": "x"}]
        with_gen = self._render(probe, True)
        without = self._render(probe, False)
        if not with_gen.startswith(without):
            raise ConfigError("template", "cannot locate the generation prompt in this chat template")
        self.direct_prefix = with_gen[len(without) :]

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return self._render_fn(messages, add_generation_prompt)

    def prompt(self, instruction: str, input: str, history: Sequence[Turn] = (), system: str = "") -> str:
        messages = [{"role": "system", "content": system}] if system else []
        for t in history:
            messages += [{"role": "user", "content": _user_content(t.user, t.input)},
                         {"role": "assistant", "content": t.assistant}]  # fmt: skip
        messages.append({"role": "user", "content": _user_content(instruction, input)})
        return self._render(messages, True)


def render_chat(tokenizer: Any, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """A tokenizer's chat template as text; a BOS the template writes is dropped when the tokenizer adds one
    itself, so BOS is never doubled."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("").input_ids[:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return text


def _user_content(instruction: str, input: str) -> str:
    return f"{instruction}\n\n{input}" if input else instruction


def messages(sample: Sample) -> list[dict[str, str]]:
    """The whole sample as chat messages: its system message, then each turn's user message (the input after a
    blank line, where there is one) and reply."""
    out = [{"role": "system", "content": sample.system}] if sample.system else []
    for turn in sample.turns:
        out += [{"role": "user", "content": _user_content(turn.user, turn.input)},
                {"role": "assistant", "content": turn.assistant}]  # fmt: skip
    return out


def get_template(name: str, tokenizer: Any = None) -> Template:
    """Look a template up by name (``alpaca``, ``wiz``, ``vicuna``, ``plain``, ``chat``)."""
    if name == "chat":
        return ChatTemplate(tokenizer)
    try:
        return TEXT_TEMPLATES[name]
    except KeyError:
        raise ConfigError("template", f"unknown template {name!r}; choose one of {', '.join(TEMPLATE_NAMES)}") from None
