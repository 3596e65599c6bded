"""Score a pool, streaming, computing only what the score store does not hold yet.

One driver loop serves every scorer (:func:`score_pool`): it walks the pool, hands the units the store
lacks to an executor (in-process by default, or Ray), which computes them a chunk at a time and appends
each chunk to the store, and then combines each sample's cached results into its row. A killed run
resumes where it stopped, and a second run with another budget or aggregation reuses everything without
loading a model. ``score_ifd`` and ``score_selectit`` are the public entry points of their methods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesift.data.pools import Pool, read_pool
from tunesift.data.sample import Rejected, Sample
from tunesift.errors import ConfigError
from tunesift.models.backend import model_ref
from tunesift.models.registry import DEFAULT_MODEL, ResolvedModel, cache_root
from tunesift.scorers.base import Scorer, Unit
from tunesift.scorers.ifd import IFD, IFD_COLUMNS, IFD_FIELDS, IFDConfig
from tunesift.store import ScoreStore

if TYPE_CHECKING:
    from tunesift.execution import Executor


@dataclass
class ScoreTable:
    """One row per pool record, in pool order, plus the configuration that produced the scores.

    A row holds ``index``, ``id`` (the sample's content hash; None for a rejected record), the score
    fields and ``skip_reason``; conversations also hold ``turns``.
    """

    config: dict[str, Any]
    rows: list[dict[str, Any]]
    score_field: str = "ifd"
    columns: tuple[str, ...] = IFD_COLUMNS

    def values(self) -> list[float | None]:
        return [row.get(self.score_field) for row in self.rows]

    def skipped(self) -> dict[str, int]:
        """Count of skipped samples by reason (a rejected record counts as ``invalid_record``)."""
        return dict(Counter(_reason_kind(row["skip_reason"]) for row in self.rows if row.get("skip_reason")))

    def duplicates(self) -> int:
        ids = [row["id"] for row in self.rows if row.get("id")]
        return len(ids) - len(set(ids))


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0] if reason.startswith(("invalid_record", "no_turn_scored", "error")) else reason


def as_pool(data: Pool | str | Path) -> Pool:
    return data if isinstance(data, Pool) else read_pool(data)


def _valid(pool: Pool) -> Iterator[Sample]:
    return (s for s in pool if isinstance(s, Sample))


def rejected_row(rejected: Rejected, fields: Iterable[str]) -> dict[str, Any]:
    """The row of a record that is not a valid sample: null fields and the reason, tied to its index."""
    where = f"{rejected.field}: " if rejected.field else ""
    row: dict[str, Any] = {"index": rejected.index, "id": None, **dict.fromkeys(fields)}
    row["skip_reason"] = f"invalid_record: {where}{rejected.reason}"
    return row


def store_root(store_dir: str | Path | None) -> Path:
    return Path(store_dir) if store_dir else cache_root() / "scores"


def default_executor(executor: Executor | None, device: str | None) -> Executor:
    """``executor``, else the in-process one on ``device``."""
    if executor is not None:
        return executor
    from tunesift.execution.local import LocalExecutor

    return LocalExecutor(device=device)


def compute_units(
    scorer: Scorer,
    units: Iterable[Unit],
    *,
    store_dir: str | Path | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    total: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Every unit's result by key: what the store holds, plus what ``executor`` computes for the rest.

    Units are streamed; a key already stored (or already seen in this run) costs nothing. Results that
    shards of an earlier, interrupted distributed run hold are merged into the store first.
    """
    store = ScoreStore(store_root(store_dir), scorer.cache_config())
    store.merge_shards()
    cached = store.load()
    executor = default_executor(executor, None)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit=scorer.unit_name, desc=scorer.describe(), dynamic_ncols=True)
    seen: set[str] = set()
    done_texts = 0.0

    def missing() -> Iterator[Unit]:
        for unit in units:
            if unit.key in cached or unit.key in seen:
                if bar is not None:
                    bar.update(1)
                continue
            seen.add(unit.key)
            yield unit

    def tick(texts: float) -> None:  # texts finished -> whole units, so the bar never shows half a sample
        nonlocal done_texts
        done_texts += texts
        whole = int(done_texts // scorer.texts_per_unit)
        done_texts -= whole * scorer.texts_per_unit
        bar.update(whole)

    from tunesift import progress as kept

    n_stored = len(cached)
    kept.stored(scorer.unit_name + "s", n_stored, store.path)
    try:
        for key, row in executor.map_units(scorer, missing(), store, on_progress=tick if bar is not None else None):
            cached[key] = row
            if scorer.cacheable(row):
                n_stored += 1
                kept.stored(scorer.unit_name + "s", n_stored, store.path)
        if bar is not None:
            bar.n = bar.total if bar.total is not None else bar.n
    finally:  # the bar ends before any message about why the run stopped
        if bar is not None:
            bar.close()
    return cached


def score_pool(
    scorer: Scorer,
    pool: Pool,
    *,
    columns: Sequence[str],
    score_field: str,
    config: dict[str, Any] | None = None,
    store_dir: str | Path | None = None,
    executor: Executor | None = None,
    progress: bool = False,
) -> ScoreTable:
    """A scorer over a pool: compute what the store lacks, then each sample's row by ``scorer.combine``.

    ``columns`` are the fields a subset record gets (the first is ranked by); rejected records get null
    fields and their reason, at their own index.
    """
    units = (unit for sample in _valid(pool) for unit in scorer.units(sample))
    results = compute_units(scorer, units, store_dir=store_dir, executor=executor, progress=progress,
                            total=None if len(pool.rejects) else _n_units(scorer, pool))  # fmt: skip
    rows = []
    for sample in pool:
        if isinstance(sample, Rejected):
            rows.append(rejected_row(sample, columns))
            continue
        combined = scorer.combine(sample, [results[u.key] for u in scorer.units(sample)])
        rows.append({"index": sample.index, "id": sample.content_id, **combined})
    return ScoreTable(config=config or scorer.cache_config(), rows=rows, score_field=score_field,
                      columns=tuple(columns))  # fmt: skip


def _n_units(scorer: Scorer, pool: Pool) -> int | None:
    """Units of the pool for the progress bar's total, when it is one per sample; else unknown."""
    return len(pool) if scorer.unit_name == "sample" else None


def score_ifd(
    data: Pool | str | Path,
    *,
    model: str | ResolvedModel = DEFAULT_MODEL,
    variant: str = "cherry",
    template: str | None = None,
    max_length: int | None = None,
    turn_rule: str = "mean",
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int | None = None,
    device: str | None = None,
    lm: Any = None,
    executor: Executor | None = None,
    progress: bool = False,
    dtype: str | None = None,
    **server: Any,
) -> ScoreTable:
    """IFD for every record of a pool (conversations turn by turn, combined by ``turn_rule``).

    ``lm`` may be a loaded backend (a :class:`~tunesift.models.CausalLM`; then ``model`` is ignored).
    ``dtype`` and the server options (``base_url``, ``tokenizer``, ``api_key_env``, ``concurrency``,
    ``timeout``, ``retries``) choose where and how the model runs: see :func:`~tunesift.models.backend.model_ref`.
    """
    pool = as_pool(data)
    IFDConfig(variant, template, max_length, turn_rule).resolved()  # bad options fail before a model is resolved
    if lm is not None:
        resolved = ResolvedModel(lm.name, Path(), lm.fingerprint, lm.dtype_name)
        scorer = IFD(resolved, variant, template, max_length, turn_rule, token_budget)
        from tunesift.execution.local import LocalExecutor

        executor = LocalExecutor(backend=lm)
    else:
        executor = default_executor(executor, device)
        ref = model_ref(model, executor, dtype=dtype, **server)
        scorer = IFD(ref, variant, template, max_length, turn_rule, token_budget)
    scorer.chunk_size = chunk_size or scorer.chunk_size
    # per-turn results are cached: the turn rule is not part of the key, only of the table's configuration
    return score_pool(scorer, pool, columns=IFD_COLUMNS, score_field="ifd",
                      config={**scorer.cache_config(), "turn_rule": turn_rule}, store_dir=store_dir,
                      executor=default_executor(executor, device), progress=progress)  # fmt: skip


def score_selectit(
    data: Pool | str | Path,
    *,
    models: Sequence[str | ResolvedModel] = (DEFAULT_MODEL,),
    k: int = 5,
    alpha: float = 0.2,
    level: str | None = None,
    token_prompt: int = 0,
    token_rule: str = "paper",
    prompts_file: str | Path | None = None,
    turn_rule: str = "mean",
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int | None = None,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    dtype: str | None = None,
    **server: Any,
) -> ScoreTable:
    """SelectIT scores (METHODS.md §3) for every record, every level kept.

    Each rater's five renormalised probabilities are cached per rating text, so changing ``alpha``, the
    level, the turn rule or the raters' mix recomputes nothing; raters are loaded one at a time.
    """
    import hashlib

    from tunesift.models.registry import count_parameters
    from tunesift.scorers.selectit import SCORER_VERSION as VERSION
    from tunesift.scorers.selectit import SelectITConfig, SelectITRating, combine, load_prompts
    from tunesift.scorers.turns import check_turn_rule

    pool = as_pool(data)
    if not models:
        raise ConfigError("models", "give at least one rater")
    check_turn_rule(turn_rule)
    prompts = load_prompts(prompts_file)
    cfg = SelectITConfig(k, alpha, level, token_prompt, token_rule).resolved(len(models), len(prompts))
    sentences = [prompts[i] for i in cfg.prompt_indices()]
    executor = default_executor(executor, device)
    resolved = [model_ref(m, executor, dtype=dtype, **server) for m in models]
    n_parameters = [count_parameters(r) for r in resolved]
    raters = [SelectITRating(r, sentences, token_budget) for r in resolved]
    for rater in raters:  # a chunk is counted in samples: each has a rating per prompt
        rater.chunk_size = (chunk_size or 128) * len(sentences)
    ratings = []
    for rater in raters:
        units = (u for s in _valid(pool) for u in rater.units(s))
        ratings.append(compute_units(rater, units, store_dir=store_dir, executor=executor, progress=progress))
    names = [r.name for r in resolved]
    rows = []
    for sample in pool:
        if isinstance(sample, Rejected):
            rows.append(rejected_row(sample, ("selectit", "s_model")))
            continue
        per_rater = []
        for rater, by_key in zip(raters, ratings, strict=True):
            flat = [SelectITRating.rating(by_key[u.key]) for u in rater.units(sample)]
            per_rater.append([flat[t * len(sentences) : (t + 1) * len(sentences)] for t in range(len(sample.turns))])
        combined = combine(per_rater, names, n_parameters, cfg, turn_rule)
        rows.append({"index": sample.index, "id": sample.content_id, **combined})
    config = {
        "scorer": "selectit",
        "version": VERSION,
        "raters": [{**r.key(), "n_parameters": n} for r, n in zip(resolved, n_parameters, strict=True)],
        "prompts": sentences,
        "prompts_sha256": hashlib.sha256("\n".join(sentences).encode("utf-8")).hexdigest(),
        "k": cfg.k,
        "alpha": cfg.alpha,
        "level": cfg.level,
        "token_prompt": cfg.token_prompt if cfg.level == "token" else None,
        "token_rule": cfg.token_rule,
        "turn_rule": turn_rule,
    }
    return ScoreTable(config=config, rows=rows, score_field="selectit", columns=("selectit",))


__all__ = ["IFD_FIELDS", "ScoreTable", "compute_units", "score_ifd", "score_pool", "score_selectit"]
