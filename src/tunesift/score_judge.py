"""Score a pool with an LLM judge: AlpaGasus (METHODS.md §4) or Humpback's self-curation (docs/methods.md §7),
cached by (prompt, judge model, sample content).

Ratings are appended to the score store a chunk at a time, so a run killed mid-way (or an endpoint that
goes away) resumes where it stopped; transient request failures are reported but never cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesift.data.pools import Pool
from tunesift.errors import ConfigError
from tunesift.models.registry import ResolvedModel
from tunesift.scorers.judge import AlpaGasus, EndpointSpec, JudgeScorer
from tunesift.scorers.self_curation import SelfCuration
from tunesift.scoring import ScoreTable, as_pool, default_executor, score_pool

if TYPE_CHECKING:
    from tunesift.execution import Executor

JUDGE_COLUMNS = ("alpagasus", "judge_reply")
CURATION_COLUMNS = ("self_curation", "judge_reply")


def judge_ref(
    model: str | ResolvedModel | None,
    executor: Executor,
    *,
    base_url: str | None,
    api_key_env: str,
    concurrency: int,
    timeout: float,
    retries: int,
    dtype: str | None,
) -> EndpointSpec | ResolvedModel:
    """The model that writes the replies: ``base_url``'s endpoint serving ``model``, else a local causal LM
    (default the packaged SmolLM2) in its dtype."""
    from tunesift.models.backend import model_ref
    from tunesift.models.registry import DEFAULT_MODEL

    if not base_url:
        return model_ref(model or DEFAULT_MODEL, executor, dtype=dtype)
    if not model:
        raise ConfigError("model", "an endpoint judge needs the model name the server serves")
    if dtype not in (None, "auto"):
        raise ConfigError("dtype", "an endpoint judge runs in the precision its server chose; drop --dtype")
    return EndpointSpec(base_url, str(model), api_key_env, concurrency, timeout, retries)


def _score_with_judge(
    method: type[JudgeScorer],
    columns: tuple[str, ...],
    data: Pool | str | Path,
    *,
    model: str | ResolvedModel | None,
    base_url: str | None,
    api_key_env: str,
    concurrency: int,
    timeout: float,
    retries: int,
    store_dir: str | Path | None,
    token_budget: int,
    chunk_size: int,
    device: str | None,
    executor: Executor | None,
    progress: bool,
    dtype: str | None,
) -> ScoreTable:
    pool = as_pool(data)
    executor = default_executor(executor, device)
    judge = judge_ref(model, executor, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
                      timeout=timeout, retries=retries, dtype=dtype)  # fmt: skip
    scorer = method(judge, token_budget)
    scorer.chunk_size = chunk_size
    return score_pool(scorer, pool, columns=columns, score_field=columns[0], store_dir=store_dir,
                      executor=executor, progress=progress)  # fmt: skip


def score_alpagasus(
    data: Pool | str | Path,
    *,
    model: str | ResolvedModel | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 8,
    timeout: float = 60.0,
    retries: int = 4,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 64,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    dtype: str | None = None,
) -> ScoreTable:
    """The judge's 0-5 accuracy rating of every record (``alpagasus``), with the raw reply where there is
    one. With ``base_url`` the judge is that OpenAI-compatible endpoint serving ``model``; without, ``model``
    is a local causal LM (a packaged name or a checkpoint folder) read through its score-token probabilities.
    """
    options: dict[str, Any] = locals()
    return _score_with_judge(AlpaGasus, JUDGE_COLUMNS, **options)


def score_self_curation(
    data: Pool | str | Path,
    *,
    model: str | ResolvedModel | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 8,
    timeout: float = 60.0,
    retries: int = 4,
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 64,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    dtype: str | None = None,
) -> ScoreTable:
    """Humpback's 1-5 self-curation rating of every record (``self_curation``), with the raw reply where
    there is one: an endpoint's ``Score: N``, or a local model's expected score over the tokens 1..5."""
    options: dict[str, Any] = locals()
    return _score_with_judge(SelfCuration, CURATION_COLUMNS, **options)
