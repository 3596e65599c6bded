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
    """Every evaluation set tunesift reads by name: where it was found (or not), its licence, its pinned Hub
    source (fetched by 'tunesift data pull') and the repository its files come from."""
    from tunesift.data.evalhub import HUB, pulled_root
    from tunesift.data.evalsets import SOURCES, holds, places

    looked = places(data_dir)
    typer.echo("looked in, in order: " + "; ".join(f"{label} {folder}" for label, folder in looked)
               + ("" if data_dir else "; then the set's copy from the Hub"))  # fmt: skip
    typer.echo(f"{'set':<14} {'found in':<50} {'licence':<30} {'Hub source':<58} files from")
    for name, source in SOURCES.items():
        found = next((str(folder) for _, folder in looked if holds(folder, name)), None)
        if found is None and data_dir is None and name in HUB and holds(pulled_root(name) / "eval", name):
            found = str(pulled_root(name) / "eval")
        hub = HUB[name].describe() if name in HUB else "none pinned"
        typer.echo(f"{name:<14} {found or 'missing':<50} {source.licence:<30} {hub:<58} {source.origin}")


@data_app.command("pull")
def pull_cmd(
    sets: Annotated[
        list[str] | None, typer.Argument(help="Sets to fetch (default: every set with a Hub source).")
    ] = None,
) -> None:
    """Fetch evaluation sets from the Hugging Face Hub at their pinned revisions, ahead of an offline run, and say
    where each went; a set already fetched is not fetched again."""
    from tunesift.data.evalhub import HUB
    from tunesift.data.evalsets import SOURCES, from_hub, places

    names = sets or list(HUB)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        fail(TunesiftError(f"option 'sets': unknown set {', '.join(map(repr, unknown))}; choose from "
                           f"{', '.join(HUB)} ('tunesift data list' shows every set)"))  # fmt: skip
    no_hub = [n for n in names if n not in HUB]
    if no_hub:
        fail(TunesiftError("option 'sets': no Hub source is pinned for " + "; ".join(
            f"{n!r} (get it from {SOURCES[n].origin})" for n in no_hub) + "; with a folder of your own, give "
            "--data-dir FOLDER"))  # fmt: skip
    failed = 0
    for name in names:
        try:
            folder = from_hub(name, "sets", places(), download=True)
        except TunesiftError as err:
            failed += 1
            typer.echo(f"{name}: {err}", err=True)
            continue
        typer.echo(f"{name:<12} {HUB[name].describe():<58} -> {folder}")
    if failed:
        raise typer.Exit(2)


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
