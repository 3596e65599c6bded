"""The ``tunesift`` command: a thin shell over :mod:`tunesift.api`.

Every user error (bad pool, unknown model, bad option) is one line on stderr and exit status 2, and no
output file is written. The ``score`` and ``run`` commands are built from the scorer registry and the
built-in recipes: each per-method option is declared once, on its method's class (:mod:`tunesift.scorers`), and reaches
the scoring function under the same name.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from tunesift.errors import TunesiftError
from tunesift.options import DTYPE, Option
from tunesift.scorers import Method, discover


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so a command stops as it does on Ctrl-C (a BaseException, as
    KeyboardInterrupt, so no per-sample error handling mistakes it for a failed sample)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


class _Group(typer.core.TyperGroup):
    """The root command: whatever stops a command ends in one line and a meaningful exit status.

    Ctrl-C exits 130 and SIGTERM 143, each saying what is safely stored and that the same command resumes
    (outputs are written atomically, so none is left half-written); a file the system refuses to write or
    read is one line naming it and the cause (exit 1), never a traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        import signal

        from tunesift import progress

        progress.reset()
        try:
            previous = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: leave SIGTERM alone
            previous = None
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, Terminated) as err:
            code = 143 if isinstance(err, Terminated) else 130
            typer.echo(f"\ntunesift: interrupted: {progress.describe()}", err=True)
            raise typer.Exit(code) from None
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            typer.echo(f"tunesift: error: {where}{err.strerror or err}", err=True)
            raise typer.Exit(1) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


class _Generated(typer.core.TyperGroup):
    """A group whose commands come from a registry at the moment they are asked for, so a method registered
    after import (a plugin, a test) has its commands too."""

    make: Callable[[], dict[str, Callable[..., None]]]

    def _sync(self) -> None:
        for name, body in type(self).make().items():
            if name not in self.commands:
                single = typer.Typer()
                single.command(name)(body)
                command = typer.main.get_command(single)
                command.name = name
                self.add_command(command, name)

    def list_commands(self, ctx: Any) -> list[str]:
        self._sync()
        return super().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        self._sync()
        return super().get_command(ctx, cmd_name)


class _ScoreGroup(_Generated):
    @staticmethod
    def make() -> dict[str, Callable[..., None]]:
        return {name: _score_command(cls) for name, cls in discover().items()}


class _RunGroup(_Generated):
    @staticmethod
    def make() -> dict[str, Callable[..., None]]:
        from tunesift.recipes import run_names

        return {name: _run_command(name) for name in run_names()}


app = typer.Typer(
    cls=_Group,
    help="Pick the best instruction-tuning data out of a pool: score it, select a subset, explain it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
score_app = typer.Typer(cls=_ScoreGroup, help="Score every record of a pool; writes one JSON line per record.",
                        no_args_is_help=True)  # fmt: skip
run_app = typer.Typer(cls=_RunGroup, help="Score and select in one go with a published method.", no_args_is_help=True)
app.add_typer(score_app, name="score")
app.add_typer(run_app, name="run")

DataArg = Annotated[
    Path,
    typer.Argument(
        help="Instruction pool: a .json list, .jsonl, .parquet, a Hugging Face dataset folder (save_to_disk), or "
        "hf:org/name[:split] (a hub dataset, from the local cache); "
        "records in Alpaca/LLaMA-Factory, ShareGPT or OpenAI-messages form."
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="Record schema: alpaca, sharegpt, messages (default: detected from the records)."),
]
OnErrorOpt = Annotated[
    str,
    typer.Option(
        "--on-error",
        help="raise: stop at the first invalid record (nothing written); skip: leave invalid records out "
        "(their score is null with the reason) and list them in <out>.rejects.jsonl.",
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        help="Packaged model short name (smollm2-135m-instruct, gemma-3-270m), a local HF checkpoint directory, "
        "or a hub id (org/name, from the local HF cache)."
    ),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(help="Score cache folder (default $TUNESIFT_CACHE/scores or ~/.cache/tunesift/scores)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option(help="torch device: cpu, cuda, cuda:N (default: cuda if available, else cpu).")
]
DtypeOpt = Annotated[str, typer.Option(help=DTYPE.help)]
RateOpt = Annotated[float | None, typer.Option(help="Share to keep, in (0, 1]; the base count depends on the rule.")]
CountOpt = Annotated[int | None, typer.Option(help="Exact number of records to keep (instead of --rate).")]
ScoresOutOpt = Annotated[Path | None, typer.Option(help="Also write the SCORES.jsonl here.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Subset to write, in DATA's own format, score fields added.")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 or http://localhost:8000/v1."),
]
ApiKeyEnvOpt = Annotated[str, typer.Option(help="Environment variable holding the endpoint's API key.")]

# Where scoring runs: declared once, added to every score and run command.
EXECUTOR_OPTIONS = (
    Option(
        "executor",
        str | None,
        None,
        "Where scoring runs: local (this process) or ray (a Ray cluster: a "
        "local Ray instance unless --ray-address names one; pip install 'tunesift[ray]'). Default: the "
        "recipe's 'executor', else local.",
    ),
    Option(
        "ray_address",
        str | None,
        None,
        "Ray cluster to join: auto (the one 'ray start' runs on this node) or ray://HOST:10001.",
    ),
    Option(
        "actors",
        int | None,
        None,
        "Ray actors, each holding one model (default: as many as the cluster's GPUs, or its CPUs less one, allow).",
    ),
    Option(
        "gpus_per_actor",
        float | None,
        None,
        "GPUs per Ray actor (default 1 when the cluster has GPUs, else 0; a fraction packs small models onto one GPU).",
    ),
    Option("cpus_per_actor", float | None, None, "CPUs per Ray actor, also its torch threads (default 1)."),
)
# Common options of the generated commands: (keyword, annotation, default).
_IO_PARAMS: tuple[tuple[str, Any, Any], ...] = (
    ("format", FormatOpt, None), ("on_error", OnErrorOpt, "raise"), ("store", StoreOpt, None),
    ("device", DeviceOpt, None),
)  # fmt: skip


def _fail(err: Exception) -> None:
    typer.echo(f"tunesift: error: {err}", err=True)
    raise typer.Exit(code=2)


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _option_param(option: Option, unset: bool = False) -> inspect.Parameter:
    """A Typer option for ``option``; ``unset``: default None, so only what the user gives overrides a recipe."""
    help_text = option.help + (" Comma-separated." if option.split and "comma" not in option.help else "")
    if not unset:
        return _param(
            option.name, Annotated[option.type, typer.Option(option.cli_flag, help=help_text)], option.default
        )
    if option.default is not None:
        help_text += f" [default: the recipe's, else {option.default}]"
    annotation = Annotated[option.type | None, typer.Option(option.cli_flag, help=help_text)]
    return _param(option.name, annotation, None)


def _command(body: Callable[..., None], params: list[inspect.Parameter], doc: str) -> Callable[..., None]:
    """A Typer command whose parameters are ``params``: Typer reads the signature we give it."""

    def command(**kwargs: Any) -> None:
        body(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command


def _option_values(options: tuple[Option, ...], kwargs: dict[str, Any], given_only: bool = False) -> dict[str, Any]:
    """The scoring function's keywords from parsed CLI values (comma lists split); ``given_only`` leaves out
    what the user did not set."""
    values = {}
    for option in options:
        value = kwargs[option.name]
        if given_only and value is None:
            continue
        if option.split and isinstance(value, str):
            value = [m.strip() for m in value.split(",") if m.strip()]
        values[option.name] = value
    return values


def _refuse(outputs: dict[str, list[Path]], inputs: dict[str, Any]) -> None:
    """Refuse an output that is one of the command's inputs, before any work (one line, exit 2)."""
    from tunesift.outputs import refuse_overwriting_inputs

    refuse_overwriting_inputs(outputs, inputs)


def _probe(paths: list[Path]) -> None:
    from tunesift.outputs import probe_writable

    probe_writable([Path(p) for p in paths])


def files_written(kind: str, path: Path) -> list[Path]:
    from tunesift.outputs import files_written as written

    return written(kind, path)


def _input_options(info: type[Method], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The scorer options that name an input file (a rule, a prompts file)."""
    return {o.name: kwargs[o.name] for o in info.options if o.type in (Path, Path | None) and kwargs[o.name]}


def _executor(kwargs: dict[str, Any], defaults: dict[str, Any] | None = None) -> Any:
    """The executor the options ask for (a recipe's ``defaults`` fill what the user left unset), checked: an
    unreachable cluster or a bad option raises before any work."""
    from tunesift.execution import make_executor

    defaults = defaults or {}
    value = {o.name: kwargs[o.name] if kwargs[o.name] is not None else defaults.get(o.name) for o in EXECUTOR_OPTIONS}
    name = kwargs["executor"] or defaults.get("name") or "local"
    value.pop("executor")
    return make_executor(name, device=kwargs["device"], **value)


def _say_summary(executor: Any) -> None:
    for line in executor.summary():
        typer.echo(line, err=True)


def _score_command(info: type[Method]) -> Callable[..., None]:
    """``tunesift score NAME``: every option the scorer declares, plus input, output and executor options."""

    def body(**kw: Any) -> None:
        from tunesift import api

        try:
            _refuse({"out": files_written("scores", kw["out"])}, {"pool": kw["data"], **_input_options(info, kw)})
            pool = api.read_pool(kw["data"], fmt=kw["format"], on_error=kw["on_error"])
            _probe([kw["out"]])
            executor = _executor(kw)
            table = api.score(info, pool, **_option_values(info.options, kw), store_dir=kw["store"],
                              executor=executor, progress=True)  # fmt: skip
            api.write_scores(kw["out"], table)
            rejects = api.write_rejects(kw["out"], pool)
        except TunesiftError as err:
            _fail(err)
        _say_summary(executor)
        skipped = table.skipped()
        typer.echo(
            f"scored {len(table.rows) - sum(skipped.values())} of {len(table.rows)} records -> {kw['out']}"
            + (f"; skipped: {skipped}" if skipped else "")
            + (f"; rejects: {rejects}" if rejects else ""),
            err=True,
        )

    out = Annotated[Path, typer.Option("--out", help=f"SCORES.jsonl to write (index, id, {', '.join(info.columns)}, "
                                       "skip_reason), one line per input record.")]  # fmt: skip
    params = [_param("data", DataArg), _param("out", out), *(_option_param(o) for o in info.options),
              *(_param(n, a, d) for n, a, d in _IO_PARAMS), *(_option_param(o) for o in EXECUTOR_OPTIONS)]  # fmt: skip
    return _command(body, params, info.summary)


def _run(method: str, kw: dict[str, Any], score_options: dict[str, Any], select_options: dict[str, Any] | None = None,
         recipe: Any = None) -> None:  # fmt: skip
    """Read, score and select with a recipe; say what was selected and how the executor ran."""
    from tunesift import api

    try:
        rate, count = kw["rate"], kw["count"]
        budget = None if rate is None and count is None else api.Budget(rate=rate, count=count)
        outputs = {"out": files_written("subset", kw["out"])}
        if kw["scores_out"] is not None:
            outputs["scores-out"] = files_written("scores", kw["scores_out"])
        recipe_file = Path(method) if Path(method).suffix in (".yaml", ".yml") else None
        _refuse(outputs, {"pool": kw["data"], "recipe": recipe_file,
                          **{k: v for k, v in score_options.items() if k in ("rule", "prompts_file")}})  # fmt: skip
        recipe = recipe or api.load_recipe(method)
        pool = api.read_pool(kw["data"], fmt=kw["format"], on_error=kw["on_error"])
        _probe([files[0] for files in outputs.values()])
        executor = _executor(kw, recipe.executor)
        result = api.run_recipe(recipe, pool, kw["out"], budget, scores_out=kw["scores_out"],
                                select_options=select_options or None, store_dir=kw["store"], executor=executor,
                                progress=True, **score_options)  # fmt: skip
    except TunesiftError as err:
        _fail(err)
    _say_summary(executor)
    skipped = result.scores.skipped()
    typer.echo(
        f"selected {len(result.selection.indices)} of {result.selection.n_pool} records -> {kw['out']}"
        + (f"; skipped: {skipped}" if skipped else ""),
        err=True,
    )


def _run_command(name: str) -> Callable[..., None]:
    """``tunesift run NAME`` for a built-in recipe: its scorer's options, its final selection's and cut's
    options (default: the recipe's own values), budget, outputs and executor options."""
    from dataclasses import replace

    from tunesift.recipes import CUT_RATE, THRESHOLD, load_recipe
    from tunesift.scorers import get_method
    from tunesift.selectors import get_selector

    recipe = load_recipe(name)
    scorer_options = get_method(recipe.scorer).options if recipe.scorer else ()
    final = recipe.steps[-1]["select"]
    # the final selector's own options, default the recipe's (which column it ranks by stays the recipe's)
    overrides = [_unset_help(o) for o in get_selector(final["method"]).options if o.name != "by"]
    has_cut = any("cut" in step for step in recipe.steps)
    has_filter = any("filter" in step for step in recipe.steps)

    def body(**kw: Any) -> None:
        chosen = recipe
        if has_cut and kw.get("cut_rate") is not None:
            steps = tuple({"cut": {**s["cut"], "rate": kw["cut_rate"]}} if "cut" in s else s for s in recipe.steps)
            chosen = replace(recipe, steps=steps)
        if has_filter and kw.get("threshold") is not None:
            steps = tuple({"filter": {**s["filter"], "value": kw["threshold"]}} if "filter" in s else s
                          for s in chosen.steps)  # fmt: skip
            chosen = replace(chosen, steps=steps)
        select_options = {o.name: kw[o.name] for o in overrides if kw[o.name] is not None}
        _run(name, kw, _option_values(scorer_options, kw, given_only=True), select_options, recipe=chosen)

    params = [_param("data", DataArg), _param("out", OutOpt), _param("rate", RateOpt, None),
              _param("count", CountOpt, None), *(_option_param(o, unset=True) for o in scorer_options),
              *(_option_param(o) for o in overrides), *([_option_param(CUT_RATE)] if has_cut else []),
              *([_option_param(THRESHOLD)] if has_filter else []),
              _param("scores_out", ScoresOutOpt, None), *(_param(n, a, d) for n, a, d in _IO_PARAMS),
              *(_option_param(o) for o in EXECUTOR_OPTIONS)]  # fmt: skip
    return _command(body, params, recipe.description)


def _unset_help(option: Option) -> Option:
    """A select option whose default is the recipe's own value."""
    from dataclasses import replace

    return replace(option, default=None, help=f"{option.help} (default: the recipe's, {option.default})")


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
    on_error: OnErrorOpt = "raise",
) -> None:
    """Select a subset from existing scores (no model is loaded)."""
    from tunesift import api
    from tunesift.scorers import default_rule

    try:
        _refuse({"out": files_written("subset", out)}, {"pool": data, "scores": scores})
        budget = api.Budget(rate=rate, count=count)
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        table = api.read_scores(scores, pool, score_field=field)
        rule = rule or default_rule(table.score_field)
        selection = api.select(table, rule, budget)
        manifest = api.write_subset(out, pool, table, selection, budget)
    except TunesiftError as err:
        _fail(err)
    typer.echo(f"selected {len(selection.indices)} of {selection.n_pool} records -> {out} ({manifest.name})", err=True)


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
        names = [m.strip() for m in indicators.split(",") if m.strip()]
        rule = api.fit_indicators(table, indicators=names, model=model, knn=knn, store_dir=store, device=device,
                                  progress=True)  # fmt: skip
        rule.save(out)
    except TunesiftError as err:
        _fail(err)
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
        typer.Option("--option", "-o", help="KEY=VALUE for the recipe's scorer (e.g. model=gemma-3-270m); repeat."),
    ] = None,
    scores_out: ScoresOutOpt = None,
    format: FormatOpt = None,
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
    import yaml

    options: dict[str, Any] = {}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(TunesiftError(f"option '--option': expected KEY=VALUE, got {item!r}"))
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    kw = {"data": data, "out": out, "rate": rate, "count": count, "scores_out": scores_out, "format": format,
          "on_error": on_error, "store": store, "device": device, "executor": executor, "ray_address": ray_address,
          "actors": actors, "gpus_per_actor": gpus_per_actor, "cpus_per_actor": cpus_per_actor}  # fmt: skip
    _run(recipe, kw, options)


LoraOpt = Annotated[bool, typer.Option("--lora/--full", help="LoRA adapters (merged at the end) or every weight.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Learning rate (default 5e-4 LoRA, 2e-5 full).")]
EpochsOpt = Annotated[int, typer.Option(help="Passes over the data.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the initialisation and of the batch order.")]


@app.command("train")
def train_cmd(
    data: DataArg,
    base: Annotated[str, typer.Option(help="Model to tune: packaged name or checkpoint dir.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (an unfinished run there resumes).")],
    lora: LoraOpt = True,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha (scale alpha / r).")] = 32,
    lr: LrOpt = None,
    epochs: EpochsOpt = 1,
    examples_per_step: Annotated[
        int, typer.Option(help="Samples per optimizer step: equal-size subsets get equal numbers of steps.")
    ] = 8,
    batch_tokens: Annotated[
        int, typer.Option(help="Tokens per micro-batch (rows x longest); a step accumulates its micro-batches.")
    ] = 2048,
    max_length: Annotated[int, typer.Option(help="Tokens per example (prompt + response).")] = 512,
    template: Annotated[
        str, typer.Option(help="Prompt template, as for scoring: alpaca, wiz, vicuna, plain, chat.")
    ] = "alpaca",
    seed: SeedOpt = 0,
    save_every: Annotated[int, typer.Option(help="Steps between two checkpoints.")] = 50,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    device: DeviceOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Fine-tune on a pool or subset; loss on response tokens only; writes RUN/model (merged, loadable anywhere)."""
    from tunesift import api
    from tunesift.eval.train import TrainConfig, train

    try:
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        config = TrainConfig(base=base, template=template, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                             learning_rate=lr, epochs=epochs, examples_per_step=examples_per_step,
                             batch_tokens=batch_tokens, max_length=max_length, seed=seed, dtype=dtype)  # fmt: skip
        result = train(pool, out, config, device=device, save_every=save_every, progress=True)
    except TunesiftError as err:
        _fail(err)
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    typer.echo(f"{result.steps} steps, {result.response_tokens} response tokens, final loss {last}, "
               f"{result.seconds:.0f} s -> {result.model_dir}", err=True)  # fmt: skip


@run_app.command("cherry-pre")
def run_cherry_pre_cmd(
    data: DataArg,
    out: OutOpt,
    rate: RateOpt = None,
    count: CountOpt = None,
    model: ModelOpt = "smollm2-135m-instruct",
    template: Annotated[str, typer.Option(help="Template of the embedded prompts, the fine-tune and IFD.")] = "alpaca",
    clusters: Annotated[int, typer.Option(help="k-means clusters of the prompt embeddings.")] = 100,
    per_cluster: Annotated[int, typer.Option(help="Samples taken from each cluster's perplexity band.")] = 10,
    lora: LoraOpt = True,
    lr: LrOpt = None,
    batch_tokens: Annotated[int, typer.Option(help="Tokens per fine-tuning step.")] = 2048,
    work_dir: Annotated[Path | None, typer.Option(help="Where the sample and the tuned model go (<out>.pre).")] = None,
    scores_out: ScoresOutOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Cherry with a pre-experienced model: cluster-sample ~1,000 prompts, tune 1 epoch on them, then Cherry."""
    from tunesift import api

    try:
        budget = api.Budget(rate=rate, count=count)
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        result = api.run_cherry_pre(
            pool, out, budget, model=model, template=template, clusters=clusters, per_cluster=per_cluster,
            train_options={"lora": lora, "learning_rate": lr, "batch_tokens": batch_tokens}, work_dir=work_dir,
            store_dir=store, device=device, progress=True,
        )  # fmt: skip
        if scores_out is not None:
            api.write_scores(scores_out, result.scores)
    except TunesiftError as err:
        _fail(err)
    typer.echo(f"selected {len(result.selection.indices)} of {result.selection.n_pool} records -> {out}", err=True)


@run_app.command("mods-full")
def run_mods_cmd(
    data: DataArg,
    out: OutOpt,
    reward_model: Annotated[
        str,
        typer.Option(
            help="Reward model: a sequence-classification checkpoint (folder or hub "
            "id), e.g. OpenAssistant/reward-model-deberta-v3-large-v2."
        ),
    ],
    rate: RateOpt = None,
    count: CountOpt = None,
    model: ModelOpt = "smollm2-135m-instruct",
    threshold: Annotated[float, typer.Option(help="High quality: reward above this (MoDS: 0.0).")] = 0.0,
    necessity_threshold: Annotated[
        float,
        typer.Option(
            help="Necessity: the tuned model's answer scored below "
            "this (MoDS: a threshold of your choice; default 0.0)."
        ),
    ] = 0.0,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer the seed-tuned model writes.")] = 256,
    lora: LoraOpt = True,
    lr: LrOpt = None,
    batch_tokens: Annotated[int, typer.Option(help="Tokens per fine-tuning step.")] = 2048,
    work_dir: Annotated[Path | None, typer.Option(help="Where the seed and the tuned model go (<out>.mods).")] = None,
    scores_out: ScoresOutOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """MoDS: reward > threshold, a k-center seed to the budget, tune on it, add what it answers badly."""
    from tunesift import api

    try:
        budget = api.Budget(rate=rate, count=count)
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        result = api.run_mods(
            pool, out, budget, reward_model=reward_model, model=model, threshold=threshold,
            necessity_threshold=necessity_threshold, max_new_tokens=max_new_tokens,
            train_options={"lora": lora, "learning_rate": lr, "batch_tokens": batch_tokens}, work_dir=work_dir,
            store_dir=store, device=device, progress=True,
        )  # fmt: skip
        if scores_out is not None:
            api.write_scores(scores_out, result.scores)
    except TunesiftError as err:
        _fail(err)
    meta = json.loads(result.manifest.read_text())["mods"]
    typer.echo(f"selected {len(result.selection.indices)} of {result.selection.n_pool} records (seed {meta['seed']}, "
               f"necessity {meta['necessity']}) -> {out}", err=True)  # fmt: skip


@app.command("eval")
def eval_cmd(
    runs: Annotated[
        list[str], typer.Argument(help="Run folders from 'tunesift train' (or model names/paths, e.g. the base).")
    ],
    suite: Annotated[
        str,
        typer.Option(
            help="cpu: AlpacaEval loss, GSM8K reference loss, MMLU 5-shot; gpu: + GSM8K accuracy; "
            "pairwise: two runs' answers judged in both orders."
        ),
    ] = "cpu",
    n_alpaca: Annotated[int, typer.Option(help="AlpacaEval items (GPT-4 outputs) for the response loss.")] = 200,
    n_gsm8k: Annotated[int, typer.Option(help="GSM8K test items.")] = 200,
    n_mmlu: Annotated[int, typer.Option(help="MMLU test questions, drawn with seed 0 across subjects.")] = 300,
    template: Annotated[str, typer.Option(help="Prompt template of the loss metrics (as in training).")] = "alpaca",
    testset: Annotated[
        str, typer.Option(help="pairwise: vicuna, koala, wizardlm, sinstruct or lima (Cherry's test sets).")
    ] = "vicuna",
    n_questions: Annotated[int | None, typer.Option(help="pairwise: only the first N questions.")] = None,
    judge_model: Annotated[
        str | None,
        typer.Option(
            help="pairwise judge (required): with --base-url the served model's name; without, a local "
            "model that writes its reply greedily."
        ),
    ] = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    data_dir: Annotated[Path | None, typer.Option(help="Evaluation sets (default ../shared/data/eval).")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Evaluate tuned models; prints a JSON line per run (also saved as RUN/eval-SUITE.json)."""
    from tunesift.eval.suite import EvalSettings, evaluate

    try:
        if suite == "pairwise":
            from tunesift.eval.pairwise_run import run_pairwise

            if len(runs) != 2:
                raise TunesiftError("suite 'pairwise' compares exactly two runs")
            summary = run_pairwise(runs[0], runs[1], testset=testset, n=n_questions, judge_model=judge_model,
                                   base_url=base_url, api_key_env=api_key_env, data_dir=data_dir, device=device,
                                   template=template)  # fmt: skip
            typer.echo(json.dumps(summary))
            return
        settings = EvalSettings(data_dir=str(data_dir) if data_dir else None, template=template, n_alpaca=n_alpaca,
                                n_gsm8k=n_gsm8k, n_mmlu=n_mmlu, dtype=dtype)  # fmt: skip
        for run in runs:
            typer.echo(json.dumps(evaluate(run, suite, settings, device)))
    except TunesiftError as err:
        _fail(err)


@app.command("compare")
def compare_cmd(
    config: Annotated[Path, typer.Argument(help="Comparison config (YAML): pool, budget(s), base, methods, seeds.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for subsets, runs, results.json/.md/.png, report.html.")],
    train_seeds: Annotated[
        int | None, typer.Option(help="Data orders per method subset (overrides the config's train_seeds).")
    ] = None,
    device: DeviceOpt = None,
) -> None:
    """Method subsets vs random subsets of the same size vs the full pool: train each, evaluate, and say with a
    paired-bootstrap interval whether each method is better, worse or not distinguishable."""
    from tunesift.eval.compare import compare, load_config
    from tunesift.eval.compare_view import html, plot, table

    try:
        cfg = load_config(config)
        if train_seeds is not None:
            cfg.train_seeds = train_seeds
        results = compare(cfg, out, device=device, progress=True, log=lambda m: typer.echo(m, err=True))
    except TunesiftError as err:
        _fail(err)
    text = table(results)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    plot(results, out / "results.png")
    (out / "report.html").write_text(html(results), encoding="utf-8")
    typer.echo(text)


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
) -> None:
    """What was selected, and why: score histograms with the cut, lengths, composition, agreement, examples."""
    from tunesift.report import make_report

    try:
        _refuse({"out": files_written("report", out)}, {"pool": data, "scores": scores, "selection": selection})
        make_report(data, scores, selection or [], out=out, fmt=format, tokenizer=tokenizer)
    except TunesiftError as err:
        _fail(err)
    typer.echo(f"report -> {out}", err=True)


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
    from tunesift.api import METHODS

    for name, description in METHODS.items():
        typer.echo(f"{name:18s} {description}")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
