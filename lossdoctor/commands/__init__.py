"""CLI sub-commands. Every module here that defines a module-level ``COMMAND`` (a click.Command)
is added to the ``lossdoctor`` group; adding a command is adding a file."""
from __future__ import annotations

import importlib
import pkgutil

import click


def discover() -> list[click.Command]:
    commands: list[click.Command] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if isinstance(command, click.Command):
            commands.append(command)
    return commands
