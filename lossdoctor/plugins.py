"""Plugin discovery: the one way every registry finds its plugins (readers, check kinds, report and comparison
formats, commands, tails).

A registry is a package; each public module in it (name not starting with ``_``) that defines the module-level
attribute the registry asks for (``SOURCE``, ``CHECK``, ``RENDERER``, ``COMMAND``, ``TAILER``) holds one plugin.
Private modules (``_x.py``, ``_x/``) are helpers and are never imported by discovery. Modules are visited in
sorted order and the result is sorted by name, so discovery is deterministic. Two plugins claiming the same
name is a programming error, raised with both modules named.

A command, a report format or a check kind usually needs one plugin, not all of them: :meth:`Registry.get`
imports only the module named after the plugin (``eval-corpus`` → ``eval_corpus.py``) when that module
declares the name, so ``analyze --format json`` loads neither the HTML renderer nor the ``train`` command.
Anything else (an alias such as ``md``, a plugin in a module of another name) falls back to full discovery,
and so does every listing (``--help``, error messages naming the choices); full discovery is also what finds
a duplicate name, and the tests run it for every registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

P = TypeVar("P")


class DuplicatePluginError(RuntimeError):
    """Two plugins of one registry claim the same name."""


class PluginDeclarationError(TypeError):
    """A plugin does not declare what its registry needs (a bug in lossdoctor or a plugin, never user input)."""


#: the field kind of a method (anything callable) in :func:`declares`
METHOD = "method"


def declares(what: str, **fields: type | tuple[type, ...] | str) -> Callable[[Any], Any]:
    """A validator for :func:`discover`: the plugin must have each field, an instance of the given type(s), or
    callable where the field's kind is ``METHOD``; a tuple field's items must be non-empty strings (names). A
    wrong declaration raises PluginDeclarationError naming the plugin's module and the field."""

    def validate(plugin: Any) -> Any:
        who = f"{what} in {getattr(type(plugin), '__module__', '?')}"
        for name, kind in fields.items():
            value = getattr(plugin, name, None)
            if isinstance(kind, str):  # METHOD
                if not callable(value):
                    raise PluginDeclarationError(f"{who}: has no {name}() method")
                continue
            types = kind if isinstance(kind, tuple) else (kind,)
            if isinstance(value, bool) or not isinstance(value, types):
                expected = " or ".join(t.__name__ for t in types)
                raise PluginDeclarationError(f"{who}: {name} must be a {expected}, got {value!r}")
            if isinstance(value, tuple) and not all(isinstance(v, str) and v for v in value):
                raise PluginDeclarationError(f"{who}: {name} must hold names (non-empty strings), got {value!r}")
        return plugin

    return validate


def _own_name(plugin: Any) -> tuple[str]:
    return (plugin.name,)


def discover(
    package: str,
    attr: str,
    what: str,
    names: Callable[[Any], Iterable[str]] = _own_name,
    validate: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """name → plugin for every public module of ``package`` defining ``attr``, sorted by name.

    ``names(plugin)`` gives the names a plugin answers to (its name and any aliases; by default
    ``plugin.name``); ``what`` says what the plugins are in the duplicate-name error ("readers");
    ``validate(plugin)``, when given, checks each plugin as it registers (raising on a bad declaration) and
    returns the plugin to register."""
    pkg = importlib.import_module(package)
    found: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module_name = f"{package}.{info.name}"
        plugin = getattr(importlib.import_module(module_name), attr, None)
        if plugin is None:
            continue
        if validate is not None:
            plugin = validate(plugin)
        for name in names(plugin):
            if name in found:
                raise DuplicatePluginError(f"two {what} claim the name {name!r}: {owner[name]} and {module_name}")
            found[name] = plugin
            owner[name] = module_name
    return dict(sorted(found.items()))


class Registry(Generic[P]):
    """One registry: its plugins found once (:meth:`all`), or one by name at the cost of one module (:meth:`get`).
    The arguments are those of :func:`discover`."""

    def __init__(
        self,
        package: str,
        attr: str,
        what: str,
        names: Callable[[Any], Iterable[str]] = _own_name,
        validate: Callable[[Any], Any] | None = None,
    ) -> None:
        self.package, self.attr, self.what, self.names, self.validate = package, attr, what, names, validate
        self._all: dict[str, P] | None = None
        self._one: dict[str, P | None] = {}

    def all(self) -> dict[str, P]:
        """name → plugin for the whole registry, sorted by name (discovered on first use)."""
        if self._all is None:
            self._all = discover(self.package, self.attr, self.what, self.names, self.validate)
        return self._all

    def get(self, name: str) -> P | None:
        """The plugin answering to ``name``, or None."""
        if self._all is not None:
            return self._all.get(name)
        if name not in self._one:
            self._one[name] = self._by_module_name(name)
        found = self._one[name]
        return found if found is not None else self.all().get(name)

    def _by_module_name(self, name: str) -> P | None:
        module = name.replace("-", "_")
        if not module.isidentifier() or module.startswith("_"):
            return None
        full = f"{self.package}.{module}"
        try:
            loaded = importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise
            return None
        plugin = getattr(loaded, self.attr, None)
        if plugin is None or name not in self.names(plugin):
            return None
        return plugin if self.validate is None else self.validate(plugin)
