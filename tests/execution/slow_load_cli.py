"""The tunesift CLI with one more method, ``slow-load-ifd``: IFD whose model load waits (a subprocess test stops
a Ray run while an actor is loading). Each load writes ``load-<pid>`` into $SLOW_LOAD_DIR and then sleeps
$SLOW_LOAD_SECONDS, so the test knows which process is loading and when."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tunesift.cli import app
from tunesift.scorers.ifd import IFD


class SlowLoadIFD(IFD):
    method = "slow-load-ifd"

    def load_backend(self, device=None):
        Path(os.environ["SLOW_LOAD_DIR"], f"load-{os.getpid()}").touch()
        time.sleep(float(os.environ.get("SLOW_LOAD_SECONDS", "0")))
        return super().load_backend(device)


if __name__ == "__main__":
    app(prog_name="tunesift")
