"""transformers' per-tensor "Loading weights" bar off while tunesift loads a model, for the Python API as for the
CLI (a library's bar is not the user's work); a user who asked for the library's output keeps it."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def loading_quietly() -> Iterator[None]:
    from transformers.utils import logging

    if os.environ.get("TRANSFORMERS_VERBOSITY", "").lower() in ("info", "debug"):
        yield
        return
    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:  # as it was (huggingface_hub warns when its own variable keeps its bars off: not news here)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                logging.enable_progress_bar()
