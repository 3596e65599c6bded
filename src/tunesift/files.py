"""Every file a command reads and every file it will write, known in one place and checked before any work.

A command (CLI or API) lists what it reads (the pool, query sets, anchors, a recipe, a rule, scores,
selections, ``dataset_info.json``) and, per output option, what that option writes (the file and everything
beside it: manifest, rejects, configuration sidecar, a LLaMA-Factory entry). :meth:`Files.check` then refuses,
naming both, an output that is one of the inputs, two outputs on one file, an output folder that is a file, a
manifest that belongs to another subset, and a ``dataset_info.json`` that cannot take the subset's entry.
Nothing is written or computed before it passes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError, InputError
from tunesift.options import Option


def scores_config_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".config.json")


def manifest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".manifest.json")


def rejects_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".rejects.jsonl")


def dataset_info_path(path: str | Path) -> Path:
    """LLaMA-Factory's index of datasets, beside a subset written with ``--out-format llamafactory``."""
    return Path(path).parent / "dataset_info.json"


#: What each kind of output writes beside its own path.
_BESIDE = {
    "subset": lambda p: [manifest_path(p), rejects_path(p)],
    "scores": lambda p: [scores_config_path(p), rejects_path(p)],
    "report": lambda p: [p.with_suffix(".json")],
}
#: What each kind writes beside its own path, as an error names it.
_BESIDE_NAMES = {"subset": "manifest", "scores": "configuration", "report": "statistics (.json)"}
#: Outputs that are folders: the path must not be a file.
FOLDER_KINDS = ("folder", "subset-folder")


def _hf_folder(path: Path) -> bool:
    """A Hugging Face dataset folder (``save_to_disk``), which an hf subset replaces as a whole."""
    return (path / "state.json").exists() or (path / "dataset_dict.json").exists()


def files_written(kind: str, path: str | Path, out_format: str | None = None) -> list[Path]:
    """Every file an output option writes: ``path`` (first) and what goes beside it."""
    path = Path(path)
    extra = [dataset_info_path(path)] if kind == "subset" and out_format == "llamafactory" else []
    return [path, *_BESIDE.get(kind, lambda p: [])(path), *extra]


def same_file(a: Path, b: Path) -> bool:
    try:
        return (a.exists() and b.exists() and os.path.samefile(a, b)) or a.resolve() == b.resolve()
    except OSError:
        return False


def option_inputs(options: Iterable[Option], values: dict[str, Any]) -> dict[str, Any]:
    """The files named by ``values`` of the declared ``options`` that read one, labelled by their flag."""
    return {f"--{o.key}": values[o.name] for o in options if o.reads_file and values.get(o.name) is not None}


def _paths(value: Any) -> list[Path]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [Path(v) for v in values if isinstance(v, (str, Path)) and not str(v).startswith("hf:")]


@dataclass
class Files:
    """What one command reads (``reads``: a label and a path) and writes (``writes``: an option, its kind and
    the files it writes), checked by :meth:`check` before any work."""

    reads: list[tuple[str, Path]] = field(default_factory=list)
    writes: list[tuple[str, str, list[Path]]] = field(default_factory=list)

    def read(self, label: str, value: Any) -> Files:
        """``value``: a path, a list of paths, or None (nothing read); an ``hf:`` dataset is no local file."""
        self.reads.extend((label, p) for p in _paths(value))
        return self

    def read_all(self, inputs: dict[str, Any]) -> Files:
        for label, value in inputs.items():
            self.read(label, value)
        return self

    def write(self, option: str, value: str | Path | None, kind: str = "file", out_format: str | None = None) -> Files:
        """``option`` (as the user spells it, ``out``) writes ``value`` as ``kind``: subset, scores, report (an HTML
        report, its statistics beside it), file, parquet or folder; a subset with ``out_format`` hf is a folder."""
        if value is not None:
            written = files_written(kind, value, out_format)  # an hf subset: a folder, with its manifest beside it
            self.writes.append((option, "subset-folder" if kind == "subset" and out_format == "hf" else kind, written))
        return self

    def check(self) -> Files:
        """Refuse, naming both, any overlap of an output with an input or with another output, an output folder
        that is a file, a manifest another subset owns, a ``dataset_info.json`` that cannot take the entry."""
        for i, (option, kind, files) in enumerate(self.writes):
            if kind in FOLDER_KINDS and files[0].exists() and not files[0].is_dir():
                raise ConfigError(option, f"{files[0]} is a file, not a folder: give a folder path (nothing was done)")
            if kind not in FOLDER_KINDS and files[0].is_dir() and not (kind == "subset" and _hf_folder(files[0])):
                raise ConfigError(option, f"{files[0]} is a folder, not a file: give a file path (nothing was done)")
            for other, _, other_files in self.writes[i + 1 :]:  # two outputs on one file: the second replaces
                pairs = [(a, b) for a in files for b in other_files if a in files[:1] or b in other_files[:1]]
                clash = next((b for a, b in pairs if ".rejects." not in b.name and same_file(a, b)), None)
                if clash is not None:
                    raise ConfigError(other, f"{clash} is also written by --{option}: give them different paths "
                                      "(nothing was done)")  # fmt: skip
            for written in files:
                for label, path in self.reads:
                    if same_file(written, path):
                        raise ConfigError(option, f"{written} is the same file as the {label} {path}: it would be "
                                          "overwritten; write to another path (nothing was done)")  # fmt: skip
            beside = next((b for b in files[1:] if ".rejects." not in b.name and same_file(files[0], b)), None)
            if beside is not None:
                what = _BESIDE_NAMES.get(kind, "sidecar")
                raise ConfigError(option, f"{files[0]} is also where it writes its {what} beside it: give another "
                                  "name (an HTML report: .html; nothing was done)")  # fmt: skip
            if kind == "parquet" and files[0].suffix != ".parquet":
                raise ConfigError(option, f"{files[0]} would hold parquet under another name: name it .parquet "
                                  "(nothing was done)")  # fmt: skip
            if kind in ("subset", "subset-folder"):
                _check_manifest_owner(option, files[0])
                if dataset_info_path(files[0]) in files[1:]:
                    check_dataset_info(files[0])
        return self


def _check_manifest_owner(option: str, subset: Path) -> None:
    """X.json, X.jsonl and a folder X share X.manifest.json: refuse to replace a manifest another existing
    subset wrote (it says which in its ``subset`` field)."""
    target = manifest_path(subset)
    if not target.is_file():
        return
    try:
        owner = json.loads(target.read_text(encoding="utf-8")).get("subset")
    except (ValueError, OSError, AttributeError):
        return
    if isinstance(owner, str) and Path(owner).name != subset.name and (target.parent / Path(owner).name).exists():
        raise ConfigError(
            option,
            f"{target} is the manifest of {target.parent / Path(owner).name}, written by an "
            f"earlier run; writing {subset} would replace it: give another name (nothing was done)",
        )


def check_dataset_info(subset: Path) -> dict[str, Any]:
    """The ``dataset_info.json`` beside ``subset`` as a dict (empty when there is none), checked before any work:
    it must be a JSON object, and an entry named as the subset must already point at this very file."""
    info_path = dataset_info_path(subset)
    if not info_path.exists():
        return {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"is not valid JSON ({err}): LLaMA-Factory's index cannot take the subset's entry; fix or "
                         "move it (nothing was done)", path=info_path) from None  # fmt: skip
    if not isinstance(info, dict):
        raise InputError(f"holds a JSON {type(info).__name__}, not an object of datasets: fix or move it (nothing "
                         "was done)", path=info_path)  # fmt: skip
    entry = info.get(subset.stem)
    if entry is not None and not (isinstance(entry, dict) and entry.get("file_name") == subset.name):
        raise InputError(f"already has an entry {subset.stem!r} for another dataset "
                         f"({entry.get('file_name') if isinstance(entry, dict) else entry!r}); writing {subset} "
                         "would replace it: give the subset another name (nothing was done)",
                         path=info_path, field=subset.stem)  # fmt: skip
    return info
