"""The one scoring loop: a pool through a method, computing only what the score store does not hold yet.

:func:`score` serves every registered method by the same hooks (build, stages, row, finish) and knows no
method by name. It walks the pool, hands the units the store lacks to an executor (in-process by default,
or Ray), which computes them a chunk at a time and appends each chunk to the store, and then makes each
sample's row from its cached results. A killed run resumes where it stopped, and a second run with another
budget or aggregation reuses everything without loading a model.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunesift.data.pools import Pool, read_pool
from tunesift.data.sample import Rejected, Sample
from tunesift.data.table import ScoreTable
from tunesift.errors import ConfigError, TunesiftError
from tunesift.models.registry import ResolvedModel
from tunesift.scorers.base import SAMPLE_SKIPS, Method, PoolContext, Scorer, Unit, get_method
from tunesift.store import ScoreStore, cache_root

if TYPE_CHECKING:
    from tunesift.execution import Executor
    from tunesift.scorers.embedding import EmbeddingTable


class ComputeFailed(TunesiftError):
    """Every unit a run computed failed (an endpoint that answers nothing, a model that cannot run): the run
    stops without writing, rather than giving a table of nulls."""


#: Why a sample whose response is empty has no score, whichever method scores it.
EMPTY_RESPONSE = "empty_response"  # one of SAMPLE_SKIPS


def _empty_response(sample: Sample) -> bool:
    """A sample every response-reading method leaves out: its (last) response is empty."""
    return not sample.output.strip()


def as_pool(data: Pool | str | Path) -> Pool:
    return data if isinstance(data, Pool) else read_pool(data)


def valid_samples(pool: Pool) -> Iterator[Sample]:
    return (s for s in pool if isinstance(s, Sample))


def rejected_row(rejected: Rejected, fields: Iterable[str]) -> dict[str, Any]:
    """The row of a record that is not a valid sample: null fields and the reason, tied to its index."""
    where = f"{rejected.field}: " if rejected.field else ""
    row: dict[str, Any] = {"index": rejected.index, "id": None, **dict.fromkeys(fields)}
    row["skip_reason"] = f"invalid_record: {where}{rejected.reason}"
    return row


def plural(word: str) -> str:
    """``query`` -> ``queries``, ``sample`` -> ``samples``."""
    return word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"


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
    counts: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every unit's result by key: what the store holds, plus what ``executor`` computes for the rest.

    Units are streamed; a key already stored (or already seen in this run) costs nothing. Results that
    shards of an earlier, interrupted distributed run hold are merged into the store first. ``counts``, where given,
    gains the units computed and those the store already held (``computed``, ``reused``).
    """
    store = ScoreStore(store_root(store_dir), scorer.cache_config(), scorer.vector_field)
    store.merge_shards()
    cached = store.load()
    executor = default_executor(executor, None)
    bar: Any = None  # made once the first unit to compute is known, so a refused service shows no bar
    seen: set[str] = set()
    done_texts = 0.0
    served = skipped = 0  # units the store already held; units passed over (held, or a repeat)

    def missing() -> Iterator[Unit]:
        nonlocal served, skipped
        for unit in units:
            if unit.key in cached or unit.key in seen:
                served += unit.key in cached
                skipped += 1
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
    units_word = plural(scorer.unit_name)
    kept.stored(units_word, n_stored, store.path)
    failed: list[dict[str, Any]] = []
    try:
        pending = missing()
        first = next(pending, None)
        if first is not None:  # something to compute: only now are services asked (an endpoint probed, Ray started)
            scorer.check_ready()
            executor.prepare()
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=skipped, unit=scorer.unit_name, desc=scorer.describe(),
                       dynamic_ncols=True)  # fmt: skip
        computed = (
            ()
            if first is None
            else executor.map_units(
                scorer, itertools.chain([first], pending), store, on_progress=tick if bar is not None else None
            )
        )
        for key, row in computed:
            cached[key] = row
            if scorer.cacheable(row):
                n_stored += 1
                kept.stored(units_word, n_stored, store.path)
            elif row.get("skip_reason") not in SAMPLE_SKIPS:  # a sample with nothing to score is a skip
                failed.append(row)
        if bar is not None:
            bar.n = bar.total if bar.total is not None else bar.n
    finally:  # the bar ends before any message about why the run stopped
        if bar is not None:
            bar.close()
    if counts is not None:
        counts["computed"] = counts.get("computed", 0) + len(seen)
        counts["reused"] = counts.get("reused", 0) + served
    if failed and len(failed) == len(seen) and not served:
        raise ComputeFailed(f"{scorer.describe()}: every one of {len(failed)} {units_word} failed, nothing "
                            f"was written; the first: {failed[0].get('skip_reason')}")  # fmt: skip
    return cached


def gather_vectors(
    scorer: Scorer, results: dict[str, dict[str, Any]], keys: Sequence[str], store_dir: str | Path | None = None
) -> np.ndarray:
    """The vectors of ``keys`` (units ``compute_units`` returned in ``results``), one row each in that order,
    read from the store's memory-mapped file: float32 (len(keys), width). Every key must have its vector."""
    field = scorer.vector_field
    rows = np.fromiter((results[k][field] for k in keys), dtype=np.int64, count=len(keys))
    matrix = ScoreStore(store_root(store_dir), scorer.cache_config(), field).vectors()
    if not len(keys):
        return np.zeros((0, matrix.shape[1] if matrix.ndim == 2 else 0), dtype=np.float32)
    return np.asarray(matrix[rows], dtype=np.float32)


def score_pool(
    method: Method,
    pool: Pool,
    *,
    store_dir: str | Path | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    counts: dict[str, int] | None = None,
) -> ScoreTable:
    """A configured method over a pool: compute what the store lacks for each of its stages, make each
    sample's row, then run its pool-level step. Rejected records get null fields and their reason, at
    their own index. ``counts``: as :func:`compute_units`', over every stage."""
    executor = default_executor(executor, None)
    stages = method.stages()
    results = []

    def samples() -> Iterable[Sample]:
        """The samples to score, streamed from the pool for each stage (never all in memory at once)."""
        return (s for s in valid_samples(pool) if not (method.needs_response and _empty_response(s)))

    for stage in stages:
        units = (unit for sample in samples() for unit in stage.units(sample))
        total = len(pool) if not pool.rejects and stage.unit_name == "sample" else None
        results.append(compute_units(stage, units, store_dir=store_dir, executor=executor, progress=progress,
                                     total=total, counts=counts))  # fmt: skip
    columns = method.table_columns()
    rows = []
    for sample in pool:
        if isinstance(sample, Rejected):
            rows.append(rejected_row(sample, columns))
            continue
        if method.needs_response and _empty_response(sample):
            rows.append({"index": sample.index, "id": sample.content_id, **dict.fromkeys(columns),
                         "skip_reason": EMPTY_RESPONSE})  # fmt: skip
            continue
        per_stage = [[found[u.key] for u in stage.units(sample)] for stage, found in zip(stages, results, strict=True)]
        rows.append({"index": sample.index, "id": sample.content_id, **method.row(sample, per_stage)})

    def embed(data: Pool) -> EmbeddingTable:
        return embed_pool(data, store_dir=store_dir, executor=executor, progress=progress)

    def compute(stage: Scorer, samples: Iterable[Sample]) -> dict[str, dict[str, Any]]:
        units = (unit for sample in samples for unit in stage.units(sample))
        return compute_units(stage, units, store_dir=store_dir, executor=executor, progress=progress)

    def vectors(stage: Scorer) -> np.ndarray:
        return ScoreStore(store_root(store_dir), stage.cache_config(), stage.vector_field).vectors()

    def score_part(other: Method, part: Any) -> tuple[ScoreTable, dict[str, int]]:
        counts = {"computed": 0, "reused": 0}
        table = score_pool(other, part, store_dir=store_dir, executor=executor, progress=progress, counts=counts)
        return table, counts

    method.finish(pool, rows, PoolContext(store_dir, executor, progress, embed, compute, vectors, score_part))
    return ScoreTable(method.table_config(), rows, method.ranked_by(), columns)


def score(
    name: str | type[Method],
    data: Pool | str | Path,
    *,
    store_dir: str | Path | None = None,
    device: str | None = None,
    executor: Executor | None = None,
    backend: Any = None,
    progress: bool = False,
    **options: Any,
) -> ScoreTable:
    """Every record of a pool scored by the method ``name`` with ``options`` (its declared ones, checked).

    ``backend`` may be a loaded model (a :class:`~tunesift.models.CausalLM`) to score with in this process;
    then its name and fingerprint stand for ``model``.
    """
    cls = get_method(name) if isinstance(name, str) else name
    values = cls.check(options)
    pool = as_pool(data)
    if backend is not None:
        from tunesift.execution.local import LocalExecutor

        if "model" not in values:
            raise ConfigError("backend", f"method {cls.method!r} takes no model")
        values["model"] = ResolvedModel(backend.name, Path(), backend.fingerprint, backend.dtype_name)
        executor = LocalExecutor(backend=backend)
    executor = default_executor(executor, device)
    method = cls.build(pool, executor, **values)
    return score_pool(method, pool, store_dir=store_dir, executor=executor, progress=progress)


def embed_pool(
    data: Pool | str | Path,
    *,
    embedder: str = "minilm",
    model: str | ResolvedModel | None = None,
    template: str = "alpaca",
    text: str = "prompt",
    max_length: int = 512,
    minilm_text: str = "sample",
    indices: Sequence[int] | None = None,
    store_dir: str | Path | None = None,
    batch_tokens: int = 4096,
    chunk_size: int = 256,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    dtype: str | None = None,
) -> EmbeddingTable:
    """Embed the valid samples of a pool (or only the records at ``indices``, in that order), computing
    only what the score store lacks. ``text`` is what the ``lm`` embedder reads; ``minilm_text`` what MiniLM
    reads (``sample``: instruction, input, output; ``prompt``: instruction and input, as QDIT embeds)."""
    from tunesift.models.backend import model_ref
    from tunesift.models.registry import DEFAULT_MODEL
    from tunesift.scorers.embedding import EMBEDDERS, LM_TEXTS, EmbeddingTable, LMEmbedding, MiniLMEmbedding

    if embedder not in EMBEDDERS:
        raise ConfigError("embedder", f"unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
    if text not in LM_TEXTS:
        raise ConfigError("text", f"unknown text {text!r}; choose one of {', '.join(LM_TEXTS)}")
    pool = as_pool(data)
    executor = default_executor(executor, device)
    scorer: Scorer
    if embedder == "minilm":
        scorer = MiniLMEmbedding(chunk_size=chunk_size, text=minilm_text)
    else:
        scorer = LMEmbedding(model_ref(model or DEFAULT_MODEL, executor, dtype=dtype), template, text, max_length,
                             batch_tokens, chunk_size=chunk_size)  # fmt: skip
    wanted = None if indices is None else set(indices)
    order: dict[int, str] = {}  # pool index -> content id: all that is kept per sample

    def units() -> Iterator[Unit]:
        for s in pool:
            if isinstance(s, Sample) and (wanted is None or s.index in wanted):
                order[s.index] = s.content_id
                yield from scorer.units(s)

    cached = compute_units(scorer, units(), store_dir=store_dir, executor=executor,
                           progress=progress, total=len(wanted) if wanted is not None else len(pool))  # fmt: skip
    rows = list(order) if indices is None else list(indices)
    ids = [order[i] for i in rows]
    vectors = gather_vectors(scorer, cached, ids, store_dir) if ids else np.zeros((0, 0), dtype=np.float32)
    loss = None
    if embedder == "lm":
        loss = np.array([np.nan if (x := cached[k]["loss"]) is None else x for k in ids])
    return EmbeddingTable(rows, vectors.astype(np.float32), scorer.cache_config(), loss)
