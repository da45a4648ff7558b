"""Atomic file writes (temp file in the same directory + ``os.replace``): a reader never sees half a file,
and a failed write leaves nothing behind. Used by the reports, the W&B cache and run.json."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[str], None], mode: int | None = None) -> None:
    """Call ``write(tmp_path)`` to fill a temp file beside ``path``, then move it over ``path``. The temp file
    is 0600 (mkstemp); ``mode`` (e.g. 0o644) is set before the move when the file is meant to be shared."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
