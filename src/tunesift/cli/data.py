"""``tunesift data``: the evaluation sets (where each comes from, its licence, where it was found) and the packaged
example pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunesift.cli.options import DATA_DIR_HELP, fail
from tunesift.errors import TunesiftError

data_app = typer.Typer(help="The evaluation sets and the example pool.", no_args_is_help=True)

#: The example pool shipped in the package (README.md beside it: source, licence, attribution).
EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "example" / "dolly_300.json"


@data_app.command("list")
def list_cmd(data_dir: Annotated[Path | None, typer.Option(help=DATA_DIR_HELP)] = None) -> None:
    """Every evaluation set tunesift reads by name: its source, its licence, and where it was found (or not)."""
    from tunesift.data.evalsets import SOURCES, holds, places

    looked = places(data_dir)
    typer.echo("looked in, in order: " + "; ".join(f"{label} {folder}" for label, folder in looked))
    typer.echo(f"{'set':<12} {'found in':<50} {'licence':<30} source")
    for name, source in SOURCES.items():
        found = next((str(folder) for _, folder in looked if holds(folder, name)), "missing")
        typer.echo(f"{name:<12} {found:<50} {source.licence:<30} {source.origin}")


@data_app.command("example")
def example_cmd(
    out: Annotated[Path, typer.Argument(help="Where to write the example pool (300 Dolly records, JSON).")],
) -> None:
    """Write the example pool: 300 records of databricks-dolly-15k as AlpaGasus filtered it (CC BY-SA 3.0; the
    README beside the packaged file says where it comes from)."""
    from tunesift.atomic import atomic_open
    from tunesift.files import Files

    try:
        Files().read("example", EXAMPLE).write("out", out).check()
        if out.exists():
            raise TunesiftError(f"option 'out': {out} exists; nothing is overwritten: give another path")
        with atomic_open(out) as handle:
            handle.write(EXAMPLE.read_text(encoding="utf-8"))
    except TunesiftError as err:
        fail(err)
    typer.echo(f"example pool: 300 records -> {out} (databricks-dolly-15k, CC BY-SA 3.0; see {EXAMPLE.parent})",
               err=True)  # fmt: skip
