"""plateau: a loss that did not fall by ``min_drop`` across a window (the whole run: "not learning"; the tail:
"plateau"). Judged against the learning-rate schedule: a tail whose lr has decayed to a small fraction of its
peak is a finished schedule, not a plateau, when ``lr_aware`` is on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.rules.checks import (
    CheckResult,
    Param,
    arrays,
    empty_result,
    finite_points,
    global_result,
    rolling_median,
    window_start_index,
)
from lossdoctor.rules.rolling import median as median_of

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class Plateau:
    kind = "plateau"
    doc = "relative drop between the head and tail medians of a window below min_drop"
    params = {
        "series": Param("series", required=True),
        "window": Param("window", default=None),
        "min_drop": Param("fraction", default=0.05),
        "min_points": Param("int", default=10),
        "lr_aware": Param("bool", default=True),
        "lr_decayed_below": Param("fraction", default=0.1, doc="lr/peak below this = schedule finished"),
        "compare": Param(
            "choice",
            default="tail",
            choices=("tail", "lowest"),
            doc="tail: head vs the last fifth; lowest: head vs the lowest stretch anywhere "
            "(a loss that fell a lot and came back learned, then diverged)",
        ),
        "unless_improving": Param(
            "series",
            default=None,
            doc="silent while this series (e.g. eval/loss) improved by improve_by: a model "
            "whose eval loss keeps improving is learning",
        ),
        "improve_by": Param("fraction", default=0.05, doc="first vs the median of the last 3 points"),
        "improve_at_best": Param(
            "fraction",
            default=0.0,
            doc="... or first vs the last point when that is the series' best so far (an eval "
            "still setting new bests at its last eval is learning; 0 = off)",
        ),
    }
    evidence_keys = frozenset(
        {"head", "tail", "drop_pct", "points", "from_step", "to_step", "metric", "lr_ratio", "improving"}
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        metric, steps, values = finite_points(run, args["series"], args.get("window"))
        if metric is None:
            return empty_result((args["series"],), "global")
        windowed = window_start_index(arrays(run, metric)[0], args.get("window")) > 0  # a tail, not the run
        n = len(values)
        if n < int(args["min_points"]):
            return global_result(False, int(steps[-1]) if n else None, {}, (metric,))
        k = max(2, n // 5)
        head, tail = float(median_of(values[:k])), float(median_of(values[-k:]))
        if args["compare"] == "lowest":
            # the lowest stretch of k points anywhere (rolling median: O(n log k), not a k-wide window copy)
            tail = min(tail, float(rolling_median(values, k)[k - 1 :].min()))
        drop = (head - tail) / abs(head) if head != 0 else 0.0
        lr_ratio = float("nan")
        if run.has("train/learning_rate"):
            _, lr = arrays(run, "train/learning_rate")
            lr = lr[np.isfinite(lr)]
            if len(lr) and lr.max() > 0:
                lr_ratio = float(lr[-1] / lr.max())
        holds = drop < float(args["min_drop"])
        if (
            holds
            and bool(args["lr_aware"])
            and windowed
            and np.isfinite(lr_ratio)
            and lr_ratio < float(args["lr_decayed_below"])
        ):
            holds = False
        improving = ""
        other = args.get("unless_improving")
        if holds and other:
            o_metric, _, o_vals = finite_points(run, other)
            if o_metric is not None and len(o_vals) >= 2 and o_vals[0] != 0:
                gain = (o_vals[0] - float(median_of(o_vals[-3:]))) / abs(o_vals[0])
                at_best = (o_vals[0] - float(o_vals[-1])) / abs(o_vals[0])
                still_best = (
                    float(args["improve_at_best"]) > 0
                    and o_vals[-1] <= o_vals[:-1].min()
                    and at_best >= float(args["improve_at_best"])
                )
                if gain >= float(args["improve_by"]) or still_best:
                    holds = False
                    improving = f"{o_metric} improved {max(gain, at_best) * 100:.1f}%"
        return global_result(
            holds,
            int(steps[-1]),
            {
                "improving": improving,
                "head": head,
                "tail": tail,
                "drop_pct": drop * 100.0,
                "points": n,
                "from_step": int(steps[0]),
                "to_step": int(steps[-1]),
                "metric": metric,
                "lr_ratio": lr_ratio,
            },
            (metric,),
        )


CHECK = Plateau()
