"""Keep what third-party packages print while they are imported out of lossdoctor's own output.

Why: importing the training stack can print at import time, whatever lossdoctor does. bitsandbytes on a CPU
machine, for one, tries to fetch a kernel from the Hub and logs a failure on every import; transformers and
peft pull it in. A user reads such lines as lossdoctor errors, and they break the one-line error contract of a
bad ``lossdoctor train`` call. The output is captured at the file-descriptor level (C extensions, logging
handlers built earlier and ``print`` all end up on fds 1 and 2), kept, and recorded in the run's ``run.json``
(``import_output``) instead of being shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

#: at most this much of the captured text is kept
MAX_KEPT = 8000


class Captured:
    """What was printed inside a ``captured_output()`` block (``text`` is set when the block exits)."""

    def __init__(self) -> None:
        self.text = ""


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Redirect fds 1 and 2 (and ``sys.stdout``/``sys.stderr``) into a temporary file for the block."""
    result = Captured()
    streams = (sys.stdout, sys.stderr)
    try:
        fds = [s.fileno() for s in streams]
    except (AttributeError, OSError, ValueError):  # no real fds (an embedding host): nothing to redirect
        yield result
        return
    for stream in streams:
        stream.flush()
    saved = [os.dup(fd) for fd in fds]
    with tempfile.TemporaryFile() as sink:
        try:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            yield result
        finally:
            for stream in streams:
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, old in zip(fds, saved):
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            data = sink.read()
            result.text = data[-MAX_KEPT:].decode("utf-8", errors="replace")
