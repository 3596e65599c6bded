"""The evaluation sets tunesift knows, as prompts: what decontamination compares a pool against (METHODS.md §23).

Each set is read in full (not only the items an evaluation samples), one :class:`EvalItem` per prompt: GSM8K
``question``, AlpacaEval ``instruction``, MMLU ``question``, BBH ``input``, HumanEval ``prompt``, MT-Bench's turns
and the prompts of Cherry's pairwise test sets. A FILE in any pool format gives its samples' user turns.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tunesift.data.evalhub import HUB
from tunesift.data.sample import Sample, Turn
from tunesift.errors import ConfigError, InputError, TunesiftError

#: A folder laid out as ``../shared/data`` is (``eval/``, ``reasoning/``), named once for every command.
DATA_DIR_ENV = "TUNESIFT_DATA_DIR"


@dataclass(frozen=True)
class Source:
    """Where an evaluation set comes from: the files tunesift reads (relative to an ``eval/`` folder), the public
    repository, commit and path they are copied from, and their licence."""

    files: tuple[str, ...]
    origin: str
    licence: str


_CHERRY = "tianyi-lab/Cherry_LLM @01fac8d : evaluation/test_data/"
_QWEN = "QwenLM/Qwen2.5-Math @a45202b : evaluation/data/"
#: Every evaluation set tunesift reads by name, and where a user gets its files (MANIFEST.md of the shared data).
SOURCES: dict[str, Source] = {
    "gsm8k": Source(("gsm8k_test.jsonl",), "openai/grade-school-math @3101c7d : grade_school_math/data/test.jsonl",
                    "MIT"),
    "alpaca_eval": Source(("alpaca_eval_805_gpt4_1106_preview.json",),
                          "tatsu-lab/alpaca_eval @cd543a1 : results/gpt4_1106_preview/model_outputs.json",
                          "CC BY-NC 4.0 (non-commercial)"),
    "mmlu": Source(("mmlu/test",), "hendrycks/test (MMLU) @0aff600 : data/test/*_test.csv", "MIT"),
    "bbh": Source(("bbh",), "suzgunmirac/BIG-Bench-Hard @9ee07bd : bbh/*.json, cot-prompts/*.txt (as bbh/cot-prompts)",
                  "MIT"),
    "humaneval": Source(("humaneval/HumanEval.jsonl.gz",), "openai/human-eval @6d43fb9 : data/HumanEval.jsonl.gz",
                        "MIT"),
    "mt_bench": Source(("mt_bench_questions.jsonl",),
                       "lm-sys/FastChat @0e6d3e4 : fastchat/llm_judge/data/mt_bench/question.jsonl", "Apache-2.0"),
    "vicuna": Source(("cherry_testsets/vicuna_test_set.jsonl",), _CHERRY + "vicuna_test_set.jsonl", "not stated"),
    "koala": Source(("cherry_testsets/koala_test_set.jsonl",), _CHERRY + "koala_test_set.jsonl", "not stated"),
    "wizardlm": Source(("cherry_testsets/wizardlm_test_set.jsonl",), _CHERRY + "wizardlm_test_set.jsonl",
                       "not stated"),
    "sinstruct": Source(("cherry_testsets/sinstruct_test_set.jsonl",), _CHERRY + "sinstruct_test_set.jsonl",
                        "not stated"),
    "lima": Source(("cherry_testsets/lima_test_set.jsonl",), _CHERRY + "lima_test_set.jsonl",
                   "CC BY-NC-SA (LIMA)"),
    # the reasoning sets sit in reasoning/ beside eval/ (METHODS.md §25.8: decontaminate every reasoning pool)
    "math500": Source(("../reasoning/math500.jsonl",), "GAIR-NLP/LIMO @2284c6a : eval/data/math/test.jsonl",
                      "MIT (MATH)"),
    "aime24": Source(("../reasoning/aime24.jsonl",), _QWEN + "aime24/test.jsonl", "competition problems (MAA)"),
    "amc23": Source(("../reasoning/amc23.jsonl",), _QWEN + "amc23/test.jsonl", "competition problems (MAA)"),
    "minerva": Source(("../reasoning/minerva_math.jsonl",), _QWEN + "minerva_math/test.jsonl", "as released"),
    "olympiadbench": Source(("../reasoning/olympiadbench.jsonl",), _QWEN + "olympiadbench/test.jsonl",
                            "as released"),
}  # fmt: skip


def _eval_folder(root: Path) -> Path:
    """A folder laid out as ``../shared/data`` (its ``eval/``, with ``reasoning/`` beside it), or an ``eval`` folder
    itself."""
    return root / "eval" if (root / "eval").is_dir() or (root / "reasoning").is_dir() else root


def places(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where evaluation sets are looked for, in order, as (what names the place, its eval folder): ``data_dir``
    alone when given (a folder the user names is the one meant); else ``$TUNESIFT_DATA_DIR``, ``../shared/data``
    beside the checkout (where tests and CI find it), and ``../shared/data`` beside the working folder."""
    if data_dir is not None:
        return [("--data-dir", _eval_folder(Path(data_dir)))]
    found: list[tuple[str, Path]] = []
    if os.environ.get(DATA_DIR_ENV):
        found.append((f"${DATA_DIR_ENV}", _eval_folder(Path(os.environ[DATA_DIR_ENV]))))
    found.append(("../shared/data beside the checkout", Path(__file__).resolve().parents[3].parent / "shared" /
                  "data" / "eval"))  # fmt: skip
    found.append(("../shared/data beside the working folder", Path("../shared/data/eval").resolve()))
    unique: dict[Path, tuple[str, Path]] = {}
    for label, folder in found:
        unique.setdefault(folder.resolve(), (label, folder))
    return list(unique.values())


def holds(folder: Path, name: str) -> bool:
    """Whether ``folder`` holds every file of the evaluation set ``name``."""
    return all((folder / f).exists() for f in SOURCES[name].files)


def set_folder(name: str, data_dir: str | Path | None = None, option: str = "against") -> Path:
    """The first place (:func:`places`) holding every file of the evaluation set ``name``; else, unless the user
    named a folder, the set from the Hugging Face Hub (its cache, then a download); else one :class:`ConfigError`
    naming the set, every place looked, why the Hub did not give it, and the command that fetches it."""
    looked = places(data_dir)
    for _, folder in looked:
        if holds(folder, name):
            return folder
    if data_dir is not None or name not in HUB:
        raise ConfigError(option, missing_message(name, looked))
    return from_hub(name, option, looked)


def from_hub(name: str, option: str = "against", looked: list[tuple[str, Path]] | None = None,
             download: bool | None = None) -> Path:  # fmt: skip
    """The eval folder of the set ``name`` laid out from its pinned Hub files: already laid out, else from the
    Hugging Face cache, else downloaded (``download``: unless ``HF_HUB_OFFLINE`` is set)."""
    from tunesift import hub
    from tunesift.data.evalhub import fetch, lay_out, pulled_root

    folder = pulled_root(name) / "eval"
    if holds(folder, name):
        return folder

    def count(folder: Path) -> int:
        return sum(1 for _ in READERS[name](folder))

    try:
        return lay_out(name, fetch(name, download=False), count)
    except ConfigError as cached:
        why = cached.message
    if download is None:
        download = not hub.offline()
    if download:
        try:
            return lay_out(name, fetch(name, download=True), count)
        except ConfigError as err:
            why = err.message
    else:
        why += "; HF_HUB_OFFLINE is set, so nothing was downloaded"
    raise ConfigError(option, missing_message(name, places() if looked is None else looked, why))


def missing_message(name: str, looked: list[tuple[str, Path]], hub_why: str | None = None) -> str:
    source = SOURCES[name]
    where = "; ".join(f"{label} {folder}" for label, folder in looked)
    needs = ", ".join(f[3:] if f.startswith("../") else f"eval/{f}" for f in source.files)
    unset = "" if os.environ.get(DATA_DIR_ENV) or looked[0][0] == "--data-dir" else f"; ${DATA_DIR_ENV} is unset"
    if name in HUB and looked[0][0] != "--data-dir":
        hub_part = f"; the Hub ({HUB[name].describe()}): {hub_why}" if hub_why else ""
        fetch = f"Run 'tunesift data pull {name}' with network access (or get it from {source.origin})"
    else:
        hub_part = ""
        fetch = f"Get it from {source.origin}" + ("" if name in HUB else " (no Hub source is pinned for it)")
    return (
        f"evaluation set {name!r} not found (needs {needs}): looked in {where}{unset}{hub_part}. {fetch} "
        f"(licence: {source.licence}); a folder of your own: give --data-dir FOLDER or set {DATA_DIR_ENV}=FOLDER "
        "(laid out as eval/ and reasoning/); 'tunesift data list' shows every set"
    )


def set_file(name: str, data_dir: str | Path | None = None, option: str = "against") -> Path:
    """The (first) file of the evaluation set ``name`` where :func:`set_folder` finds it."""
    return Path(os.path.normpath(set_folder(name, data_dir, option) / SOURCES[name].files[0]))


def eval_dir(data_dir: str | Path | None = None) -> Path:
    """The evaluation folder a suite reads every set from: the first place that holds any set, else the first
    place looked (and :func:`set_folder` then names what is missing)."""
    looked = places(data_dir)
    for _, folder in looked:
        if any(holds(folder, name) for name in SOURCES):
            return folder
    return looked[0][1]


@dataclass(frozen=True)
class EvalItem:
    """One evaluation prompt: its set, an id that finds it in the set's files, and the text."""

    set: str
    item: str
    text: str


def turn_text(turn: Turn) -> str:
    """A user turn as decontamination reads it: the instruction with its input (Alpaca's context) below it."""
    return f"{turn.user}\n{turn.input}" if turn.input else turn.user


def jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSONL file, gzipped or not; a bad line is an error naming the file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"not valid JSON: {err}", path=path, record=number) from None


def _gsm8k(folder: Path) -> Iterator[EvalItem]:
    for number, record in jsonl_records(folder / "gsm8k_test.jsonl"):
        yield EvalItem("gsm8k", f"test/{number}", record["question"])


def _alpaca_eval(folder: Path) -> Iterator[EvalItem]:
    records = json.loads((folder / "alpaca_eval_805_gpt4_1106_preview.json").read_text(encoding="utf-8"))
    for number, record in enumerate(records):
        yield EvalItem("alpaca_eval", str(number), record["instruction"])


def _mmlu(folder: Path) -> Iterator[EvalItem]:
    for path in sorted((folder / "mmlu" / "test").glob("*_test.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle)):
                yield EvalItem("mmlu", f"{path.stem.rsplit('_', 1)[0]}/{number}", row[0])


def _bbh(folder: Path) -> Iterator[EvalItem]:
    for path in sorted((folder / "bbh").glob("*.json")):
        for number, example in enumerate(json.loads(path.read_text(encoding="utf-8"))["examples"]):
            yield EvalItem("bbh", f"{path.stem}/{number}", example["input"])


def _humaneval(folder: Path) -> Iterator[EvalItem]:
    for _, record in jsonl_records(folder / "humaneval" / "HumanEval.jsonl.gz"):
        yield EvalItem("humaneval", record["task_id"], record["prompt"])


def _mt_bench(folder: Path) -> Iterator[EvalItem]:
    for _, record in jsonl_records(folder / "mt_bench_questions.jsonl"):
        for k, turn in enumerate(record["turns"], start=1):
            yield EvalItem("mt_bench", f"{record['question_id']}/turn{k}", turn)


#: Cherry's pairwise test sets: file and the field that holds the prompt (sinstruct adds its first input).
PAIRWISE = {"vicuna": ("vicuna_test_set.jsonl", "text"), "koala": ("koala_test_set.jsonl", "prompt"),
            "wizardlm": ("wizardlm_test_set.jsonl", "Instruction"),
            "sinstruct": ("sinstruct_test_set.jsonl", "instruction"),
            "lima": ("lima_test_set.jsonl", "conversations")}  # fmt: skip


def _pairwise(name: str) -> object:
    def read(folder: Path) -> Iterator[EvalItem]:
        file, key = PAIRWISE[name]
        for number, record in jsonl_records(folder / "cherry_testsets" / file):
            text = record[key] if isinstance(record[key], str) else str(record[key])
            extra = (record.get("instances") or [{}])[0].get("input", "") if name == "sinstruct" else ""
            yield EvalItem(name, str(number), f"{text}\n{extra}" if extra else text)

    return read


def _reasoning(name: str, text: str, key: str) -> object:
    def read(folder: Path) -> Iterator[EvalItem]:
        for number, record in jsonl_records(folder / SOURCES[name].files[0]):
            yield EvalItem(name, str(record.get(key, number)), record[text])

    return read


REASONING = {"math500": _reasoning("math500", "problem", "unique_id"), "aime24": _reasoning("aime24", "problem", "id"),
             "amc23": _reasoning("amc23", "problem", "id"), "minerva": _reasoning("minerva", "problem", "idx"),
             "olympiadbench": _reasoning("olympiadbench", "question", "id")}  # fmt: skip

READERS = {"gsm8k": _gsm8k, "alpaca_eval": _alpaca_eval, "mmlu": _mmlu, "bbh": _bbh, "humaneval": _humaneval,
           "mt_bench": _mt_bench, **{name: _pairwise(name) for name in PAIRWISE}, **REASONING}  # fmt: skip
#: Every evaluation set a name reaches.
EVAL_SETS = tuple(READERS)


def set_files(names: list[str] | tuple[str, ...]) -> list[str]:
    """The entries of ``names`` that are files of evaluation items, not sets tunesift reads by name: what a command
    lists among its inputs."""
    return [str(name) for name in names if str(name) not in READERS]


def read_eval_set(name: str | Path, folder: str | Path | None = None, option: str = "against") -> list[EvalItem]:
    """Every prompt of the evaluation set ``name`` (one of :data:`EVAL_SETS`, found by :func:`set_folder`; ``folder``
    a data folder the user names), or every user turn of a FILE in any pool format; a name that is neither, a set
    found nowhere, or a file that is empty or unreadable, is a :class:`ConfigError` naming ``option``."""
    if str(name) in READERS:
        folder = set_folder(str(name), folder, option)
        try:
            return list(READERS[str(name)](folder))
        except FileNotFoundError as err:
            raise ConfigError(option, f"evaluation set {name!r}: {err.filename} is missing") from None
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(option, f"evaluation set {name!r}: unreadable ({type(err).__name__}: {err})") from None
    path = Path(name)
    if not path.exists():
        raise ConfigError(option, f"no evaluation set or file {str(name)!r}: give one of {', '.join(EVAL_SETS)} or "
                          "a file of evaluation items (any pool format)")  # fmt: skip
    from tunesift.data.pools import read_pool

    try:
        samples = [s for s in read_pool(path) if isinstance(s, Sample)]
    except TunesiftError as err:
        raise ConfigError(option, str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    items = [EvalItem(str(path), f"{s.index}/turn{k}" if len(s.turns) > 1 else str(s.index), turn_text(t))
             for s in samples for k, t in enumerate(s.turns, start=1)]  # fmt: skip
    if not items:
        raise ConfigError(option, f"{path}: holds no evaluation item")
    return items
