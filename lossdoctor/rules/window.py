"""Persistence (``for: N points|evals|steps``): pure functions over a boolean mask on a step clock."""

from __future__ import annotations

import numpy as np


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end_inclusive)] of consecutive True values."""
    if len(mask) == 0:
        return []
    padded = np.r_[False, mask.astype(bool), False]
    diff = np.diff(padded.astype(np.int8))
    starts = np.flatnonzero(diff == 1)
    ends = np.flatnonzero(diff == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def qualifying_runs(clock: np.ndarray, mask: np.ndarray, count: int, unit: str) -> list[tuple[int, int, int]]:
    """[(start, end, fired_index)] of the runs of True that last ``count`` points/evals or span ``count`` steps;
    ``fired_index`` is where the persistence requirement was first met."""
    out = []
    for start, end in true_runs(mask):
        if unit == "steps":
            reach = clock[start] + count
            fired = int(np.searchsorted(clock[start : end + 1], reach, side="left")) + start
            if clock[end] - clock[start] >= count and fired <= end:
                out.append((start, end, fired))
        elif end - start + 1 >= count:
            out.append((start, end, start + count - 1))
    return out
