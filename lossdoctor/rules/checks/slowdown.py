"""slowdown: a step-time cliff — the run became ``factor`` x slower per step for a sustained stretch (a data
loader stall, swapping, a throttled or shared GPU).

Time per step comes from, in order: the wall-clock time of the logs (``wall_time`` in the run's table, e.g.
TensorBoard events), a step-time series (``train/step_time``), or a throughput series (tokens or samples per
second, inverted). The reference is the median time per step over the first half of the run; the cliff is
at least ``min_points`` consecutive logs (and ``min_share`` of them) at ``factor`` x that or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lossdoctor.model import Run
from lossdoctor.rules.checks import Param, arrays, empty_result, global_result, resolve_series
from lossdoctor.rules.rolling import median as median_of
from lossdoctor.rules.window import true_runs


def _latest_time_per_step(step: np.ndarray, wall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps, the latest wall time logged at each), steps sorted, over every metric's points. A dense
    per-step maximum when the steps span little more than the points (the usual case: no sort, no copy of
    the table), else a sort by (step, time)."""
    ok = ~np.isnan(wall)
    lo, hi = int(step.min()), int(step.max())
    if hi - lo < 4 * len(step) + 1024:
        latest = np.full(hi - lo + 1, -np.inf)
        np.maximum.at(latest, (step - lo)[ok], wall[ok])
        have = np.flatnonzero(latest > -np.inf)
        return have + lo, latest[have]
    st, wt = step[ok], wall[ok]
    order = np.lexsort((wt, st))  # by step, then time: the last of a step is its max
    st, wt = st[order], wt[order]
    last = np.r_[st[1:] != st[:-1], True] if len(st) else np.zeros(0, dtype=bool)
    return st[last], wt[last]


def _time_per_step(run: Run, step_time: list[str], throughput: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    table = run.metrics
    if table.wall_time is not None and len(table):
        steps, times = _latest_time_per_step(table.step, table.wall_time)
        if len(steps) >= 3:
            ds, dt = np.diff(steps), np.diff(times)
            ok = ds > 0
            return steps[1:][ok], dt[ok] / ds[ok], "the logs' wall-clock times"
    for pattern in step_time:
        names = resolve_series(run, pattern)
        if names:
            s, v = arrays(run, names[0])
            ok = np.isfinite(v) & (v > 0)
            return s[ok], v[ok], names[0]
    for pattern in throughput:
        names = resolve_series(run, pattern)
        if names:
            s, v = arrays(run, names[0])
            ok = np.isfinite(v) & (v > 0)
            return s[ok], 1.0 / v[ok], f"1 / {names[0]}"
    return np.zeros(0, dtype="int64"), np.zeros(0), ""


class Slowdown:
    kind = "slowdown"
    doc = "time per step (wall clock, step time or 1/throughput) factor x its early median for a sustained stretch"
    params = {
        "factor": Param("number", default=10.0),
        "min_points": Param("int", default=3),
        "min_share": Param("fraction", default=0.05),
        "step_time": Param("names", default=["train/step_time"]),
        "throughput": Param(
            "names", default=["train/tokens_per_second", "train/samples_per_second", "train/steps_per_second"]
        ),
    }
    evidence_keys = frozenset({"ratio", "from_step", "to_step", "points", "baseline", "slow", "source"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> Any:
        steps, tps, source = _time_per_step(run, list(args["step_time"]), list(args["throughput"]))
        if len(tps) < 2 * int(args["min_points"]):
            return empty_result(("time per step",), "global")
        baseline = float(median_of(tps[: max(1, len(tps) // 2)]))
        slow = tps >= float(args["factor"]) * baseline
        need = max(int(args["min_points"]), int(float(args["min_share"]) * len(tps)))
        runs = [(a, b) for a, b in true_runs(slow) if b - a + 1 >= need]
        if not runs or baseline <= 0:
            return global_result(False, int(steps[-1]), {}, ("time per step",))
        a, b = max(runs, key=lambda r: r[1] - r[0])
        med = float(median_of(tps[a : b + 1]))
        return global_result(
            True,
            int(steps[a]),
            {
                "ratio": med / baseline,
                "from_step": int(steps[a]),
                "to_step": int(steps[b]),
                "points": b - a + 1,
                "baseline": baseline,
                "slow": med,
                "source": source,
            },
            ("time per step",),
        )


CHECK = Slowdown()
