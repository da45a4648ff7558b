"""missing: a series absent or with too few points to judge (e.g. no eval loss: overfitting can't be judged)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lossdoctor.rules.checks import CheckResult, Param, global_result, resolve_series

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class Missing:
    kind = "missing"
    doc = "fewer than min_points points in every series matching the pattern"
    params = {
        "series": Param("series", required=True),
        "min_points": Param("int", default=1),
        "at_least": Param("int", default=0, doc="only when at least this many points exist"),
    }
    evidence_keys = frozenset({"found_points", "min_points", "metric"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        names = resolve_series(run, args["series"])
        counts = [int(run.series(n).notna().sum()) for n in names]
        found = max(counts) if counts else 0
        need = int(args["min_points"])
        last = int(run.metrics["step"].max()) if len(run.metrics) else 0
        holds = int(args["at_least"]) <= found < need
        return global_result(
            holds, last, {"found_points": found, "min_points": need, "metric": args["series"]}, (args["series"],)
        )


CHECK = Missing()
