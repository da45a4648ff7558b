"""Tee everything the process prints (stdout and stderr, at the file-descriptor level) into console.log.

Why file descriptors and not ``sys.stdout``: the HF log dicts, tqdm bars, warnings, wandb's banner and
C-level messages are written through different objects, some of them created before training started
(logging handlers keep the stream they were built with). Redirecting fds 1 and 2 into pipes catches all of them,
in the order each stream wrote them, exactly as a person watching the terminal saw them (``\\r`` redraws kept).
The terminal still gets every byte. Where fds are not available (Windows, or a stream without a file
descriptor) we fall back to wrapping ``sys.stdout``/``sys.stderr``.
"""

from __future__ import annotations

import io
import os
import select
import sys
import threading
from pathlib import Path
from typing import IO, Any


class _PyTee(io.TextIOBase):
    """Fallback: a text stream writing to the original stream and the log file."""

    def __init__(self, original: IO[str], sink: IO[bytes], lock: threading.Lock) -> None:
        self._original, self._sink, self._lock = original, sink, lock

    def write(self, s: str) -> int:
        with self._lock:
            self._sink.write(s.encode("utf-8", "replace"))
            self._sink.flush()
        return self._original.write(s)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class ConsoleTee:
    """Context manager: while active, fds 1 and 2 are copied into ``path`` (appended, binary)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved: dict[int, int] = {}
        self._sink: IO[bytes] | None = None
        self._py_saved: tuple[Any, Any] | None = None

    def __enter__(self) -> ConsoleTee:
        self._sink = open(self.path, "ab", buffering=0)
        try:
            fds = (sys.stdout.fileno(), sys.stderr.fileno())
            usable = os.name == "posix" and fds == (1, 2)
        except (AttributeError, OSError, ValueError):
            usable = False
        if usable:
            self._start_fd_tee()
        else:
            self._py_saved = (sys.stdout, sys.stderr)
            sys.stdout = _PyTee(sys.stdout, self._sink, self._lock)
            sys.stderr = _PyTee(sys.stderr, self._sink, self._lock)
        return self

    def _start_fd_tee(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # a terminal sees stdout line by line; keep that when stdout becomes a pipe
        for stream in (sys.stdout, sys.stderr):
            # TextIO has no reconfigure in the stubs; a replaced stream (a test's capture) may lack it too
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is None:
                continue
            try:
                reconfigure(line_buffering=True)
            except (AttributeError, ValueError):
                pass
        for fd in (1, 2):
            saved = os.dup(fd)
            self._saved[fd] = saved
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            thread = threading.Thread(
                target=self._pump, args=(read_end, saved), daemon=True, name=f"lossdoctor-tee-{fd}"
            )
            thread.start()
            self._threads.append(thread)

    def _pump(self, read_end: int, original: int) -> None:
        """Copy bytes from the pipe to the original fd and the log until stopped and drained."""
        try:
            while True:
                ready, _, _ = select.select([read_end], [], [], 0.05)
                if not ready:
                    if self._stop.is_set():
                        return
                    continue
                chunk = os.read(read_end, 65536)
                if not chunk:
                    return
                try:
                    os.write(original, chunk)
                except OSError:
                    pass
                with self._lock:
                    if self._sink is not None and not self._sink.closed:
                        self._sink.write(chunk)
        finally:
            os.close(read_end)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._py_saved is not None:
            sys.stdout, sys.stderr = self._py_saved
            self._py_saved = None
        if self._saved:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            for fd, saved in self._saved.items():
                os.dup2(saved, fd)  # the pipe's write end at fd is closed by this
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=5)
            for saved in self._saved.values():
                os.close(saved)
            self._saved.clear()
            self._threads.clear()
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None
