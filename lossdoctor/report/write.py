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
    """Write ``files`` (relative name → bytes) under ``out_dir``; returns the paths written (sorted).

    A sub-directory written here (``plots/``) belongs to the report: files in it with a suffix written
    now but not among the new files (plots of an earlier analysis) are removed, so a report never sits
    beside stale plots."""
    rels = {name: _safe_relative(name) for name in files}
    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            target = out_dir.joinpath(*rels[name].parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, files[name])
            written.append(target)
        _remove_stale(out_dir, rels.values())
    except OSError as exc:
        where = exc.filename or out_dir
        raise UsageError(f"cannot write report: {exc.strerror or exc}; expected a writable directory",
                         str(where)) from None
    return written


def _remove_stale(out_dir: Path, rels: object) -> None:
    keep: dict[PurePosixPath, set[str]] = {}
    for rel in rels:  # type: ignore[attr-defined]
        if len(rel.parts) > 1:
            keep.setdefault(rel.parent, set()).add(rel.name)
    for sub, names in keep.items():
        suffixes = {PurePosixPath(n).suffix for n in names}
        folder = out_dir.joinpath(*sub.parts)
        for path in folder.iterdir():
            if path.is_file() and path.suffix in suffixes and path.name not in names:
                path.unlink()
