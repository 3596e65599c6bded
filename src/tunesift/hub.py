"""Models and datasets by Hugging Face hub id, from the local hub cache first.

An id (``org/name``) is looked up in the hub cache without network access; only when it is absent there,
and the network is allowed (``HF_HUB_OFFLINE`` unset), is it downloaded, as transformers would. The
snapshot's commit hash is the revision: it fingerprints the model, so cached scores follow the weights.
The cache folder and offline switch are read when called (``HF_HUB_CACHE``, ``HF_HOME``,
``HF_HUB_OFFLINE``), not when huggingface_hub was imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tunesift.errors import ConfigError

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# What a model snapshot needs: weights as safetensors, configuration, tokenizer files.
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja"]


def is_hub_id(text: str) -> bool:
    return bool(_HUB_ID.fullmatch(text))


def cache_dir() -> Path:
    if env := os.environ.get("HF_HUB_CACHE"):
        return Path(env)
    if home := os.environ.get("HF_HOME"):
        return Path(home) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    switches = (os.environ.get(v, "").lower() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(value in ("1", "true", "yes", "on") for value in switches)


def snapshot(repo_id: str, repo_type: str = "model", option: str = "model") -> tuple[Path, str]:
    """The local folder of a hub repository's snapshot and its revision (commit hash); errors name ``option``."""
    from huggingface_hub import snapshot_download

    cache = cache_dir()
    patterns = MODEL_FILES if repo_type == "model" else None
    try:
        folder = snapshot_download(repo_id, repo_type=repo_type, cache_dir=cache, local_files_only=True,
                                   allow_patterns=patterns)  # fmt: skip
    except Exception as cached_err:  # not in the cache (huggingface_hub raises several kinds)
        if offline():
            why = type(cached_err).__name__
            raise ConfigError(option, f"{repo_id} is not in the Hugging Face cache {cache} and HF_HUB_OFFLINE is "
                              f"set ({why}); download it once with network access") from None  # fmt: skip
        try:
            folder = snapshot_download(repo_id, repo_type=repo_type, cache_dir=cache, allow_patterns=patterns)
        except Exception as err:  # network, authentication, an id that does not exist
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(option, f"{repo_id} is not in the Hugging Face cache {cache} and could not be "
                              f"downloaded: {first}") from None  # fmt: skip
    path = Path(folder)
    return path, path.name
