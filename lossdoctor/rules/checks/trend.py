"""trend: a series moved up or down by at least ``min_change`` (relative), measured from its best point so far
(``from: best``, e.g. eval loss climbing back from its minimum) or from its first point (``from: start``).
``smooth`` applies an EMA first so one noisy eval does not decide."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from lossdoctor.model import Run
from lossdoctor.rules.checks import CheckResult, Param, arrays, ema, empty_result, resolve_series, running_best


class Trend:
    kind = "trend"
    doc = "relative change of a series from its best (or first) point, up or down"
    params = {
        "series": Param("series", required=True),
        "direction": Param("choice", required=True, choices=("up", "down")),
        "from": Param("choice", default="best", choices=("best", "start")),
        "min_change": Param("fraction", default=0.05, doc="relative change, e.g. 5%"),
        "smooth": Param("int", default=1, doc="EMA span in points (1 = raw)"),
        "min_points": Param("int", default=3, doc="points needed before it may hold"),
    }
    evidence_keys = frozenset({"best", "best_step", "last", "last_step", "change_pct", "abs_change_pct",
                               "rise_pct", "drop_pct", "points", "metric", "first", "first_step"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        names = resolve_series(run, args["series"])
        if not names:
            return empty_result((args["series"],))
        metric = names[0]
        steps, raw = arrays(run, metric)
        values = ema(raw, int(args["smooth"]))
        up = args["direction"] == "up"
        n = len(values)
        if args["from"] == "best":   # the best point is a raw one; the current level is smoothed (conservative)
            ref, ref_idx = running_best(raw, "min" if up else "max")
        else:
            finite = np.flatnonzero(np.isfinite(values))
            first = int(finite[0]) if len(finite) else 0
            ref = np.full(n, values[first] if n else np.nan)
            ref_idx = np.full(n, first, dtype="int64")
        with np.errstate(divide="ignore", invalid="ignore"):
            change = (values - ref) / np.abs(ref)
        signed = change if up else -change
        idx = np.arange(n)
        mask = np.isfinite(signed) & (signed >= float(args["min_change"])) & (idx >= int(args["min_points"]) - 1) \
            & (idx > ref_idx)

        def evidence_at(i: int) -> dict[str, Any]:
            r = int(ref_idx[i])
            pct = float(change[i] * 100.0) if np.isfinite(change[i]) else float("nan")
            return {"best": float(raw[r]), "best_step": int(steps[r]), "last": float(raw[i]),
                    "last_step": int(steps[i]), "change_pct": pct, "abs_change_pct": abs(pct),
                    "rise_pct": pct, "drop_pct": -pct, "points": int(i + 1), "metric": metric,
                    "first": float(raw[0]), "first_step": int(steps[0])}

        return CheckResult(steps, mask, evidence_at, (metric,), onset_at=lambda i: int(steps[int(ref_idx[i])]))


CHECK = Trend()
