"""JSON over HTTP to an OpenAI-compatible server, with the retry rules every tunesift client shares.

429, 5xx, timeouts and network errors are retried with exponential backoff; any other HTTP error is not
(a 404 for an unknown model will not heal). Standard library only: the server may be vLLM, SGLang,
llama.cpp or a hosted API, and nothing here needs more than a POST.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from tunesift.errors import ConfigError


class RequestFailed(Exception):
    """A request that got no usable answer; ``transient`` when retrying later may help (overload, network)."""

    def __init__(self, reason: str, transient: bool = False, detail: str = "") -> None:
        super().__init__(reason + (f": {detail}" if detail else ""))
        self.reason = reason  # a short, stable category: counted in summaries
        self.transient = transient
        self.detail = detail  # what the server said, for the message


class JsonEndpoint:
    """POSTs JSON to ``base_url`` + a path. The key is read from the environment variable ``api_key_env``
    (none is sent when it is unset, as local servers expect)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 1.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("base-url", f"expected an http(s) URL, got {base_url!r}")
        if retries < 0 or timeout <= 0:
            raise ConfigError("retries", "retries >= 0 and timeout > 0 are required")
        self.base_url = base_url.rstrip("/")
        self.api_key = os.environ.get(api_key_env)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """The decoded JSON reply; :class:`RequestFailed` once the retries are spent or on a final error."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last, detail = "", ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    text = response.read().decode("utf-8")
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")[:200].strip()
                last = f"HTTP {err.code}"
                if err.code == 429 or err.code >= 500:
                    continue
                raise RequestFailed(f"request_failed: HTTP {err.code} (not retried)", detail=detail) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last, detail = f"{type(err).__name__}: {getattr(err, 'reason', err)}", ""
                continue
            try:
                return json.loads(text)
            except ValueError:
                raise RequestFailed(f"bad_response: not JSON: {text[:200]!r}") from None
        raise RequestFailed(f"request_failed: {last} after {self.retries + 1} attempts", transient=True, detail=detail)
