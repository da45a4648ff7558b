"""Handing freed memory back to the operating system between the phases of a large read.

CPython frees a run's temporaries (a chunk's decoded text, the regex matches of its lines, numpy scratch
arrays), but glibc's allocator keeps much of what was freed in its heap for reuse: reading a 420 MB console
log left ~115 MB of free heap counted in the process's RSS, on top of the table itself. ``release()`` asks
glibc to return it (``malloc_trim``: a few milliseconds); elsewhere (macOS, musl) it does nothing. Readers
that stream call it every few chunks, reading a run calls it once at the end, the rule engine between the rules of
a long run, and diagnose once more before the reports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache

#: runs with at least this many points release memory between their rules (a small run's rules make no
#: scratch worth handing back)
RELEASE_AFTER_POINTS = 500_000


def release() -> None:
    """Return free heap memory to the system where the C library can (glibc); otherwise a no-op."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim  # glibc's; AttributeError on musl
    except (OSError, AttributeError):
        return None
