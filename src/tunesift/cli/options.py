"""The CLI's shared option vocabulary: the argument and options every command spells the same way, the
executor options, and the helpers that turn :class:`~tunesift.options.Option` declarations into Typer options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tunesift.options import DTYPE, Option, split_list

if TYPE_CHECKING:
    from tunesift.scorers import Method

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
    typer.Option(
        "--format",
        help="Record schema: alpaca, sharegpt, messages, or a reasoning layout (s1k, math, gsm8k, "
        "prompt-completion, query-response); default: detected from each record's keys.",
    ),
]
FieldsOpt = Annotated[
    str | None,
    typer.Option(
        "--fields",
        help="Which column holds which part, for a pool in columns of its own: TARGET=FIELD,... with targets "
        "instruction, input, output, thinking, reference, system; FIELD[0] takes a list's first item, and the "
        "reference may be taken as FIELD:boxed (the last \\boxed{}) or FIELD:gsm8k (after ####), e.g. "
        "instruction=problem,output=solution,reference=answer (s1K, MATH, GSM8K, prompt/completion and "
        "query/response pools are read without it).",
    ),
]
OnErrorOpt = Annotated[
    str,
    typer.Option(
        "--on-error",
        help="raise: stop at the first invalid record (nothing written); skip: leave invalid records out "
        "(their score is null with the reason) and list them in <out>.rejects.jsonl.",
    ),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(help="Score cache folder (default $TUNESIFT_CACHE/scores or ~/.cache/tunesift/scores)."),
]
DATA_DIR_HELP = (
    "A folder of evaluation sets laid out as ../shared/data (its eval/), or that eval folder (default: "
    "$TUNESIFT_DATA_DIR, then ../shared/data beside the checkout or the working folder; 'tunesift data list')."
)
DeviceOpt = Annotated[
    str | None, typer.Option(help="torch device: cpu, cuda, cuda:N (default: cuda if available, else cpu).")
]
DtypeOpt = Annotated[str, typer.Option(help=DTYPE.help)]
RateOpt = Annotated[float | None, typer.Option(help="Share to keep, in (0, 1]; the base count depends on the rule.")]
CountOpt = Annotated[int | None, typer.Option(help="Exact number of records to keep (instead of --rate).")]
ScoresOutOpt = Annotated[Path | None, typer.Option(help="Also write the SCORES.jsonl here.")]
OutFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--out-format",
        help="Write the subset for a trainer instead of in DATA's own format: llamafactory "
        "(its alpaca or sharegpt layout, plus the entry in dataset_info.json beside it), messages (OpenAI-style "
        "JSONL for TRL's SFTTrainer and axolotl), hf (a save_to_disk folder), alpaca (single turns only).",
    ),
]
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
    ("format", FormatOpt, None), ("fields", FieldsOpt, None), ("on_error", OnErrorOpt, "raise"),
    ("store", StoreOpt, None), ("device", DeviceOpt, None),
)  # fmt: skip


def check_out_format(value: str | None) -> None:
    from tunesift.errors import ConfigError
    from tunesift.outputs import OUT_FORMATS

    if value is not None and value not in OUT_FORMATS:
        raise ConfigError("out-format", f"choose one of {', '.join(OUT_FORMATS)}, got {value!r}")


def fail(err: Exception) -> None:
    typer.echo(f"tunesift: error: {err}", err=True)
    raise typer.Exit(code=2)


def param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def option_param(option: Option, unset: bool = False) -> inspect.Parameter:
    """A Typer option for ``option``; ``unset``: default None, so only what the user gives overrides a recipe."""
    help_text = option.help + (" Comma-separated." if option.split and "comma" not in option.help else "")
    if not unset:
        return param(option.name, Annotated[option.type, typer.Option(option.cli_flag, help=help_text)], option.default)
    if option.default is not None:
        help_text += f" [default: the recipe's, else {option.default}]"
    annotation = Annotated[option.type | None, typer.Option(option.cli_flag, help=help_text)]
    return param(option.name, annotation, None)


def make_command(body: Callable[..., None], params: list[inspect.Parameter], doc: str) -> Callable[..., None]:
    """A Typer command whose parameters are ``params``: Typer reads the signature we give it."""

    def command(**kwargs: Any) -> None:
        body(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command


def option_values(options: tuple[Option, ...], kwargs: dict[str, Any], given_only: bool = False) -> dict[str, Any]:
    """The scoring function's keywords from parsed CLI values (comma lists split); ``given_only`` leaves out
    what the user did not set."""
    values = {}
    for option in options:
        value = kwargs[option.name]
        if given_only and value is None:
            continue
        if option.split and value is not None:
            value = split_list(value)
        values[option.name] = value
    return values


def probe(paths: list[Path]) -> None:
    from tunesift.outputs import probe_writable

    probe_writable([Path(p) for p in paths])


def input_options(info: type[Method], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The scorer options that name a file the command reads (a query set, anchors, a rule, a prompts file)."""
    return info.files_read(kwargs)


def executor_for(kwargs: dict[str, Any], defaults: dict[str, Any] | None = None) -> Any:
    """The executor the options ask for (a recipe's ``defaults`` fill what the user left unset), checked: an
    unreachable cluster or a bad option raises before any work."""
    from tunesift.execution import make_executor

    defaults = defaults or {}
    value = {o.name: kwargs[o.name] if kwargs[o.name] is not None else defaults.get(o.name) for o in EXECUTOR_OPTIONS}
    name = kwargs["executor"] or defaults.get("name") or "local"
    value.pop("executor")
    return make_executor(name, device=kwargs["device"], **value)


def say_summary(executor: Any) -> None:
    for line in executor.summary():
        typer.echo(line, err=True)


def execution_params() -> list[inspect.Parameter]:
    """The input/output and executor options every scoring command takes."""
    return [*(param(n, a, d) for n, a, d in _IO_PARAMS), *(option_param(o) for o in EXECUTOR_OPTIONS)]
