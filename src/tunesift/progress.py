"""What a long run has safely stored so far, so an interrupted command can say what was kept.

The scoring loop and training update it as results reach the store or a checkpoint; the CLI reads it when
Ctrl-C or SIGTERM stops a command.
"""

from __future__ import annotations

from pathlib import Path

_state: dict[str, object] = {}


def stored(what: str, count: int, where: str | Path) -> None:
    """``count`` of ``what`` (samples, training steps) are durably stored at ``where``."""
    _state.update(what=what, count=count, where=str(where))


def reset() -> None:
    _state.clear()


def describe() -> str:
    """One sentence for the user: what is kept and that the same command resumes."""
    if not _state:
        return "nothing was stored yet; run the same command to start again"
    return (f"{_state['count']} {_state['what']} are safely stored in {_state['where']}; run the same command "
            "to resume from there")  # fmt: skip
