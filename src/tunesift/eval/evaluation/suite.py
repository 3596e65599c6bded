"""Evaluation suites: which metrics, on how many items of which set, for one model.

``cpu`` is likelihood only (cheap on a laptop): response loss on AlpacaEval's GPT-4 outputs, loss of
GSM8K's reference solutions, MMLU answer-letter accuracy (5-shot), the loss of BBH's answers and of HumanEval's
canonical solutions: the benchmarks SelectIT reports, less TyDiQA. ``gpu`` adds what needs generation: GSM8K accuracy
by greedy 8-shot chain-of-thought, BBH exact match by 3-shot chain-of-thought, HumanEval pass@1 (tests run in a
sandbox). Every metric keeps its per-item values, which a paired comparison of
two models resamples (:mod:`tunesift.eval.evaluation.stats`). Pairwise judging compares two models and lives in
:mod:`tunesift.eval.evaluation.pairwise`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesift.atomic import atomic_open
from tunesift.data.evalsets import SOURCES, eval_dir, set_file, set_folder  # where sets live
from tunesift.errors import ConfigError
from tunesift.options import is_number

#: Likelihood only: what a CPU evaluates in minutes and a small proxy ranks by reliably.
CPU = ("alpaca_eval_loss", "gsm8k_loss", "mmlu", "bbh_loss", "humaneval_loss")
SUITES: dict[str, tuple[str, ...]] = {
    "cpu": CPU,
    "gpu": (*CPU, "gsm8k_accuracy", "bbh_accuracy", "humaneval_pass1"),  # + what needs generation
    # a targeted selection's protocol: the target task's loss first, then the general one it may cost
    "targeted": ("gsm8k_loss", "alpaca_eval_loss"),
    # the user's own held-out examples (eval target_file), then the general losses
    "target": ("target_loss", "alpaca_eval_loss", "gsm8k_loss"),
    # a reasoning pool's race on a CPU: the reference solutions' loss on MATH500 and GSM8K, and the general one
    "reasoning": ("math500_loss", "gsm8k_loss", "alpaca_eval_loss"),
    # + accuracy with the verifier, where a GPU can afford to generate long replies
    "reasoning-gpu": (
        "math500_loss",
        "gsm8k_loss",
        "alpaca_eval_loss",
        "math500_accuracy",
        "aime24_accuracy",
        "amc23_accuracy",
    ),
}
#: The evaluation set each metric reads (a target_loss reads the user's own file).
METRIC_SETS = {"alpaca_eval_loss": "alpaca_eval", "gsm8k_loss": "gsm8k", "gsm8k_accuracy": "gsm8k", "mmlu": "mmlu",
               "bbh_loss": "bbh", "bbh_accuracy": "bbh", "humaneval_loss": "humaneval",
               "humaneval_pass1": "humaneval", "math500_loss": "math500", "math500_accuracy": "math500",
               "aime24_accuracy": "aime24", "amc23_accuracy": "amc23"}  # fmt: skip
# Lower is better for losses, higher for accuracies: what a table or plot needs to know.
HIGHER_IS_BETTER = {"target_loss": False, "alpaca_eval_loss": False, "gsm8k_loss": False, "math500_loss": False,
                    "math500_accuracy": True, "aime24_accuracy": True, "amc23_accuracy": True, "mmlu": True,
                    "bbh_loss": False, "humaneval_loss": False, "gsm8k_accuracy": True, "bbh_accuracy": True,
                    "humaneval_pass1": True}  # fmt: skip


@dataclass(frozen=True)
class EvalSettings:
    data_dir: str | None = None
    template: str = "alpaca"
    n_alpaca: int = 200
    n_gsm8k: int = 200
    n_math500: int = 200
    n_aime24: int = 30
    n_amc23: int = 40
    reasoning_max_new_tokens: int = 2048  # a reply's budget in the reasoning-gpu suite
    n_mmlu: int = 300
    n_bbh: int = 135  # 5 a task, taken in turn from the 27
    n_humaneval: int = 164
    humaneval_timeout: float = 3.0  # seconds a program's tests may run (human-eval's default)
    mmlu_shots: int = 5
    mmlu_seed: int = 0
    gsm8k_shots: int = 8
    target_file: str | None = None  # the user's held-out examples (any pool format): the target_loss metric
    n_target: int | None = None
    max_length: int = 1024
    batch_tokens: int = 4096
    dtype: str = "auto"  # as for scoring: bf16 on a CUDA GPU that has it, else fp32

    def __post_init__(self) -> None:
        whole = ("n_alpaca", "n_gsm8k", "n_math500", "n_aime24", "n_amc23", "reasoning_max_new_tokens", "n_mmlu",
                 "n_bbh", "n_humaneval", "mmlu_shots", "mmlu_seed", "gsm8k_shots", "max_length",
                 "batch_tokens")  # fmt: skip
        for name in (*whole, "n_target"):
            value = getattr(self, name)
            if (value is not None or name != "n_target") and not is_number(value, whole=True):
                raise ConfigError(name, f"expected a whole number, got {value!r}")
        if not is_number(self.humaneval_timeout) or not self.humaneval_timeout > 0:
            raise ConfigError("humaneval_timeout", f"positive seconds, got {self.humaneval_timeout!r}")

    def folder(self, name: str) -> Path:
        """The eval folder the set ``name`` is read from (a local folder, else the Hub's copy)."""
        return set_folder(name, self.data_dir, "eval.data_dir")

    def key(self, suite: str) -> str:
        """What an evaluation result depends on besides the model: its cache file is named by it."""
        from tunesift.store import config_hash

        described = {k: v for k, v in asdict(self).items() if k != "data_dir"}
        if self.target_file:  # the file by its content: edited examples are another evaluation
            import hashlib

            described["target_file"] = hashlib.sha256(Path(self.target_file).read_bytes()).hexdigest()[:16]
        return config_hash({"suite": suite, "settings": described, "data": str(eval_dir(self.data_dir).resolve())})


def result_path(run_dir: str | Path, suite: str, settings: EvalSettings) -> Path:
    """Where a run folder keeps one suite's results under these settings (other settings, other file)."""
    return Path(run_dir) / f"eval-{suite}-{settings.key(suite)}.json"


def model_path(run_or_model: str | Path) -> str:
    """A run folder written by ``tunesift train`` means its tuned model; anything else is a model name/path."""
    path = Path(run_or_model)
    return str(path / "model") if (path / "model" / "config.json").exists() else str(run_or_model)


def evaluate(run_or_model: str | Path, suite: str = "cpu", settings: EvalSettings | None = None,
             device: str | None = None, lm: Any = None) -> dict[str, Any]:  # fmt: skip
    """Every metric of ``suite`` for one model; also written to ``RUN/eval-<suite>.json`` for a run folder."""
    from tunesift.data.templates import get_template
    from tunesift.eval.evaluation import bbh, humaneval, metrics, reasoning
    from tunesift.models.causal_lm import CausalLM

    if suite not in SUITES:
        raise ConfigError("suite", f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    settings = settings or EvalSettings()
    for metric in SUITES[suite]:  # every set found (or fetched) before the model loads
        if metric in METRIC_SETS:
            settings.folder(METRIC_SETS[metric])
    lm = lm or CausalLM.load(model_path(run_or_model), device=device, dtype=settings.dtype)
    template = get_template(settings.template, lm.tokenizer)
    results: dict[str, Any] = {"model": lm.name, "suite": suite, "settings": asdict(settings)}
    for metric in SUITES[suite]:
        started = time.perf_counter()
        folder = settings.folder(METRIC_SETS[metric]) if metric in METRIC_SETS else None
        if metric == "target_loss":
            pairs = read_target(settings.target_file, settings.n_target)
            value = metrics.response_loss(lm, pairs, template, settings.max_length, settings.batch_tokens)
        elif metric == "alpaca_eval_loss":
            pairs = metrics.read_alpaca_eval(folder / "alpaca_eval_805_gpt4_1106_preview.json", settings.n_alpaca)
            value = metrics.response_loss(lm, pairs, template, settings.max_length, settings.batch_tokens)
        elif metric == "gsm8k_loss":
            pairs = metrics.read_gsm8k(folder / "gsm8k_test.jsonl", settings.n_gsm8k)
            value = metrics.response_loss(lm, pairs, template, settings.max_length, settings.batch_tokens)
        elif metric == "math500_loss":
            pairs = metrics.read_math500(set_file("math500", settings.data_dir, "eval.data_dir"), settings.n_math500)
            value = metrics.response_loss(lm, pairs, template, settings.max_length, settings.batch_tokens)
        elif metric == "mmlu":
            items, dev = metrics.read_mmlu(folder / "mmlu", settings.n_mmlu, settings.mmlu_seed)
            value = metrics.mmlu_accuracy(lm, items, dev, settings.mmlu_shots, 2 * settings.batch_tokens)
            value.pop("predicted")
        elif metric in ("bbh_loss", "humaneval_loss"):
            pairs, read_as = loss_inputs(metric, settings, template)
            value = metrics.response_loss(lm, pairs, read_as, settings.max_length, settings.batch_tokens)
        elif metric == "bbh_accuracy":
            items = bbh.read_bbh(folder / "bbh", settings.n_bbh)
            value = bbh.accuracy(lm, items, bbh.cot_prompts(folder / "bbh", items))
        elif metric in ("math500_accuracy", "aime24_accuracy", "amc23_accuracy"):
            name = metric.removesuffix("_accuracy")
            path = set_file(name, settings.data_dir, "eval.data_dir")
            items = reasoning.read_problems(path.parent, name, getattr(settings, f"n_{name}"))
            value = reasoning.accuracy(lm, items, template, settings.reasoning_max_new_tokens)
        elif metric == "humaneval_pass1":
            tasks = humaneval.read_humaneval(folder / "humaneval" / "HumanEval.jsonl.gz", settings.n_humaneval)
            value = humaneval.pass1(lm, tasks, timeout=settings.humaneval_timeout)
        else:
            items = metrics.read_gsm8k(folder / "gsm8k_test.jsonl", settings.n_gsm8k)
            value = metrics.gsm8k_accuracy(lm, items, settings.gsm8k_shots)
        if not value["n"]:
            raise ConfigError(_SIZE_KEY[metric], f"{metric}: no evaluation item is left (every one was cut by "
                              f"max_length {settings.max_length} or none was asked for)")  # fmt: skip
        value["seconds"] = round(time.perf_counter() - started, 1)
        results[metric] = value
    run_dir = Path(run_or_model)
    if (run_dir / "run.json").exists():
        with atomic_open(result_path(run_dir, suite, settings)) as handle:
            json.dump(results, handle, indent=2)
    return results


# The setting that sizes each metric's set: what an error about an empty set names.
_SIZE_KEY = {"alpaca_eval_loss": "n_alpaca", "gsm8k_loss": "n_gsm8k", "mmlu": "n_mmlu", "gsm8k_accuracy": "n_gsm8k",
             "math500_loss": "n_math500", "math500_accuracy": "n_math500", "aime24_accuracy": "n_aime24",
             "amc23_accuracy": "n_amc23",
             "target_loss": "n_target", "bbh_loss": "n_bbh", "bbh_accuracy": "n_bbh", "humaneval_loss": "n_humaneval",
             "humaneval_pass1": "n_humaneval"}  # fmt: skip


def loss_inputs(metric: str, settings: EvalSettings, template: Any) -> tuple[list[tuple[str, str]], Any]:
    """The (prompt, reference) pairs of BBH's or HumanEval's loss, and the template they are read in (HumanEval
    is a completion task: none)."""
    from tunesift.eval.evaluation import bbh, humaneval

    if metric == "bbh_loss":
        folder = settings.folder("bbh")
        items = bbh.read_bbh(folder / "bbh", settings.n_bbh)
        return bbh.loss_pairs(items, bbh.cot_prompts(folder / "bbh", items)), template
    folder = settings.folder("humaneval")
    tasks = humaneval.read_humaneval(folder / "humaneval" / "HumanEval.jsonl.gz", settings.n_humaneval)
    return humaneval.loss_pairs(tasks), humaneval.Completion()


def read_target(path: str | Path | None, n: int | None = None) -> list[tuple[str, str]]:
    """The user's held-out examples as (prompt, response) pairs: each record's last turn (its instruction, the
    input after a blank line), the first ``n``; a file that fails validation is an error naming it."""
    from tunesift.data.pools import read_pool
    from tunesift.data.sample import Sample

    if not path:
        raise ConfigError("target", "the target_loss metric needs eval.target_file (the held-out examples)")
    pairs = [(f"{s.instruction}\n\n{s.input}" if s.input else s.instruction, s.output)
             for s in read_pool(path) if isinstance(s, Sample)]  # fmt: skip
    return pairs[:n] if n is not None else pairs


def check_sets(suite: str, settings: EvalSettings, tokenizer: Any, template: Any) -> None:
    """Fail before any training when a metric of ``suite`` would have no item: a size of 0, a missing
    file, or every reference response cut away by ``max_length`` (what the loss metrics would skip)."""
    from tunesift.eval.evaluation import metrics

    if suite not in SUITES:
        raise ConfigError("suite", f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    for metric in SUITES[suite]:
        folder = settings.folder(METRIC_SETS[metric]) if metric in METRIC_SETS else None
        key = f"eval.{_SIZE_KEY[metric]}"
        size = getattr(settings, _SIZE_KEY[metric])
        if size is not None and size < 1:
            raise ConfigError(key, f"{metric} needs at least one item, got {size}")
        if metric == "mmlu":
            continue  # read_mmlu refuses an empty folder; every question is kept
        read_as = template
        if metric in ("bbh_accuracy", "humaneval_pass1", "math500_accuracy", "aime24_accuracy", "amc23_accuracy"):
            continue  # every item is generated for; an empty set is refused by its reader
        if metric == "alpaca_eval_loss":
            pairs = metrics.read_alpaca_eval(folder / "alpaca_eval_805_gpt4_1106_preview.json", size)
        elif metric == "target_loss":
            pairs = read_target(settings.target_file, size)
        elif metric in ("bbh_loss", "humaneval_loss"):
            pairs, read_as = loss_inputs(metric, settings, template)
        elif metric == "math500_loss":
            pairs = metrics.read_math500(folder / SOURCES["math500"].files[0], size)
        else:
            pairs = metrics.read_gsm8k(folder / "gsm8k_test.jsonl", size)
        if metric == "gsm8k_accuracy":
            fits = bool(pairs)
        else:
            fits = any(len(tokenizer(read_as.prompt(q, "") + a)["input_ids"][: settings.max_length])
                       > len(tokenizer(read_as.prompt(q, ""))["input_ids"]) for q, a in pairs)  # fmt: skip
        if not fits:
            raise ConfigError(key, f"{metric}: no item is left after filtering ({len(pairs)} read, every one cut "
                              f"by eval.max_length {settings.max_length})")  # fmt: skip


def per_item(results: dict[str, Any], metric: str) -> tuple[list[float | None], list[float]]:
    """One metric's per-item numerators and denominators: (NLL sum, tokens) for a loss, (correct, 1) for an
    accuracy; a skipped item is None with denominator 0. The headline is sum(num) / sum(den)."""
    items = results[metric]["items"]
    if metric.endswith("_loss"):
        return [None if i is None else i[0] for i in items], [0 if i is None else i[1] for i in items]
    return [float(i) for i in items], [1.0] * len(items)


def headline(results: dict[str, Any]) -> dict[str, float]:
    """The one number per metric a table shows (loss, or accuracy)."""
    out = {}
    for metric in HIGHER_IS_BETTER:
        if metric in results:
            value = results[metric]
            out[metric] = value["loss"] if "loss" in value else value["accuracy"]
    return out
