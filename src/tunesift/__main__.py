"""``python -m tunesift`` runs the CLI."""

from tunesift.cli import app

app(prog_name="tunesift")
