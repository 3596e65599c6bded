"""Evaluation sets from the Hugging Face Hub, each at a pinned revision, written into the files ``../shared/data``
holds, so that one reader per set serves every source and the items, their ids and every result are the same.

A set is fetched with huggingface_hub into its cache (``HF_HUB_CACHE``; nothing is fetched when ``HF_HUB_OFFLINE`` is
set and the files are not there), read with pyarrow (what ``datasets`` reads parquet with), checked against the
number of items the set holds, and laid out under ``$TUNESIFT_CACHE/evalsets/<set>@<revision>/`` as ``eval/`` and
``reasoning/``; a revision bump is a new folder, never a stale one.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError


def _rows(path: Path) -> list[dict[str, Any]]:
    """The records of a parquet, JSON list or JSONL file of a dataset repository."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _jsonl(rows: list[dict[str, Any]], target: Path, keys: tuple[str, ...]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if target.suffix == ".gz" else open
    with opener(target, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({k: row[k] for k in keys if k in row}, ensure_ascii=False) + "\n")


def _gsm8k(paths: list[Path], root: Path) -> None:
    _jsonl(_rows(paths[0]), root / "eval" / "gsm8k_test.jsonl", ("question", "answer"))


def _alpaca_eval(paths: list[Path], root: Path) -> None:
    rows = [{k: r[k] for k in ("dataset", "instruction", "output", "generator")} for r in _rows(paths[0])]
    (root / "eval").mkdir(parents=True, exist_ok=True)
    (root / "eval" / "alpaca_eval_805_gpt4_1106_preview.json").write_text(json.dumps(rows, ensure_ascii=False),
                                                                          encoding="utf-8")  # fmt: skip


def _mmlu(paths: list[Path], root: Path) -> None:
    """cais/mmlu's ``all`` config (subject, question, choices, answer 0-3) as hendrycks' headerless
    ``<subject>_<split>.csv`` files: question, A, B, C, D, answer letter, in the order the subject's rows come."""
    for path, split in zip(paths, ("test", "dev"), strict=True):
        by_subject: dict[str, list[list[str]]] = {}
        for row in _rows(path):
            by_subject.setdefault(row["subject"], []).append([row["question"], *row["choices"], "ABCD"[row["answer"]]])
        folder = root / "eval" / "mmlu" / split
        folder.mkdir(parents=True, exist_ok=True)
        for subject, lines in by_subject.items():
            with open(folder / f"{subject}_{split}.csv", "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows(lines)


def _humaneval(paths: list[Path], root: Path) -> None:
    keys = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
    _jsonl(_rows(paths[0]), root / "eval" / "humaneval" / "HumanEval.jsonl.gz", keys)


def _reasoning(file: str, keys: tuple[str, ...]) -> Callable[[list[Path], Path], None]:
    def write(paths: list[Path], root: Path) -> None:
        _jsonl(_rows(paths[0]), root / "reasoning" / file, keys)

    return write


@dataclass(frozen=True)
class HubSet:
    """An evaluation set on the Hub: the dataset repository, its configuration and split, the commit it is pinned
    to, the files of that commit tunesift reads, how many items they hold, and how they become the local files."""

    repo: str
    config: str
    split: str
    revision: str
    files: tuple[str, ...]
    items: int
    write: Callable[[list[Path], Path], None]

    def describe(self) -> str:
        return f"hf://datasets/{self.repo} ({self.config}/{self.split}) @{self.revision[:7]}"


#: The sets with a pinned Hub source (the revisions as pinned in public evaluation code; the others are on GitHub
#: only, and ``tunesift data list`` says where).
HUB: dict[str, HubSet] = {
    "gsm8k": HubSet("openai/gsm8k", "main", "test", "cc7b047b6e5bb11b4f1af84efc572db110a51b3c",
                    ("main/test-00000-of-00001.parquet",), 1319, _gsm8k),
    "alpaca_eval": HubSet("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline", "eval",
                          "2edc6fad8be6b14ea7230aabfd08188da6b8b814", ("alpaca_eval_gpt4_baseline.json",), 805,
                          _alpaca_eval),
    "mmlu": HubSet("cais/mmlu", "all", "test", "c30699e8356da336a370243923dbaf21066bb9fe",
                   ("all/test-00000-of-00001.parquet", "all/dev-00000-of-00001.parquet"), 14042, _mmlu),
    "humaneval": HubSet("openai/openai_humaneval", "openai_humaneval", "test",
                        "7dce6050a7d6d172f3cc5c32aa97f52fa1a2e544", ("openai_humaneval/test-00000-of-00001.parquet",),
                        164, _humaneval),
    "math500": HubSet("HuggingFaceH4/MATH-500", "default", "test", "ff5b20257d8185524591543f8ff5993951537bb8",
                      ("test.jsonl",), 500,
                      _reasoning("math500.jsonl", ("problem", "solution", "answer", "subject", "level", "unique_id"))),
    "aime24": HubSet("HuggingFaceH4/aime_2024", "default", "train", "2fe88a2f1091d5048c0f36abc874fb997b3dd99a",
                     ("data/train-00000-of-00001.parquet",), 30,
                     _reasoning("aime24.jsonl", ("id", "problem", "solution", "answer", "url"))),
}  # fmt: skip


def pulled_root(name: str) -> Path:
    """Where the set ``name`` is laid out once fetched (its ``eval/`` and ``reasoning/``)."""
    from tunesift.store import cache_root

    spec = HUB[name]
    return cache_root() / "evalsets" / f"{name}@{spec.revision[:12]}"


def fetch(name: str, download: bool) -> list[Path]:
    """The set's files in the Hugging Face cache, downloaded first when ``download`` (else only looked up); a
    :class:`ConfigError` says why they are not there."""
    from huggingface_hub import hf_hub_download

    from tunesift import hub

    spec = HUB[name]
    paths = []
    for file in spec.files:
        try:
            paths.append(Path(hf_hub_download(spec.repo, file, repo_type="dataset", revision=spec.revision,
                                              cache_dir=hub.cache_dir(), local_files_only=not download)))  # fmt: skip
        except Exception as err:  # not cached, offline, network, a file the revision lacks (several kinds)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            verb = "could not be downloaded" if download else "is not in the Hugging Face cache"
            raise ConfigError("against", f"{spec.repo}/{file} @{spec.revision[:7]} {verb}: {first}") from None
    return paths


def lay_out(name: str, paths: list[Path], count: Callable[[Path], int]) -> Path:
    """Write the local files of the set ``name`` from its fetched ``paths`` under :func:`pulled_root`, all at once
    (a temporary folder renamed into place), after ``count`` (the set's own reader) finds its number of items."""
    spec, target = HUB[name], pulled_root(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        (scratch / "eval").mkdir()  # a reasoning set's files are named from eval/ (../reasoning/...)
        spec.write(paths, scratch)
        found = count(scratch / "eval")
        if found != spec.items:
            raise ConfigError("against", f"{spec.describe()} gave {found} items where the set holds {spec.items}: "
                              "the revision's files are not the ones tunesift reads")  # fmt: skip
        if target.exists():  # a half-written copy from an older run: replaced whole
            shutil.rmtree(target)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target / "eval"
