"""The commands that select, fit, run a recipe file, report and list: each a thin shell over the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunesift.cli import app, run_app
from tunesift.cli.generated import run_with_recipe
from tunesift.cli.options import (
    DATA_DIR_HELP,
    EXECUTOR_OPTIONS,
    CountOpt,
    DataArg,
    DeviceOpt,
    FieldsOpt,
    FormatOpt,
    OnErrorOpt,
    OutFormatOpt,
    OutOpt,
    RateOpt,
    ScoresOutOpt,
    StoreOpt,
    check_out_format,
    fail,
)
from tunesift.errors import TunesiftError
from tunesift.files import Files
from tunesift.options import split_list

REDACT_HELP = (
    "Also replace personal data in the records written with placeholders (<EMAIL>, <PHONE>, <IP_ADDRESS>, "
    "<CARD_NUMBER>, <SECRET>), as 'tunesift redact' does; DATA is never modified."
)


@app.command("select")
def select_cmd(
    data: DataArg,
    scores: Annotated[Path, typer.Option("--scores", help="SCORES.jsonl written by 'tunesift score' for DATA.")],
    out: Annotated[Path, typer.Option("--out", help="Subset to write, in DATA's own format, score fields added.")],
    rule: Annotated[
        str | None,
        typer.Option(
            help="cherry: drop IFD > 1, rate of survivors; superfilter: keep IFD < 1, rate of pool; "
            "top / bottom: highest / lowest first, rate of pool; alpagasus: keep >= 4.5. Default: the score "
            "column's own (cherry for IFD, alpagasus for the judge, bottom for InstructMining, else top)."
        ),
    ] = None,
    field: Annotated[
        str | None, typer.Option(help="Score column to rank by (default: the one the scores were written with).")
    ] = None,
    rate: RateOpt = None,
    count: CountOpt = None,
    format: FormatOpt = None,
    fields: FieldsOpt = None,
    on_error: OnErrorOpt = "raise",
    out_format: OutFormatOpt = None,
) -> None:
    """Select a subset from existing scores (no model is loaded)."""
    from tunesift import api
    from tunesift.scorers import default_rule

    try:
        check_out_format(out_format)
        Files().read("pool", data).read("scores", scores).write("out", out, "subset", out_format).check()
        budget = api.Budget(rate=rate, count=count)
        pool = api.read_pool(data, fmt=format, on_error=on_error, fields=fields)
        table = api.read_scores(scores, pool, score_field=field)
        rule = rule or default_rule(table.score_field)
        selection = api.select(table, rule, budget)
        manifest = api.write_subset(out, pool, table, selection, budget, out_format=out_format)
    except TunesiftError as err:
        fail(err)
    why = f"; {selection.why_empty}" if selection.why_empty else ""
    typer.echo(f"selected {len(selection.indices)} of {selection.n_pool} records -> {out} ({manifest.name}){why}",
               err=True)  # fmt: skip


@app.command("dedup")
def dedup_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="The kept records, in DATA's own format, in pool order.")],
    method: Annotated[
        str,
        typer.Option(
            help="exact (a hash of the text), minhash (MinHash-LSH near duplicates, "
            "word 5-grams, 256 permutations) or semantic (SemDeDup on MiniLM vectors)."
        ),
    ],
    threshold: Annotated[
        float | None,
        typer.Option(
            help="minhash: the Jaccard similarity that groups (default 0.7); "
            "semantic: the cosine above which a sample goes (default 0.99). "
            "In (0, 1]."
        ),
    ] = None,
    on: Annotated[
        str | None,
        typer.Option(
            help="sample (every message) or prompt (no replies). Default: sample for "
            "exact and semantic, prompt for minhash."
        ),
    ] = None,
    normalise: Annotated[
        bool, typer.Option(help="exact: lower case, whitespace, digits and punctuation removed before hashing.")
    ] = False,
    clusters: Annotated[
        int | None,
        typer.Option(
            help="semantic: k-means clusters (default: pool / 100, at most "
            "1,000); pairs across clusters are not compared."
        ),
    ] = None,
    redact: Annotated[bool, typer.Option(help=REDACT_HELP)] = False,
    format: FormatOpt = None,
    fields: FieldsOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
    executor: Annotated[
        str,
        typer.Option(
            help="local, or ray: MinHash signatures by Ray Data tasks on a cluster (semantic: the embeddings "
            "by its actors); the groups are formed on this machine."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join: auto or ray://HOST:10001 (default: a local instance).")
    ] = None,
) -> None:
    """Drop duplicates before selecting: each group keeps its first record in pool order (SemDeDup: the one
    farthest from its cluster's centre); the manifest names, for every dropped record, the one kept in its place."""
    from tunesift import api
    from tunesift.execution import make_executor
    from tunesift.outputs import write_deduped
    from tunesift.recipes.dedup import check_dedup, dedup_pool

    try:
        Files().read("pool", data).write("out", out, "subset").check()
        check_dedup(method, threshold, on, clusters, normalise=normalise)
        runner = make_executor(executor, device=device, ray_address=ray_address)
        pool = api.read_pool(data, fmt=format, on_error=on_error, fields=fields)
        result = dedup_pool(pool, method, threshold=threshold, on=on, normalise=normalise, clusters=clusters,
                            store_dir=store, executor=runner, progress=True)  # fmt: skip
        manifest = write_deduped(out, pool, result, redact=redact)
        rejects = api.write_rejects(out, pool)
    except TunesiftError as err:
        fail(err)
    typer.echo(f"kept {len(result.kept)} of {len(pool)} records, dropped {len(result.dropped)} ({method}) -> {out} "
               f"({manifest.name})" + (f"; rejects: {rejects}" if rejects else ""), err=True)  # fmt: skip


@app.command("decontaminate")
def decontaminate_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="The clean pool, in DATA's own format, in pool order.")],
    against: Annotated[
        list[str],
        typer.Option(
            "--against",
            help="An evaluation set (gsm8k, alpaca_eval, mmlu, bbh, humaneval, mt_bench, vicuna, koala, wizardlm, "
            "sinstruct, lima: each in full) or a FILE of evaluation items in any pool format; repeat.",
        ),
    ],
    mode: Annotated[
        str,
        typer.Option(
            help="tulu: drop a sample whose user turn covers more than --threshold of an item's words "
            "with shared n-grams (Tulu 3); any: drop on any shared n-gram (datatrove, lm-eval)."
        ),
    ] = "tulu",
    n: Annotated[int | None, typer.Option("--n", help="Words per n-gram (default 8 for tulu, 13 for any).")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="tulu: the coverage above which a sample goes, in (0, 1) (default 0.5; not in mode any)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Write only the manifest: what would be dropped, and why.")] = False,
    redact: Annotated[bool, typer.Option(help=REDACT_HELP)] = False,
    data_dir: Annotated[Path | None, typer.Option(help=DATA_DIR_HELP)] = None,
    format: FormatOpt = None,
    fields: FieldsOpt = None,
    on_error: OnErrorOpt = "raise",
) -> None:
    """Drop the samples whose user turns hold evaluation items (METHODS.md §23): the manifest names every drop with
    the set, item and coverage it matched, and per set how many of its items the pool holds."""
    from tunesift import api

    try:
        result = api.decontaminate(data, split_list(against), mode=mode, n=n, threshold=threshold, out=out,
                                   dry_run=dry_run, redact=redact, data_dir=data_dir, fmt=format, fields=fields,
                                   on_error=on_error)  # fmt: skip
    except TunesiftError as err:
        fail(err)
    held = ", ".join(f"{name} {v['items_in_pool']} of {v['items']}" for name, v in result.sets.items())
    options = result.options
    typer.echo(f"{'would keep' if dry_run else 'kept'} {len(result.kept)} of {result.n_pool} records, dropped "
               f"{len(result.dropped)} ({options['mode']}, n={options['n']}); evaluation items in the pool: {held} -> "
               f"{api.manifest_path(out) if dry_run else out}"
               + (f"; rejects: {result.rejects}" if result.rejects else ""), err=True)  # fmt: skip


@app.command("redact")
def redact_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="The new pool, placeholders in place of personal data.")],
    kinds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated kinds to replace (default all: secret, email, ip_address, card_number, phone)."
        ),
    ] = None,
    format: FormatOpt = None,
    fields: FieldsOpt = None,
    on_error: OnErrorOpt = "raise",
) -> None:
    """Write a new pool with every e-mail address, phone number, IP address, card number (Luhn checked) and
    secret-looking key replaced by a placeholder naming it (<EMAIL>, <PHONE>, ...); DATA is never modified."""
    from tunesift import api
    from tunesift.data.pii import KINDS
    from tunesift.outputs import write_redacted

    try:
        chosen = tuple(KINDS) if kinds is None else tuple(split_list(kinds))
        unknown = sorted(set(chosen) - set(KINDS))
        if unknown or not chosen:
            raise TunesiftError(f"option 'kinds': unknown kind(s) {', '.join(unknown) or '(none given)'}; choose "
                                f"from {', '.join(KINDS)}")  # fmt: skip
        Files().read("pool", data).write("out", out, "subset").check()
        pool = api.read_pool(data, fmt=format, on_error=on_error, fields=fields)
        manifest, summary = write_redacted(out, pool, tuple(k for k in KINDS if k in chosen))
        rejects = api.write_rejects(out, pool)
    except TunesiftError as err:
        fail(err)
    replaced = ", ".join(f"{k} {n}" for k, n in summary["replaced"].items()) or "nothing"
    typer.echo(f"redacted {summary['records_changed']} of {len(pool)} records ({replaced}) -> {out} ({manifest.name})"
               + (f"; rejects: {rejects}" if rejects else ""), err=True)  # fmt: skip


@app.command("fit-indicators")
def fit_indicators_cmd(
    table: Annotated[
        Path,
        typer.Argument(
            help="A .csv, .json or .jsonl table with fields subset (a pool file, relative to the table) "
            "and eval_loss (the loss of a model tuned on that subset)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Rule JSON to write (for score/run --rule).")],
    indicators: Annotated[
        str, typer.Option(help="Comma-separated indicators to fit.")
    ] = "len_instruction,len_input,len_response,ppl,mtld,knn",
    model: Annotated[str, typer.Option("--model", help="Model for token lengths and response perplexity.")] = (
        "smollm2-135m-instruct"
    ),
    knn: Annotated[int, typer.Option("--knn", help="kNN-i: distance to the i-th nearest other sample (MiniLM).")] = 6,
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Fit InstructMining's rule log(eval_loss) ~ b0 + sum b_i * mean indicator_i by least squares."""
    from tunesift import api

    try:
        from tunesift.recipes.pipelines import read_fit_table

        subsets = [subset for subset, _ in read_fit_table(table)]
        Files().read("table", table).read("subset", subsets).write("out", out).check()
        names = split_list(indicators)
        rule = api.fit_indicators(table, indicators=names, model=model, knn=knn, store_dir=store, device=device,
                                  progress=True)  # fmt: skip
        rule.save(out)
    except TunesiftError as err:
        fail(err)
    terms = " ".join(f"{c:+.4g}*{n}" for n, c in zip(rule.indicators, rule.coefficients, strict=True))
    typer.echo(f"log(eval_loss) ~ {rule.intercept:.4g} {terms} (R^2 {rule.fit['r2']:.3f}, "
               f"{rule.fit['n_subsets']} subsets) -> {out}", err=True)  # fmt: skip


@run_app.command("recipe")
def run_recipe_cmd(
    recipe: Annotated[str, typer.Argument(help="A recipe YAML file of your own, or a built-in recipe's name.")],
    data: DataArg,
    out: OutOpt,
    rate: RateOpt = None,
    count: CountOpt = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="KEY=VALUE for the recipe's scorer (e.g. model=gemma-3-270m) or its final "
            "select step (e.g. bins=3 for dq); repeat.",
        ),
    ] = None,
    scores_out: ScoresOutOpt = None,
    out_format: OutFormatOpt = None,
    format: FormatOpt = None,
    fields: FieldsOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
    executor: Annotated[str | None, typer.Option(help=EXECUTOR_OPTIONS[0].help)] = None,
    ray_address: Annotated[str | None, typer.Option(help=EXECUTOR_OPTIONS[1].help)] = None,
    actors: Annotated[int | None, typer.Option(help=EXECUTOR_OPTIONS[2].help)] = None,
    gpus_per_actor: Annotated[float | None, typer.Option(help=EXECUTOR_OPTIONS[3].help)] = None,
    cpus_per_actor: Annotated[float | None, typer.Option(help=EXECUTOR_OPTIONS[4].help)] = None,
) -> None:
    """Run a recipe: a scorer, then filter / rank / cut / select steps (see 'tunesift methods' for built-ins).

    A recipe may name its executor (``executor: ray``); --executor on the command line wins."""
    from tunesift import api
    from tunesift.recipes.run import split_options
    from tunesift.yamltext import load_yaml

    options: dict[str, Any] = {}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(TunesiftError(f"option '--option': expected KEY=VALUE, got {item!r}"))
        name = key.strip().replace("-", "_")
        if name in options:  # the last would silently win
            fail(TunesiftError(f"option '--option': {key.strip()} is given twice ({options[name]!r} and "
                               f"{load_yaml(value)!r}): give it once"))  # fmt: skip
        options[name] = load_yaml(value)
    try:
        loaded = api.load_recipe(recipe)
        score_options, select_options = split_options(loaded, options)
    except TunesiftError as err:
        fail(err)
    kw = {"data": data, "out": out, "rate": rate, "count": count, "scores_out": scores_out, "out_format": out_format,
          "format": format, "fields": fields,
          "on_error": on_error, "store": store, "device": device, "executor": executor, "ray_address": ray_address,
          "actors": actors, "gpus_per_actor": gpus_per_actor, "cpus_per_actor": cpus_per_actor}  # fmt: skip
    run_with_recipe(recipe, kw, score_options, select_options, recipe=loaded)


@app.command("report")
def report_cmd(
    data: DataArg,
    scores: Annotated[list[Path], typer.Option("--scores", help="SCORES.jsonl of DATA; repeat to compare methods.")],
    out: Annotated[Path, typer.Option("--out", help="Report file to write (report.html, report.md, ...).")],
    selection: Annotated[
        list[Path] | None, typer.Option("--selection", help="A subset written by tunesift; repeat to compare.")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="html (plots inline, plus the statistics as .json beside it), md or json.")
    ] = "html",
    tokenizer: Annotated[
        str | None, typer.Option(help="Model whose tokenizer counts tokens (default: the first score's model).")
    ] = None,
    pool_map: Annotated[
        bool | None,
        typer.Option(
            "--map/--no-map",
            help="A 2-D map of the pool's MiniLM embeddings with each selection marked, interactive in html "
            "(default: on when there is a selection and all-MiniLM-L6-v2 is installed).",
        ),
    ] = None,
    projection: Annotated[
        str,
        typer.Option(
            help="The map's projection: auto (t-SNE up to 5,000 points, UMAP up to 20,000 where umap-learn is "
            "installed, PCA beyond), tsne, umap or pca."
        ),
    ] = "auto",
    fields: FieldsOpt = None,
    store: StoreOpt = None,
    against: Annotated[
        list[str] | None,
        typer.Option(
            "--against",
            help="An evaluation set (gsm8k, mmlu, ...) or FILE: a contamination line per "
            "selection (METHODS.md §23); repeat.",
        ),
    ] = None,
) -> None:
    """What was selected, and why: score histograms with the cut, lengths, composition, agreement, a map, examples."""
    from tunesift.report import make_report

    try:
        from tunesift.data.evalsets import set_files

        against = split_list(against)
        against_files = set_files(against)
        Files().read_all({"pool": data, "scores": scores, "selection": selection, "--against": against_files}).write(
            "out", out, "report" if format == "html" else "file"
        ).check()
        make_report(data, scores, selection or [], out=out, fmt=format, tokenizer=tokenizer, fields=fields,
                    pool_map=pool_map,
                    store_dir=store, against=against or [], projection=projection)  # fmt: skip
    except TunesiftError as err:
        fail(err)
    typer.echo(f"report -> {out}", err=True)


@app.command("explore")
def explore_cmd(
    data: DataArg,
    scores: Annotated[
        list[Path] | None, typer.Option("--scores", help="SCORES.jsonl of DATA, a column each; repeat.")
    ] = None,
    selection: Annotated[
        list[Path] | None, typer.Option("--selection", help="A subset written by tunesift, a boolean column; repeat.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="The parquet to write (default: DATA's name + .explore.parquet, here).")
    ] = None,
    projection: Annotated[
        str,
        typer.Option(
            help="x and y: auto (t-SNE up to 5,000 records, UMAP up to 20,000 where umap-learn is installed, PCA "
            "beyond), tsne, umap or pca."
        ),
    ] = "auto",
    serve: Annotated[
        bool, typer.Option("--serve", help="Then serve it in Embedding Atlas on localhost (the explore extra).")
    ] = False,
    port: Annotated[int, typer.Option(help="Embedding Atlas's port with --serve.")] = 5055,
    store: StoreOpt = None,
) -> None:
    """The pool as one parquet for an embedding explorer: text, scores, selections, 2-D map and MiniLM vectors."""
    import subprocess

    from tunesift.report.explore import atlas_available, atlas_command, write_explore

    if serve and not atlas_available():
        fail(TunesiftError("--serve needs Embedding Atlas: pip install 'tunesift[explore]' (without --serve the "
                           "parquet is written for any explorer)"))  # fmt: skip
    option = "out" if out is not None else "out (default: DATA's name + .explore.parquet)"
    out = out or Path(Path(str(data).split(":")[-1]).name.split(".")[0] + ".explore.parquet")
    try:
        Files().read_all({"pool": data, "scores": scores, "selection": selection}).write(option, out, "parquet").check()
        found = write_explore(data, scores or [], selection or [], out, store_dir=store, projection=projection)
    except TunesiftError as err:
        fail(err)
    typer.echo(f"explore -> {out}: {found['rows']} rows, {len(found['scores'])} score and "
               f"{len(found['selections'])} selection column(s), x/y by {found['projection']}", err=True)  # fmt: skip
    if serve:
        command = atlas_command(out, port=port)
        typer.echo(f"Embedding Atlas on http://127.0.0.1:{port} (Ctrl-C stops it)", err=True)
        raise typer.Exit(subprocess.call(command))


@app.command("version")
def version_cmd() -> None:
    """Print the version of tunesift."""
    from tunesift._version import __version__

    typer.echo(f"tunesift {__version__}")


@app.command("models")
def models_cmd() -> None:
    """List the packaged models that work offline."""
    from tunesift.models.registry import ALIASES, PACKAGED

    for name, packaged in PACKAGED.items():
        aliases = ", ".join(a for a, target in ALIASES.items() if target == name)
        typer.echo(f"{name:24s} {packaged.description} (aliases: {aliases})")


@app.command("methods")
def methods_cmd() -> None:
    """List the methods 'tunesift run' knows."""
    from tunesift.api import methods

    for name, description in methods().items():
        typer.echo(f"{name:18s} {description}")
