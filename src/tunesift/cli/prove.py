"""The commands that prove a selection: train on it, evaluate the tuned model, compare methods against random."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tunesift.cli import app
from tunesift.cli.options import (
    DATA_DIR_HELP,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    DataArg,
    DeviceOpt,
    DtypeOpt,
    FieldsOpt,
    FormatOpt,
    OnErrorOpt,
    fail,
)
from tunesift.errors import ConfigError, TunesiftError
from tunesift.files import Files
from tunesift.options import split_list

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
    fields: FieldsOpt = None,
    on_error: OnErrorOpt = "raise",
    device: DeviceOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Fine-tune on a pool or subset; loss on response tokens only; writes RUN/model (merged, loadable anywhere)."""
    from tunesift import api
    from tunesift.eval.training.train import TrainConfig, train

    try:
        Files().read("pool", data).write("out", out, "folder").check()
        pool = api.read_pool(data, fmt=format, on_error=on_error, fields=fields)
        config = TrainConfig(base=base, template=template, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                             learning_rate=lr, epochs=epochs, examples_per_step=examples_per_step,
                             batch_tokens=batch_tokens, max_length=max_length, seed=seed, dtype=dtype)  # fmt: skip
        result = train(pool, out, config, device=device, save_every=save_every, progress=True)
    except TunesiftError as err:
        fail(err)
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    cut = "" if result.truncated_frac is None else f"{result.truncated_frac:.0%} of the examples cut at max-length, "
    typer.echo(f"{result.steps} steps, {result.response_tokens} response tokens, {cut}final loss {last}, "
               f"{result.seconds:.0f} s -> {result.model_dir}", err=True)  # fmt: skip


@app.command("eval")
def eval_cmd(
    runs: Annotated[
        list[str], typer.Argument(help="Run folders from 'tunesift train' (or model names/paths, e.g. the base).")
    ],
    suite: Annotated[
        str,
        typer.Option(
            help="cpu: AlpacaEval loss, GSM8K reference loss, MMLU 5-shot, BBH answer loss, HumanEval solution "
            "loss; gpu: + GSM8K accuracy (8-shot CoT), BBH exact match (3-shot CoT), HumanEval pass@1 (tests run "
            "in a sandbox); reasoning: MATH500 and GSM8K reference solutions' loss, AlpacaEval loss; reasoning-gpu: + "
            "MATH500, AIME24 and AMC23 accuracy (replies checked by the verifier); pairwise: two "
            "runs' answers judged in both orders."
        ),
    ] = "cpu",
    n_alpaca: Annotated[int, typer.Option(help="AlpacaEval items (GPT-4 outputs) for the response loss.")] = 200,
    n_gsm8k: Annotated[int, typer.Option(help="GSM8K test items.")] = 200,
    n_math500: Annotated[int, typer.Option(help="MATH500 problems for the reference solutions' loss.")] = 200,
    n_mmlu: Annotated[int, typer.Option(help="MMLU test questions, drawn with seed 0 across subjects.")] = 300,
    n_bbh: Annotated[int, typer.Option(help="BBH items, taken in turn from its 27 tasks.")] = 135,
    n_humaneval: Annotated[int, typer.Option(help="HumanEval tasks, the first N.")] = 164,
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
    data_dir: Annotated[Path | None, typer.Option(help=DATA_DIR_HELP)] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "auto",
) -> None:
    """Evaluate tuned models; prints a JSON line per run (also saved as RUN/eval-SUITE.json)."""
    from tunesift.eval.evaluation.suite import EvalSettings, evaluate

    try:
        sizes = {"n-alpaca": n_alpaca, "n-gsm8k": n_gsm8k, "n-math500": n_math500, "n-mmlu": n_mmlu, "n-bbh": n_bbh,
                 "n-humaneval": n_humaneval, "n-questions": n_questions}  # fmt: skip
        for flag, size in sizes.items():
            if size is not None and size < 1:  # before any model is loaded
                raise ConfigError(flag, f"must be at least 1, got {size}")
        if suite == "pairwise":
            from tunesift.eval.evaluation.pairwise_run import run_pairwise

            if len(runs) != 2:
                raise TunesiftError("suite 'pairwise' compares exactly two runs")
            summary = run_pairwise(runs[0], runs[1], testset=testset, n=n_questions, judge_model=judge_model,
                                   base_url=base_url, api_key_env=api_key_env, data_dir=data_dir, device=device,
                                   template=template)  # fmt: skip
            typer.echo(json.dumps(summary))
            return
        settings = EvalSettings(data_dir=str(data_dir) if data_dir else None, template=template, n_alpaca=n_alpaca,
                                n_gsm8k=n_gsm8k, n_math500=n_math500, n_mmlu=n_mmlu, n_bbh=n_bbh,
                                n_humaneval=n_humaneval, dtype=dtype)  # fmt: skip
        for run in runs:
            typer.echo(json.dumps(evaluate(run, suite, settings, device)))
    except TunesiftError as err:
        fail(err)


@app.command("compare")
def compare_cmd(
    config: Annotated[Path, typer.Argument(help="Comparison config (YAML): pool, budget(s), base, methods, seeds.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for subsets, runs, results.json/.md/.png, report.html.")],
    train_seeds: Annotated[
        int | None, typer.Option(help="Data orders per method subset (overrides the config's train_seeds).")
    ] = None,
    keep_contaminated: Annotated[
        bool,
        typer.Option(
            help="Keep the pool's records that hold evaluation items the comparison scores on (default: "
            "dropped, METHODS.md §23; the config's keep_contaminated: true too)."
        ),
    ] = False,
    device: DeviceOpt = None,
) -> None:
    """Method subsets vs random subsets of the same size vs the full pool: train each, evaluate, and say with a
    paired-bootstrap interval whether each method is better, worse or not distinguishable."""
    from tunesift.eval.compare.config import load_config
    from tunesift.eval.compare.run import compare
    from tunesift.eval.compare.view import html, plot, table

    try:
        Files().read("config", config).write("out", out, "folder").check()
        cfg = load_config(config)
        if train_seeds is not None:
            cfg.train_seeds = train_seeds
        cfg.keep_contaminated = cfg.keep_contaminated or keep_contaminated
        results = compare(cfg, out, device=device, progress=True, log=lambda m: typer.echo(m, err=True))
    except TunesiftError as err:
        fail(err)
    text = table(results)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    plot(results, out / "results.png")
    (out / "report.html").write_text(html(results), encoding="utf-8")
    typer.echo(text)


def _settings(items: list[str] | None, option: str) -> dict:
    from tunesift.yamltext import load_yaml

    values = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TunesiftError(f"option '{option}': expected KEY=VALUE, got {item!r}")
        values[key.strip().replace("-", "_")] = load_yaml(value)
    return values


def _numbers(text: str, option: str, kind: type) -> list:
    try:
        return [kind(x) for x in split_list(text)]
    except ValueError:
        raise TunesiftError(f"option '{option}': expected comma-separated numbers, got {text!r}") from None


@app.command("advise")
def advise_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the race (cached) and advice.md/.json, report.html.")],
    budget: Annotated[
        str,
        typer.Option(
            "--budget",
            "--budgets",
            help="The share(s) of the pool to keep, e.g. 0.1 "
            "or 0.05,0.1,0.2 (a sweep: a recommendation per budget, and the curve).",
        ),
    ],
    target: Annotated[
        str | None,
        typer.Option(
            help="What the tuned model must be good at: alpaca_eval (default), gsm8k, mmlu, bbh, humaneval, math500 "
            "(the loss of their references; math500 races a reasoning pool on MATH500, GSM8K and AlpacaEval), or a "
            "FILE of your own held-out examples (the loss on their responses)."
        ),
    ] = None,
    guard: Annotated[
        str | None,
        typer.Option(
            help="METRIC,...|all|none: the metrics a recommended arm must not be worse on than random. Default: "
            "none with an explicit --target (you said what matters), else all. An arm a guard excludes is still "
            "named in advice.md with what it costs."
        ),
    ] = None,
    query: Annotated[
        list[Path] | None,
        typer.Option(
            "--query",
            help="A query set for the targeted methods (rds, embed, bm25 join the menu); repeat for several tasks.",
        ),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated arms (default: longest, ifd, superfiltering, "
            "selectit, kcenter; balanced where records name a dataset/source; "
            "rds, embed, bm25 with --query). Random is always raced."
        ),
    ] = None,
    base: Annotated[str, typer.Option(help="The proxy model fine-tuned on each subset.")] = "gemma-3-270m",
    model: Annotated[str | None, typer.Option(help="The model the scoring methods use (default: each recipe's).")] = (
        None
    ),
    proxy_size: Annotated[
        int | None,
        typer.Option(
            help="A seeded sample of the pool the race runs on (default 2,000, or the whole pool, if smaller)."
        ),
    ] = None,
    random_seeds: Annotated[str, typer.Option(help="Random subsets per budget (comma-separated seeds).")] = "0,1,2",
    train_seeds: Annotated[int, typer.Option(help="Data orders per method subset.")] = 1,
    learning_rates: Annotated[
        str | None,
        typer.Option(
            help="A,B: race every arm again at each of these learning rates; the advice says whether its "
            "verdict holds under each, and which flipped it (the plan counts the extra fine-tunes)."
        ),
    ] = None,
    train: Annotated[
        list[str] | None,
        typer.Option(
            "--train", help="KEY=VALUE of compare's train settings (examples_per_step=8, max_length=256, ...); repeat."
        ),
    ] = None,
    eval: Annotated[
        list[str] | None,
        typer.Option(
            "--eval",
            help="KEY=VALUE of compare's eval settings (n_alpaca=50, "
            "n_gsm8k=50, n_mmlu=100, n_bbh=54, n_humaneval=50, max_length=256, ...); repeat.",
        ),
    ] = None,
    teacher_option: Annotated[
        list[str] | None,
        typer.Option(
            "--teacher-option",
            help="KEY=VALUE for the teacher of a distill:NAME arm (base_url=..., model=...); repeat.",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan (arms, cached, estimated time) and stop.")] = False,
    keep_contaminated: Annotated[
        bool,
        typer.Option(
            help="Keep the proxy's records that hold evaluation items the race scores on (default: "
            "dropped, METHODS.md §23); each arm's row then counts its own."
        ),
    ] = False,
    with_full: Annotated[
        bool,
        typer.Option(
            help="Race the whole proxy too, in as many optimizer steps as each budget's subsets (more records a "
            "step): does a selection beat all of the data on this pool?"
        ),
    ] = False,
    store: Annotated[Path | None, typer.Option(help="Score cache folder (default: OUT/scores).")] = None,
    device: DeviceOpt = None,
) -> None:
    """Race the selection methods on a proxy of your pool at your budget against random, and recommend one (or say
    that none beat random), with 95 % intervals and each method's cost."""
    from tunesift.eval.advise.config import TARGETS, AdviseConfig, check_settings
    from tunesift.eval.advise.run import advise

    try:
        target_file = target if target and target not in TARGETS else None
        Files().read_all({"pool": data, "--query": query, "--target": target_file}).write("out", out, "folder").check()
        train_settings = {"lora": True, "epochs": 1, "template": "alpaca", "max_length": 256, "batch_tokens": 2048,
                          "examples_per_step": 8, **_settings(train, "--train")}  # fmt: skip
        eval_settings = {"n_alpaca": 50, "n_gsm8k": 50, "n_math500": 50, "n_mmlu": 100, "n_bbh": 54,
                         "n_humaneval": 50,
                         "max_length": 256, **_settings(eval, "--eval")}  # fmt: skip
        config = AdviseConfig(
            pool=str(data), budgets=_numbers(budget, "budget", float), target=target or "alpaca_eval",
            guard=guard if guard is not None else ("none" if target else "all"),
            query=[str(q) for q in query or []], methods=None if methods is None else
            split_list(methods), base=base, proxy_size=proxy_size,
            random_seeds=_numbers(random_seeds, "random-seeds", int), train_seeds=train_seeds, train=train_settings,
            eval=eval_settings, store_dir=str(store or out / "scores"), scorer_model=model,
            keep_contaminated=keep_contaminated, teacher_options=teacher_option or [],
            learning_rates=None if learning_rates is None else _numbers(learning_rates, "learning-rates", float),
            with_full=with_full,
        )  # fmt: skip
        check_settings(config)  # before the pool is read
        advise(config, out, dry_run=dry_run, device=device, progress=True, log=lambda m: typer.echo(m, err=True))
    except ConfigError as err:  # the config's key as the flag that set it (random_seeds: --random-seeds)
        flag = err.option.replace("_", "-") if err.option in {"random_seeds", "train_seeds", "proxy_size"} else None
        fail(ConfigError(flag, err.message) if flag else err)
    except TunesiftError as err:
        fail(err)
    if not dry_run:
        typer.echo((out / "advice.md").read_text())
