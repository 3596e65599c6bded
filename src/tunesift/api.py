"""The public Python API; the CLI is a thin shell over these functions.

from tunesift import score_ifd, select, write_subset, read_pool, Budget
pool = read_pool("alpaca.json")
scores = score_ifd(pool)                       # cached: a second call does not touch the model
chosen = select(scores, rule="cherry", budget=Budget(rate=0.05))
write_subset("subset.json", pool, scores, chosen)
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesift.atomic import atomic_open
from tunesift.data.evalsets import set_files
from tunesift.data.pools import Pool, read_pool
from tunesift.data.table import ScoreTable
from tunesift.errors import ConfigError
from tunesift.execution.driver import as_pool, default_executor
from tunesift.execution.driver import score as score_table
from tunesift.files import Files
from tunesift.outputs import (
    manifest_path,
    read_scores,
    rejects_path,
    scores_config_path,
    write_rejects,
    write_scores,
    write_subset,
)
from tunesift.recipes import Recipe, execute, load_recipe, run_names, select_by_rule, with_per_question
from tunesift.recipes.pipelines import fit_indicators
from tunesift.scorers.mods import NECESSITY_THRESHOLD, QUALITY_THRESHOLD
from tunesift.selectors.base import Budget, Selection

if TYPE_CHECKING:
    from tunesift.execution import Executor

__all__ = [
    "METHODS",
    "Budget",
    "Pool",
    "Recipe",
    "RunResult",
    "ScoreTable",
    "Selection",
    "decontaminate",
    "fit_indicators",
    "load_recipe",
    "manifest_path",
    "methods",
    "read_pool",
    "read_scores",
    "rejects_path",
    "run",
    "run_mods",
    "run_recipe",
    "run_set_method",
    "run_superfiltering_d",
    "score",
    "score_alpagasus",
    "score_deita",
    "score_distill",
    "score_ifd",
    "score_indicators",
    "score_instag",
    "score_mods",
    "score_nuggets",
    "score_selectit",
    "score_self_curation",
    "scores_config_path",
    "select",
    "with_per_question",
    "write_rejects",
    "write_scores",
    "write_subset",
]


def _mapped(data: Any, fields: Any) -> Any:
    """``data`` read through a field map (``instruction=problem,output=solution``), where one is given."""
    return data if fields is None else read_pool(data, fields=fields)


def score(name: str, data: Any, *, fields: Any = None, **options: Any) -> Any:
    """Every record of ``data`` scored by the method ``name`` (its options checked, the store and executor as the
    CLI's). ``data`` is a pool file, a :class:`Pool`, a list of dicts, a pandas ``DataFrame`` or a
    ``datasets.Dataset``: a file or a Pool gives a :class:`ScoreTable`; the others give the same kind back, with
    the method's score columns and ``skip_reason`` added, row for row. ``fields`` maps a pool's columns
    (``"instruction=problem,output=solution,reference=answer"``, :class:`~tunesift.data.schemas.FieldMap`)."""
    from tunesift.data.frames import as_pool_file, check_data, frame_kind, with_columns

    check_data(data)
    if frame_kind(data) is None:
        return score_table(name, _mapped(data, fields), **options)
    with as_pool_file(data) as path:
        table = score_table(name, _mapped(path, fields), **options)
    columns = [*table.columns, "skip_reason"]
    return with_columns(data, {c: [row.get(c) for row in table.rows] for c in columns})


def run(recipe: str | Path | Recipe, data: Any, *, rate: float | None = None, count: int | None = None,
        out: str | Path | None = None, fields: Any = None, **options: Any) -> Any:  # fmt: skip
    """A recipe (a built-in name such as ``cherry`` or ``rds``, or a YAML file) over ``data`` to a budget
    (``rate`` or ``count``; none: the recipe's own). A list of dicts, a DataFrame or a Dataset gives the chosen
    rows back, same kind, in rank order with their score columns; the manifest is ``result.manifest`` (a list),
    ``result.attrs["tunesift_manifest"]`` (a DataFrame) or ``result.manifest`` (a Dataset). A file or a Pool
    writes the subset to ``out`` and gives the :class:`RunResult`. ``options`` are the recipe scorer's, and
    ``select_options``, ``store_dir``, ``device``, ``executor``, ``progress`` as :func:`run_recipe`'s; ``fields``
    maps a pool's columns as :func:`score`'s."""
    from tunesift.data.frames import as_pool_file, check_data, frame_kind, take, with_columns

    check_data(data)
    budget = Budget(rate=rate, count=count) if rate is not None or count is not None else None
    if frame_kind(data) is None:
        if out is None:
            raise ConfigError("out", "a pool file is run to a subset file: give out=PATH")
        return run_recipe(recipe, _mapped(data, fields), out, budget, **options)
    with as_pool_file(data) as path:
        subset = Path(path).with_name("subset.jsonl")
        result = run_recipe(recipe, _mapped(path, fields), subset, budget, **options)
        manifest = json.loads(result.manifest.read_text())
    chosen = result.selection.indices
    table = result.scores
    picked = take(data, chosen)
    columns = {c: [table.rows[i].get(c) for i in chosen] for c in table.columns}
    picked = with_columns(picked, columns)
    manifest["data"] = f"<{type(data).__name__}>"
    return with_manifest(picked, manifest)


def with_manifest(rows: Any, manifest: dict[str, Any]) -> Any:
    """Rows handed back (a list of dicts, a DataFrame, a Dataset) with the manifest that says how they were made:
    ``.manifest``, or a DataFrame's ``.attrs["tunesift_manifest"]``."""
    from tunesift.data.frames import frame_kind

    if frame_kind(rows) == "pandas":
        rows.attrs["tunesift_manifest"] = manifest
        return rows
    if frame_kind(rows) == "list":
        rows = Subset(rows)
    rows.manifest = manifest
    return rows


def decontaminate(data: Any, against: str | Path | list[str | Path], *, mode: str = "tulu", n: int | None = None,
                  threshold: float | None = None, out: str | Path | None = None, dry_run: bool = False,
                  redact: bool = False, data_dir: str | Path | None = None, fmt: str | None = None,
                  on_error: str = "raise", fields: Any = None) -> Any:  # fmt: skip
    """``data`` without the samples an evaluation set's items cover (METHODS.md §23): each user turn against the
    prompts of ``against`` (names in :data:`tunesift.data.evalsets.EVAL_SETS`, or files of evaluation items in
    any pool format). A path or a Pool writes the clean pool to ``out`` (``dry_run``: its manifest only;
    ``redact``: placeholders in place of personal data; ``fmt`` and ``on_error`` read the file, invalid records
    listed beside ``out``) and gives the :class:`~tunesift.recipes.decontaminate.Contamination`, every evaluation
    set read before the pool; a list of dicts, a DataFrame or a Dataset gives
    the kept rows back, same kind, in order (``redact``: with placeholders), with the manifest's section as
    ``.manifest`` (a DataFrame: ``.attrs["tunesift_manifest"]``), and writes them to ``out`` too when it is given
    (``dry_run``: the manifest only)."""
    from tunesift.data.frames import as_pool_file, check_data, frame_kind, redacted, take
    from tunesift.data.pii import KINDS
    from tunesift.data.sample import Sample
    from tunesift.outputs import write_decontaminated
    from tunesift.recipes.decontaminate import Decontaminator, check_decontaminate, decontaminate_pool

    check_data(data)
    names, mode, n, threshold = check_decontaminate(against, mode, n, threshold)
    if frame_kind(data) is None:
        if out is None:
            raise ConfigError("out", "a pool file is decontaminated to a file: give out=PATH")
        Files().read("pool", getattr(data, "path", data)).read("--against", set_files(names)
                                                               ).write("out", out, "subset").check()  # fmt: skip
        cleaner = Decontaminator(names, mode, n, threshold, data_dir)  # every set read (and checked) first
        pool = data if isinstance(data, Pool) else read_pool(data, fmt=fmt, on_error=on_error, fields=fields)
        result = cleaner.scan(s for s in pool if isinstance(s, Sample))
        write_decontaminated(out, pool, result, dry_run=dry_run, redact=redact)
        result.n_pool = len(pool)
        result.rejects = None if dry_run else write_rejects(out, pool)
        return result
    if dry_run and out is None:
        raise ConfigError("dry_run", "a dry run writes only the manifest: give out=PATH")
    if out is not None:
        Files().read("--against", set_files(names)).write("out", out, "subset").check()
    with as_pool_file(data) as path:
        pool = read_pool(path)
        result = decontaminate_pool(pool, names, mode=mode, n=n, threshold=threshold, data_dir=data_dir)
        if out is not None:  # the same file and manifest a pool file gets
            write_decontaminated(out, pool, result, dry_run=dry_run, redact=redact)
    summary = result.summary()
    kept = take(data, result.kept)
    if redact:
        kept, counts = redacted(kept, KINDS)
        summary = {**summary, "redact": {"kinds": list(KINDS), "replaced": dict(sorted(counts.items()))}}
    return with_manifest(kept, summary)


class Subset(list):
    """A selection handed back as a list of dicts, in rank order; ``manifest`` says how it was made."""

    manifest: dict[str, Any]


# The documented per-method functions: one-line aliases of score(name, ...).
score_ifd = functools.partial(score, "ifd")
score_selectit = functools.partial(score, "selectit")
score_alpagasus = functools.partial(score, "alpagasus")
score_self_curation = functools.partial(score, "self-curation")
score_indicators = functools.partial(score, "indicators")
score_deita = functools.partial(score, "deita")
score_instag = functools.partial(score, "instag")
score_mods = functools.partial(score, "mods")
score_nuggets = functools.partial(score, "nuggets")
score_distill = functools.partial(score, "distill")


def select(table: Any, rule: str | None = None, budget: Budget | None = None, *, rate: float | None = None,
           count: int | None = None, field: str | None = None) -> Any:  # fmt: skip
    """Apply a selection rule (never calls a model). Given a :class:`ScoreTable`, the :class:`Selection`. Given
    what :func:`score` handed back (a list of dicts, a DataFrame or a Dataset with a score column), the chosen
    rows, same kind, in rank order; ``field`` names the score column (default: the only one a method writes),
    ``rule`` defaults to that column's own (cherry for IFD, ...), the budget is ``rate`` or ``count``."""
    from tunesift.data.frames import frame_kind, take
    from tunesift.scorers import default_rule, discover

    budget = budget or Budget(rate=rate, count=count)
    if isinstance(table, ScoreTable):
        budget.check(len(table.rows))
        return select_by_rule(rule or default_rule(table.score_field), table.values(), budget)
    if frame_kind(table) is None:
        raise ConfigError("data", f"select takes a ScoreTable, a list of dicts, a DataFrame or a Dataset, got "
                          f"{type(table).__name__}")  # fmt: skip
    names = list(table.columns) if frame_kind(table) == "pandas" else (
        table.column_names if frame_kind(table) == "datasets" else sorted({k for r in table for k in r}))  # fmt: skip
    if field is None:
        known = [m.score_field() for m in discover().values() if m.score_field() in names]
        if len(set(known)) != 1:
            raise ConfigError("field", f"name the score column (field=...): found {sorted(set(known)) or 'none'}")
        field = known[0]
    if field not in names:
        raise ConfigError("field", f"no column {field!r}; the data has {', '.join(map(str, names))}")
    values = list(table[field]) if frame_kind(table) != "list" else [r.get(field) for r in table]
    values = [None if v is None or v != v else float(v) for v in values]  # NaN (a DataFrame's null) -> None
    budget.check(len(values))
    chosen = select_by_rule(rule or default_rule(field), values, budget).indices
    return take(table, chosen)


def methods() -> dict[str, str]:
    """Every method ``tunesift run`` knows, with what it does: the built-in recipes, every registered method
    no recipe uses (run as its default recipe), and the pipelines (cherry-pre, mods-full)."""
    names = {name: load_recipe(name).description for name in run_names()}
    names["mods-full"] = (
        "MoDS with its necessity stage ('tunesift run mods-full'): the mods seed, LoRA-tune on it, add "
        "the high-quality samples whose answers from the tuned model the reward model scores low"
    )
    names["cherry-pre"] = ("Cherry's pre-experienced model: cluster-sample ~1,000 prompts (k-means 100, perplexity "
                           "25-75 band), LoRA-tune 1 epoch on them, then Cherry with the tuned model")  # fmt: skip
    return dict(sorted(names.items()))


# The methods as this module is imported (methods() sees one registered later too).
METHODS: dict[str, str] = methods()
SET_METHODS = ("random", "longest", "kcenter", "deita-style")


@dataclass
class RunResult:
    scores: ScoreTable
    selection: Selection
    manifest: Path


def run_recipe(
    recipe: str | Path | Recipe,
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget | None = None,
    *,
    scores_out: str | Path | None = None,
    select_options: dict[str, Any] | None = None,
    store_dir: str | Path | None = None,
    device: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    out_format: str | None = None,
    **score_options: Any,
) -> RunResult:
    """Score and select in one go with a recipe: a built-in name (``cherry``, ``superfiltering``,
    ``selectit``, ``alpagasus``, ...), a YAML file of one's own, or a loaded :class:`Recipe`.

    ``score_options`` go to the recipe's scorer (``model``, ``max_length``, ...) over the recipe's own;
    without a budget from the caller or the recipe, every candidate the steps leave is kept. ``out_format``
    writes the subset for a trainer (llamafactory, messages, hf, alpaca) instead of in the pool's own format.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    recipe_files(recipe, getattr(data, "path", data), out, scores_out=scores_out, out_format=out_format,
                 score_options=score_options).check()  # fmt: skip
    pool = data if isinstance(data, Pool) or recipe.fields is None else read_pool(data, fields=recipe.fields)
    pool = as_pool(pool)
    run = execute(recipe, pool, budget, score_options=score_options, select_options=select_options,
                  store_dir=store_dir, device=device, executor=executor, progress=progress)  # fmt: skip
    if scores_out is not None:
        write_scores(scores_out, run.scores)
    manifest = write_subset(out, pool, run.scores, run.selection, budget or recipe.budget, out_format=out_format)
    write_rejects(out, pool)
    return RunResult(scores=run.scores, selection=run.selection, manifest=manifest)


def recipe_files(recipe: Recipe, data: Any, out: str | Path | None, *, scores_out: str | Path | None = None,
                 out_format: str | None = None, score_options: dict[str, Any] | None = None) -> Files:  # fmt: skip
    """Every file a recipe run reads (the pool, the recipe file, the files its scorer's options name: query
    sets, anchors, a rule) and writes (the subset and what goes beside it, the scores): check it before work."""
    from tunesift.scorers import get_method

    files = Files().read("pool", data)
    if recipe.source and Path(recipe.source).is_file():
        files.read("recipe", recipe.source)
    if recipe.scorer:
        files.read_all(get_method(recipe.scorer).files_read({**recipe.score, **(score_options or {})}))
    for step in recipe.steps:
        if "decontaminate" in step:
            files.read("decontaminate against", set_files(step["decontaminate"]["against"]))
    return files.write("out", out, "subset", out_format).write("scores-out", scores_out, "scores")


def run_superfiltering_d(
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget | None = None,
    *,
    k1_rate: float = 0.2,
    **options: Any,
) -> RunResult:
    """Superfiltering.D (METHODS.md §2): IFD < 1 ranked, top ``k1_rate`` of the pool, then greedy facility
    location on all-MiniLM-L6-v2 embeddings down to the budget (the authors: 20 % then 2 %), in pick order.
    """
    recipe = load_recipe("superfiltering-d")
    steps = tuple({"cut": {**s["cut"], "rate": k1_rate}} if "cut" in s else s for s in recipe.steps)
    return run_recipe(replace(recipe, steps=steps), data, out, budget, **options)


def run_set_method(
    name: str,
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget,
    *,
    random_state: int = 0,
    tau: float = 0.9,
    **options: Any,
) -> RunResult:
    """Baselines and embedding selectors, all to ``int(rate x pool size)`` or a count:

    ``random`` (seeded), ``longest`` (response characters; model-free), ``kcenter`` (k-center greedy on
    MiniLM embeddings), ``deita-style`` (IFD, Cherry variant, as the quality score, then DEITA's filter on
    MiniLM embeddings: cosine to every admitted sample below ``tau``).
    """
    if name not in SET_METHODS:
        raise ConfigError("method", f"unknown method {name!r}; choose one of {', '.join(SET_METHODS)}")
    select_options = {"random": {"random_state": random_state}, "kcenter": {"random_state": random_state},
                      "deita-style": {"tau": tau}}.get(name, {})  # fmt: skip
    return run_recipe(name, data, out, budget, select_options=select_options, **options)


def run_cherry_pre(
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget | None = None,
    *,
    model: str = "smollm2-135m-instruct",
    template: str = "alpaca",
    clusters: int = 100,
    per_cluster: int = 10,
    band: tuple[float, float] = (25, 75),
    train_options: dict[str, Any] | None = None,
    work_dir: str | Path | None = None,
    store_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = False,
    dtype: str | None = None,
    executor: Executor | None = None,
    **score_options: Any,
) -> RunResult:
    """Cherry with a pre-experienced model (METHODS.md §1): embed every prompt with ``model`` (mean last
    hidden state) and take its perplexity, k-means (``clusters``, random_state 0), per cluster the
    ``band`` percentile range of perplexity sampled evenly (``per_cluster`` at most), fine-tune ``model``
    one epoch on that sample (LoRA by default), then score IFD with the tuned model and select as Cherry.

    The sample, the fine-tune and its model live in ``work_dir`` (default ``<out>.pre``); a rerun reuses them.
    """
    import math

    from tunesift.eval.training.train import TrainConfig, train
    from tunesift.execution.driver import embed_pool
    from tunesift.outputs import write_records
    from tunesift.selectors.clusters import kmeans_labels, middle_band_sample

    pool = as_pool(data)
    work = Path(work_dir) if work_dir else Path(f"{out}.pre")
    executor = default_executor(executor, device)
    table = embed_pool(pool, embedder="lm", model=model, template=template, text="prompt", max_length=512,
                       store_dir=store_dir, executor=executor, progress=progress, dtype=dtype)  # fmt: skip
    usable = [r for r, loss in enumerate(table.prompt_loss) if math.isfinite(loss)]
    labels = kmeans_labels(table.vectors[usable], clusters, random_state=0)
    ppl = [math.exp(table.prompt_loss[r]) for r in usable]
    picked = [table.indices[usable[p]] for p in middle_band_sample(labels, ppl, per_cluster, *band)]
    by_index = {s.index: s for s in pool.samples}
    work.mkdir(parents=True, exist_ok=True)
    sample_path = work / "pre_experience.json"
    write_records(sample_path, [by_index[i].record for i in picked], "json")
    config = TrainConfig(base=model, template=template, **(train_options or {}))
    tuned = train(sample_path, work / "run", config, device=device, progress=progress)
    result = run_recipe("cherry", pool, out, budget, model=str(tuned.model_dir), template=template,
                        store_dir=store_dir, executor=executor, progress=progress, dtype=dtype,
                        **score_options)  # fmt: skip
    manifest = json.loads(result.manifest.read_text())
    manifest["rule"] = "cherry-pre"
    manifest["pre_experienced"] = {
        "embedding": table.config, "clusters": len(set(labels.tolist())), "per_cluster": per_cluster,
        "band": list(band), "sample": str(sample_path), "sample_indices": picked,
        "unembeddable": len(table.indices) - len(usable),
        "train": {"run_dir": str(tuned.run_dir), "steps": tuned.steps, "seconds": round(tuned.seconds, 1),
                  "final_loss": tuned.losses[-1] if tuned.losses else None},
    }  # fmt: skip
    with atomic_open(result.manifest) as handle:
        json.dump(manifest, handle, indent=2, allow_nan=False)
    return result


def run_mods(
    data: Pool | str | Path,
    out: str | Path,
    budget: Budget | None = None,
    *,
    reward_model: str,
    model: str = "smollm2-135m-instruct",
    threshold: float = QUALITY_THRESHOLD,
    necessity_threshold: float = NECESSITY_THRESHOLD,
    template: str = "alpaca",
    max_new_tokens: int = 256,
    train_options: dict[str, Any] | None = None,
    work_dir: str | Path | None = None,
    store_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = False,
    dtype: str | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """MoDS end to end (docs/methods.md §9): the ``mods`` recipe's seed (reward > ``threshold``, k-center to
    ``budget``), ``model`` fine-tuned on the seed, the tuned model's greedy answers to the other high-quality
    instructions, and those whose answer the reward model scores below ``necessity_threshold`` added. The
    selection is the seed, then the necessity samples in pool order (its size is the seed's plus theirs).

    The seed, the fine-tune and its model live in ``work_dir`` (default ``<out>.mods``); a rerun reuses them,
    and the answers' rewards are cached in the score store.
    """
    from dataclasses import replace

    from tunesift.eval.training.train import TrainConfig, train
    from tunesift.execution.driver import compute_units
    from tunesift.models.registry import resolve_model
    from tunesift.models.reward import reward_ref
    from tunesift.outputs import write_records
    from tunesift.scorers.mods import MoDSNecessity

    pool = as_pool(data)
    executor = default_executor(executor, device)
    reward = reward_ref(reward_model, executor, dtype)
    recipe = load_recipe("mods")
    steps = tuple({"filter": {**s["filter"], "value": threshold}} if "filter" in s else s for s in recipe.steps)
    seed_run = execute(replace(recipe, steps=steps), pool, budget, score_options={"reward_model": reward},
                       store_dir=store_dir, executor=executor, progress=progress)  # fmt: skip
    seed = list(seed_run.selection.indices)
    rewards = {row["index"]: row.get("mods_reward") for row in seed_run.scores.rows}
    by_index = {s.index: s for s in pool.samples}
    work = Path(work_dir) if work_dir else Path(f"{out}.mods")
    work.mkdir(parents=True, exist_ok=True)
    seed_path = work / "seed.json"
    write_records(seed_path, [by_index[i].record for i in seed], "json")
    config = TrainConfig(base=model, template=template, **(train_options or {}))
    tuned = train(seed_path, work / "run", config, device=device, progress=progress)
    chosen = set(seed)
    rest = [by_index[i] for i in sorted(rewards) if i not in chosen and i in by_index
            and rewards[i] is not None and rewards[i] > threshold]  # fmt: skip
    scorer = MoDSNecessity(resolve_model(str(tuned.model_dir)), reward, template, max_new_tokens)
    answers = compute_units(scorer, (u for s in rest for u in scorer.units(s)), store_dir=store_dir,
                            executor=executor, progress=progress)  # fmt: skip
    necessity = [s.index for s in rest if answers[s.content_id]["mods_answer_reward"] is not None
                 and answers[s.content_id]["mods_answer_reward"] < necessity_threshold]  # fmt: skip
    selection = Selection(seed + necessity, len(pool), seed_run.selection.n_scored, len(rest) + len(seed), "mods")
    answered = {s.index for s in rest}
    for row in seed_run.scores.rows:
        hit = answers.get(row["id"]) if row["index"] in answered else None
        row["mods_answer"] = hit["mods_answer"] if hit else None
        row["mods_answer_reward"] = hit["mods_answer_reward"] if hit else None
    manifest = write_subset(out, pool, seed_run.scores, selection, budget)
    write_rejects(out, pool)
    meta = json.loads(manifest.read_text())
    meta["mods"] = {"threshold": threshold, "necessity_threshold": necessity_threshold, "high_quality": len(rest)
                    + len(seed), "seed": len(seed), "necessity": len(necessity), "seed_file": str(seed_path),
                    "necessity_indices": necessity, "answers": scorer.cache_config(),
                    "train": {"run_dir": str(tuned.run_dir), "steps": tuned.steps, "seconds": round(tuned.seconds, 1),
                              "final_loss": tuned.losses[-1] if tuned.losses else None}}  # fmt: skip
    with atomic_open(manifest) as handle:
        json.dump(meta, handle, indent=2, allow_nan=False)
    return RunResult(scores=seed_run.scores, selection=selection, manifest=manifest)
