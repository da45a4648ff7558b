"""Report-format registry.

Every module in this package with a module-level ``RENDERER`` is a format (adding a format is adding a
file, never a branch in an if/elif). A renderer is any object with the ``Renderer`` protocol below;
built-in formats use the same registry a third-party one would.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportData


class Renderer(Protocol):
    name: str                     # canonical format name, e.g. "markdown"
    aliases: tuple[str, ...]      # other names accepted by --format, e.g. ("md",)
    primary: str                  # the main file it writes, e.g. "report.md" (what the CLI prints)
    description: str

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        """Relative file name → bytes. Pure: no disk, no clock."""
        ...


@lru_cache(maxsize=1)
def registry() -> dict[str, Renderer]:
    """name and every alias → renderer (sorted by name)."""
    found: dict[str, Renderer] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        renderer = getattr(module, "RENDERER", None)
        if renderer is None:
            continue
        for key in (renderer.name, *renderer.aliases):
            if key in found:
                raise RuntimeError(f"two report formats claim the name {key!r}")
            found[key] = renderer
    return dict(sorted(found.items()))
