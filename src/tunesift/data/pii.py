"""Personal data and secrets in text: what the ``pii`` scorer counts and ``tunesift redact`` replaces.

The patterns follow datatrove's ``PIIFormatter`` (e-mail, IPv4) and data-juicer's ``clean_*`` mappers, plus phone
numbers, payment card numbers (13-19 digits that pass the Luhn check) and secret-looking keys (cloud and API key
formats, private key blocks, ``password = ...`` assignments). Each kind is replaced by a placeholder that names it.

Instruction and reasoning pools are full of numbers, so a run of digits is a phone number only with a phone's form
or context: a ``+`` country code, a parenthesised area code, the 3-3-4 grouping joined by ``-`` or ``.``, or a word
such as "call", "phone" or "tel" just before it ("Multiply 123 456 789 by 2" is arithmetic). A dotted quad is an IP
address unless a version or section word precedes it, and, without a network word nearby or a port after it, only
where two of its parts have two digits or more ("version 1.2.3.4" and "1.2.3.4" are not; "192.168.1.1" is).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

_IPV4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
PATTERNS: dict[str, re.Pattern[str]] = {
    "secret": re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
        r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
        r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}\b"  # GitHub tokens
        r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b"  # OpenAI / Anthropic style keys
        r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"  # Slack
        r"|\bAIza[0-9A-Za-z_-]{35}\b"  # Google API key
        r"|(?i:\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|password|passwd)\b\s*[:=]\s*"
        r"['\"]?[^\s'\"]{8,}['\"]?)"
    ),
    "email": re.compile(r"\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    "ip_address": re.compile(rf"(?<![\w.]){_IPV4}(?:\.{_IPV4}){{3}}(?!\w|\.\d)"),
    # issuers' first digits 2-6; written whole or in the issuers' groups (4-4-4-4..., Amex 4-6-5), one separator
    "card_number": re.compile(
        r"(?<![\d.,-])(?:[2-6]\d{12,18}|[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{1,7}|3\d{3}([ -])\d{6}\2\d{5})(?![\d-])"
    ),
    "phone": re.compile(
        r"(?<![\w+])(?<!\d[\s.-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}"
        r"(?![\w])(?![\s.-]\d)"  # not a piece of a longer run of digits (a card that failed Luhn, a date)
    ),
}
#: A phone number's own form: a country code, a parenthesised area code, or 3-3-4 joined by one '-' or '.'.
PHONE_FORM = re.compile(r"\+|\(|\d{3}([-.])\d{3}\1\d{4}$")
#: Words that make a run of digits just after them a phone number.
PHONE_WORDS = re.compile(
    r"(?i:\b(?:call(?:ed|ing)?|phone|telephone|tel|mobile|cell|fax|dial|whatsapp|sms|text me|ring|hotline|contact"
    r"|ph|mob)\b)[^\d\n]{0,24}$"
)
#: Words before a dotted quad that make it a version or a section number, not an address.
NOT_AN_ADDRESS = re.compile(r"(?i:\b(?:version|ver|release|rev|revision|build|section|chapter|step|figure|table"
                            r"|rule|article|clause|v)\.?)\s*$|§\s*$")  # fmt: skip
#: Words near a dotted quad that make it an address.
ADDRESS_WORDS = re.compile(
    r"(?i:\b(?:ip|ips|ipv4|address(?:es)?|host(?:name)?s?|servers?|router|gateway|ping|ssh|dns|subnet|netmask|proxy"
    r"|connect(?:ed|ion)?|port|http|https|tcp|udp|localhost|network|lan|wan|client|firewall|curl|nginx|dhcp|vpn"
    r"|route|socket|bind|listen)\b)"
)
#: The order matters: a card number is not also a phone number, a key is not also an e-mail.
KINDS = tuple(PATTERNS)
#: A cheap necessary condition per kind, tried first: most texts hold no '@', no dotted digits, no long digit run.
MAYBE: dict[str, Callable[[str], bool]] = {
    "secret": re.compile(
        r"-----BEGIN|\b(?:AKIA|ASIA)[0-9A-Z]|\bgh[pousr]_|github_pat_|\bsk-|\bxox[abprs]-|AIza"
        r"|(?i:api[_-]?key|secret|token|passw)"
    ).search,
    "email": lambda text: "@" in text,
    "ip_address": re.compile(r"\d\.\d").search,
    "card_number": re.compile(r"\d[\d\s().+-]{7,}\d").search,
    "phone": re.compile(r"\d[\d\s().+-]{7,}\d").search,
}
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}


def luhn(digits: str) -> bool:
    """The Luhn checksum of a payment card number (digits only)."""
    total = 0
    for k, d in enumerate(int(c) for c in reversed(digits)):
        if k % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def _valid(kind: str, match: re.Match[str]) -> bool:
    """Whether a pattern's match is that kind of personal data, by its digits and, for phone numbers and IP
    addresses, by their form or the words around them (the module's docstring)."""
    text = match.group(0)
    if kind == "card_number":
        digits = re.sub(r"\D", "", text)
        return 13 <= len(digits) <= 19 and luhn(digits)
    if kind == "phone":
        if not 9 <= len(re.sub(r"\D", "", text)) <= 15:
            return False
        before = match.string[max(0, match.start() - 40) : match.start()]
        return bool(PHONE_FORM.match(text)) or bool(PHONE_WORDS.search(before))
    if kind == "ip_address":
        before = match.string[max(0, match.start() - 40) : match.start()]
        if NOT_AN_ADDRESS.search(before):
            return False
        after = match.string[match.end() : match.end() + 40]
        if ADDRESS_WORDS.search(before) or ADDRESS_WORDS.search(after) or re.match(r":\d{1,5}\b", after):
            return True
        return sum(len(part) >= 2 for part in text.split(".")) >= 2
    if kind == "secret" and re.match(r"(?i:api|secret|access|auth|passw)", text):
        # an assignment's value, not code: "password = generate_password(8)", "Password = password;"
        value = re.split(r"[:=]", text, maxsplit=1)[1].strip().strip("'\"")
        return not re.search(r"[()<>;]", value) and value.lower() not in {"password", "passwd", "secret"}
    return True


def _scan(text: str, kinds: tuple[str, ...], replace: Callable[[str, str], str] | None) -> tuple[str, Counter]:
    found: Counter = Counter()
    for kind in kinds:
        if not MAYBE[kind](text):
            continue

        def sub(match: re.Match[str], kind: str = kind) -> str:
            if not _valid(kind, match):
                return match.group(0)
            found[kind] += 1
            return replace(kind, match.group(0)) if replace else PLACEHOLDERS[kind]

        text = PATTERNS[kind].sub(sub, text)  # a match is replaced before the next kind looks at the text
    return text, found


def find_pii(text: str, kinds: tuple[str, ...] = KINDS) -> Counter:
    """How many of each kind ``text`` holds (each match counted once, under the first kind that takes it)."""
    return _scan(text, kinds, None)[1]


def redact(text: str, kinds: tuple[str, ...] = KINDS) -> tuple[str, Counter]:
    """``text`` with every match replaced by its kind's placeholder (``<EMAIL>``), and the counts."""
    return _scan(text, kinds, None)


def redact_record(record: Any, kinds: tuple[str, ...] = KINDS) -> tuple[Any, Counter]:
    """``record`` with every string in it redacted (keys and structure as they were), and the counts."""
    found: Counter = Counter()

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            text, counts = redact(value, kinds)
            found.update(counts)
            return text
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(record), found
