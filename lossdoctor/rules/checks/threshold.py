"""threshold: a series compared with a bound, at each point (``reduce: each``) or once over a window."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.rules.checks import (
    OPS,
    CheckResult,
    Param,
    arrays,
    empty_result,
    global_result,
    resolve_series,
    window_start_index,
)

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run

_REDUCERS: dict[str, Callable[[np.ndarray], Any]] = {
    "max": np.nanmax,
    "min": np.nanmin,
    "mean": np.nanmean,
    "median": np.nanmedian,
    "last": lambda v: v[np.isfinite(v)][-1],
}


class Threshold:
    kind = "threshold"
    doc = "series OP value, at each point (reduce: each) or reduced over the window (max/min/mean/median/last)"
    params = {
        "series": Param("series", required=True, doc="canonical metric name or glob (first match)"),
        "op": Param("choice", required=True, choices=tuple(OPS)),
        "value": Param("number", required=True),
        "reduce": Param("choice", default="each", choices=("each", *_REDUCERS)),
        "window": Param("window", default=None),
        "skip_first": Param("int", default=0, doc="ignore the first N points (warm-up)"),
        "ignore_zeros": Param(
            "bool",
            default=False,
            doc="exact 0.0 values are not measurements (an engine that logs 0 where it did not "
            "compute the value): leave them out",
        ),
        "min_points": Param("int", default=1, doc="finite points needed in the window (reduce mode)"),
    }
    evidence_keys = frozenset(
        {"value", "step", "peak", "peak_step", "points", "threshold", "metric", "total_points", "share_pct", "ratio"}
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        names = resolve_series(run, args["series"])
        if not names:
            return empty_result((args["series"],), "points" if args["reduce"] == "each" else "global")
        metric = names[0]
        steps, values = arrays(run, metric)
        start = window_start_index(steps, args.get("window"))
        steps, values = steps[start:], values[start:]
        if bool(args["ignore_zeros"]):
            keep = values != 0.0
            steps, values = steps[keep], values[keep]
        skip = int(args["skip_first"])
        if skip and args["reduce"] != "each":
            steps, values = steps[skip:], values[skip:]
        op = OPS[args["op"]]
        bound = float(args["value"])
        finite = np.isfinite(values)
        if args["reduce"] != "each":
            if not finite.any() or int(finite.sum()) < int(args["min_points"]):
                return global_result(False, int(steps[-1]) if len(steps) else None, {}, (metric,))
            reduced = float(_REDUCERS[args["reduce"]](values))
            at = (
                int(np.flatnonzero(finite & (values == reduced))[0])
                if np.isfinite(reduced) and (values == reduced).any()
                else len(values) - 1
            )
            holds = bool(op(reduced, bound))
            return global_result(
                holds,
                int(steps[at]),
                {
                    "value": reduced,
                    "step": int(steps[at]),
                    "peak": reduced,
                    "peak_step": int(steps[at]),
                    "points": int(finite.sum()),
                    "threshold": bound,
                    "metric": metric,
                    "total_points": int(len(values)),
                    "share_pct": 100.0,
                    "ratio": reduced / bound if bound else float("nan"),
                },
                (metric,),
            )
        mask = finite & op(values, bound)
        mask[:skip] = False
        count = np.cumsum(mask)
        extreme = values if args["op"] in (">", ">=") else -values
        masked = np.where(mask, extreme, -np.inf)
        run_best = np.maximum.accumulate(masked) if len(masked) else masked

        def evidence_at(i: int) -> dict[str, Any]:
            peak_idx = int(np.flatnonzero(masked[: i + 1] == run_best[i])[0]) if np.isfinite(run_best[i]) else i
            return {
                "value": float(values[i]),
                "step": int(steps[i]),
                "peak": float(values[peak_idx]),
                "peak_step": int(steps[peak_idx]),
                "points": int(count[i]),
                "threshold": bound,
                "metric": metric,
                "total_points": int(i + 1),
                "share_pct": 100.0 * float(count[i]) / (i + 1),
                "ratio": float(values[peak_idx]) / bound if bound else float("nan"),
            }

        return CheckResult(steps, mask, evidence_at, (metric,))


CHECK = Threshold()
