"""``tunesift advise`` from end to end: check, plan, race (``compare`` underneath, cached), advise, write."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tunesift.eval.advise.advice import advice_markdown
from tunesift.eval.advise.arms import arms
from tunesift.eval.advise.config import AdviseConfig, check, compare_config, metric_of
from tunesift.eval.advise.plan import plan, plan_lines
from tunesift.eval.advise.rule import advise_from, stability


def advise(config: AdviseConfig, out: str | Path, *, dry_run: bool = False, measure: bool = True,
           device: str | None = None, progress: bool = False,
           log: Callable[[str], Any] = print) -> dict[str, Any]:  # fmt: skip
    """Check, plan, race and advise; writes ``out/advice.md``, ``advice.json`` and ``report.html``."""
    from tunesift.data.pools import read_pool
    from tunesift.eval.compare.config import validate
    from tunesift.eval.compare.run import compare
    from tunesift.eval.compare.view import html

    out = Path(out)
    pool = read_pool(config.pool)
    check(config, pool)
    if dry_run:  # the plan and its measured estimate, with nothing written: probes go to a scratch folder
        with tempfile.TemporaryDirectory(prefix="tunesift-advise-") as scratch:
            methods = arms(config, pool, Path(scratch))
            compare_cfg = compare_config(config, methods)
            validate(compare_cfg)
            found = plan(config, compare_cfg, out, measure=measure, scratch=Path(scratch))
        for line in plan_lines(config, compare_cfg, found):
            log(line)
        return {"plan": found}
    methods = arms(config, pool, out)
    compare_cfg = compare_config(config, methods)
    validate(compare_cfg)
    found = plan(config, compare_cfg, out, measure=measure)
    for line in plan_lines(config, compare_cfg, found):
        log(line)
    started = time.perf_counter()
    results = compare(compare_cfg, out, device=device, progress=progress, log=log)
    advice = advise_from(results, config, methods, len(pool), str(config.pool))
    settings = []
    for lr in config.learning_rates or []:  # the same race again under another learning rate: does it hold?
        log(f"stability: the race again at learning rate {lr:g}")
        again = replace(compare_cfg, train={**compare_cfg.train, "learning_rate": lr})
        other = compare(again, out, device=device, progress=progress, log=log)
        settings.append((f"learning rate {lr:g}", advise_from(other, config, methods, len(pool), str(config.pool))))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))  # the main setting's
    for k, a in enumerate(advice):
        if settings:
            a.stability = stability(a, [(name, other[k]) for name, other in settings], metric_of(config.target))
    seconds = time.perf_counter() - started
    summary = {"config": asdict(config), "plan": found, "advice": [a.as_dict() for a in advice],
               "wall_s": round(seconds, 1), "results": str(out / "results.json")}  # fmt: skip
    found = results.get("contamination") or {}
    contamination = {"records": found.get("dropped", 0), "kept_in_race": config.keep_contaminated,
                     "sets": found.get("sets", {})}  # fmt: skip
    summary["contamination"] = contamination
    (out / "advice.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "advice.md").write_text(advice_markdown(advice, config, seconds, contamination))
    (out / "report.html").write_text(html(results))
    for a in advice:
        log(f"budget {a.budget}: {a.recommendation or 'no method beat random'}: {a.reason}")
    if advice:
        log(advice[-1].command)
    return summary
