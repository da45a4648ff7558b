"""W&B public API reader, running a fetch: parallel workers under the one deadline, and the progress line they
report to."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from lossdoctor.sources._wandb_http import Deadline, FetchError

MAX_WORKERS = 8


class Progress:
    """A one-line progress report on a terminal's stderr for fetches longer than a second (never on a
    pipe: a failing fetch must leave exactly one line there)."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label = max(1, total), label
        self.points = 0
        self.bytes = 0
        self.enabled = enabled and sys.stderr.isatty()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def add(self, points: int = 0, nbytes: int = 0) -> None:
        with self.lock:
            self.points += points
            self.bytes += nbytes
            now = time.monotonic()
            if self.enabled and now - self.started > 1.0 and now - self.last > 0.25:
                self.last = now
                self.shown = True
                pct = min(100.0, 100.0 * self.points / self.total)
                mb = f", {self.bytes / 1e6:,.1f} MB of exports" if self.bytes else ""
                sys.stderr.write(
                    f"\r\x1b[Kfetching {self.label}: {self.points:,}/{self.total:,} points ({pct:.0f}%){mb}"
                )
                sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


# -- workers -------------------------------------------------------------------------------------------


def run_parallel(tasks: list[Callable[[], Any]], deadline: Deadline, label: str) -> list[Any]:
    """Run ``tasks`` on at most MAX_WORKERS daemon threads; results in task order. The first failure, or
    the deadline, cancels every other task (each stops at its next request or chunk), and the daemon threads
    never hold the process open after the error is reported."""
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException] = []
    lock = threading.Lock()
    todo = list(enumerate(tasks))
    done = threading.Event()
    remaining = [len(tasks)]

    def worker() -> None:
        while not deadline.cancelled:
            with lock:
                if not todo:
                    return
                i, task = todo.pop(0)
            try:
                results[i] = task()
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                with lock:
                    errors.append(exc)
                deadline.cancel()
                done.set()
                return
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

    if not tasks:
        return []
    for n in range(min(MAX_WORKERS, len(tasks))):
        threading.Thread(target=worker, name=f"wandb-{label}-{n}", daemon=True).start()
    finished = done.wait(max(0.0, deadline.left()))
    if errors:
        first = next((e for e in errors if not (isinstance(e, FetchError) and e.kind == "cancelled")), errors[0])
        raise first
    if not finished:
        deadline.cancel()
        raise FetchError(f"{label}: not finished within the {deadline.seconds:g}s budget", "timeout")
    return results
