"""Chat models: messages in, a reply out. Every judge and tagger (AlpaGasus, self-curation, INSTAG, the
pairwise judge) talks to one of these, so a method builds prompts and reads replies, and its tests can hand
it a dummy chat model with no network.

* :class:`EndpointChat`: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp's
  server, ...), temperature 0 unless a method samples, a bounded number of requests in flight, timeouts,
  retries with exponential backoff on 429/5xx/network errors.
* :class:`LocalChat`: a local causal LM answering greedily after its chat template (or the plain messages).

A reply is ``(text, error, transient)``: the text, or None with the reason and whether a later try may
succeed (never cached then).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tunesift.errors import ConfigError
from tunesift.models.http import JsonEndpoint, RequestFailed

Messages = list[dict[str, str]]
Reply = tuple[str | None, str | None, bool]


class EndpointChat:
    """An OpenAI-compatible chat endpoint. The key is read from the environment variable ``api_key_env``
    (none is sent when it is unset, as local servers expect)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> None:
        if concurrency < 1:
            raise ConfigError("concurrency", f"must be at least 1, got {concurrency}")
        self.endpoint = JsonEndpoint(base_url, api_key_env=api_key_env, timeout=timeout, retries=retries,
                                     backoff=backoff)  # fmt: skip
        self.url = self.endpoint.base_url + "/chat/completions"
        self.model = model
        self.concurrency = concurrency
        self.max_tokens = max_tokens
        self.temperature = temperature

    def describe(self) -> dict[str, object]:
        return {"judge": "endpoint", "url": self.url, "model": self.model, "temperature": self.temperature or 0,
                "max_tokens": self.max_tokens}  # fmt: skip

    def complete(self, messages: Messages, max_tokens: int | None = None, seed: int | None = None) -> Reply:
        """One chat request, retried with exponential backoff on 429, 5xx and network errors; other HTTP
        errors and malformed responses are not retried. ``seed`` (vLLM, SGLang and OpenAI take one) makes a
        sampled reply repeatable where the server honours it."""
        try:
            body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                    "max_tokens": max_tokens or self.max_tokens}  # fmt: skip
            if seed is not None:
                body["seed"] = seed
            payload = self.endpoint.post("/chat/completions", body)
        except RequestFailed as err:
            return None, err.reason, err.transient
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return None, f"bad_response: not a chat completion: {json.dumps(payload)[:200]}", False
        if not isinstance(content, str):
            return None, f"bad_response: reply content is not text: {content!r}", False
        return content, None, False

    def probe(self) -> None:
        """One short request before any work: a server that is down, refuses the key, or does not serve the
        model is one error naming ``--base-url`` and quoting the server, not a pool of null scores."""
        body = {"model": self.model, "messages": [{"role": "user", "content": "Reply with OK."}], "temperature": 0,
                "max_tokens": 1}  # fmt: skip
        try:
            payload = self.endpoint.post("/chat/completions", body)
        except RequestFailed as err:
            said = f"; the server said: {err.detail}" if getattr(err, "detail", None) else ""
            raise ConfigError("base-url", f"{self.url} (model {self.model!r}) did not answer a test request: "
                              f"{err.reason}{said}") from None  # fmt: skip
        try:
            payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ConfigError("base-url", f"{self.url} (model {self.model!r}) answered a test request with no chat "
                              f"completion: {json.dumps(payload)[:200]}") from None  # fmt: skip

    def complete_all(self, conversations: Sequence[Messages], on_progress: Callable[[float], None] | None = None
                     ) -> list[Reply]:  # fmt: skip
        """Replies in the order of ``conversations``, at most ``concurrency`` requests in flight."""

        def one(messages: Messages) -> Reply:
            reply = self.complete(messages)
            if on_progress is not None:
                on_progress(1)
            return reply

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, conversations))


class LocalChat:
    """A local causal LM answering chat messages by greedy generation: after its chat template, or for a
    model without one the messages' contents joined by blank lines, then ``plain_suffix``."""

    def __init__(self, lm: Any, max_new_tokens: int = 64, plain_suffix: str = "\n\n") -> None:
        self.lm = lm
        self.max_new_tokens = max_new_tokens
        self.plain_suffix = plain_suffix

    def describe(self) -> dict[str, object]:
        return {"judge": "local-generate", "model": self.lm.name, "max_new_tokens": self.max_new_tokens}

    def render(self, messages: Messages) -> str:
        if self.lm.has_chat_template:
            return self.lm.render_chat(messages, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + self.plain_suffix

    def complete(self, messages: Messages) -> Reply:
        return self.complete_all([messages])[0]

    def complete_all(self, conversations: Sequence[Messages], on_progress: Callable[[float], None] | None = None
                     ) -> list[Reply]:  # fmt: skip
        from tunesift.models.generate import generate

        replies = generate(self.lm, [self.render(m) for m in conversations], self.max_new_tokens)
        if on_progress is not None:
            on_progress(len(conversations))
        return [(reply, None, False) for reply in replies]


@dataclass(frozen=True)
class EndpointSpec:
    """An OpenAI-compatible chat endpoint, as parameters (the worker builds the client)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 4
    temperature: float = 0.0

    def client(self, max_tokens: int = 256) -> EndpointChat:
        return EndpointChat(self.base_url, self.model, api_key_env=self.api_key_env, concurrency=self.concurrency,
                            timeout=self.timeout, retries=self.retries, max_tokens=max_tokens,
                            temperature=self.temperature)  # fmt: skip


def chat_ref(
    model: Any,
    executor: Any,
    *,
    base_url: str | None,
    api_key_env: str,
    concurrency: int,
    timeout: float,
    retries: int,
    dtype: str | None,
) -> Any:
    """The model that writes the replies: ``base_url``'s endpoint serving ``model`` (an :class:`EndpointSpec`),
    else a local causal LM (default the packaged SmolLM2) resolved in its dtype."""
    from tunesift.models.backend import model_ref
    from tunesift.models.registry import DEFAULT_MODEL

    if not base_url:
        return model_ref(model or DEFAULT_MODEL, executor, dtype=dtype)
    if not model:
        raise ConfigError("model", "an endpoint judge needs the model name the server serves")
    if dtype not in (None, "auto"):
        raise ConfigError("dtype", "an endpoint judge runs in the precision its server chose; drop --dtype")
    return EndpointSpec(base_url, str(model), api_key_env, concurrency, timeout, retries)
