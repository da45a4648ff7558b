"""Peak memory of a process *and its worker processes*, for the benches.

``wait4``'s ``ru_maxrss`` is the largest RSS of any one process of the tree, not their sum: a tool that forks
workers would look as lean as its largest process. :class:`TreeRSS` samples the summed RSS of a process and all
its descendants (``/proc/PID/task/*/children``) every few milliseconds; the benches report the larger of that
sum's peak and ``wait4``'s figure. The sum counts the pages a forked worker shares with its parent once per
process (it overstates what they use together), but it is sampled every 5 ms, so a briefer peak can fall
between two samples. Linux only (elsewhere it reports nothing and ``wait4`` stands alone).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (none when it is gone)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                out.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    except OSError:
        pass
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def tree_rss_mb(pid: int) -> tuple[float, int]:
    """(summed RSS in MB, number of processes) of ``pid`` and its descendants now."""
    seen, todo, total = set(), [pid], 0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_bytes(p)
        todo.extend(children(p))
    return total / 2**20, len(seen)


class TreeRSS:
    """``with TreeRSS(pid) as t: ...`` then ``t.peak_mb`` (the highest summed RSS seen) and ``t.most`` (the
    most processes seen at once)."""

    def __init__(self, pid: int, every: float = 0.005) -> None:
        self.pid, self.every = pid, every
        self.peak_mb, self.most = 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mb, n = tree_rss_mb(self.pid)
            self.peak_mb, self.most = max(self.peak_mb, mb), max(self.most, n)
            self._stop.wait(self.every)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
