"""zeros: a loss logged as exactly 0.0 where a real loss cannot be 0.

A cross-entropy of exactly 0.0 means the loss was not computed over anything (every label masked, an
all-padding batch) or was a NaN that the logger replaced (HF's ``logging_nan_inf_filter`` logs a NaN/inf step
loss as 0.0 — visible with ``logging_steps=1``). Two patterns:

- ``scattered``: exact zeros among values whose median is at least ``min_level``, with non-zero values after
  them (NaN steps hidden among real ones);
- ``tail``: the last ``min_count`` or more logs are exactly 0.0 after positive values (the loss "collapsed" to
  0: read naively as a 100 % improvement).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lossdoctor.model import Run
from lossdoctor.rules.checks import Param, arrays, empty_result, finite_points, global_result
from lossdoctor.rules.rolling import median as median_of


class Zeros:
    kind = "zeros"
    doc = "exact 0.0 values of a series that cannot be 0 (scattered among large values, or a collapse at the end)"
    params = {
        "series": Param("series", required=True),
        "pattern": Param("choice", required=True, choices=("scattered", "tail")),
        "min_count": Param("int", default=1, doc="zeros needed"),
        "min_level": Param("number", default=0.05, doc="median of the non-zero values at least this"),
        "unless_nonfinite": Param(
            "series",
            default=None,
            doc="silent when this series is NaN/inf at the zero steps (a NaN run, judged by the non-finite rules)",
        ),
    }
    evidence_keys = frozenset(
        {
            "zeros",
            "points",
            "first_zero_step",
            "last_zero_step",
            "median",
            "metric",
            "before",
            "before_step",
            "zero_steps",
            "from_step",
            "to_step",
        }
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> Any:
        metric, steps, values = finite_points(run, args["series"])
        if metric is None:
            return empty_result((args["series"],), "global")
        n = len(values)
        zero = values == 0.0
        nonzero = values[~zero]
        if n == 0 or not zero.any() or len(nonzero) == 0:
            return global_result(False, int(steps[-1]) if n else None, {}, (metric,))
        median = float(median_of(nonzero))
        if args["pattern"] == "tail":
            last_nz = int(np.flatnonzero(~zero)[-1])
            at = np.arange(last_nz + 1, n)
            holds = len(at) >= int(args["min_count"]) and bool((values[: last_nz + 1] > 0).any())
        else:
            last_nz = int(np.flatnonzero(~zero)[-1])
            at = np.flatnonzero(zero[:last_nz])  # zeros with real values after them
            holds = len(at) >= int(args["min_count"]) and median >= float(args["min_level"])
        if not len(at):
            return global_result(False, int(steps[-1]), {}, (metric,))
        other = args.get("unless_nonfinite")
        if other and run.has(other):
            o_steps, o_vals = arrays(run, other)
            hit = np.isin(o_steps, steps[at])
            if hit.any() and not np.isfinite(o_vals[hit]).all():
                holds = False
        before = np.flatnonzero(~zero[: int(at[0])])
        shown = ", ".join(str(int(steps[k])) for k in at[:8]) + (" ..." if len(at) > 8 else "")
        return global_result(
            bool(holds),
            int(steps[at[0]]),
            {
                "zeros": int(len(at)),
                "points": n,
                "first_zero_step": int(steps[at[0]]),
                "last_zero_step": int(steps[at[-1]]),
                "median": median,
                "metric": metric,
                "before": float(values[before[-1]]) if len(before) else float("nan"),
                "before_step": int(steps[before[-1]]) if len(before) else -1,
                "zero_steps": shown,
                "from_step": int(steps[at[0]]),
                "to_step": int(steps[at[-1]]),
            },
            (metric,),
        )


CHECK = Zeros()
