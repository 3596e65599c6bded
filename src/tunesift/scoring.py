"""Score a pool, streaming, computing only what the score store does not hold yet.

Each scorer's results are cached by sample content (or, for SelectIT, by the exact rating text) and
configuration, appended a chunk at a time: a killed run resumes where it stopped, and a second run with
another budget or aggregation reuses everything without loading a model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift.data.pools import Pool, read_pool
from tunesift.data.sample import Rejected, Sample
from tunesift.errors import ConfigError
from tunesift.models.registry import DEFAULT_MODEL, ResolvedModel, cache_root, resolve_model
from tunesift.scorers.ifd import IFDConfig, IFDScore, IFDScorer, combine_turns
from tunesift.scorers.ifd import cache_key as ifd_cache_key
from tunesift.scorers.turns import check_turn_rule
from tunesift.store import ScoreStore

IFD_FIELDS = ("ifd", "loss_cond", "loss_direct", "n_tokens", "skip_reason")
# The fields a subset record gets from each kind of score (the first is the one ranked by).
SUBSET_COLUMNS = {"ifd": ("ifd", "loss_cond", "loss_direct", "n_tokens"), "selectit": ("selectit",)}


@dataclass
class ScoreTable:
    """One row per pool record, in pool order, plus the configuration that produced the scores.

    A row holds ``index``, ``id`` (the sample's content hash; None for a rejected record), the score
    fields and ``skip_reason``; conversations also hold ``turns``.
    """

    config: dict[str, Any]
    rows: list[dict[str, Any]]
    score_field: str = "ifd"
    columns: tuple[str, ...] = ("ifd", "loss_cond", "loss_direct", "n_tokens")

    def values(self) -> list[float | None]:
        return [row.get(self.score_field) for row in self.rows]

    def skipped(self) -> dict[str, int]:
        """Count of skipped samples by reason (a rejected record counts as ``invalid_record``)."""
        return dict(Counter(_reason_kind(row["skip_reason"]) for row in self.rows if row.get("skip_reason")))

    def duplicates(self) -> int:
        ids = [row["id"] for row in self.rows if row.get("id")]
        return len(ids) - len(set(ids))


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0] if reason.startswith(("invalid_record", "no_turn_scored")) else reason


def as_pool(data: Pool | str | Path) -> Pool:
    return data if isinstance(data, Pool) else read_pool(data)


def _valid(pool: Pool) -> Iterator[Sample]:
    return (s for s in pool if isinstance(s, Sample))


def _rejected_row(rejected: Rejected, fields: Iterable[str]) -> dict[str, Any]:
    where = f"{rejected.field}: " if rejected.field else ""
    row: dict[str, Any] = {"index": rejected.index, "id": None, **dict.fromkeys(fields)}
    row["skip_reason"] = f"invalid_record: {where}{rejected.reason}"
    return row


def fill_store(
    store: ScoreStore,
    cached: dict[str, dict[str, Any]],
    items: Iterable[tuple[str, Any]],
    compute: Callable[[list[Any], Callable[[float], None] | None], list[dict[str, Any]]],
    *,
    chunk_size: int,
    progress: bool,
    total: int | None,
    desc: str,
    units_per_item: int = 1,
    unit: str = "sample",
    cacheable: Callable[[dict[str, Any]], bool] | None = None,
) -> None:
    """Compute the ``(key, item)`` pairs the store lacks, streaming, a chunk at a time.

    ``compute`` gets a chunk of items (and a progress callback counting finished texts) and returns one
    result row per item; each chunk is appended to the store before the next starts, so a killed run
    loses at most the chunk in flight. Items whose key is cached (or repeated) cost nothing. Rows that
    ``cacheable`` rejects (a transient failure) serve this run but are not stored, so a later run retries.
    """
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True)
    seen: set[str] = set()
    chunk: list[tuple[str, Any]] = []
    texts = 0.0
    base = 0

    def tick(n: float) -> None:
        # texts finished -> whole items finished, so the bar never shows half a sample
        nonlocal texts
        texts += n
        bar.update(min(base + int(texts // units_per_item), base + len(chunk)) - bar.n)

    def run_chunk() -> None:
        nonlocal texts, base
        texts = 0.0
        results = compute([item for _, item in chunk], tick if bar is not None else None)
        rows = [{"id": key, **result} for (key, _), result in zip(chunk, results, strict=True)]
        store.append(row for row in rows if cacheable is None or cacheable(row))
        cached.update((row["id"], row) for row in rows)
        base += len(chunk)
        if bar is not None:
            bar.n = base
            bar.refresh()
        chunk.clear()

    for key, item in items:
        if key in cached or key in seen:
            base += 1
            if bar is not None:
                bar.update(1)
            continue
        seen.add(key)
        chunk.append((key, item))
        if len(chunk) >= chunk_size:
            run_chunk()
    if chunk:
        run_chunk()
    if bar is not None:
        bar.close()


def store_root(store_dir: str | Path | None) -> Path:
    return Path(store_dir) if store_dir else cache_root() / "scores"


def score_ifd(
    data: Pool | str | Path,
    *,
    model: str = DEFAULT_MODEL,
    variant: str = "cherry",
    template: str | None = None,
    max_length: int | None = None,
    turn_rule: str = "mean",
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 128,
    device: str | None = None,
    lm: Any = None,
    progress: bool = False,
) -> ScoreTable:
    """IFD for every record of a pool (conversations turn by turn, combined by ``turn_rule``).

    ``lm`` may be a loaded :class:`~tunesift.models.CausalLM` (then ``model`` is ignored).
    """
    pool = as_pool(data)
    cfg = IFDConfig(variant=variant, template=template, max_length=max_length, turn_rule=turn_rule).resolved()
    scorer = IFDScorer(lm, cfg, token_budget=token_budget) if lm is not None else None
    if scorer is not None:
        config = scorer.describe()
    else:
        resolved = resolve_model(model)
        config = ifd_cache_key(cfg, resolved.name, resolved.fingerprint, "float32")
    store = ScoreStore(store_root(store_dir), config)  # per-turn results: the turn rule is not part of the key
    cached = store.load()

    def compute(samples: list[Sample], tick: Callable[[float], None] | None) -> list[dict[str, Any]]:
        nonlocal scorer
        if scorer is None:
            from tunesift.models.causal_lm import CausalLM

            scorer = IFDScorer(CausalLM.load(model, device=device), cfg, token_budget=token_budget)
        results = scorer.score(samples, on_progress=tick)
        return [r.to_dict() for r in results]

    fill_store(
        store, cached, ((s.content_id, s) for s in _valid(pool)), compute, chunk_size=chunk_size,
        progress=progress, total=len(pool), desc=f"IFD ({cfg.variant})", units_per_item=2,
    )  # fmt: skip
    rows = []
    for sample in pool:
        if isinstance(sample, Rejected):
            rows.append(_rejected_row(sample, IFD_FIELDS[:-1]))
            continue
        hit = cached[sample.content_id]
        if "turns" in hit:  # a conversation: combine its turns by this run's rule
            hit = combine_turns([IFDScore.from_dict(t) for t in hit["turns"]], turn_rule).to_dict()
        row = {"index": sample.index, "id": sample.content_id, **{k: hit[k] for k in IFD_FIELDS}}
        if "turns" in hit:
            row["turns"] = hit["turns"]
        rows.append(row)
    return ScoreTable(config={**config, "turn_rule": turn_rule}, rows=rows)


def _rater_ratings(
    pool: Pool,
    sentences: Sequence[str],
    rater_model: ResolvedModel,
    store_dir: str | Path | None,
    token_budget: int,
    chunk_size: int,
    device: str | None,
    progress: bool,
) -> dict[str, Any]:
    """One rater's ratings of every (sample, turn, sentence), keyed by rating text; loads it only if needed."""
    from tunesift.scorers.selectit import SCORER_VERSION as VERSION
    from tunesift.scorers.selectit import Rating, SelectITRater, rating_key, rating_text

    store = ScoreStore(
        store_root(store_dir),
        {
            "scorer": "selectit-rater",
            "version": VERSION,
            "model": rater_model.name,
            "model_fingerprint": rater_model.fingerprint,
            "dtype": "float32",
        },
    )
    cached = store.load()
    rater: SelectITRater | None = None

    def compute(units: list[tuple[Sample, str, int]], tick: Callable[[float], None] | None) -> list[dict[str, Any]]:
        nonlocal rater
        if rater is None:
            from tunesift.models.causal_lm import CausalLM

            rater = SelectITRater(CausalLM.load(rater_model.name, device=device), token_budget)
        ratings = rater.rate(units, on_progress=tick)
        return [{"p": r.probs, "skip_reason": r.skip_reason, "n_tokens": r.n_tokens} for r in ratings]

    items = (
        (rating_key(rating_text(s, t, turn)), (s, t, turn))
        for s in _valid(pool)
        for turn in range(len(s.turns))
        for t in sentences
    )
    fill_store(
        store, cached, items, compute, chunk_size=chunk_size * len(sentences), progress=progress, total=None,
        desc=f"SelectIT ({rater_model.name})", unit="rating",
    )  # fmt: skip
    return {
        key: Rating(None if row["p"] is None else tuple(row["p"]), row["skip_reason"], row.get("n_tokens", 0))
        for key, row in cached.items()
    }


def score_selectit(
    data: Pool | str | Path,
    *,
    models: Sequence[str] = (DEFAULT_MODEL,),
    k: int = 5,
    alpha: float = 0.2,
    level: str | None = None,
    token_prompt: int = 0,
    token_rule: str = "paper",
    prompts_file: str | Path | None = None,
    turn_rule: str = "mean",
    store_dir: str | Path | None = None,
    token_budget: int = 4096,
    chunk_size: int = 128,
    device: str | None = None,
    progress: bool = False,
) -> ScoreTable:
    """SelectIT scores (METHODS.md §3) for every record, every level kept.

    Each rater's five renormalised probabilities are cached per rating text, so changing ``alpha``, the
    level, the turn rule or the raters' mix recomputes nothing; raters are loaded one at a time.
    """
    import hashlib

    from tunesift.models.registry import count_parameters
    from tunesift.scorers.selectit import SCORER_VERSION as VERSION
    from tunesift.scorers.selectit import SelectITConfig, combine, load_prompts, rating_key, rating_text

    pool = as_pool(data)
    if not models:
        raise ConfigError("models", "give at least one rater")
    check_turn_rule(turn_rule)
    prompts = load_prompts(prompts_file)
    cfg = SelectITConfig(k, alpha, level, token_prompt, token_rule).resolved(len(models), len(prompts))
    sentences = [prompts[i] for i in cfg.prompt_indices()]
    resolved = [resolve_model(m) for m in models]
    n_parameters = [count_parameters(r) for r in resolved]
    ratings = [
        _rater_ratings(pool, sentences, r, store_dir, token_budget, chunk_size, device, progress) for r in resolved
    ]
    names = [r.name for r in resolved]
    rows = []
    for sample in pool:
        if isinstance(sample, Rejected):
            rows.append(_rejected_row(sample, ("selectit", "s_model")))
            continue
        per_rater = [
            [[by_key[rating_key(rating_text(sample, t, turn))] for t in sentences] for turn in range(len(sample.turns))]
            for by_key in ratings
        ]
        combined = combine(per_rater, names, n_parameters, cfg, turn_rule)
        rows.append({"index": sample.index, "id": sample.content_id, **combined})
    config = {
        "scorer": "selectit",
        "version": VERSION,
        "raters": [
            {"model": r.name, "model_fingerprint": r.fingerprint, "n_parameters": n}
            for r, n in zip(resolved, n_parameters, strict=True)
        ],
        "prompts": sentences,
        "prompts_sha256": hashlib.sha256("\n".join(sentences).encode("utf-8")).hexdigest(),
        "k": cfg.k,
        "alpha": cfg.alpha,
        "level": cfg.level,
        "token_prompt": cfg.token_prompt if cfg.level == "token" else None,
        "token_rule": cfg.token_rule,
        "turn_rule": turn_rule,
        "dtype": "float32",
    }
    return ScoreTable(config=config, rows=rows, score_field="selectit", columns=SUBSET_COLUMNS["selectit"])
