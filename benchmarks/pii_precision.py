"""Precision and recall of ``pii`` / ``redact`` (:mod:`tunesift.data.pii`) on a labelled set built here.

Negatives: real texts with no personal data planted, the pools and sets users bring (Alpaca 9k, Code Alpaca 2k,
Dolly, LIMA, GSM8K train and test, MATH500, Minerva, OlympiadBench: questions and solutions). Every detection in them
is printed, so each can be read: some are personal data the pool really holds (an example e-mail address), the rest
are false positives. Positives: personal data of each kind planted in a sentence inside real Alpaca texts, in the
forms people write it, each with a known span; a planted item counts as found when its kind's placeholder replaces
it. Seeded, so the figures repeat. Run: ``python benchmarks/pii_precision.py [--show 40]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

from tunesift.data.pii import KINDS, PLACEHOLDERS, find_pii, redact

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _texts(path: Path, fields: tuple[str, ...]) -> list[str]:
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        records = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for record in records:
        for field in fields:
            value = record.get(field)
            if isinstance(value, list):
                out += [v for v in value if isinstance(v, str)]
            elif isinstance(value, str) and value:
                out.append(value)
    return out


def negatives() -> dict[str, list[str]]:
    """Real texts, by source."""
    alpaca = ("instruction", "input", "output")
    return {
        "alpaca_9k": _texts(SHARED / "instruct" / "alpaca_random_9k.json", alpaca),
        "code_alpaca_2k": _texts(SHARED / "instruct" / "code_alpaca_2k.json", alpaca),
        "dolly_3k": _texts(SHARED / "instruct" / "dolly_alpagasus_3k.json", alpaca),
        "lima": _texts(SHARED / "instruct" / "lima_train.json", ("conversations",)),
        "gsm8k": _texts(SHARED / "eval" / "gsm8k_train.jsonl", ("question", "answer"))
        + _texts(SHARED / "eval" / "gsm8k_test.jsonl", ("question", "answer")),
        "math500": _texts(SHARED / "reasoning" / "math500.jsonl", ("problem", "solution")),
        "minerva": _texts(SHARED / "reasoning" / "minerva_math.jsonl", ("problem", "solution", "question")),
        "olympiadbench": _texts(SHARED / "reasoning" / "olympiadbench.jsonl", ("problem", "question", "solution")),
    }


def _luhn_card(rng: random.Random, prefix: str, length: int) -> str:
    digits = [int(c) for c in prefix] + [rng.randrange(10) for _ in range(length - len(prefix) - 1)]
    total = 0
    for k, d in enumerate(reversed(digits)):
        if k % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    digits.append((10 - total % 10) % 10)
    text = "".join(map(str, digits))
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def planted(rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, form, sentence) for one planted item of every form."""
    d = lambda n: "".join(str(rng.randrange(10)) for _ in range(n))  # noqa: E731
    a3, b3, c4 = str(rng.randrange(200, 999)), d(3), d(4)
    user = rng.choice(["jane.doe", "m.khan", "li_wei", "carlos+news", "a.smith"])
    host = rng.choice(["example.com", "mail.example.org", "uni-bonn.de", "corp.example.co.uk"])
    octets = [str(rng.randrange(1, 255)) for _ in range(4)]
    return [
        ("email", "plain", f"Write to {user}@{host} for details."),
        ("email", "bare", f"{user}@{host}"),
        ("phone", "+country", f"Our office: +44 20 {d(4)} {d(4)}."),
        ("phone", "+1 dashes", f"Reach us on +1-{a3}-{b3}-{c4} any time."),
        ("phone", "(area)", f"The clinic's number is ({a3}) {b3}-{c4}."),
        ("phone", "3-3-4 dashes", f"Leave a message at {a3}-{b3}-{c4} after six."),
        ("phone", "3.3.4 dots", f"Fax it to {a3}.{b3}.{c4} please."),
        ("phone", "call + spaces", f"Call me at {a3} {b3} {c4} tomorrow."),
        ("phone", "tel + national", f"Tel: 0{d(2)} {d(4)} {d(4)}"),
        ("phone", "bare spaces", f"My number is {a3} {b3} {c4}."),  # no phone word, no phone form: missed by design
        ("ip_address", "private", f"The printer sits at 192.168.{octets[2]}.{octets[3]} on the LAN."),
        ("ip_address", "server word", f"Point the client to server {'.'.join(octets)}."),
        ("ip_address", "with port", f"Open http://{'.'.join(octets)}:8080/status in a browser."),
        ("ip_address", "bare short", f"It answered from {octets[0][:1]}.{octets[1][:1]}.8.8 at once."),  # missed
        ("card_number", "visa", f"Card: {_luhn_card(rng, '4', 16)}, expires 04/29."),
        ("card_number", "mastercard", f"Charge {_luhn_card(rng, '52', 16)} for the order."),
        (
            "secret",
            "aws",
            f"aws_access_key_id = AKIA{''.join(rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567') for _ in range(16))}",
        ),
        ("secret", "password", f"password: {d(3)}Tr0ub4dor{d(2)}"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=40, help="Detections in the negatives to print.")
    parser.add_argument("--copies", type=int, default=100, help="Planted items of each form.")
    args = parser.parse_args()
    if not SHARED.exists():
        print(f"needs {SHARED}", file=sys.stderr)
        return 2
    rng = random.Random(0)
    hosts = negatives()["alpaca_9k"]

    # positives: each planted sentence inside a real text, found when its kind's placeholder replaces it
    found_by_form: dict[tuple[str, str], list[int]] = {}
    for _ in range(args.copies):
        for kind, form, sentence in planted(rng):
            text = f"{rng.choice(hosts)}\n{sentence}\n{rng.choice(hosts)}"
            before = find_pii(text.replace(sentence, ""))
            hit = PLACEHOLDERS[kind] in redact(sentence)[0] and find_pii(text)[kind] > before[kind]
            found_by_form.setdefault((kind, form), []).append(int(hit))
    planted_found = Counter()
    planted_n = Counter()
    print("| kind | form | planted | found | recall |")
    print("|---|---|---|---|---|")
    for (kind, form), hits in found_by_form.items():
        planted_found[kind] += sum(hits)
        planted_n[kind] += len(hits)
        print(f"| {kind} | {form} | {len(hits)} | {sum(hits)} | {sum(hits) / len(hits):.2f} |")

    # negatives: every detection in real texts
    false_pos = Counter()
    examples: list[tuple[str, str, str]] = []
    n_texts = 0
    for source, texts in negatives().items():
        for text in texts:
            n_texts += 1
            counts = find_pii(text)
            for kind, n in counts.items():
                false_pos[kind] += n
                redacted, _ = redact(text, (kind,))
                at = redacted.find(PLACEHOLDERS[kind])
                examples.append((source, kind, text[max(0, at - 40) : at + 60].replace("\n", " ")))
    print(f"\nnegatives: {n_texts:,} real texts ({', '.join(negatives())})")
    print("\n| kind | planted | recall | detections in real texts | precision |")
    print("|---|---|---|---|---|")
    for kind in KINDS:
        tp = planted_found[kind]
        fp = false_pos[kind]
        precision = tp / (tp + fp) if tp + fp else float("nan")
        print(f"| {kind} | {planted_n[kind]} | {tp / max(1, planted_n[kind]):.3f} | {fp} | {precision:.3f} |")
    print(f"\ndetections in real texts (first {args.show}; read each: personal data the pool holds, or not):")
    for source, kind, context in examples[: args.show]:
        print(f"- {source} {kind}: ...{context}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
