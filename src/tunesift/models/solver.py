"""A solver: a model that writes sampled solutions to questions (METHODS.md §25.3), for ``pass-rate`` and
``length --length-of generated``.

A local causal LM (sampled, one seed a sample, after its chat template) or an OpenAI-compatible endpoint (vLLM,
SGLang: the client the judges use, with its concurrency, retries and timeouts, the seed sent with each request).
A request that fails is a reply with no text and its reason, never a sample: the caller keeps it out of the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from tunesift.models.chat import EndpointSpec, Messages, Reply
from tunesift.models.registry import ResolvedModel

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


def question_messages(question: str) -> Messages:
    """The request for one solution: §25.3's system prompt, then the question."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]


def draw_seed(question: str, j: int) -> int:
    """Sample ``j``'s seed for ``question``: fixed by the two alone, so a sample is the same in every run."""
    return int.from_bytes(hashlib.sha256(f"{j}\n{question}".encode()).digest()[:4], "little")


@dataclass(frozen=True)
class SolverSpec:
    """Who solves and how: an endpoint or a resolved local model, the sampling temperature, the longest answer."""

    model: EndpointSpec | ResolvedModel
    temperature: float
    max_tokens: int

    def key(self) -> dict[str, Any]:
        """What a sample depends on (the store's key): the model, its temperature and answer length, the prompt."""
        if isinstance(self.model, EndpointSpec):
            who: dict[str, Any] = {"url": self.model.base_url, "model": self.model.model}
        else:
            who = dict(self.model.key())
        prompt = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:16]
        return {**who, "temperature": self.temperature, "max_tokens": self.max_tokens, "system_prompt": prompt}

    def load(self, device: str | None = None) -> Any:
        if isinstance(self.model, EndpointSpec):
            return EndpointSolver(replace(self.model, temperature=self.temperature).client(self.max_tokens))
        from tunesift.models.backend import load_lm

        return LocalSolver(load_lm(self.model, device), self.temperature, self.max_tokens)

    def probe(self) -> None:
        """An endpoint answers one short request before any work (a dead server is one error, not null rows)."""
        if isinstance(self.model, EndpointSpec):
            self.model.client(1).probe()


class EndpointSolver:
    """Samples from an OpenAI-compatible endpoint, at most its ``concurrency`` requests in flight."""

    def __init__(self, chat: Any) -> None:
        self.chat = chat

    def solve(self, requests: Sequence[tuple[Messages, int]]) -> list[Reply]:
        with ThreadPoolExecutor(max_workers=self.chat.concurrency) as pool:
            return list(pool.map(lambda r: self.chat.complete(r[0], seed=r[1]), requests))


class LocalSolver:
    """Samples from a local causal LM: the messages after its chat template (or joined, for a model without one)."""

    def __init__(self, lm: Any, temperature: float, max_tokens: int) -> None:
        from tunesift.models.chat import LocalChat

        self.lm = lm
        self.chat = LocalChat(lm)
        self.temperature = temperature
        self.max_tokens = max_tokens

    def solve(self, requests: Sequence[tuple[Messages, int]]) -> list[Reply]:
        from tunesift.models.generate import sample

        texts = sample(self.lm, [self.chat.render(m) for m, _ in requests], [seed for _, seed in requests],
                       self.temperature, self.max_tokens)  # fmt: skip
        return [(text, None, False) for text in texts]
