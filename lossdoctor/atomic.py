"""Atomic file writes (temp file in the same directory + ``os.replace``): a reader never sees half a file,
and a failed write leaves nothing behind. Used by the reports, the W&B cache and run.json.

A process killed between creating its temp file and the rename cannot clean up after itself, so temp
names carry the writer's pid (``.NAME.PID.XXXX.tmp``) and a process's first write into a directory removes
the temp files there whose writer is gone. A live writer's temp file is never touched (concurrent runs stay
safe). Once per directory and process, not before every write: a triage writes hundreds of cache entries into
one project folder, and listing the folder before each write made that quadratic in the project's size.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")
#: directories this process has cleaned of dead writers' temp files (bounded: forgotten past 4,096)
_CLEANED: set[str] = set()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists but not ours (or cannot tell): leave it
    return True


def clean_stale_temps(directory: Path) -> int:
    """Remove temp files left in ``directory`` by writers that no longer run; returns how many."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        m = _TEMP.match(name)
        if m and not _alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except OSError:
                pass
    return removed


def atomic_write(path: Path, write: Callable[[str], object], mode: int | None = None) -> None:
    """Call ``write(tmp_path)`` to fill a temp file beside ``path``, then move it over ``path``. The temp file
    is 0600 (mkstemp); ``mode`` (e.g. 0o644) is set before the move when the file is meant to be shared."""
    path = Path(path)
    folder = os.path.abspath(path.parent)
    if folder not in _CLEANED:
        if len(_CLEANED) >= 4096:
            _CLEANED.clear()
        _CLEANED.add(folder)
        clean_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), mode)
