"""A model an inference server holds: :class:`LMBackend` over an OpenAI-compatible ``/v1/completions``.

Texts are tokenised here with the model's own tokenizer and sent as token ids, so the server scores exactly
the tokens the in-process backend would. The log-probabilities come back as vLLM serves them: ``echo: true``
with ``logprobs: 1`` and ``max_tokens: 1`` returns, in ``choices[i].logprobs.token_logprobs``, the
log-probability of every prompt token given the ones before it (the first is null, having nothing before
it) and one for the generated token. IFD, Superfiltering and perplexity read them directly.

SelectIT (and any scorer that asks for next-token probabilities) stays exact without top-k lists: each
candidate token is appended to the text and its prompt log-probability read back, one prompt per candidate
in one request (vLLM's prefix cache computes the shared text once); the probabilities are then renormalised
over the candidates, as the in-process backend does.

A reply whose tokens differ from those sent, or that has fewer log-probabilities than tokens sent, is an
error for that sample (a null score with the reason), never a shifted score. A server that cannot be
reached, or does not serve the model, or gives no prompt log-probabilities, is a one-line error before any
work.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesift.errors import ConfigError
from tunesift.models.causal_lm import TargetSpan, TokenizerSide
from tunesift.models.http import JsonEndpoint, RequestFailed
from tunesift.models.registry import ResolvedModel

SERVER_DTYPE = "server"  # what a served model's cache key says of its precision: the server decides it


class ServerReplyError(ValueError):
    """A reply that cannot be read as the scores of the tokens sent."""


@dataclass(frozen=True)
class ServedModel:
    """A model on an OpenAI-compatible server, and the local tokenizer (a resolved checkpoint or tokenizer
    folder) whose ids are sent. Its cache key names the server and the model, so scores from a server and
    from an in-process model never mix."""

    base_url: str
    model: str
    tokenizer: ResolvedModel
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 4
    dtype: str = SERVER_DTYPE

    def __post_init__(self) -> None:
        JsonEndpoint(self.base_url, timeout=self.timeout, retries=self.retries)  # checks the URL and limits now
        if self.concurrency < 1:
            raise ConfigError("concurrency", f"must be at least 1, got {self.concurrency}")

    @property
    def name(self) -> str:
        return self.model

    @property
    def fingerprint(self) -> str:
        return f"server:{self.base_url.rstrip('/')}|tokenizer:{self.tokenizer.fingerprint}"

    @property
    def path(self) -> Any:
        """The tokenizer's folder (its config, where it has one, tells the model's size)."""
        return self.tokenizer.path

    def key(self) -> dict[str, str]:
        return {"model": self.model, "model_fingerprint": self.fingerprint, "dtype": self.dtype}

    def on(self, device: str, dtype: str | None) -> ServedModel:
        if dtype not in (None, "auto"):
            raise ConfigError("dtype", "a served model runs in the precision its server chose; drop --dtype")
        return self

    def load(self) -> ServerLM:
        return ServerLM(self)


class ServerLM(TokenizerSide):
    """The :class:`~tunesift.models.backend.LMBackend` of a :class:`ServedModel`."""

    dtype_name = SERVER_DTYPE
    device = "server"

    def __init__(self, served: ServedModel) -> None:
        from transformers import AutoTokenizer

        self.served = served
        self.name = served.model
        self.fingerprint = served.fingerprint
        self.tokenizer = AutoTokenizer.from_pretrained(served.tokenizer.path)
        self.endpoint = JsonEndpoint(served.base_url, api_key_env=served.api_key_env, timeout=served.timeout,
                                     retries=served.retries)  # fmt: skip
        self.stats: Counter[str] = Counter()
        self._context = _context_length(served.tokenizer)
        self._probe()

    @property
    def context_length(self) -> int | None:
        return self._context

    def _probe(self) -> None:
        """One tiny request before any work: a server that is down, does not serve the model or gives no
        prompt log-probabilities is a one-line error naming the option."""
        where = f"the server at {self.served.base_url}"
        ids = self.encode("Hello") or [0]
        try:
            self._prompt_logprobs(ids + ids)
        except RequestFailed as err:
            if "HTTP 404" in err.reason or "HTTP 400" in err.reason:
                raise ConfigError("model", f"{where} refused model {self.name!r}: {err}") from None
            raise ConfigError("base-url", f"cannot use {where}: {err}") from None
        except ServerReplyError as err:
            raise ConfigError("base-url", f"{where} gives no usable prompt log-probabilities ({err}); tunesift "
                              "needs /v1/completions with echo and logprobs, as vLLM serves it") from None  # fmt: skip

    def _request(self, prompts: list[list[int]]) -> list[dict[str, Any]]:
        """The choices of one completions request over ``prompts`` (token ids), in the order sent."""
        body = {"model": self.name, "prompt": prompts if len(prompts) > 1 else prompts[0], "echo": True,
                "logprobs": 1, "max_tokens": 1, "temperature": 0, "return_tokens_as_token_ids": True}  # fmt: skip
        payload = self.endpoint.post("/completions", body)
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += sum(len(p) for p in prompts)
        try:
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        except (KeyError, TypeError, AttributeError):
            raise ServerReplyError(f"not a completion: {json.dumps(payload)[:200]}") from None
        if len(choices) != len(prompts):
            raise ServerReplyError(f"{len(choices)} choices for {len(prompts)} prompts")
        return choices

    def _prompt_logprobs(self, ids: list[int]) -> list[float | None]:
        return _read_logprobs(self._request([ids])[0], ids)

    def target_nll(
        self, spans: Sequence[TargetSpan], batch_tokens: int = 4096, on_batch: Callable[[int], None] | None = None
    ) -> list[np.ndarray]:
        """Per-token NLL of each span's targets, from the server's prompt log-probabilities; requests run
        ``concurrency`` at a time (``batch_tokens`` is the server's business)."""

        def one(span: TargetSpan) -> np.ndarray:
            if span.n_targets == 0:
                return np.empty(0, dtype=np.float64)
            logprobs = self._prompt_logprobs(list(span.ids))[span.first_target :]
            if any(v is None for v in logprobs):
                raise ServerReplyError("a scored prompt token has no log-probability")
            return -np.asarray(logprobs, dtype=np.float64)

        return self._each(spans, one, on_batch)

    def next_token_probs(
        self,
        texts: Sequence[TargetSpan],
        candidates: Sequence[int],
        batch_tokens: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Probabilities of ``candidates`` after each text, renormalised over them: each candidate appended to
        the text and its prompt log-probability read back (exact, unlike a top-k list)."""

        def one(text: TargetSpan) -> np.ndarray:
            prompts = [[*text.ids, int(c)] for c in candidates]
            choices = self._request(prompts)
            logprobs = np.array([_read_logprobs(choice, p)[-1] for choice, p in zip(choices, prompts, strict=True)],
                                dtype=np.float64)  # fmt: skip
            weights = np.exp(logprobs - logprobs.max())
            return weights / weights.sum()

        return np.stack(self._each(texts, one, on_batch)) if texts else np.zeros((0, len(candidates)))

    def mean_hidden_and_loss(
        self, texts: Sequence[Sequence[int]], batch_tokens: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        raise ConfigError("base-url", "a server returns no hidden states: embeddings need an in-process model")

    def _each(self, items: Sequence[Any], one: Callable[[Any], Any], on_batch: Callable[[int], None] | None) -> list:
        def counted(item: Any) -> Any:
            result = one(item)
            if on_batch is not None:
                on_batch(1)
            return result

        with ThreadPoolExecutor(max_workers=self.served.concurrency) as pool:
            return list(pool.map(counted, items))


def _read_logprobs(choice: dict[str, Any], ids: list[int]) -> list[float | None]:
    """The prompt's log-probabilities from one echoed choice, checked against the ids sent."""
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(values, list):
        raise ServerReplyError("the reply has no logprobs.token_logprobs (is echo with logprobs supported?)")
    if len(values) < len(ids):
        raise ServerReplyError(f"the reply scores {len(values)} tokens, {len(ids)} were sent")
    tokens = logprobs.get("tokens")
    if isinstance(tokens, list) and tokens and all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        got = [int(t.removeprefix("token_id:")) for t in tokens[: len(ids)]]
        for position, (sent, back) in enumerate(zip(ids, got, strict=False)):
            if sent != back:
                raise ServerReplyError(f"the reply's token {position} is {back}, {sent} was sent")
        if len(got) < len(ids):
            raise ServerReplyError(f"the reply echoes {len(got)} tokens, {len(ids)} were sent")
    return values[: len(ids)]


def _context_length(tokenizer: ResolvedModel) -> int | None:
    """The model's context from the tokenizer folder's config.json, where it has one."""
    try:
        config = json.loads((tokenizer.path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text = config.get("text_config", config)
    value = text.get("max_position_embeddings") if isinstance(text, dict) else None
    return int(value) if isinstance(value, int) else None
