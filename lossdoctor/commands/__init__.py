"""CLI sub-commands. Every module here that defines a module-level ``COMMAND`` (a click.Command)
is a sub-command of the ``lossdoctor`` group; adding a command is adding a file. The group loads only the
command it runs (``lossdoctor analyze`` does not import ``train``'s options); ``--help`` lists them all."""

from __future__ import annotations

import click

from lossdoctor import plugins

_COMMANDS: plugins.Registry[click.Command] = plugins.Registry(
    __name__, "COMMAND", "commands", validate=plugins.declares("command", name=str, callback=plugins.METHOD)
)


def discover() -> list[click.Command]:
    """The commands of this package, sorted by name (two with one name are an error)."""
    return list(_COMMANDS.all().values())


def lookup(name: str) -> click.Command | None:
    """One command by name, importing only its module when it is named after it."""
    return _COMMANDS.get(name)


class LazyGroup(click.Group):
    """A click group whose sub-commands are this package's commands, each imported when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [command.name or "" for command in discover()]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return lookup(cmd_name)
