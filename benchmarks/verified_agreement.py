"""``verified`` against the Qwen2.5-Math grader on real traces (METHODS.md §25.7): 100 MATH problems x 8 sampled
chains of thought in ``reasoning/math_cot_100.jsonl``, each with the grader's verdict (``score``). Prints the agreement
of math-verify and of the fallback with the grader, the confusion counts, and every disagreement (problem, the
reference, the trace's last boxed answer, both verdicts), so each can be read. Also the time per trace.

Run: ``python benchmarks/verified_agreement.py [--show 40]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from tunesift.data.sample import Sample, Turn
from tunesift.data.schemas import last_boxed
from tunesift.scorers.verified import Verified

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reasoning" / "math_cot_100.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=40, help="Disagreements to print per verifier.")
    args = parser.parse_args()
    records = [json.loads(line) for line in DATA.read_text().splitlines()]
    traces = [(r["idx"], k, Sample(r["idx"], (Turn(r["question"], text),), reference=r["answer"]), bool(r["score"][k]))
              for r in records for k, text in enumerate(r["code"])]  # fmt: skip
    print(f"{len(traces)} traces of {len(records)} problems; grader says correct: {sum(t[3] for t in traces)}")
    print("\n| verifier | agree | disagree | null (reason) | s/trace |")
    print("|---|---|---|---|---|")
    found: dict[str, list] = {}
    for verifier in ("math-verify", "fallback"):
        scorer = Verified(verifier, workers=1)
        backend = scorer.load_backend()
        start = time.perf_counter()
        rows = [scorer.one(sample, backend) for _, _, sample, _ in traces]
        seconds = (time.perf_counter() - start) / len(traces)
        confusion = Counter()
        wrong = []
        for (idx, k, sample, grader), row in zip(traces, rows, strict=True):
            if row["verified"] is None:
                confusion[f"null:{row['skip_reason']}"] += 1
                continue
            ours = row["verified"] == 1.0
            confusion[(grader, ours)] += 1
            if ours != grader:
                wrong.append((idx, k, sample.reference, last_boxed(sample.output), grader, ours))
        agree = confusion[(True, True)] + confusion[(False, False)]
        nulls = {k: v for k, v in confusion.items() if isinstance(k, str)}
        print(
            f"| {scorer.verifier} | {agree} | {len(wrong)} (grader yes/ours no {confusion[(True, False)]}, grader "
            f"no/ours yes {confusion[(False, True)]}) | {sum(nulls.values())} {nulls or ''} | {seconds:.4f} |"
        )
        found[scorer.verifier] = wrong
    for name, wrong in found.items():
        print(
            f"\n{name}: every disagreement (problem idx, trace, reference, last boxed, grader, ours), first "
            f"{args.show}:"
        )
        for row in wrong[: args.show]:
            print(f"- {row[0]}#{row[1]}: ref {row[2]!r} boxed {row[3]!r} grader {row[4]} ours {row[5]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
