"""Score a pool with an AlpaGasus judge (METHODS.md §4), cached by (prompt, judge model, sample content).

Ratings are appended to the score store a chunk at a time, so a run killed mid-way (or an endpoint that
goes away) resumes where it stopped; transient request failures are reported but never cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesift.data.pools import Pool
from tunesift.data.sample import Rejected, Sample
from tunesift.errors import ConfigError
from tunesift.scorers.judge import JUDGE_VERSION, SYSTEM_PROMPT, USER_TEMPLATE, EndpointJudge, LocalJudge
from tunesift.scoring import ScoreTable, _rejected_row, as_pool, fill_store, store_root
from tunesift.store import ScoreStore

JUDGE_COLUMNS = ("alpagasus", "judge_reply")
PROMPT_SHA256 = hashlib.sha256((SYSTEM_PROMPT + "\n" + USER_TEMPLATE).encode("utf-8")).hexdigest()


def score_alpagasus(
    data: Pool | str | Path,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    timeout: float = 60.0,
    retries: int = 4,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> ScoreTable:
    """The judge's 0-5 accuracy rating of every record (``alpagasus``), with the raw reply where there is
    one. With ``base_url`` the judge is that OpenAI-compatible endpoint serving ``model``; without, ``model``
    is a local causal LM (a packaged name or a checkpoint folder) read through its score-token probabilities.
    """
    from tunesift.models.registry import DEFAULT_MODEL, resolve_model

    pool = as_pool(data)
    judge: Any
    if base_url:
        if not model:
            raise ConfigError("model", "an endpoint judge needs the model name the server serves")
        judge = EndpointJudge(base_url, model, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                              retries=retries)  # fmt: skip
        config: dict[str, Any] = dict(judge.describe())
    else:
        resolved = resolve_model(model or DEFAULT_MODEL)
        judge = None
        config = {"judge": "local", "model": resolved.name, "model_fingerprint": resolved.fingerprint,
                  "dtype": "float32"}  # fmt: skip
    config.update({"scorer": "alpagasus", "version": JUDGE_VERSION, "prompt_sha256": PROMPT_SHA256})
    store = ScoreStore(store_root(store_dir), config)
    cached = store.load()

    def compute(samples: list[Sample], tick: Callable[[float], None] | None) -> list[dict[str, Any]]:
        nonlocal judge
        if judge is None:
            from tunesift.models.causal_lm import CausalLM

            judge = LocalJudge(CausalLM.load(resolved.name, device=device), token_budget)
        return [
            {
                "alpagasus": r.score,
                "judge_reply": r.reply,
                "probs": list(r.probs) if r.probs else None,
                "skip_reason": r.error,
                "transient": r.transient,
            }
            for r in judge.rate(samples, on_progress=tick)
        ]

    fill_store(
        store, cached, ((s.content_id, s) for s in pool if isinstance(s, Sample)), compute, chunk_size=chunk_size,
        progress=progress, total=len(pool), desc="AlpaGasus judge", cacheable=lambda row: not row["transient"],
    )  # fmt: skip
    rows = []
    for item in pool:
        if isinstance(item, Rejected):
            rows.append(_rejected_row(item, JUDGE_COLUMNS))
            continue
        hit = cached[item.content_id]
        rows.append({"index": item.index, "id": item.content_id, "alpagasus": hit["alpagasus"],
                     "judge_reply": hit["judge_reply"], "skip_reason": hit["skip_reason"]})  # fmt: skip
    return ScoreTable(config, rows, score_field="alpagasus", columns=JUDGE_COLUMNS)
