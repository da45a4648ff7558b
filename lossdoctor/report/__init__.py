"""Reports: Diagnosis → HTML / Markdown / JSON / terminal text / CI formats (SARIF, JUnit, GitHub annotations).

The CLI calls four functions: ``available_formats``, ``render``, ``write_reports`` and ``render_terminal``.
Rendering is pure (returns bytes); only ``write.py`` touches the disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lossdoctor.errors import UsageError

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportOptions

__all__ = ["available_formats", "has_format", "render", "render_many", "write_reports", "render_terminal"]


def available_formats() -> tuple[str, ...]:
    """Every name --format accepts (canonical names and aliases), sorted."""
    from lossdoctor.report.formats import registry

    return tuple(registry())


def has_format(name: str) -> bool:
    """Whether --format accepts ``name`` (loads that format's module only, when it is named after it)."""
    from lossdoctor.report.formats import lookup

    return lookup(name) is not None


def _renderer(fmt: str):  # noqa: ANN202
    from lossdoctor.report.formats import lookup

    found = lookup(fmt.strip().lower())
    if found is None:
        raise UsageError(f"unknown report format {fmt!r}; expected one of {', '.join(available_formats())}")
    return found


def render(diagnosis: Diagnosis, fmt: str, options: ReportOptions | None = None) -> dict[str, bytes]:
    """Relative file name → content for one format (e.g. html → report.html)."""
    from lossdoctor.report.data import build_report_data

    return _renderer(fmt).render(diagnosis, build_report_data(diagnosis, options))


def render_many(
    diagnosis: Diagnosis, formats: tuple[str, ...], options: ReportOptions | None = None
) -> tuple[dict[str, bytes], list[str]]:
    """All formats at once (ReportData built once; aliases of one format rendered once).

    Returns (files, primary file names in the order asked).
    """
    from lossdoctor.report.data import build_report_data

    renderers = []
    for fmt in formats:
        r = _renderer(fmt)
        if r not in renderers:
            renderers.append(r)
    data = build_report_data(diagnosis, options)
    files: dict[str, bytes] = {}
    primaries: list[str] = []
    for r in renderers:
        for name, content in r.render(diagnosis, data).items():
            if name in files and files[name] != content:
                raise RuntimeError(f"two report formats write {name!r} with different content")
            files[name] = content
        primaries.append(r.primary)
    return files, primaries


def render_reports(
    diagnosis: Diagnosis, formats: tuple[str, ...], options: ReportOptions | None = None
) -> tuple[dict[str, bytes], list[str], list[str]]:
    """Every format rendered in memory: (files by relative name, each format's main file, the text of the
    formats meant for standard output (``to_stdout``, e.g. GitHub annotations), which are not files)."""
    files, primaries = render_many(diagnosis, tuple(formats), options)
    printed: list[str] = []
    for fmt in dict.fromkeys(formats):
        r = _renderer(fmt)
        if getattr(r, "to_stdout", False) and r.primary in files:
            printed.append(files.pop(r.primary).decode("utf-8"))
            primaries = [p for p in primaries if p != r.primary]
    return files, primaries, printed


def write_reports(
    diagnosis: Diagnosis,
    formats: tuple[str, ...],
    out_dir: Path,
    options: ReportOptions | None = None,
    stdout: list[str] | None = None,
) -> list[Path]:
    """Render every format in memory, then write them atomically (and remove the files an earlier report in
    the same directory wrote that this one does not); returns each written format's main file.

    Formats meant for standard output are appended to ``stdout`` when a list is given (the CLI prints them),
    else written as files like the others."""
    from lossdoctor.report.write import write_files

    if stdout is None:
        files, primaries = render_many(diagnosis, tuple(formats), options)
    else:
        files, primaries, printed = render_reports(diagnosis, formats, options)
        stdout.extend(printed)
    if files:
        write_files(Path(out_dir), files)
    return [Path(out_dir) / p for p in primaries]


def render_terminal(diagnosis: Diagnosis, color: bool) -> str:
    """A short summary for the console: verdict, headline facts, one line per finding."""
    from lossdoctor.report.formats.terminal import summary

    return summary(diagnosis, color=color)
