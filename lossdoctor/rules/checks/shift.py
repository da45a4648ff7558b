"""shift: how far a series moved between two stretches of its points, in its own units and in units of its
point-to-point noise; optionally with a second series that must have moved too.

Why a kind of its own: the series of preference and RL runs start at 0 or cross it (DPO's reward margins and
chosen rewards start at exactly 0, a GRPO reward may be -0.2 or 0.003, KL starts at 0), so the *relative*
change that ``trend``, ``relation`` and ``plateau`` measure is undefined or meaningless there. A stretch median
(``stretch`` of the points, at least 3) is robust to single batches; the noise is the robust spread of the
point-to-point differences (1.4826 x MAD / sqrt 2: a trend does not inflate it), so "moved" means moved beyond
what batch-to-batch noise does.

- ``from: head`` / ``best``: the first stretch, or the stretch furthest *against* ``direction`` before ``to``;
- ``to: tail`` / ``best``: the last stretch, or the stretch furthest *in* ``direction`` after ``from``;
- ``holds: moved``: the move in ``direction`` reached ``min_noise`` noise units and ``min_abs``;
  ``holds: stayed``: it did not (a reward that never rose above its start);
- ``also``: a second series whose first-to-last stretch move in ``also_direction`` reached ``also_min_noise``
  noise units (DPO margins growing *while* the chosen rewards fall).
Global: decided once over the whole run; the finding spans the two stretches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lossdoctor.model import Run
from lossdoctor.rules.checks import CheckResult, Param, empty_result, finite_points, global_result
from lossdoctor.rules.rolling import median as median_of
from lossdoctor.rules.rolling import sliding_medians

MIN_STRETCH = 3


def point_noise(values: np.ndarray) -> float:
    """Robust spread of one point around its neighbours: 1.4826 x MAD of the differences / sqrt(2)."""
    if len(values) < 3:
        return 0.0
    d = np.diff(values)
    return float(1.4826 * median_of(np.abs(d - median_of(d))) / math.sqrt(2.0))


def stretch_medians(values: np.ndarray, k: int) -> np.ndarray:
    """Median of each window of k consecutive points; entry i covers points i..i+k-1."""
    n = len(values)
    if n < k:
        return np.zeros(0)
    lo = np.arange(n - k + 1)
    out = sliding_medians(values, k)
    if not np.isfinite(values).all():  # a window holding a NaN has no median (pandas: min_periods=k)
        bad = np.concatenate(([0], np.cumsum(~np.isfinite(values))))
        out[(bad[lo + k] - bad[lo]) > 0] = np.nan
    return out


class Shift:
    kind = "shift"
    doc = "move between two stretches (first/best/last) in units of the series' noise; optionally a second series"
    params = {
        "series": Param("series", required=True),
        "direction": Param("choice", required=True, choices=("up", "down")),
        "from": Param(
            "choice",
            default="head",
            choices=("head", "best"),
            doc="head: the first stretch; best: the one furthest against direction before `to`",
        ),
        "to": Param(
            "choice",
            default="tail",
            choices=("tail", "best"),
            doc="tail: the last stretch; best: the one furthest in direction after `from`",
        ),
        "holds": Param("choice", default="moved", choices=("moved", "stayed")),
        "stretch": Param("fraction", default=0.2, doc="stretch length as a share of the points (at least 3)"),
        "min_points": Param("int", default=8),
        "min_noise": Param("number", default=0.0, doc="the move, in noise units, needed to count as moved"),
        "min_abs": Param("number", default=0.0, doc="... and in the series' own units"),
        "also": Param("series", default=None, doc="a second series that must have moved too (first to last stretch)"),
        "also_direction": Param("choice", default="up", choices=("up", "down")),
        "also_min_noise": Param("number", default=0.0),
    }
    evidence_keys = frozenset(
        {
            "metric",
            "head",
            "tail",
            "change",
            "change_noise",
            "noise",
            "from_step",
            "to_step",
            "points",
            "also_metric",
            "also_head",
            "also_tail",
            "also_change",
        }
    )

    def _move(self, values: np.ndarray, k: int, up: bool, frm: str, to: str) -> tuple[float, float, int, int]:
        """(from-stretch median, to-stretch median, from index, to-stretch last index)."""
        med = stretch_medians(values, k)
        sign = 1.0 if up else -1.0
        last = len(med) - 1
        if to == "tail":
            j = last
            if frm == "head":
                i = 0
            else:  # furthest against the direction, ending before the tail starts
                cand = med[: max(1, j - k + 1)]
                i = int(np.argmin(sign * cand))
        else:
            i = 0
            if frm == "best":  # best-against then best-in after it: take the first stretch
                i = int(np.argmin(sign * med[: max(1, last - k + 1)]))
            start = min(i + k, last)
            j = start + int(np.argmax(sign * med[start:]))
        return float(med[i]), float(med[j]), i, j + k - 1

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        metric, steps, values = finite_points(run, args["series"])
        if metric is None:
            return empty_result((args["series"],), "global")
        n = len(values)
        if n < max(int(args["min_points"]), 2 * MIN_STRETCH):
            return global_result(False, int(steps[-1]) if n else None, {}, (metric,))
        k = max(MIN_STRETCH, int(round(float(args["stretch"]) * n)))
        k = min(k, n // 2)
        up = args["direction"] == "up"
        head, tail, i, j = self._move(values, k, up, str(args["from"]), str(args["to"]))
        change = (tail - head) if up else (head - tail)
        noise = point_noise(values)
        bound = max(float(args["min_noise"]) * noise, float(args["min_abs"]))
        moved = change > 0 and change >= bound
        holds = moved if args["holds"] == "moved" else change <= bound
        evidence: dict[str, Any] = {
            "metric": metric,
            "head": head,
            "tail": tail,
            "change": change,
            "change_noise": change / noise if noise > 0 else (math.inf if change > 0 else 0.0),
            "noise": noise,
            "from_step": int(steps[i]),
            "to_step": int(steps[j]),
            "points": n,
        }
        series: tuple[str, ...] = (metric,)
        also = args.get("also")
        if also and holds:
            a_metric, a_steps, a_values = finite_points(run, also)
            if a_metric is None or len(a_values) < 2 * MIN_STRETCH:
                return global_result(False, int(steps[-1]), {}, (metric, also))
            ka = min(max(MIN_STRETCH, int(round(float(args["stretch"]) * len(a_values)))), len(a_values) // 2)
            a_up = args["also_direction"] == "up"
            a_head, a_tail, _, _ = self._move(a_values, ka, a_up, "head", "tail")
            a_change = (a_tail - a_head) if a_up else (a_head - a_tail)
            a_bound = float(args["also_min_noise"]) * point_noise(a_values)
            holds = a_change > 0 and a_change >= a_bound
            evidence.update(also_metric=a_metric, also_head=a_head, also_tail=a_tail, also_change=a_change)
            series = (metric, a_metric)
        return global_result(bool(holds), int(steps[j]), evidence, series)


CHECK = Shift()
