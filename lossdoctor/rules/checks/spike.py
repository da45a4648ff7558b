"""spike: a point far above the median of the points just before it (a single jump, told apart from
divergence by the rules that look at persistence and trend).

Noise-aware (``noise_z``): the excess over the baseline must also exceed that many of the series' own noise
deviations (:func:`lossdoctor.rules.noise.residual_noise`), so a batch-1 loss that routinely doubles is not a
spike. ``skip_first`` ignores the first logs (warm-up: grad norms are large before the optimiser settles).
Evidence says how many spikes there were, how far apart, and whether the series came back after each
(``recovered``: the next point within 1.5x the baseline) — a transient spike, not a change of regime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.rules.checks import CheckResult, Param, arrays, empty_result, resolve_series
from lossdoctor.rules.noise import residual_noise
from lossdoctor.rules.rolling import median as median_of
from lossdoctor.rules.rolling import sliding_medians

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class Spike:
    kind = "spike"
    doc = "value > factor × median of the previous `lookback` points (and > noise_z × the series' noise)"
    params = {
        "series": Param("series", required=True),
        "factor": Param("number", default=2.0),
        "lookback": Param("int", default=5),
        "min_excess": Param("number", default=0.0, doc="absolute excess over the median also required"),
        "noise_z": Param("number", default=0.0, doc="excess must exceed this many noise deviations (0 = off)"),
        "skip_first": Param("int", default=0, doc="ignore the first N points (warm-up)"),
        "max_share": Param(
            "fraction",
            default=1.0,
            doc="silent when more than this share of the points are spikes (a regime, not spikes)",
        ),
    }
    evidence_keys = frozenset(
        {
            "value",
            "step",
            "baseline",
            "ratio",
            "points",
            "metric",
            "recovered",
            "total_points",
            "recovered_points",
            "median",
            "noise",
            "spike_steps",
            "spike_words",
        }
    )

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
            baseline[look:] = sliding_medians(values, look)[:-1]  # the `look` finite points before each
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = values / baseline
        mask = (
            np.isfinite(ratio)
            & (baseline > 0)
            & (ratio > float(args["factor"]))
            & (values - baseline > float(args["min_excess"]))
        )
        noise = residual_noise(values) if mask.any() else float("nan")  # only when a candidate needs it
        if float(args["noise_z"]) > 0 and np.isfinite(noise):
            mask &= values - baseline > float(args["noise_z"]) * noise
        mask[: int(args["skip_first"])] = False
        if n and mask.sum() > float(args["max_share"]) * n:
            mask[:] = False
        count = np.cumsum(mask)
        nxt = np.r_[values[1:], np.nan]
        recovered = mask & np.isfinite(nxt) & (nxt <= baseline * 1.5)
        rec_count = np.cumsum(recovered)
        fin = values[np.isfinite(values)]
        median = float(median_of(fin)) if len(fin) else float("nan")

        def evidence_at(i: int) -> dict[str, Any]:
            at = np.flatnonzero(mask[: i + 1])
            shown = ", ".join(str(int(steps[k])) for k in at[:8]) + (" ..." if len(at) > 8 else "")
            k, r = int(count[i]), int(rec_count[i])
            words = f"{k} spike(s) in {n} logs (at step(s) {shown}); " + (
                "each followed by a normal log" if r == k else f"{k - r} not followed by a normal log"
            )
            return {
                "value": float(values[i]),
                "step": int(steps[i]),
                "baseline": float(baseline[i]),
                "ratio": float(ratio[i]),
                "points": k,
                "metric": metric,
                "recovered": str(bool(recovered[i])),
                "total_points": int(n),
                "recovered_points": r,
                "median": median,
                "noise": float(noise),
                "spike_steps": shown,
                "spike_words": words,
            }

        return CheckResult(steps, mask, evidence_at, (metric,))


CHECK = Spike()
