"""`lossdoctor sources`: every reader the registry found, with what it reads and an example.

Built from the registry, so a new reader file shows up here without touching this command.
"""
from __future__ import annotations

import json

import click


@click.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
def sources_command(as_json: bool) -> None:
    """List the log and metric formats lossdoctor reads (use a KIND with --source-kind)."""
    from lossdoctor.sources import registry

    rows = [{"kind": kind, "description": src.description, "example": src.example}
            for kind, src in registry().items()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max((len(r["kind"]) for r in rows), default=0)
    for row in rows:
        click.echo(f"{row['kind']:<{width}}  {row['description']}")
        click.echo(f"{'':<{width}}  e.g. {row['example']}")
    click.echo("\nAuto-detected from the file or directory; force one with --source-kind KIND.")


COMMAND = sources_command
