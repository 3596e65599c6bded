"""The ``tunesift`` command: a thin shell over :mod:`tunesift.api`.

Every user error (bad pool, unknown model, bad option) is one line on stderr and exit status 2, and no
output file is written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tunesift.errors import TunesiftError

app = typer.Typer(
    help="Pick the best instruction-tuning data out of a pool: score it, select a subset, explain it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
score_app = typer.Typer(help="Score every record of a pool; writes one JSON line per record.", no_args_is_help=True)
run_app = typer.Typer(help="Score and select in one go with a published method.", no_args_is_help=True)
app.add_typer(score_app, name="score")
app.add_typer(run_app, name="run")

DataArg = Annotated[
    Path,
    typer.Argument(
        help="Instruction pool: a .json list, .jsonl, .parquet, or a Hugging Face dataset folder (save_to_disk); "
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
TurnsOpt = Annotated[
    str, typer.Option("--turns", help="How a conversation's turn scores combine: mean, min, max, last, wmean.")
]
ModelOpt = Annotated[
    str,
    typer.Option(
        help="Packaged model short name (smollm2-135m-instruct, gemma-3-270m) or a local HF checkpoint directory."
    ),
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        help="Prompt template: alpaca, wiz, vicuna, plain, chat. Default: alpaca (cherry), plain (superfilter)."
    ),
]
MaxLengthOpt = Annotated[
    int | None, typer.Option(help="Token budget M per text. Default: 512 (cherry), 1024 (superfilter).")
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(help="Score cache folder (default $TUNESIFT_CACHE/scores or ~/.cache/tunesift/scores)."),
]
BatchTokensOpt = Annotated[int, typer.Option(help="Tokens per forward batch (batch size x longest text).")]
ChunkOpt = Annotated[
    int, typer.Option(help="Samples scored between two writes to the score store (a kill loses at most one chunk).")
]
DeviceOpt = Annotated[str | None, typer.Option(help="torch device (default: cuda if available, else cpu).")]
RateOpt = Annotated[float | None, typer.Option(help="Share to keep, in (0, 1]; the base count depends on the rule.")]
CountOpt = Annotated[int | None, typer.Option(help="Exact number of records to keep (instead of --rate).")]


def _fail(err: Exception) -> None:
    typer.echo(f"tunesift: error: {err}", err=True)
    raise typer.Exit(code=2)


@score_app.command("ifd")
def score_ifd_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="SCORES.jsonl to write (index, id, ifd, losses, skip_reason).")],
    model: ModelOpt = "smollm2-135m-instruct",
    template: TemplateOpt = None,
    max_length: MaxLengthOpt = None,
    variant: Annotated[
        str, typer.Option(help="cherry: ratio of mean losses; superfilter: ratio of perplexities, no template.")
    ] = "cherry",
    turns: TurnsOpt = "mean",
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    batch_tokens: BatchTokensOpt = 4096,
    chunk_size: ChunkOpt = 128,
    device: DeviceOpt = None,
) -> None:
    """IFD (Cherry LLM / Superfiltering): how much the instruction helps the model predict the response."""
    from tunesift import api

    _score(
        data, out, format, on_error,
        lambda pool: api.score_ifd(
            pool, model=model, variant=variant, template=template, max_length=max_length, turn_rule=turns,
            store_dir=store, token_budget=batch_tokens, chunk_size=chunk_size, device=device, progress=True,
        ),
    )  # fmt: skip


def _score(data: Path, out: Path, format: str | None, on_error: str, scorer: Callable[[Any], Any]) -> None:
    """Read the pool, score it, write SCORES (and the rejects), say what happened; errors exit 2."""
    from tunesift import api

    try:
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        table = scorer(pool)
        api.write_scores(out, table)
        rejects = api.write_rejects(out, pool)
    except TunesiftError as err:
        _fail(err)
    skipped = table.skipped()
    typer.echo(
        f"scored {len(table.rows) - sum(skipped.values())} of {len(table.rows)} records -> {out}"
        + (f"; skipped: {skipped}" if skipped else "")
        + (f"; rejects: {rejects}" if rejects else ""),
        err=True,
    )


ModelsOpt = Annotated[
    str,
    typer.Option(
        help="Raters, comma-separated (packaged names or checkpoint dirs); two or more give the model level. "
        "SelectIT wants instruction-tuned raters, the larger the better: a base model such as gemma-3-270m "
        "rated no better than chance in our measurements."
    ),
]
KOpt = Annotated[int, typer.Option("--k", help="Number of rating prompts pooled at the sentence level.")]
AlphaOpt = Annotated[float, typer.Option(help="Penalty on the spread of the prompts' token scores.")]
PromptsOpt = Annotated[
    Path | None, typer.Option(help="Your own rating sentences, one per line (default: tunesift's five).")
]
LevelOpt = Annotated[
    str | None,
    typer.Option(help="token | sentence | model (default: model with two or more raters, else sentence)."),
]
TokenPromptOpt = Annotated[int, typer.Option(help="Token level: the 0-based index of the one prompt used.")]
TokenRuleOpt = Annotated[
    str, typer.Option(help="paper (METHODS.md) or authors-code (an extra softmax, as in the authors' code).")
]


@score_app.command("selectit")
def score_selectit_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="SCORES.jsonl to write (index, id, selectit, every level).")],
    models: ModelsOpt = "smollm2-135m-instruct",
    k: KOpt = 5,
    alpha: AlphaOpt = 0.2,
    prompts: PromptsOpt = None,
    level: LevelOpt = None,
    token_prompt: TokenPromptOpt = 0,
    token_rule: TokenRuleOpt = "paper",
    turns: TurnsOpt = "mean",
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    batch_tokens: BatchTokensOpt = 4096,
    chunk_size: ChunkOpt = 128,
    device: DeviceOpt = None,
) -> None:
    """SelectIT: the model rates each sample 1-5; its certainty weighs the rating (token, sentence, model level)."""
    from tunesift import api

    _score(
        data, out, format, on_error,
        lambda pool: api.score_selectit(
            pool, models=_split_models(models), k=k, alpha=alpha, level=level, token_prompt=token_prompt,
            token_rule=token_rule, prompts_file=prompts, turn_rule=turns, store_dir=store, token_budget=batch_tokens,
            chunk_size=chunk_size, device=device, progress=True,
        ),
    )  # fmt: skip


def _split_models(models: str) -> list[str]:
    return [m.strip() for m in models.split(",") if m.strip()]


@app.command("select")
def select_cmd(
    data: DataArg,
    scores: Annotated[Path, typer.Option("--scores", help="SCORES.jsonl written by 'tunesift score' for DATA.")],
    out: Annotated[Path, typer.Option("--out", help="Subset to write, in DATA's own format, score fields added.")],
    rule: Annotated[
        str | None,
        typer.Option(
            help="cherry: drop IFD > 1, rate of survivors; superfilter: keep IFD < 1, rate of pool; "
            "top: highest first, rate of pool. Default: cherry for IFD scores, top for others."
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

    try:
        budget = api.Budget(rate=rate, count=count)
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        table = api.read_scores(scores, pool, score_field=field)
        rule = rule or api.DEFAULT_RULES.get(table.score_field, "top")
        selection = api.select(table, rule, budget)
        manifest = api.write_subset(out, pool, table, selection, budget)
    except TunesiftError as err:
        _fail(err)
    typer.echo(f"selected {len(selection.indices)} of {selection.n_pool} records -> {out} ({manifest.name})", err=True)


def _run(
    method: str,
    data: Path,
    out: Path,
    rate: float | None,
    count: int | None,
    scores_out: Path | None,
    format: str | None,
    on_error: str,
    **options: object,
) -> None:
    from tunesift import api

    try:
        budget = None if rate is None and count is None else api.Budget(rate=rate, count=count)
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        result = api.run_recipe(method, pool, out, budget, scores_out=scores_out, progress=True, **options)
    except TunesiftError as err:
        _fail(err)
    skipped = result.scores.skipped()
    typer.echo(
        f"selected {len(result.selection.indices)} of {result.selection.n_pool} records -> {out}"
        + (f"; skipped: {skipped}" if skipped else ""),
        err=True,
    )


ScoresOutOpt = Annotated[Path | None, typer.Option(help="Also write the SCORES.jsonl here.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Subset to write, in DATA's own format, score fields added.")]


def _ifd_run_command(method: str, doc: str):
    """The ``run`` command of an IFD method: score with that method's variant, select by its rule."""

    def command(
        data: DataArg,
        out: OutOpt,
        rate: RateOpt = None,
        count: CountOpt = None,
        model: ModelOpt = "smollm2-135m-instruct",
        template: TemplateOpt = None,
        max_length: MaxLengthOpt = None,
        scores_out: ScoresOutOpt = None,
        turns: TurnsOpt = "mean",
        format: FormatOpt = None,
        on_error: OnErrorOpt = "raise",
        store: StoreOpt = None,
        batch_tokens: BatchTokensOpt = 4096,
        chunk_size: ChunkOpt = 128,
        device: DeviceOpt = None,
    ) -> None:
        _run(
            method, data, out, rate, count, scores_out, format, on_error, turn_rule=turns,
            model=model, template=template, max_length=max_length, store_dir=store,
            token_budget=batch_tokens, chunk_size=chunk_size, device=device,
        )  # fmt: skip

    command.__doc__ = doc
    return command


run_app.command("cherry")(
    _ifd_run_command(
        "cherry",
        "Cherry LLM: IFD with a template, drop IFD > 1, keep the top rate of the rest (the paper's 5 % used 0.06).",
    )
)
run_app.command("superfiltering")(
    _ifd_run_command(
        "superfiltering",
        "Superfiltering: IFD from a small model (perplexity ratio, no template), keep < 1, top rate of the pool.",
    )
)


@run_app.command("superfiltering-d")
def run_superfiltering_d_cmd(
    data: DataArg,
    out: OutOpt,
    rate: RateOpt = None,
    count: CountOpt = None,
    k1_rate: Annotated[float, typer.Option(help="Share of the pool kept by IFD before diversity (k1).")] = 0.2,
    model: ModelOpt = "smollm2-135m-instruct",
    max_length: MaxLengthOpt = None,
    scores_out: ScoresOutOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Superfiltering.D: IFD < 1, top k1 of the pool, then facility location on MiniLM embeddings (default 2 %)."""
    from tunesift import api

    try:
        budget = None if rate is None and count is None else api.Budget(rate=rate, count=count)
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        result = api.run_superfiltering_d(
            pool, out, budget, k1_rate=k1_rate, scores_out=scores_out, model=model, max_length=max_length,
            store_dir=store, device=device, progress=True,
        )  # fmt: skip
    except TunesiftError as err:
        _fail(err)
    typer.echo(f"selected {len(result.selection.indices)} of {result.selection.n_pool} records -> {out}", err=True)


def _set_method_command(name: str, doc: str):
    """The ``run`` command of a baseline or embedding selector."""

    def command(
        data: DataArg,
        out: OutOpt,
        rate: RateOpt = None,
        count: CountOpt = None,
        seed: Annotated[int, typer.Option(help="random_state of random / k-center's first point.")] = 0,
        tau: Annotated[float, typer.Option(help="deita-style: admit only below this cosine similarity.")] = 0.9,
        model: ModelOpt = "smollm2-135m-instruct",
        format: FormatOpt = None,
        on_error: OnErrorOpt = "raise",
        store: StoreOpt = None,
        device: DeviceOpt = None,
    ) -> None:
        from tunesift import api

        try:
            budget = api.Budget(rate=rate, count=count)
            pool = api.read_pool(data, fmt=format, on_error=on_error)
            options = {"model": model} if name == "deita-style" else {}
            result = api.run_set_method(name, pool, out, budget, random_state=seed, tau=tau, device=device,
                                        store_dir=store, progress=True, **options)  # fmt: skip
        except TunesiftError as err:
            _fail(err)
        typer.echo(f"selected {len(result.selection.indices)} of {result.selection.n_pool} records -> {out}", err=True)

    command.__doc__ = doc
    return command


def _register_set_methods() -> None:
    from tunesift.api import METHODS, SET_METHODS

    for name in SET_METHODS:
        run_app.command(name)(_set_method_command(name, METHODS[name]))


_register_set_methods()


@run_app.command("selectit")
def run_selectit(
    data: DataArg,
    out: OutOpt,
    rate: RateOpt = None,
    count: CountOpt = None,
    models: ModelsOpt = "smollm2-135m-instruct",
    k: KOpt = 5,
    alpha: AlphaOpt = 0.2,
    prompts: PromptsOpt = None,
    level: LevelOpt = None,
    token_prompt: TokenPromptOpt = 0,
    token_rule: TokenRuleOpt = "paper",
    scores_out: ScoresOutOpt = None,
    turns: TurnsOpt = "mean",
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    batch_tokens: BatchTokensOpt = 4096,
    chunk_size: ChunkOpt = 128,
    device: DeviceOpt = None,
) -> None:
    """SelectIT: rank by the top level in use, highest first; keep 20 % of the pool unless told otherwise."""
    _run(
        "selectit", data, out, rate, count, scores_out, format, on_error, turn_rule=turns,
        models=_split_models(models), k=k, alpha=alpha, level=level, token_prompt=token_prompt,
        token_rule=token_rule, prompts_file=prompts, store_dir=store, token_budget=batch_tokens,
        chunk_size=chunk_size, device=device,
    )  # fmt: skip


JudgeModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Judge: with --base-url, the model name the endpoint serves; without, a local model (packaged name "
        "or checkpoint dir; default smollm2-135m-instruct) read through its probabilities of the scores 0-5.",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 or http://localhost:8000/v1."),
]
ApiKeyEnvOpt = Annotated[str, typer.Option(help="Environment variable holding the endpoint's API key.")]
ConcurrencyOpt = Annotated[int, typer.Option(help="Requests in flight at once.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds before a request is abandoned (then retried).")]
RetriesOpt = Annotated[int, typer.Option(help="Retries with exponential backoff on 429, 5xx and network errors.")]
KnnOpt = Annotated[int, typer.Option("--knn", help="kNN-i: distance to the i-th nearest other sample (MiniLM).")]
RuleFileOpt = Annotated[Path | None, typer.Option("--rule", help="Indicator rule JSON written by fit-indicators.")]
IndicatorModelOpt = Annotated[str, typer.Option("--model", help="Model for token lengths and response perplexity.")]


def _judge_options(model, base_url, api_key_env, concurrency, timeout, retries, batch_tokens, chunk_size):
    return {"model": model, "base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency,
            "timeout": timeout, "retries": retries, "token_budget": batch_tokens, "chunk_size": chunk_size}  # fmt: skip


@score_app.command("alpagasus")
def score_alpagasus_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="SCORES.jsonl to write (index, id, alpagasus, judge_reply).")],
    model: JudgeModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 4,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 4,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    batch_tokens: BatchTokensOpt = 4096,
    chunk_size: ChunkOpt = 64,
    device: DeviceOpt = None,
) -> None:
    """AlpaGasus: an LLM judge rates each response's accuracy 0-5 (unreadable replies: null, raw reply kept)."""
    from tunesift import api

    options = _judge_options(model, base_url, api_key_env, concurrency, timeout, retries, batch_tokens, chunk_size)
    _score(
        data, out, format, on_error,
        lambda pool: api.score_alpagasus(pool, store_dir=store, device=device, progress=True, **options),
    )  # fmt: skip


@score_app.command("indicators")
def score_indicators_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="SCORES.jsonl to write (every indicator; instructmining).")],
    rule: RuleFileOpt = None,
    model: IndicatorModelOpt = "smollm2-135m-instruct",
    knn: KnnOpt = 6,
    max_length: Annotated[int, typer.Option(help="Tokens of the response scored for perplexity.")] = 1024,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """InstructMining's indicators: lengths, response perplexity, MTLD, kNN-i; with --rule, the predicted loss."""
    from tunesift import api

    _score(data, out, format, on_error,
           lambda pool: api.score_indicators(pool, rule=rule, model=model, knn=knn, max_length=max_length,
                                             store_dir=store, device=device, progress=True))  # fmt: skip


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
    model: IndicatorModelOpt = "smollm2-135m-instruct",
    knn: KnnOpt = 6,
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Fit InstructMining's rule log(eval_loss) ~ b0 + sum b_i * mean indicator_i by least squares."""
    from tunesift import api

    try:
        rule = api.fit_indicators(table, indicators=_split_models(indicators), model=model, knn=knn,
                                  store_dir=store, device=device, progress=True)  # fmt: skip
        rule.save(out)
    except TunesiftError as err:
        _fail(err)
    terms = " ".join(f"{c:+.4g}*{n}" for n, c in zip(rule.indicators, rule.coefficients, strict=True))
    typer.echo(f"log(eval_loss) ~ {rule.intercept:.4g} {terms} (R^2 {rule.fit['r2']:.3f}, "
               f"{rule.fit['n_subsets']} subsets) -> {out}", err=True)  # fmt: skip


@run_app.command("alpagasus")
def run_alpagasus(
    data: DataArg,
    out: OutOpt,
    rate: RateOpt = None,
    count: CountOpt = None,
    model: JudgeModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 4,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 4,
    scores_out: ScoresOutOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    batch_tokens: BatchTokensOpt = 4096,
    chunk_size: ChunkOpt = 64,
    device: DeviceOpt = None,
) -> None:
    """AlpaGasus: keep every sample the judge scores >= 4.5 (or the best of them, to --rate / --count)."""
    options = _judge_options(model, base_url, api_key_env, concurrency, timeout, retries, batch_tokens, chunk_size)
    _run("alpagasus", data, out, rate, count, scores_out, format, on_error, store_dir=store, device=device, **options)


@run_app.command("instructmining")
def run_instructmining(
    data: DataArg,
    out: OutOpt,
    rule: Annotated[Path, typer.Option("--rule", help="Indicator rule JSON written by fit-indicators.")],
    rate: RateOpt = None,
    count: CountOpt = None,
    model: IndicatorModelOpt = "smollm2-135m-instruct",
    knn: KnnOpt = 6,
    scores_out: ScoresOutOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """InstructMining: rank by the fitted rule's predicted eval loss, lowest first."""
    _run("instructmining", data, out, rate, count, scores_out, format, on_error, rule=rule, model=model, knn=knn,
         store_dir=store, device=device)  # fmt: skip


@run_app.command("cluster-ifd")
def run_cluster_ifd(
    data: DataArg,
    out: OutOpt,
    rate: RateOpt = None,
    count: CountOpt = None,
    clusters: Annotated[int, typer.Option(help="k-means clusters on MiniLM embeddings.")] = 100,
    model: ModelOpt = "smollm2-135m-instruct",
    scores_out: ScoresOutOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    store: StoreOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Per-cluster top-k: k-means on MiniLM embeddings, then the highest IFD (<= 1) samples of every cluster."""
    _run("cluster-ifd", data, out, rate, count, scores_out, format, on_error, model=model, store_dir=store,
         device=device, select_options={"clusters": clusters})  # fmt: skip


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
) -> None:
    """Run a recipe: a scorer, then filter / rank / cut / select steps (see 'tunesift methods' for built-ins)."""
    import yaml

    options: dict[str, Any] = {}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(TunesiftError(f"option '--option': expected KEY=VALUE, got {item!r}"))
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    _run(recipe, data, out, rate, count, scores_out, format, on_error, store_dir=store, device=device, **options)


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
    batch_tokens: Annotated[int, typer.Option(help="Tokens per step (batch size x longest example).")] = 2048,
    max_length: Annotated[int, typer.Option(help="Tokens per example (prompt + response).")] = 512,
    template: Annotated[
        str, typer.Option(help="Prompt template, as for scoring: alpaca, wiz, vicuna, plain, chat.")
    ] = "alpaca",
    seed: SeedOpt = 0,
    save_every: Annotated[int, typer.Option(help="Steps between two checkpoints.")] = 50,
    format: FormatOpt = None,
    on_error: OnErrorOpt = "raise",
    device: DeviceOpt = None,
) -> None:
    """Fine-tune on a pool or subset; loss on response tokens only; writes RUN/model (merged, loadable anywhere)."""
    from tunesift import api
    from tunesift.eval.train import TrainConfig, train

    try:
        pool = api.read_pool(data, fmt=format, on_error=on_error)
        config = TrainConfig(base=base, template=template, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                             learning_rate=lr, epochs=epochs, batch_tokens=batch_tokens, max_length=max_length,
                             seed=seed)  # fmt: skip
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
            help="pairwise judge: with --base-url the served model's name; without, a local model "
            "(default smollm2-135m-instruct) that writes its reply greedily."
        ),
    ] = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    data_dir: Annotated[Path | None, typer.Option(help="Evaluation sets (default ../shared/data/eval).")] = None,
    device: DeviceOpt = None,
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
                                n_gsm8k=n_gsm8k, n_mmlu=n_mmlu)  # fmt: skip
        for run in runs:
            typer.echo(json.dumps(evaluate(run, suite, settings, device)))
    except TunesiftError as err:
        _fail(err)


@app.command("compare")
def compare_cmd(
    config: Annotated[Path, typer.Argument(help="Comparison config (YAML): pool, budget, base, methods, seeds.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for subsets, runs, results.json, table and plot.")],
    device: DeviceOpt = None,
) -> None:
    """Method subsets vs random subsets of the same size vs the full pool: train each, evaluate, tabulate, plot."""
    from tunesift.eval.compare import compare, load_config, plot, table

    try:
        results = compare(load_config(config), out, device=device, progress=True,
                          log=lambda m: typer.echo(m, err=True))  # fmt: skip
    except TunesiftError as err:
        _fail(err)
    text = table(results)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    plot(results, out / "results.png")
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
