"""Evaluation suites: which metrics, on how many items of which set, for one model.

``cpu`` is likelihood only (cheap on a laptop): response loss on AlpacaEval's GPT-4 outputs, loss of
GSM8K's reference solutions, MMLU answer-letter accuracy (5-shot). ``gpu`` adds GSM8K accuracy by greedy
8-shot generation. Pairwise judging compares two models and lives in :mod:`tunesift.eval.pairwise`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesift.atomic import atomic_open
from tunesift.errors import ConfigError

SUITES: dict[str, tuple[str, ...]] = {
    "cpu": ("alpaca_eval_loss", "gsm8k_loss", "mmlu"),
    "gpu": ("alpaca_eval_loss", "gsm8k_loss", "mmlu", "gsm8k_accuracy"),
}
# Lower is better for losses, higher for accuracies: what a table or plot needs to know.
HIGHER_IS_BETTER = {"alpaca_eval_loss": False, "gsm8k_loss": False, "mmlu": True, "gsm8k_accuracy": True}


def default_eval_dir() -> Path:
    """``../shared/data/eval`` beside the project (where tests and CI find it), else the working folder's."""
    here = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "eval"
    return here.resolve() if here.exists() else Path("../shared/data/eval").resolve()


@dataclass(frozen=True)
class EvalSettings:
    data_dir: str | None = None
    template: str = "alpaca"
    n_alpaca: int = 200
    n_gsm8k: int = 200
    n_mmlu: int = 300
    mmlu_shots: int = 5
    mmlu_seed: int = 0
    gsm8k_shots: int = 8
    max_length: int = 1024
    token_budget: int = 4096
    dtype: str = "auto"  # as for scoring: bf16 on a CUDA GPU that has it, else fp32

    def folder(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_eval_dir()


def model_path(run_or_model: str | Path) -> str:
    """A run folder written by ``tunesift train`` means its tuned model; anything else is a model name/path."""
    path = Path(run_or_model)
    return str(path / "model") if (path / "model" / "config.json").exists() else str(run_or_model)


def evaluate(run_or_model: str | Path, suite: str = "cpu", settings: EvalSettings | None = None,
             device: str | None = None, lm: Any = None) -> dict[str, Any]:  # fmt: skip
    """Every metric of ``suite`` for one model; also written to ``RUN/eval-<suite>.json`` for a run folder."""
    from tunesift.data.templates import get_template
    from tunesift.eval import metrics
    from tunesift.models.causal_lm import CausalLM

    if suite not in SUITES:
        raise ConfigError("suite", f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    settings = settings or EvalSettings()
    folder = settings.folder()
    if not folder.exists():
        raise ConfigError("data-dir", f"evaluation sets not found at {folder}")
    lm = lm or CausalLM.load(model_path(run_or_model), device=device, dtype=settings.dtype)
    template = get_template(settings.template, lm.tokenizer)
    results: dict[str, Any] = {"model": lm.name, "suite": suite, "settings": asdict(settings)}
    for metric in SUITES[suite]:
        started = time.perf_counter()
        if metric == "alpaca_eval_loss":
            pairs = metrics.read_alpaca_eval(folder / "alpaca_eval_805_gpt4_1106_preview.json", settings.n_alpaca)
            value = metrics.response_loss(lm, pairs, template, settings.max_length, settings.token_budget)
        elif metric == "gsm8k_loss":
            pairs = metrics.read_gsm8k(folder / "gsm8k_test.jsonl", settings.n_gsm8k)
            value = metrics.response_loss(lm, pairs, template, settings.max_length, settings.token_budget)
        elif metric == "mmlu":
            items, dev = metrics.read_mmlu(folder / "mmlu", settings.n_mmlu, settings.mmlu_seed)
            value = metrics.mmlu_accuracy(lm, items, dev, settings.mmlu_shots, 2 * settings.token_budget)
            value.pop("predicted")
        else:
            items = metrics.read_gsm8k(folder / "gsm8k_test.jsonl", settings.n_gsm8k)
            shots = metrics.read_gsm8k(folder / "gsm8k_train.jsonl", settings.gsm8k_shots)
            value = metrics.gsm8k_accuracy(lm, items, shots)
        value["seconds"] = round(time.perf_counter() - started, 1)
        results[metric] = value
    run_dir = Path(run_or_model)
    if (run_dir / "run.json").exists():
        with atomic_open(run_dir / f"eval-{suite}.json") as handle:
            json.dump(results, handle, indent=2)
    return results


def headline(results: dict[str, Any]) -> dict[str, float]:
    """The one number per metric a table shows (loss, or accuracy)."""
    out = {}
    for metric in HIGHER_IS_BETTER:
        if metric in results:
            value = results[metric]
            out[metric] = value["loss"] if "loss" in value else value["accuracy"]
    return out
