"""HF console logs, step inference: the printed log dicts carry no step; this gives each one.

tqdm.write clears the bar, writes the dict, and redraws the bar, so the main bar's counter drawn right *after*
a dict (``| 20/100 [``) is the step it was logged at. Pasted consoles lose most redraws, so steps are inferred
as follows (``Provenance.step_source`` and a note say which was used):

1. ``tqdm``: the counter of the main bar (the bar whose total is the most common one after a dict = max_steps)
   redrawn on the line right after each dict, kept only when monotone and consistent with the dict's
   ``epoch`` (step ∝ epoch). (Bars drawn *before* a dict are not used: in pasted consoles they are stale.)
2. ``epoch*cadence`` for dicts left without one: steps per epoch *s* from the tqdm anchors (or from the
   summary's runtime × steps/s, or the bar total, against the final epoch), the logging cadence *L* from the
   anchors (else median epoch gap × s); a train dict's step is L · round(epoch · s / L) (HF logs only at
   multiples of logging_steps); an eval dict takes the step of the train dict with the same epoch, else
   round(epoch · s).
3. ``ordinal`` when neither exists: train dicts are numbered 1, 2, 3 ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossdoctor.sources._hf_scan import SUMMARY, TRAIN, ScanResult


@dataclass(frozen=True)
class StepPlan:
    """The optimizer step of each logged dict of a console log, and where the steps came from."""

    steps: np.ndarray  # per dict; -1 for summary dicts
    step_source: str
    notes: tuple[str, ...]
    max_steps: int | None


def _main_total(after_t: np.ndarray) -> int | None:
    """The training bar's total: the most common total right after a dict (eval bars close before it)."""
    totals = after_t[after_t > 0]
    if totals.size == 0:
        return None
    values, counts = np.unique(totals, return_counts=True)
    return int(values[np.argmax(counts)])


def _tolerance(epoch: np.ndarray, s: float) -> np.ndarray:
    """Steps of slack when comparing a counter with epoch × s: epochs are printed rounded (2 decimals in
    transformers 4, 4 significant digits in 5)."""
    return s * np.maximum(0.005, np.abs(epoch) * 5e-4) + 1.0


#: Inferred steps (epoch × steps per epoch, previous + cadence) at or beyond this are not steps.
_STEP_CAP = 2**62


def _as_steps(x: np.ndarray) -> np.ndarray:
    """Float step estimates → int64; non-finite, negative or beyond _STEP_CAP → -1 (no step)."""
    ok = np.isfinite(x) & (x >= 0) & (x < _STEP_CAP)
    return np.where(ok, x, -1).astype(np.int64)


def _cadence(x: float) -> int | None:
    """A logging cadence in steps (≥ 1) from a float estimate; None when it is no usable number."""
    return max(1, int(round(x))) if math.isfinite(x) and abs(x) < _STEP_CAP else None


def infer_steps(scan: ScanResult, summary: dict[str, Any]) -> StepPlan:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _infer_steps(scan, summary)


def _infer_steps(scan: ScanResult, summary: dict[str, Any]) -> StepPlan:
    kind = scan.kind
    n = kind.size
    epoch = np.full(n, np.nan)
    for group in scan.groups.values():
        if "epoch" in group.keys:
            idx, vals, ok = group.column(group.keys.index("epoch"))
            epoch[idx] = np.where(ok, vals, np.nan)
    total = _main_total(scan.after_total)
    points = kind != SUMMARY
    is_train = kind == TRAIN
    have_epoch = np.isfinite(epoch) & (epoch > 0)

    # the main bar's counters; a counter must not run backwards: drop those below the running maximum of
    # earlier ones
    c = (
        np.where((scan.after_total == total) & (scan.after_n >= 0) & points, scan.after_n, -1)
        if total
        else np.full(n, -1)
    )
    run_max = np.maximum.accumulate(np.where(c >= 0, c, 0))
    prev_max = np.concatenate([[0], run_max[:-1]])
    after = np.where(c >= prev_max, c, -1)
    # steps per epoch from the after-counters (the reliable ones), then keep only consistent counters
    s: float | None = None
    anchor = (after > 0) & have_epoch
    if anchor.any():
        s = float(np.median(after[anchor] / epoch[anchor]))
    notes: list[str] = []
    if s is None:
        s = _steps_per_epoch_from_summary(summary, total, epoch, have_epoch, notes)
    if s is not None and not (math.isfinite(s) and s < _STEP_CAP):
        s = None
    if s is not None and s > 0:
        tol = _tolerance(epoch, s)
        after = np.where(~have_epoch | (np.abs(after - epoch * s) <= tol), after, -1)
    steps = after.astype(np.int64)
    from_tqdm = steps >= 0
    n_points = int(points.sum())
    n_tqdm = int(from_tqdm[points].sum())
    n_epoch = n_ordinal = 0
    need = points & ~from_tqdm
    L: int | None = None
    if need.any() and s:
        train_idx = np.flatnonzero(is_train)
        # logging cadence L: from the train dicts that have a counter, else from the median epoch gap
        t_anchor = train_idx[from_tqdm[train_idx]]
        if t_anchor.size >= 2:
            pos = np.searchsorted(train_idx, t_anchor)
            d_step, d_pos = np.diff(steps[t_anchor]), np.diff(pos)
            good = d_pos > 0
            if good.any():
                L = _cadence(float(np.median(d_step[good] / d_pos[good])))
        if L is None:
            te = epoch[train_idx]
            te = te[np.isfinite(te)]
            if te.size >= 2:
                L = _cadence(float(np.median(np.diff(te))) * s)
        cadence = L or 1
        exact = np.round(epoch * s)
        grid = cadence * np.round(epoch * s / cadence)
        grid = np.where(grid > 0, grid, np.maximum(exact, 1))
        fill_train = need & is_train & have_epoch
        steps[fill_train] = _as_steps(grid[fill_train])
        # eval dicts: the step of the dict before with the same printed epoch, else round(epoch × s)
        for i in np.flatnonzero(need & ~is_train & have_epoch).tolist():
            j = i - 1
            while j >= 0 and kind[j] == SUMMARY:
                j -= 1
            same = j >= 0 and steps[j] >= 0 and epoch[j] == epoch[i]
            steps[i] = steps[j] if same else (max(int(exact[i]), 1) if 0 <= exact[i] < _STEP_CAP else -1)
        n_epoch = int((need & have_epoch).sum())
        notes.append(
            f"steps inferred as epoch x {s:.6g} steps/epoch on a logging cadence of {cadence} steps "
            f"for {n_epoch} of {n_points} log dicts (the rest from tqdm counters)"
        )
    need = points & (steps < 0)
    if need.any():
        # no counter and no epoch: train dicts numbered after the previous one, eval dicts share it
        last = 0
        for i in range(n):
            if kind[i] == SUMMARY:
                continue
            if steps[i] < 0:
                steps[i] = min(last + (L or 1), _STEP_CAP) if kind[i] == TRAIN else max(last, 1)
            last = int(steps[i])
        n_ordinal = int(need.sum())
        notes.append(f"{n_ordinal} log dict(s) without a tqdm counter or epoch: numbered after the previous one")
    if n_epoch:
        source = "epoch*cadence"
    elif n_ordinal and not n_tqdm:
        source = "ordinal"
    else:
        source = "tqdm"
        if not n_ordinal:
            notes.insert(0, "steps from the tqdm counter printed with each log dict")
    steps = np.where(points, steps, -1).astype(np.int64)
    return StepPlan(steps, source, tuple(notes), total)


def _steps_per_epoch_from_summary(
    summary: dict[str, Any], total: int | None, epoch: np.ndarray, have_epoch: np.ndarray, notes: list[str]
) -> float | None:
    """Without any usable counter: the run's length (runtime × steps/s, or the bar total when the run
    finished) over its final epoch."""
    final_epoch = summary.get("epoch")
    if not isinstance(final_epoch, float) or not final_epoch > 0:
        final_epoch = float(np.nanmax(epoch[have_epoch])) if have_epoch.any() else None
    if not final_epoch:
        return None
    runtime, sps = summary.get("train_runtime"), summary.get("train_steps_per_second")
    length: float | None = None
    if isinstance(runtime, float) and isinstance(sps, float) and runtime > 0 and sps > 0:
        length = runtime * sps
        if total and abs(length - total) <= 0.01 * total + 1:
            length = float(total)
        notes.append(f"run length {length:.0f} steps from the summary (train_runtime x train_steps_per_second)")
    elif total and summary:
        length = float(total)
    if not length:
        return None
    return length / final_epoch
