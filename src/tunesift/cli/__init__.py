"""The ``tunesift`` command: a thin shell over :mod:`tunesift.api`.

Every user error (bad pool, unknown model, bad option) is one line on stderr and exit status 2, and no
output file is written. The package: this module (the app, exit codes, signals), :mod:`.options` (the shared
option vocabulary), :mod:`.generated` (``score NAME`` / ``run NAME`` from the registries), :mod:`.commands`
(select, fit-indicators, run recipe, report, models, methods), :mod:`.pipelines` (run cherry-pre, run
mods-full) and :mod:`.prove` (train, eval, compare).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

# A normal run shows tunesift's own progress bars and summary lines only: the libraries' per-tensor loading
# bars and advisory warnings are off (read by huggingface_hub and transformers when they are imported, so set
# before any of them is; a user's own setting wins).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import typer
import typer.core

from tunesift.cli.generated import RunGroup, ScoreGroup


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so a command stops as it does on Ctrl-C (a BaseException, as
    KeyboardInterrupt, so no per-sample error handling mistakes it for a failed sample)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


class _Group(typer.core.TyperGroup):
    """The root command: whatever stops a command ends in one line and a meaningful exit status.

    Ctrl-C exits 130 and SIGTERM 143, each saying what is safely stored and that the same command resumes
    (outputs are written atomically, so none is left half-written); a file the system refuses to write or
    read is one line naming it and the cause (exit 1), never a traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        import signal

        from tunesift import progress

        progress.reset()
        try:
            previous = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: leave SIGTERM alone
            previous = None
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, Terminated) as err:
            code = 143 if isinstance(err, Terminated) else 130
            typer.echo(f"\ntunesift: interrupted: {progress.describe()}", err=True)
            raise typer.Exit(code) from None
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            typer.echo(f"tunesift: error: {where}{err.strerror or err}", err=True)
            raise typer.Exit(1) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


app = typer.Typer(
    cls=_Group,
    help="Pick the best instruction-tuning data out of a pool: score it, select a subset, explain it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
score_app = typer.Typer(cls=ScoreGroup, help="Score every record of a pool; writes one JSON line per record.",
                        no_args_is_help=True)  # fmt: skip
run_app = typer.Typer(cls=RunGroup, help="Score and select in one go with a published method.", no_args_is_help=True)


def _say_version(value: bool) -> None:
    if value:
        from tunesift._version import __version__

        typer.echo(f"tunesift {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_say_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Pick the best instruction-tuning data out of a pool: score it, select a subset, explain it."""


app.add_typer(score_app, name="score")
app.add_typer(run_app, name="run")


# The command modules add their commands to the apps above.
from tunesift.cli import commands, pipelines, prove  # noqa: E402, F401
from tunesift.cli.data import data_app  # noqa: E402

app.add_typer(data_app, name="data")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
