"""``tunesift run cherry-pre`` and ``tunesift run mods-full``: the methods that tune a model on the way. Their
options are declared here as every method's are (:class:`~tunesift.options.Option`), and they take the same
input, output and executor options as the generated ``run`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from tunesift.cli import run_app
from tunesift.cli.options import (
    CountOpt,
    DataArg,
    OutOpt,
    RateOpt,
    ScoresOutOpt,
    execution_params,
    executor_for,
    fail,
    make_command,
    option_param,
    param,
    say_summary,
)
from tunesift.errors import TunesiftError
from tunesift.files import Files
from tunesift.options import DTYPE, MODEL_HELP, Option, model_option
from tunesift.scorers.mods import NECESSITY_THRESHOLD, QUALITY_THRESHOLD

# The fine-tune inside both pipelines.
TUNE_OPTIONS = (
    Option("lora", bool, True, "LoRA adapters (merged at the end) or every weight.", flag="--lora/--full"),
    Option("learning_rate", float | None, None, "Learning rate (default 5e-4 LoRA, 2e-5 full).", flag="--lr", above=0),
    Option("batch_tokens", int, 2048, "Tokens per fine-tuning step.", at_least=1),
)
CHERRY_PRE_OPTIONS = (
    model_option(MODEL_HELP),
    Option("template", str, "alpaca", "Template of the embedded prompts, the fine-tune and IFD."),
    Option("clusters", int, 100, "k-means clusters of the prompt embeddings.", at_least=1),
    Option("per_cluster", int, 10, "Samples taken from each cluster's perplexity band.", at_least=1),
    *TUNE_OPTIONS,
    Option("work_dir", Path | None, None, "Where the sample and the tuned model go (<out>.pre).", writes=True),
    DTYPE,
)
MODS_FULL_OPTIONS = (
    Option("reward_model", str, ..., "Reward model: a sequence-classification checkpoint (folder or hub id), e.g. "
           "OpenAssistant/reward-model-deberta-v3-large-v2."),
    model_option(MODEL_HELP),
    Option("threshold", float, QUALITY_THRESHOLD, "High quality: reward above this (MoDS: 0.0)."),
    Option("necessity_threshold", float, NECESSITY_THRESHOLD,
           "Necessity: the tuned model's answer scored below this (MoDS: a threshold of your choice; default 0.0)."),
    Option("max_new_tokens", int, 256, "Longest answer the seed-tuned model writes.", at_least=1),
    *TUNE_OPTIONS,
    Option("work_dir", Path | None, None, "Where the seed and the tuned model go (<out>.mods).", writes=True),
    DTYPE,
)  # fmt: skip


def _pipeline(name: str, options: tuple[Option, ...], doc: str, function: str) -> None:
    """Register ``tunesift run NAME``: read the pool, run the pipeline on the chosen executor, write the
    subset (and the scores), say what was selected. ``function`` names the pipeline in :mod:`tunesift.api`."""

    def body(**kw: Any) -> None:
        from tunesift import api

        try:
            Files().read("pool", kw["data"]).write("out", kw["out"], "subset").write(
                "scores-out", kw["scores_out"], "scores"
            ).write("work-dir", kw["work_dir"], "folder").check()
            budget = api.Budget(rate=kw["rate"], count=kw["count"])
            pool = api.read_pool(kw["data"], fmt=kw["format"], on_error=kw["on_error"], fields=kw["fields"])
            executor = executor_for(kw)
            values = {o.name: kw[o.name] for o in options if o.name not in (t.name for t in TUNE_OPTIONS)}
            train = {o.name: kw[o.name] for o in TUNE_OPTIONS}
            pipeline = getattr(api, function)
            result = pipeline(pool, kw["out"], budget, train_options=train, store_dir=kw["store"], device=kw["device"],
                              executor=executor, progress=True, **values)  # fmt: skip
            if kw["scores_out"] is not None:
                api.write_scores(kw["scores_out"], result.scores)
        except TunesiftError as err:
            fail(err)
        say_summary(executor)
        extra = ""
        if name == "mods-full":
            meta = json.loads(result.manifest.read_text())["mods"]
            extra = f" (seed {meta['seed']}, necessity {meta['necessity']})"
        typer.echo(f"selected {len(result.selection.indices)} of {result.selection.n_pool} records{extra} -> "
                   f"{kw['out']}", err=True)  # fmt: skip

    params = [param("data", DataArg), param("out", OutOpt), param("rate", RateOpt, None),
              param("count", CountOpt, None), *(option_param(o) for o in options),
              param("scores_out", ScoresOutOpt, None), *execution_params()]  # fmt: skip
    run_app.command(name)(make_command(body, params, doc))


_pipeline("cherry-pre", CHERRY_PRE_OPTIONS, "Cherry with a pre-experienced model: cluster-sample ~1,000 prompts, "
          "tune 1 epoch on them, then Cherry.", "run_cherry_pre")  # fmt: skip
_pipeline("mods-full", MODS_FULL_OPTIONS, "MoDS: reward > threshold, a k-center seed to the budget, tune on it, add "
          "what it answers badly.", "run_mods")  # fmt: skip
