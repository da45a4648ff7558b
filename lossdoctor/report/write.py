"""The only place reports touch the disk: every file goes to a temp file beside it, then os.replace.

Why: a report directory is read by CI steps and people while a new analysis may be writing it; a
reader must see either the old file or the new one, never half of one. The caller renders everything
before calling here, so a rendering failure writes nothing (not even the directory).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from lossdoctor.atomic import atomic_write_bytes
from lossdoctor.errors import UsageError


def _safe_relative(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise RuntimeError(f"renderer produced an unsafe file name {name!r}")
    return rel


def write_files(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` (relative name → bytes) under ``out_dir``; returns the paths written (sorted)."""
    rels = {name: _safe_relative(name) for name in files}
    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            target = out_dir.joinpath(*rels[name].parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, files[name])
            written.append(target)
    except OSError as exc:
        where = exc.filename or out_dir
        raise UsageError(f"cannot write report: {exc.strerror or exc}; expected a writable directory",
                         str(where)) from None
    return written
