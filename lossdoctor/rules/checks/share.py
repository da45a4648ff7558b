"""share: the condition ``series OP bound`` holds on at least ``min_share`` of the points (of a window).

For "most of the time" questions a per-point threshold with ``for`` cannot ask, e.g. grad_norm above
max_grad_norm on 80% of the logs: clipping, not the learning rate, is setting the step size. The bound can
come from the run's config (``bound_from``: config keys tried in order, e.g. ``max_grad_norm``), falling back
to ``value`` (or, with ``require_config``, the check stays silent); the evidence says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.rules.checks import OPS, CheckResult, Param, config_number, empty_result, finite_points, global_result
from lossdoctor.rules.rolling import median as median_of

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class Share:
    kind = "share"
    doc = "series OP bound on at least min_share of the (finite) points; the bound may come from the config"
    params = {
        "series": Param("series", required=True),
        "op": Param("choice", required=True, choices=tuple(OPS)),
        "value": Param("number", required=True, doc="the bound (used when no bound_from key is in the config)"),
        "bound_from": Param("names", default=None, doc="config keys to read the bound from, first found wins"),
        "require_config": Param(
            "bool", default=False, doc="silent unless the bound is in the run's config (no default assumed)"
        ),
        "min_share": Param("fraction", default=0.8),
        "min_points": Param("int", default=10),
        "min_count": Param("int", default=0, doc="also at least this many points (isolated ones count)"),
        "skip_first": Param("int", default=0, doc="leave out the first N points (warm-up)"),
        "window": Param("window", default=None),
    }
    evidence_keys = frozenset(
        {
            "share_pct",
            "points",
            "total_points",
            "bound",
            "bound_source",
            "median",
            "peak",
            "metric",
            "from_step",
            "to_step",
        }
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        metric, steps, values = finite_points(run, args["series"], args.get("window"))
        if metric is None:
            return empty_result((args["series"],), "global")
        skip = int(args["skip_first"])
        if skip:
            steps, values = steps[skip:], values[skip:]
        n = len(values)
        if n < int(args["min_points"]):
            return global_result(False, int(steps[-1]) if n else None, {}, (metric,))
        bound, key = config_number(run, args.get("bound_from") or ())
        source = f"the run's config ({key})" if key else "the default (not in the run's config)"
        if bound is None:
            if bool(args["require_config"]):
                return global_result(False, int(steps[-1]), {}, (metric,))
            bound = float(args["value"])
        hits = int(OPS[args["op"]](values, bound).sum())
        share = hits / n
        holds = share >= float(args["min_share"]) and hits >= int(args["min_count"])
        return global_result(
            holds,
            int(steps[-1]),
            {
                "share_pct": 100.0 * share,
                "points": hits,
                "total_points": n,
                "bound": bound,
                "bound_source": source,
                "median": float(median_of(values)),
                "peak": float(np.max(values)),
                "metric": metric,
                "from_step": int(steps[0]),
                "to_step": int(steps[-1]),
            },
            (metric,),
        )


CHECK = Share()
