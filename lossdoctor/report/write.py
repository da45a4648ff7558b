"""The only place reports touch the disk: every file goes to a temp file beside it, then os.replace.

Why: a report directory is read by CI steps and people while a new analysis may be writing it; a
reader must see either the old file or the new one, never half of one. The caller renders everything
before calling here, so a rendering failure writes nothing (not even the directory).

Files are readable like any file the user creates (0666 less the umask, i.e. 0644 usually), not the
0600 of a temp file. A reused ``--out`` directory keeps no stale report: the files the previous report
wrote (listed in ``.lossdoctor-files``) that this one does not write are removed; other files are never
touched.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from lossdoctor.atomic import atomic_write_bytes
from lossdoctor.errors import UsageError

#: the list of files the last report wrote in a directory (one relative POSIX path per line)
OWNED_LIST = ".lossdoctor-files"
#: legacy (before OWNED_LIST): the Markdown report linked its PNG plots as ](plots/NAME.png)
_LEGACY_PLOT_PREFIX = "](plots/"


def _safe_relative(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise RuntimeError(f"renderer produced an unsafe file name {name!r}")
    return rel


def file_mode() -> int:
    """0666 less the process umask (what open() would give a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _previous_files(out_dir: Path) -> set[str]:
    """Relative names the previous report in ``out_dir`` wrote (only names that look like ours)."""
    owned: set[str] = set()
    listing = out_dir / OWNED_LIST
    try:
        text = listing.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    if text is not None:
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                owned.add(_safe_relative(line).as_posix())
            except RuntimeError:
                continue
        return owned
    # a report written before the listing existed: its report.md names its plots/*.png
    try:
        md = (out_dir / "report.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return owned
    for part in md.split(_LEGACY_PLOT_PREFIX)[1:]:
        name = part.split(")", 1)[0]
        if name.endswith(".png") and "/" not in name and name not in ("", ".png"):
            owned.add(f"plots/{name}")
    return owned


def _remove_stale(out_dir: Path, stale: set[str]) -> None:
    for name in sorted(stale):
        target = out_dir.joinpath(*PurePosixPath(name).parts)
        try:
            if target.is_file() and not target.is_symlink():
                target.unlink()
        except OSError:
            continue
        parent = target.parent
        while parent != out_dir and parent.is_dir():
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
            parent = parent.parent


def write_files(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` (relative name → bytes) under ``out_dir``; returns the paths written (sorted).

    A sub-directory written here (``plots/``) belongs to the report: files in it with a suffix written
    now but not among the new files (plots of an earlier analysis) are removed, so a report never sits
    beside stale plots."""
    rels = {name: _safe_relative(name) for name in files}
    written: list[Path] = []
    mode = file_mode()
    try:
        previous = _previous_files(out_dir) if out_dir.is_dir() else set()
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            target = out_dir.joinpath(*rels[name].parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, files[name], mode=mode)
            written.append(target)
        listing = "".join(f"{rels[name].as_posix()}\n" for name in sorted(files))
        atomic_write_bytes(out_dir / OWNED_LIST, listing.encode("utf-8"), mode=mode)
        _remove_stale(out_dir, previous - {rels[name].as_posix() for name in files} - {OWNED_LIST})
    except OSError as exc:
        where = exc.filename or out_dir
        raise UsageError(
            f"cannot write report: {exc.strerror or exc}; expected a writable directory", str(where)
        ) from None
    return written
