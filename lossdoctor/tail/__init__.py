"""Following a run while it is written (``lossdoctor watch``): one module per followed format.

Every module here with a module-level ``TAILER`` follows the source kinds it names in ``kinds`` (the kinds of
the reader registry, so detection is the readers' own ``sniff``); adding a followed format is adding a file.
A tail reads only what was appended since its last poll and keeps its parser state between polls (a partial
last line, a pending log dict waiting for the progress-bar counter that gives its step, a half-written
``.wandb`` record); the points it returns are new ones only.

Disk access is here and in the command; the parsing in each tail is over the bytes it was given.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from lossdoctor.plugins import METHOD, declares, discover
from lossdoctor.sources.text import guess_encoding

#: at most this much is read per poll (a huge backlog is caught up over several polls, memory stays bounded)
MAX_READ = 8 * 1024 * 1024


@dataclass
class Update:
    """What one poll found: new points (step, raw metric name, value) and whether the run has ended."""

    points: list[tuple[int, str, float]] = field(default_factory=list)
    ended: str | None = None  # why the run is over ("end-of-training summary", "W&B exit record", ...)
    notes: list[str] = field(default_factory=list)
    backlog: bool = False  # more bytes are waiting than one poll reads


class Tail(Protocol):
    kind: str
    path: Path
    step_source: str
    config: dict[str, Any]

    def poll(self, now: float) -> Update: ...

    def close(self) -> None: ...


class Tailer(Protocol):
    kinds: tuple[str, ...]

    def open(self, path: Path, location: str) -> Tail: ...


@lru_cache(maxsize=1)
def registry() -> dict[str, Tailer]:
    """followed source kind → tailer (sorted by kind)."""
    return discover(
        __name__, "TAILER", "tails", lambda tailer: tailer.kinds, validate=declares("tail", kinds=tuple, open=METHOD)
    )


class FileFollower:
    """The bytes appended to one file since the last call. A file that shrinks or is replaced (new inode:
    log rotation, a rerun writing the same name) is followed again from its start (``restarted``)."""

    def __init__(self, path: Path, max_read: int = MAX_READ) -> None:
        self.path = path
        self.max_read = max_read
        self.offset = 0
        self._fh: Any = None
        self._ino: int | None = None
        self.restarted = False
        self.backlog = False

    def read(self) -> bytes:
        self.restarted = False
        try:
            st = os.stat(self.path)
        except OSError:
            return b""
        if self._fh is not None and (st.st_ino != self._ino or st.st_size < self.offset):
            self.close()
            self.offset = 0
            self.restarted = True
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open between polls
            except OSError:
                return b""
            self._ino = os.fstat(self._fh.fileno()).st_ino
        if st.st_size <= self.offset:
            self.backlog = False
            return b""
        self._fh.seek(self.offset)
        data = self._fh.read(min(st.st_size - self.offset, self.max_read))
        self.offset += len(data)
        self.backlog = st.st_size > self.offset
        return data

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class TextFollower(FileFollower):
    """FileFollower + incremental decoding (UTF-8 / UTF-16 by BOM, bad bytes replaced) + the partial last line
    kept for the next call. ``lines()`` returns complete lines and the text after the last line break."""

    def __init__(self, path: Path, max_read: int = MAX_READ) -> None:
        super().__init__(path, max_read)
        self._decoder: Any = None
        self.partial = ""

    def text(self) -> str:
        data = self.read()
        if self.restarted:
            self._decoder, self.partial = None, ""
        if not data:
            return ""
        if self._decoder is None:
            encoding = guess_encoding(data[:8192])
            self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        return self._decoder.decode(data)

    def lines(self) -> tuple[str, str]:
        """(complete lines ending with a line break, the unfinished rest). The rest is returned again, with
        what follows it, next time."""
        text = self.partial + self.text()
        cut = text.rfind("\n") + 1
        done, self.partial = text[:cut], text[cut:]
        if len(self.partial) > self.max_read:  # a "line" that never ends (a tqdm bar redrawn with \r)
            self.partial = self.partial[-64 * 1024 :]
        return done, self.partial
