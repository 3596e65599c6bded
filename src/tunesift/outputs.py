"""What tunesift writes: score files, subsets with their manifest, and the rejects of a pool.

Every file is written atomically; a subset keeps the user's own records, in rank order, plus score fields.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from tunesift._version import __version__
from tunesift.atomic import atomic_open, together
from tunesift.data.pii import KINDS, redact_record
from tunesift.data.pools import Pool, lone_surrogate, output_container, write_records
from tunesift.data.sample import Rejected
from tunesift.data.table import ScoreTable
from tunesift.errors import InputError
from tunesift.files import check_dataset_info, manifest_path, rejects_path, scores_config_path
from tunesift.scorers import subset_columns
from tunesift.selectors.base import Budget, Selection


def probe_writable(paths: list[Path]) -> None:
    """Create and remove a temporary file beside each output, before any work: a folder the system refuses
    (permission, a read-only file system, no space) is a :class:`StorageError` now, not after hours of work."""
    import tempfile

    from tunesift.errors import StorageError

    for path in paths:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise StorageError(path, OSError(0, f"{blocker} is a file, not a folder"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            os.unlink(name)
        except OSError as err:
            raise StorageError(path, err) from None


def write_scores(path: str | Path, table: ScoreTable) -> None:
    """SCORES.jsonl: one line per input record, in input order; the configuration goes beside it (both or neither)."""
    with together():
        with atomic_open(path) as handle:
            for row in table.rows:
                handle.write(json.dumps(row, allow_nan=False) + "\n")
        with atomic_open(scores_config_path(path)) as handle:
            json.dump({"score_field": table.score_field, "config": table.config}, handle, indent=2)


def write_rejects(path: str | Path, pool: Pool) -> Path | None:
    """List the records ``--on-error skip`` left out, with the field and reason; None when there are none."""
    if not pool.rejects:
        return None
    target = rejects_path(path)
    with atomic_open(target) as handle:
        for r in pool.rejects:
            row = {"index": r.index, "field": r.field, "reason": r.reason, "record": r.record}
            line = json.dumps(row, ensure_ascii=False, default=repr)
            if lone_surrogate(r.record):  # no UTF-8 file holds it: kept as its JSON escape, as the pool had it
                line = json.dumps(row, default=repr)
            handle.write(line + "\n")
    return target


def read_scores(path: str | Path, pool: Pool, score_field: str | None = None) -> ScoreTable:
    """Read a SCORES file and check, streaming, that it belongs to ``pool`` record by record.

    The score column is ``score_field``, else the one named in the configuration written beside the
    file, else ``ifd``.
    """
    path = Path(path)
    config: dict[str, Any] = {}
    meta_path = scores_config_path(path)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        config = meta.get("config", {})
        score_field = score_field or meta.get("score_field")
    score_field = score_field or "ifd"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    if not _looks_like_scores(lines):
        raise InputError("is not a SCORES file: expected one JSON object per line with index and id, as "
                         "'tunesift score' or --scores-out writes", path=path)  # fmt: skip
    if len(lines) != len(pool):
        raise InputError(
            f"has {len(lines)} score lines but {pool.path} has {len(pool)} records: scores are from another pool",
            path=path,
        )
    rows = []
    for number, (line, sample) in enumerate(zip(lines, pool, strict=True)):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"not valid JSON: {err}", path=path, record=number) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path=path, record=number)
        value = row.get(score_field)
        if score_field not in row or not (value is None or isinstance(value, (int, float))):
            raise InputError("missing or not a number", path=path, record=number, field=score_field)
        if row.get("index") != sample.index:
            raise InputError(f"expected index {sample.index}", path=path, record=number, field="index")
        expected_id = None if isinstance(sample, Rejected) else sample.content_id
        if "id" in row and row["id"] != expected_id:
            raise InputError(
                f"does not match record {sample.index} of {pool.path}: the pool changed since scoring",
                path=path, record=number, field="id",
            )  # fmt: skip
        row.setdefault("skip_reason", None if value is not None else "missing_score")
        rows.append(row)
    columns = subset_columns(score_field)
    return ScoreTable(config=config, rows=rows, score_field=score_field, columns=columns)


def _looks_like_scores(lines: list[str]) -> bool:
    """Whether a file's first line is a score row (a subset, a pool or a manifest is not)."""
    if not lines:
        return True  # an empty pool's scores; the count check says the rest
    try:
        first = json.loads(lines[0])
    except json.JSONDecodeError:
        return False
    return isinstance(first, dict) and "index" in first


#: What a subset can be written as besides the pool's own format: for the trainers people use.
OUT_FORMATS = ("llamafactory", "messages", "hf", "alpaca")


def _messages(sample: Any) -> list[dict[str, str]]:
    from tunesift.data.templates import messages

    return messages(sample)


def trainer_record(sample: Any, scores: dict[str, Any], out_format: str, conversation: bool = False) -> dict[str, Any]:
    """A chosen sample as ``out_format`` writes it, score fields kept: OpenAI ``messages`` (TRL's SFTTrainer,
    axolotl's chat_template); LLaMA-Factory's alpaca columns (a single turn) or, for a conversation or with
    ``conversation``, its sharegpt ``conversations``; plain ``alpaca`` (a single turn only)."""
    if out_format == "messages":
        return {"messages": _messages(sample), **scores}
    system = {"system": sample.system} if sample.system else {}
    single = len(sample.turns) == 1
    if out_format == "alpaca" and not single:
        raise InputError("is a conversation: --out-format alpaca holds one turn; use messages or llamafactory",
                         record=sample.index, field="out-format")  # fmt: skip
    if single and not conversation:
        return {"instruction": sample.instruction, "input": sample.input, "output": sample.output, **system, **scores}
    roles = {"user": "human", "assistant": "gpt"}
    turns = [{"from": roles[m["role"]], "value": m["content"]} for m in _messages(sample) if m["role"] != "system"]
    return {"conversations": turns, **system, **scores}


def llamafactory_entry(records: list[dict[str, Any]], file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry LLaMA-Factory loads the file by (its data/README.md schema)."""
    system = any("system" in r for r in records)
    if records and "conversations" in records[0]:
        tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
        columns = {"messages": "conversations", **({"system": "system"} if system else {})}
        return {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": tags}
    return {"file_name": file_name, "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output",
                        **({"system": "system"} if system else {})}}  # fmt: skip


def _write_trainer_subset(path: Path, chosen: list[tuple[Any, dict[str, Any]]], out_format: str) -> None:
    if out_format == "hf":
        write_records(path, [{**s.record, **scores} for s, scores in chosen], "hf")
        return
    # one file, one layout: any conversation among the chosen makes a LLaMA-Factory file sharegpt throughout
    conversation = out_format == "llamafactory" and any(len(s.turns) > 1 for s, _ in chosen)
    records = [trainer_record(s, scores, out_format, conversation) for s, scores in chosen]
    write_records(path, records, output_container(path, "jsonl" if out_format == "messages" else "json"))
    if out_format == "llamafactory":
        info = check_dataset_info(path)  # checked before any work too; read again as it is now
        info[path.stem] = llamafactory_entry(records, path.name)  # the user's other entries are kept
        with atomic_open(path.parent / "dataset_info.json") as handle:
            json.dump(info, handle, indent=2, ensure_ascii=False)


@together()
def write_subset(
    path: str | Path,
    pool: Pool,
    table: ScoreTable,
    selection: Selection,
    budget: Budget | None = None,
    out_format: str | None = None,
) -> Path:
    """Write the chosen records in rank order, as the user's own records with score fields added.

    The container follows ``path``'s extension (.json, .jsonl, .parquet), else the pool's; ``out_format`` writes
    them for a trainer instead (:data:`OUT_FORMATS`; ``llamafactory`` also adds the subset's entry to the
    ``dataset_info.json`` beside it). Also writes ``<name>.manifest.json``: rule, budget, counts, skipped samples
    with reasons, configuration. One pass over the pool; only the chosen records are held. Returns the
    manifest's path.
    """
    if out_format is not None and out_format not in OUT_FORMATS:
        from tunesift.errors import ConfigError

        raise ConfigError("out-format", f"choose one of {', '.join(OUT_FORMATS)}, got {out_format!r}")
    rank = {index: k for k, index in enumerate(selection.indices)}
    chosen: list[Any] = [None] * len(rank)
    for sample in pool:
        k = rank.get(sample.index)
        if k is not None and not isinstance(sample, Rejected):
            row = table.rows[sample.index]
            chosen[k] = (sample, {c: row.get(c) for c in table.columns if c in row})
    if out_format == "llamafactory":
        check_dataset_info(Path(path))  # before the subset is written: a bad index leaves nothing half done
    if out_format is None:
        container = output_container(Path(path), pool.container)
        write_records(path, [{**s.record, **scores} for s, scores in chosen], container)
    else:
        _write_trainer_subset(Path(path), chosen, out_format)
    values = [v for i in selection.indices if (v := table.rows[i].get(table.score_field)) is not None]
    manifest = {
        "tunesift_version": __version__,
        "subset": str(path),
        "data": str(pool.path),
        "format": {"container": pool.container, "schema": pool.schema},
        "rule": selection.rule,
        "budget": None if budget is None else {"rate": budget.rate, "count": budget.count},
        "score_field": table.score_field if table.score_field in table.columns else None,
        **({"out_format": out_format} if out_format else {}),
        "counts": {
            "pool": selection.n_pool,
            "scored": selection.n_scored,
            "skipped": selection.n_pool - selection.n_scored,
            "rejected": len(pool.rejects),
            "duplicates": table.duplicates(),
            "candidates": selection.n_candidates,
            "selected": len(selection.indices),
        },
        "skipped_by_reason": table.skipped(),
        "skipped": [{"index": row["index"], "reason": row["skip_reason"]} for row in table.rows if row["skip_reason"]],
        "selected_score_range": [min(values), max(values)] if values and table.score_field in table.columns else None,
        **subset_facts(table, selection.indices),
        "steps": list(selection.steps),
        **({"why_empty": selection.why_empty} if selection.why_empty else {}),
        **({"why_short": selection.why_short} if selection.why_short else {}),
        **({"dedup": selection.dedup} if selection.dedup else {}),
        **({"decontaminate": selection.decontaminate} if selection.decontaminate else {}),
        **({"per_question": selection.per_question} if selection.per_question else {}),
        **({"select_details": selection.details} if selection.details else {}),
        "selected_indices": selection.indices,
        "scorer_config": table.config,
    }
    target = manifest_path(path)
    with atomic_open(target) as handle:
        json.dump(manifest, handle, indent=2, allow_nan=False)
    return target


def subset_facts(table: ScoreTable, indices: list[int]) -> dict[str, Any]:
    """What the method that made ``table`` says of a subset of it, for the manifest (:meth:`Method.subset_facts`)."""
    from tunesift.scorers import discover

    name = table.config.get("method") or table.config.get("scorer")
    method = discover().get(name) if isinstance(name, str) else None
    return method.subset_facts(table.config, table.rows, indices) if method is not None else {}


def write_deduped(path: str | Path, pool: Pool, result: Any, redact: bool = False) -> Path:
    """The records a dedup kept, in pool order and the pool's own format (``path``'s extension may change the
    container), and ``<name>.manifest.json``: the method, its options, the counts and every dropped record with the
    index and id of the record kept in its place. ``redact``: personal data replaced by placeholders in the records
    written. Returns the manifest's path."""
    return write_kept(path, pool, result.kept, {"dedup": result.summary()}, redact=KINDS if redact else None)[0]


def write_decontaminated(path: str | Path, pool: Pool, result: Any, dry_run: bool = False,
                         redact: bool = False) -> Path:  # fmt: skip
    """The records no evaluation item covers, in pool order and the pool's own format, and the manifest: every
    dropped record with the set, item and coverage it matched, and per set how many of its items the pool holds.
    A ``dry_run`` writes the manifest only. Returns the manifest's path."""
    return write_kept(path, pool, result.kept, {"decontaminate": result.summary()}, records=not dry_run,
                      redact=KINDS if redact else None)[0]  # fmt: skip


def write_redacted(path: str | Path, pool: Pool, kinds: tuple[str, ...]) -> tuple[Path, dict[str, Any]]:
    """A new pool: every valid record with its personal data replaced by placeholders (:mod:`tunesift.data.pii`),
    in pool order and format, and the manifest with the counts per kind and the records changed. Returns the
    manifest's path and its ``redact`` section."""
    target, manifest = write_kept(path, pool, None, {}, redact=kinds)
    return target, manifest["redact"]


@together()
def write_kept(path: str | Path, pool: Pool, kept_indices: list[int] | None, sections: dict[str, Any],
               records: bool = True, redact: tuple[str, ...] | None = None) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """A cleaning step's output: the kept records (``kept_indices``; None: every valid record), in pool order and the
    pool's own format, unless ``records`` is false; with ``redact``, placeholders in place of those kinds of personal
    data, counted in the manifest's ``redact`` section. The manifest holds ``sections`` too. Returns its path and
    what it says."""
    kept = None if kept_indices is None else set(kept_indices)
    replaced: Counter = Counter()
    changed: list[int] = []
    written = 0

    def chosen() -> Any:
        nonlocal written
        for sample in pool:
            if isinstance(sample, Rejected) or (kept is not None and sample.index not in kept):
                continue
            written += 1
            if not redact:
                yield sample.record
                continue
            record, found = redact_record(sample.record, redact)
            if found:
                replaced.update(found)
                changed.append(sample.index)
            yield record

    if records:
        write_records(path, chosen(), output_container(Path(path), pool.container))
    redacted = {"kinds": list(redact or ()), "replaced": dict(sorted(replaced.items())),
                "records_changed": len(changed), "changed_indices": changed}  # fmt: skip
    manifest = {
        "tunesift_version": __version__,
        "subset": str(path),
        "data": str(pool.path),
        "format": {"container": pool.container, "schema": pool.schema},
        "counts": {"pool": len(pool), "rejected": len(pool.rejects), "kept": written if kept is None else len(kept),
                   "dropped": sum(s.get("dropped", 0) for s in sections.values())},
        **({"dry_run": True} if not records else {}),
        **({"redact": redacted} if redact and records else {}),
        **sections,
    }  # fmt: skip
    target = manifest_path(path)
    with atomic_open(target) as handle:
        json.dump(manifest, handle, indent=2, allow_nan=False)
    return target, manifest
