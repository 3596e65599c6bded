"""Does a distilled judge agree with its teacher on records neither the head nor its folds ever saw?

``distill`` labels ``--n-label`` records of a real pool with a teacher, checks its head out of fold, and scores the
pool. This script then asks the teacher about ``--held-out`` further records (a seeded sample of those it did not
label) and measures the head against those verdicts with the same figures (METHODS.md §22), beside the seconds
each stage took. Default: the packaged AlpaGasus judge (SmolLM2-135M-Instruct read through its probabilities of
the scores) on ``alpaca_random_9k.json``::

    python benchmarks/distill_heldout.py [--pool ../shared/data/instruct/alpaca_random_9k.json] [--n-label 2000]

The store is a fresh temporary folder unless ``--store`` names one, so the teacher's seconds are its own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tunesift import api
from tunesift.data.pools import read_pool
from tunesift.data.sample import Sample
from tunesift.scorers.heldout import metrics

HERE = Path(__file__).resolve().parent
POOL = HERE.parent.parent / "shared" / "data" / "instruct" / "alpaca_random_9k.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=Path, default=POOL)
    parser.add_argument("--teacher", default="alpagasus")
    parser.add_argument("--n-label", type=int, default=2000)
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-threshold", type=float, default=None)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument(
        "--no-force",
        action="store_true",
        help="Stop where the gate does (default: measure anyway, and say whether the gate would have refused).",
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    store = args.store or Path(tempfile.mkdtemp(prefix="distill-bench-"))
    pool = read_pool(args.pool)

    started = time.perf_counter()
    table = api.score("distill", pool, teacher=args.teacher, n_label=args.n_label, seed=args.seed,
                      teacher_threshold=args.teacher_threshold, force=not args.no_force, store_dir=store)  # fmt: skip
    distill_s = time.perf_counter() - started
    config = table.config
    unlabelled = [r["index"] for r in table.rows if r["teacher"] is None and r["distill"] is not None]
    held = sorted(np.random.default_rng(args.seed + 1).permutation(unlabelled)[: args.held_out].tolist())
    wanted = set(held)
    part = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump([s.record for s in pool if isinstance(s, Sample) and s.index in wanted], part)
    part.close()
    started = time.perf_counter()
    teacher = api.score(args.teacher, part.name, store_dir=store)
    held_s = time.perf_counter() - started
    column = teacher.score_field
    pairs = [(table.rows[i]["distill"], r[column]) for i, r in zip(held, teacher.rows, strict=True)
             if r[column] is not None]  # fmt: skip
    pred = np.array([p for p, _ in pairs])
    y = np.array([t for _, t in pairs])
    threshold = config["evaluation"]["at_threshold"]["threshold"]
    figures = metrics(y, pred, threshold, config["head"])
    oof = config["evaluation"]

    def row(name: str, m: dict) -> str:
        b = m.get("at_threshold", {})
        tops = "  ".join(f"{k} {v['topk_precision']:.3f}/{v['random']:.3f}" for k, v in m["top_k"].items())
        auc, f1 = b.get("roc_auc"), b.get("f1")
        auc_text = "n/a" if auc is None else f"{auc:.3f}"
        f1_text = "n/a" if f1 is None else f"{f1:.3f}"
        return f"| {name} | {m['n']} | {m['spearman']:.3f} | {m['pearson']:.3f} | {auc_text} | {f1_text} | {tops} |"

    cost = config["cost"]
    print(f"pool {args.pool.name}: {len(pool)} records; teacher {args.teacher}; threshold {threshold:.3f} "
          f"({oof['threshold_source']}); head {config['head']} alpha {config['head_fit']['alpha']:g}")  # fmt: skip
    print("| where | n | Spearman | Pearson | ROC-AUC | F1 | top-k precision / random (5%, 10%, 20%) |")
    print("|---|---|---|---|---|---|---|")
    print(row("out of fold (labelled)", oof))
    print(row("held out (teacher asked afterwards)", figures))
    print()
    gate = "refuse (under 0.3)" if oof["spearman"] < 0.3 else "warn (under 0.5)" if oof["spearman"] < 0.5 else "pass"
    print(f"the gate on the out-of-fold Spearman: {gate}")
    print("learning curve (labelled: out-of-fold Spearman): "
          + ", ".join(f"{c['labelled']}: {c['spearman']:.3f}" for c in oof["learning_curve"]))  # fmt: skip
    print(f"MiniLM truncated {oof['truncated_texts']['truncated']} of {oof['truncated_texts']['texts']} labelled texts")
    print()
    print("| stage | seconds |")
    print("|---|---|")
    for stage, seconds in cost["seconds"].items():
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| distill, all stages | {cost['distilled_seconds']:.1f} (wall {distill_s:.1f}) |")
    print(f"| teacher on the {len(held)} held-out records | {held_s:.1f} |")
    projected = cost["teacher_projected_seconds_for_pool"]
    projected_text = "n/a (every teacher unit came from the store)" if projected is None else f"{projected:.0f}"
    print(f"| teacher on the whole pool, projected | {projected_text} |")
    print(f"teacher units computed {cost['teacher_units_computed']}, reused {cost['teacher_units_reused']}")
    if args.json:
        args.json.write_text(json.dumps({"config": config, "held_out": figures, "held_out_s": held_s,
                                         "distill_s": distill_s}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
