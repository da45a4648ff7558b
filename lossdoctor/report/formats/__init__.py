"""Report-format registry.

Every module in this package with a module-level ``RENDERER`` is a format (adding a format is adding a
file, never a branch in an if/elif). A renderer is any object with the ``Renderer`` protocol below;
built-in formats use the same registry a third-party one would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from lossdoctor.plugins import METHOD, Registry, declares

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportData


class Renderer(Protocol):
    name: str  # canonical format name, e.g. "markdown"
    aliases: tuple[str, ...]  # other names accepted by --format, e.g. ("md",)
    primary: str  # the main file it writes, e.g. "report.md" (what the CLI prints)
    description: str

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        """Relative file name → bytes. Pure: no disk, no clock."""
        ...


_FORMATS: Registry[Renderer] = Registry(
    __name__,
    "RENDERER",
    "report formats",
    lambda renderer: (renderer.name, *renderer.aliases),
    validate=declares("report format", name=str, aliases=tuple, primary=str, description=str, render=METHOD),
)


def registry() -> dict[str, Renderer]:
    """name and every alias → renderer (sorted by name)."""
    return _FORMATS.all()


def lookup(name: str) -> Renderer | None:
    """The renderer of one format name or alias (importing only its module when it is named after it)."""
    return _FORMATS.get(name)
