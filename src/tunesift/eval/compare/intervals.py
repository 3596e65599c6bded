"""Whether a gap is real: each method against random (its seeds pooled) and full data, with paired-bootstrap 95 %
intervals over evaluation items, and the judge's winning rate against the full-data model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError
from tunesift.eval.compare.config import CompareConfig
from tunesift.eval.compare.keys import short_key, write_json
from tunesift.eval.compare.plan import Model


def intervals(results: dict[str, Any], n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Every method against random (its seeds pooled) and against full data, per budget and metric: the
    difference, its paired-bootstrap 95 % interval over evaluation items and the verdict."""
    from tunesift.eval.evaluation.suite import HIGHER_IS_BETTER

    between = Between()
    rows = results["models"]
    full = [r for r in rows if r["budget"] == "full"]
    out = []
    for budget in results["budgets"]:
        here = [r for r in rows if r["budget"] == budget["budget"]]
        methods = [a for a in dict.fromkeys(r["arm"] for r in here) if a != "random"]
        arms = {"random": [r for r in here if r["arm"] == "random"], "full": full}
        for method in methods:
            mine = [r for r in here if r["arm"] == method]
            for against, theirs in arms.items():
                if not theirs:
                    continue
                for metric in HIGHER_IS_BETTER:
                    if metric not in mine[0]:
                        continue
                    interval = between(mine, theirs, metric, n_boot, seed)
                    out.append({"budget": budget["budget"], "method": method, "against": against, "metric": metric,
                                **interval.as_dict()})  # fmt: skip
    return out


class Between:
    """The paired-bootstrap interval of one metric between two arms' models (rows of ``results["models"]``), over
    the evaluation items both were scored on; each model's per-item results are read once."""

    def __init__(self) -> None:
        self.loaded: dict[str, dict[str, Any]] = {}

    def scores(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["eval_file"] not in self.loaded:
            self.loaded[row["eval_file"]] = json.loads(Path(row["eval_file"]).read_text())
        return self.loaded[row["eval_file"]]

    def __call__(self, mine: list[dict[str, Any]], theirs: list[dict[str, Any]], metric: str, n_boot: int = 2000,
                 seed: int = 0) -> Any:  # fmt: skip
        from tunesift.eval.evaluation.stats import paired_bootstrap
        from tunesift.eval.evaluation.suite import HIGHER_IS_BETTER, per_item

        a = [per_item(self.scores(r), metric) for r in mine]
        b = [per_item(self.scores(r), metric) for r in theirs]
        den = a[0][1]
        if any(d != den for _, d in a + b):
            raise ConfigError("eval", f"{metric}: the models were scored on different items or tokens")
        return paired_bootstrap([x for x, _ in a], [x for x, _ in b], den, higher_is_better=HIGHER_IS_BETTER[metric],
                                n_boot=n_boot, seed=seed)  # fmt: skip


def winning_rates(config: CompareConfig, results: dict[str, Any], full_models: list[Model], out: Path,
             device: str | None, log: Callable[[str], Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Each method's first model (and the first random one) against the first full-data model, judged in
    both orders: the survey's winning rate, cached per pair, judge and test set."""
    from tunesift.eval.evaluation.pairwise_run import MAX_TOTAL_TOKENS, run_pairwise

    judge = dict(config.judge or {})
    testset, n = judge.get("testset", "vicuna"), judge.get("n")
    template = config.train_config(0).template
    full_run = full_models[0].run_dir

    def answers_cache(run_dir: Path) -> Path:
        key = short_key({"testset": testset, "n": n, "template": template, "max": MAX_TOTAL_TOKENS})
        return run_dir / f"answers-{key}.json"

    rows = []
    for row in results["models"]:
        first_random = row["arm"] == "random" and row["seed"] == config.random_seeds[0]
        if row["budget"] in ("full", "base") or not ((row["seed"] == 0 and row["arm"] != "random") or first_random):
            continue
        run_dir = Path(row["run"])
        path = run_dir / f"pairwise-{short_key({'vs': full_run.name, 'judge': judge, 'template': template})}.json"
        if path.exists():
            summary = json.loads(path.read_text())
        else:
            summary = run_pairwise(str(run_dir), str(full_run), testset=testset, n=n, judge_model=judge["model"],
                                   base_url=judge.get("base_url"),
                                   api_key_env=judge.get("api_key_env", "OPENAI_API_KEY"),
                                   device=device, template=template, cache_a=answers_cache(run_dir),
                                   cache_b=answers_cache(full_run))  # fmt: skip
            write_json(path, summary)
        log(f"[compare] {row['budget']} {row['arm']} vs full: winning score {summary['winning_score']:.3f}")
        rows.append({"budget": row["budget"], "method": row["arm"], "testset": testset,
                     **{k: summary[k] for k in ("n", "wins", "ties", "losses", "unjudged", "winning_score",
                                                 "wins_share", "ties_share", "losses_share")}})  # fmt: skip
    return rows
