"""Worker processes for CPU-bound work on one big input (today: the scan of a large console log).

Python's regex engine and ``float()`` hold the GIL, so threads cannot share that work; processes can. The
workers are forked, so they start with the parent's imports and nothing is imported again. A pool is forked
only where that is safe: on Linux, from a process that runs one thread (a fork copies a lock another thread
may hold) and is not itself a worker of a pool (those cannot have children). Anywhere else
:func:`fork_workers` answers 1 and the caller does the work itself, with the same result.

Worker processes ignore Ctrl-C: the parent gets it, and leaving the pool's ``with`` block stops them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fork_workers(wanted: int) -> int:
    """How many worker processes may be forked now for `wanted` of them (at most the usable cores); 1 means
    "do the work in this process"."""
    if wanted <= 1 or not sys.platform.startswith("linux"):
        return 1
    import multiprocessing
    import threading

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() != 1 or multiprocessing.current_process().daemon:
        return 1
    return max(1, min(wanted, usable_cpus()))


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def map_forked(fn: Callable[..., T], calls: Iterable[tuple[Any, ...]], workers: int) -> Iterator[T]:
    """``fn(*args)`` for each args tuple in `calls`, in forked worker processes, yielding results in call order
    (the caller checked :func:`fork_workers`). Errors in a worker are raised here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint) as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        try:
            for fut in futures:
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()
