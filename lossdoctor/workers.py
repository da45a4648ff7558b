"""Worker processes for CPU-bound work on one big input (today: the scan of a large console log).

Python's regex engine and ``float()`` hold the GIL, so threads cannot share that work; processes can. The
workers are forked, so they start with the parent's imports and nothing is imported again. A pool is forked
only where that is safe: on Linux, from a process that runs one thread (a fork copies a lock another thread
may hold) and is not a daemon process (those cannot have children). Anywhere else
:func:`fork_workers` answers 1 and the caller does the work itself, with the same result.

Worker processes ignore Ctrl-C: the parent gets it; the pieces not yet started are cancelled and the running
ones finish (a piece is a fraction of a second of work) before the interrupt goes on. A worker dies with its
parent (Linux ``PR_SET_PDEATHSIG``): a forked worker holds both ends of the pool's pipes, so when the parent is
killed (SIGKILL, an OOM kill, a supervisor's SIGTERM) it would otherwise wait forever.
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
        return 1  # (a daemon process, e.g. a multiprocessing.Pool worker, may not have children)
    return max(1, min(wanted, usable_cpus()))


#: prctl option: the signal a process gets when its parent dies
_PR_SET_PDEATHSIG = 1


def _init_worker(parent: int) -> None:
    """In each worker: Ctrl-C is the parent's to handle; die with the parent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL))
    except (OSError, AttributeError):  # no prctl to call: a killed parent may leave this worker waiting
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def map_forked(fn: Callable[..., T], calls: Iterable[tuple[Any, ...]], workers: int) -> Iterator[T]:
    """``fn(*args)`` for each args tuple in `calls`, in forked worker processes, yielding results in call order
    (the caller checked :func:`fork_workers`). Errors in a worker are raised here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
    ) as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        try:
            for fut in futures:
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()
