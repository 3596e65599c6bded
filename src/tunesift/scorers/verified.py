"""``verified`` (METHODS.md §25.2): does a trace's own final answer equal the record's reference answer?

With math-verify (the optional extra ``tunesift[reasoning]``): ``gold = parse(reference)`` (default configs; if
nothing parses, ``$reference$``; still nothing: None, "no_gold"; a reference with no ``$``, as MATH's ``answer``
column holds, is tried as ``$reference$`` first, since ``parse`` alone reads ``7\\pi`` as 7 and ``4a-2`` as 4, and a
result that is only the input text back parsed nothing),
``pred = parse(final)`` with Open-R1's LaTeX extraction that prefers the last ``\\boxed{}`` (nothing: 0.0),
``score = float(verify(gold, pred))``; math-verify's own 5 s timeouts end a row as None ("timeout"), never as 0.0.
A final answer in GSM8K's form (``#### 72``, no ``\\boxed{}``) is read as its number. A reference of one letter
A-J is multiple choice: the last standalone letter in a ``\\boxed{}`` or after "answer".
Without math-verify, the fallback compares the last ``\\boxed{}`` with the reference after normalisation (spaces,
``\\left``/``\\right``, ``dfrac``, and units: ``\\text{...}``, degrees, ``\\%``, ``\\$``), numerically to 1e-6
where both are numbers or ``a/b``. The configuration names the verifier that ran (part of the cache key).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import Sample
from tunesift.data.schemas import gsm8k_answer, last_boxed, split_trace
from tunesift.errors import ConfigError
from tunesift.options import Option
from tunesift.scorers.base import Progress, Scorer, Unit

VERSION = 1
VERIFIERS = ("auto", "math-verify", "fallback")
_CHOICE = re.compile(r"^\(?([A-J])\)?\.?$")


def verifier_name(verifier: str) -> str:
    """What ``auto`` resolves to here: math-verify with its version where installed, else the fallback."""
    if verifier == "fallback" or (verifier == "auto" and importlib.util.find_spec("math_verify") is None):
        return "fallback"
    return f"math-verify {importlib.metadata.version('math-verify')}"


def _normalise(text: str) -> str:
    text = re.sub(r"\\text\{[^{}]*\}|\\mbox\{[^{}]*\}", "", text)  # units written out: 100\text{ square units}
    text = re.sub(r"\^\{?\\circ\}?|\\%|%|\\\$|\{,\}", "", text)  # degrees, percent, dollars, 10{,}000
    text = re.sub(r"\\left|\\right|\\!|\\,|\\;|\\ |\$|\s", "", text)
    text = text.replace("dfrac", "frac").replace("tfrac", "frac")
    return text.rstrip(".")


def _number(text: str) -> float | None:
    text = text.replace(",", "")
    frac = re.fullmatch(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}|(-?[\d.]+)/(-?[\d.]+)", text)
    try:
        if frac:
            num, den = (frac.group(1), frac.group(2)) if frac.group(1) is not None else (frac.group(3), frac.group(4))
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        return None


def fallback_verify(reference: str, final: str) -> float:
    """The fallback: the last ``\\boxed{}`` of ``final`` against ``reference``, normalised; 0.0 without a box."""
    boxed = last_boxed(final)
    if boxed is None:
        return 0.0
    gold, pred = _normalise(reference), _normalise(boxed)
    if gold == pred:
        return 1.0
    a, b = _number(gold), _number(pred)
    return float(a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(a)))


def choice_verify(letter: str, final: str) -> float:
    """Multiple choice: the last standalone letter A-J in a ``\\boxed{}`` or after "answer"; 0.0 without one."""
    boxed = last_boxed(final)
    found = _CHOICE.match(boxed.strip()) if boxed is not None else None
    if found is None:
        after = re.findall(r"(?i:answer)[^A-Za-z]{0,20}(?:is\s*)?[:\s]*\(?([A-J])\)?(?![A-Za-z])", final)
        return float(bool(after) and after[-1] == letter)
    return float(found.group(1) == letter)


def _expression(parsed: list[Any]) -> list[Any]:
    """math-verify's parse result where it holds a parsed expression; [] where it is only the input text back."""
    return parsed if any(not isinstance(x, str) for x in parsed) else []


class MathVerify:
    """math-verify's parse and verify, with Open-R1's extraction for the prediction."""

    def __init__(self) -> None:
        from math_verify import LatexExtractionConfig, parse, verify
        from math_verify.errors import TimeoutException
        from math_verify.parser import NormalizationConfig

        self.parse, self.verify, self.timeout = parse, verify, TimeoutException
        # Open-R1's, less equations=True (deprecated in math-verify 0.9: the parser handles equations itself)
        normalization = NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True, boxed="all",
                                            units=True)  # fmt: skip
        self.pred_config = [LatexExtractionConfig(normalization_config=normalization, boxed_match_priority=0,
                                                  try_extract_without_anchor=False)]  # fmt: skip

    def __call__(self, reference: str, final: str) -> tuple[float | None, str | None]:
        # a reference is an answer: read in math mode first where it carries no $ (MATH's answer column: parse
        # alone reads "7\\pi" as 7 and "4a-2" as 4); a result holding only its input text parsed nothing
        bare = "$" not in reference and "\\boxed" not in reference
        first, second = (f"${reference}$", reference) if bare else (reference, f"${reference}$")
        try:
            gold = _expression(self.parse(first, raise_on_error=True)) or _expression(
                self.parse(second, raise_on_error=True)
            )
        except self.timeout:
            return None, "timeout"
        except Exception:  # math-verify raises whatever its parsers raise: the reference cannot be read
            gold = []
        if not gold:
            return None, "no_gold"
        try:
            pred = self.parse(final, extraction_config=self.pred_config, extraction_mode="first_match",
                              raise_on_error=True)  # fmt: skip
            if not _expression(pred):
                return 0.0, None  # no answer to read: a wrong one (§25.2)
            return float(self.verify(gold, pred, raise_on_error=True)), None
        except self.timeout:
            return None, "timeout"
        except Exception as err:  # the verifier broke on this answer: no verdict, never a default 0.0
            return None, f"verifier_error: {type(err).__name__}: {err}"[:200]


_CHECKER: MathVerify | None = None


def _start_worker() -> None:
    global _CHECKER
    _CHECKER = MathVerify()


def _check(pair: tuple[str, str]) -> tuple[float | None, str | None]:
    assert _CHECKER is not None
    return _CHECKER(*pair)


class CheckPool:
    """math-verify in ``workers`` spawned processes (its timeouts are signals: each row runs in a worker's main
    thread), or in this process for one worker; :meth:`check` keeps the order of the pairs."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.local = MathVerify() if workers == 1 else None
        self.pool = None
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker)  # fmt: skip

    def check(self, pairs: list[tuple[str, str]]) -> list[tuple[float | None, str | None]]:
        if self.pool is None:
            assert self.local is not None
            return [self.local(*pair) for pair in pairs]
        return list(self.pool.map(_check, pairs, chunksize=max(1, len(pairs) // (4 * self.workers))))

    def __call__(self, reference: str, final: str) -> tuple[float | None, str | None]:
        return self.check([(reference, final)])[0]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


class Verified(Scorer):
    """Whether each trace's final answer equals its record's reference (math-verify, or the fallback)."""

    method = "verified"
    summary = (
        "Answer verification (reasoning pools): 1.0 when a trace's final answer equals the record's reference "
        "(math-verify where installed, else a boxed-answer fallback), 0.0 when not, null with a reason when there is "
        "no readable reference or the check timed out."
    )
    columns = ("verified",)
    default_rule = "top"
    options = (
        Option("verifier", str, "auto", "auto (math-verify where installed, else the fallback), math-verify or "
               "fallback: the manifest says which ran."),
        Option("workers", int | None, None, "Processes math-verify runs in (default: every core; 1: this process).",
               at_least=1),
    )  # fmt: skip

    name = "verified"
    result_fields = ("verified", "skip_reason")
    chunk_size = 2048

    def __init__(self, verifier: str = "auto", workers: int | None = None) -> None:
        self.verifier = verifier_name(verifier)
        self.workers = workers or os.cpu_count() or 1

    @classmethod
    def build(cls, pool: Any, executor: Any, *, verifier: str, workers: int | None) -> Verified:
        if verifier not in VERIFIERS:
            raise ConfigError("verifier", f"choose one of {', '.join(VERIFIERS)}, got {verifier!r}")
        if verifier == "math-verify" and importlib.util.find_spec("math_verify") is None:
            raise ConfigError("verifier", "math-verify is not installed: pip install 'tunesift[reasoning]' (or "
                              "--verifier fallback)")  # fmt: skip
        return cls(verifier, workers)

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": VERSION, "verifier": self.verifier}

    def units(self, sample: Sample) -> list[Unit]:
        """The result depends on the reference too (a record's texts may stay while its reference changes)."""
        key = hashlib.sha256(f"{sample.content_id}\n{sample.reference}".encode()).hexdigest()[:32]
        return [Unit(key, sample)]

    def load_backend(self, device: str | None = None) -> Any:
        return fallback_verify if self.verifier == "fallback" else CheckPool(self.workers)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        rows = self.verify_all([(unit.payload.reference, unit.payload.output) for unit in units], backend)
        if on_progress is not None:
            on_progress(len(units))
        return rows

    def verify_all(self, items: Sequence[tuple[str | None, str]], backend: Any) -> list[dict[str, Any]]:
        """:meth:`verify` of each (reference, output), in order; what math-verify must check goes to the backend at
        once (its worker processes)."""
        rows = [self.verify(reference, output, None) for reference, output in items]
        waiting = [k for k, row in enumerate(rows) if "pair" in row]
        if waiting:
            checked = backend.check([rows[k].pop("pair") for k in waiting]) if isinstance(backend, CheckPool) else [
                backend(*rows[k].pop("pair")) for k in waiting]  # fmt: skip
            for k, (score, reason) in zip(waiting, checked, strict=True):
                rows[k] = {"verified": score, "skip_reason": reason}
        return rows

    def one(self, sample: Sample, backend: Any) -> dict[str, Any]:
        """A row's result; with no ``backend`` a row math-verify must check is ``{"pair": (reference, final)}``."""
        return self.verify(sample.reference, sample.output, backend)

    def verify(self, reference: str | None, output: str, backend: Any) -> dict[str, Any]:
        """Whether ``output``'s final answer equals ``reference``, as :meth:`one` says it for a sample (``pass-rate``
        asks it of each of a record's sampled solutions)."""
        reference = (reference or "").strip()
        if not reference:
            return {"verified": None, "skip_reason": "no_reference"}
        trace = split_trace(output)
        if trace.form == "unclosed":
            return {"verified": None, "skip_reason": "unclosed_think"}
        if not trace.final.strip():
            return {"verified": None, "skip_reason": "empty_final"}
        letter = _CHOICE.match(reference)
        if letter:
            return {"verified": choice_verify(letter.group(1), trace.final), "skip_reason": None}
        final = trace.final
        if last_boxed(final) is None and gsm8k_answer(final) is not None:  # GSM8K's form: "... #### 72"
            final = f"$\\boxed{{{gsm8k_answer(final)}}}$"
        if self.verifier == "fallback":
            return {"verified": fallback_verify(reference, final), "skip_reason": None}
        if backend is None:
            return {"pair": (reference, final)}
        score, reason = backend(reference, final)
        return {"verified": score, "skip_reason": reason}

    def describe(self) -> str:
        return f"verified ({self.verifier})"
