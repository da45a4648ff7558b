"""CLI sub-commands. Every module here that defines a module-level ``COMMAND`` (a click.Command)
is added to the ``lossdoctor`` group; adding a command is adding a file."""

from __future__ import annotations

import click

from lossdoctor import plugins


def discover() -> list[click.Command]:
    """The commands of this package, sorted by name (two with one name are an error)."""
    return list(
        plugins.discover(
            __name__, "COMMAND", "commands", validate=plugins.declares("command", name=str, callback=plugins.METHOD)
        ).values()
    )
