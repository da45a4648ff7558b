"""spike: a point far above the median of the points just before it (a single jump, told apart from
divergence by the rules that look at persistence and trend)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lossdoctor.rules.checks import CheckResult, Param, arrays, empty_result, resolve_series

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class Spike:
    kind = "spike"
    doc = "value > factor × median of the previous `lookback` points"
    params = {
        "series": Param("series", required=True),
        "factor": Param("number", default=2.0),
        "lookback": Param("int", default=5),
        "min_excess": Param("number", default=0.0, doc="absolute excess over the median also required"),
    }
    evidence_keys = frozenset({"value", "step", "baseline", "ratio", "points", "metric", "recovered"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        names = resolve_series(run, args["series"])
        if not names:
            return empty_result((args["series"],))
        metric = names[0]
        steps, values = arrays(run, metric)
        look = int(args["lookback"])
        n = len(values)
        baseline = np.full(n, np.nan)
        if n > look:
            windows = sliding_window_view(np.where(np.isfinite(values), values, np.nan), look)[:-1]
            with np.errstate(all="ignore"):
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    baseline[look:] = np.nanmedian(windows, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = values / baseline
        mask = (np.isfinite(ratio) & (baseline > 0) & (ratio > float(args["factor"]))
                & (values - baseline > float(args["min_excess"])))
        count = np.cumsum(mask)

        def evidence_at(i: int) -> dict[str, Any]:
            recovered = bool(i + 1 < n and np.isfinite(values[i + 1]) and values[i + 1] <= baseline[i] * 1.5)
            return {"value": float(values[i]), "step": int(steps[i]), "baseline": float(baseline[i]),
                    "ratio": float(ratio[i]), "points": int(count[i]), "metric": metric, "recovered": str(recovered)}

        return CheckResult(steps, mask, evidence_at, (metric,))


CHECK = Spike()
