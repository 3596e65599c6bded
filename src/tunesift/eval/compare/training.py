"""One arm's model: fine-tuned on its subset, evaluated by the suite (both cached in its run folder), and the
untuned base model as the floor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesift.eval.compare.config import CompareConfig
from tunesift.eval.compare.keys import short_key, write_json
from tunesift.eval.compare.plan import Model


def train_and_eval(config: CompareConfig, model: Model, settings: Any, budget: str, device: str | None,
                    progress: bool, log: Callable[[str], Any]) -> dict[str, Any]:  # fmt: skip
    from tunesift.data.pools import read_pool
    from tunesift.eval.evaluation.suite import evaluate, headline, result_path
    from tunesift.eval.training.train import train

    result = train(model.subset, model.run_dir, config.train_config(model.seed, model.examples_per_step),
                   device=device, progress=progress)  # fmt: skip
    path = result_path(model.run_dir, config.suite, settings)
    if path.exists():
        scores = json.loads(path.read_text())
    else:
        scores = evaluate(model.run_dir, config.suite, settings, device, lm=_in_memory(result.model, model.run_dir))
    result.model = None  # free it before the next run trains
    timing = model.subset.with_suffix(".timing")
    select_s = json.loads(timing.read_text())["select_s"] if timing.exists() else None
    row = {"budget": budget, "arm": model.arm, "seed": model.seed, "n": len(read_pool(model.subset)),
           "train_steps": result.steps, "train_s": round(result.seconds, 1), "select_s": select_s,
           "truncated_frac": result.truncated_frac,
           "eval_s": _eval_seconds(scores), **headline(scores), "run": str(model.run_dir),
           "eval_file": str(path)}  # fmt: skip
    log(f"[compare] {budget} {model.arm} s{model.seed}: {result.steps} steps; {headline(scores)}")
    return row


def evaluate_floor(config: CompareConfig, out: Path, settings: Any, device: str | None) -> dict[str, Any]:
    from tunesift.eval.evaluation.suite import evaluate, headline

    key = short_key({"base": config.base, "eval": settings.key(config.suite)})
    path = out / "base" / f"eval-{config.suite}-{key}.json"
    if path.exists():
        scores = json.loads(path.read_text())
    else:
        scores = evaluate(config.base, config.suite, settings, device)
        write_json(path, scores)
    return {"budget": "base", "arm": "base (untuned)", "seed": None, "n": 0, **headline(scores),
            "eval_s": _eval_seconds(scores), "eval_file": str(path)}  # fmt: skip


def _eval_seconds(scores: dict[str, Any]) -> float:
    """Seconds one evaluation took, summed over its metrics."""
    return round(sum(v["seconds"] for v in scores.values() if isinstance(v, dict) and "seconds" in v), 1)


def _in_memory(model: Any, run_dir: Path) -> Any:
    """The model ``train`` just wrote, as a CausalLM without reading it back (None: load from disk)."""
    if model is None:
        return None
    from transformers import AutoTokenizer

    from tunesift.models.causal_lm import CausalLM
    from tunesift.models.registry import resolve_model

    resolved = resolve_model(str(run_dir / "model"))
    device = next(model.parameters()).device
    return CausalLM(model=model, tokenizer=AutoTokenizer.from_pretrained(resolved.path), name=resolved.name,
                    fingerprint=resolved.fingerprint, device=device)  # fmt: skip
