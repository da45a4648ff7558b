"""nonfinite: NaN or ±inf in any of the named series (also a loss of exactly 0 logged with a NaN grad_norm,
which is how HF's ``logging_nan_inf_filter`` hides a NaN step loss)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from lossdoctor.rules.checks import CheckResult, Param, arrays, empty_result, resolve_series, sorted_unique

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class NonFinite:
    kind = "nonfinite"
    doc = "NaN/inf in any matching series"
    params = {"series": Param("series_list", required=True, doc="names or globs")}
    evidence_keys = frozenset({"metric", "value", "step", "first_bad_step", "bad_points", "last_finite", "before",
                               "last_finite_step", "metrics", "zero_loss_points", "peak_before", "peak_before_step"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        names: list[str] = []
        for pattern in args["series"]:
            names.extend(n for n in resolve_series(run, pattern) if n not in names)
        if not names:
            return empty_result(tuple(args["series"]))
        per = {n: arrays(run, n) for n in names}
        clock = sorted_unique(*[s for s, _ in per.values()])
        bad = np.zeros(len(clock), dtype=bool)
        first_bad_metric = np.full(len(clock), "", dtype=object)
        for name in names:
            steps, values = per[name]
            is_bad = ~np.isfinite(values)
            pos = np.searchsorted(clock, steps[is_bad])
            fresh = ~bad[pos]
            first_bad_metric[pos[fresh]] = name
            bad[pos] = True
        cum = np.cumsum(bad)
        # the hidden-NaN signature: train/loss logged as exactly 0.0 at a step where this series is non-finite
        loss_steps, loss_values = arrays(run, "train/loss") if run.has("train/loss") else (np.zeros(0, "int64"),
                                                                                          np.zeros(0))
        zero_loss_steps = loss_steps[loss_values == 0.0]
        zero_at_bad = np.isin(clock, zero_loss_steps) & bad
        zero_cum = np.cumsum(zero_at_bad)

        def evidence_at(i: int) -> dict[str, Any]:
            bad_idx = np.flatnonzero(bad[: i + 1])
            first = int(bad_idx[0]) if len(bad_idx) else i
            metric = str(first_bad_metric[first]) or names[0]
            steps, values = per[metric]
            j = int(np.searchsorted(steps, clock[first]))
            value = float(values[j]) if j < len(values) else float("nan")
            finite_before = np.flatnonzero(np.isfinite(values[:j]))
            last_f = float(values[finite_before[-1]]) if len(finite_before) else None
            last_fs = int(steps[finite_before[-1]]) if len(finite_before) else None
            before = (f"last finite value {last_f:.4g} at step {last_fs}" if last_f is not None
                      else "no finite value before it")
            metrics = sorted({str(m) for m in first_bad_metric[: i + 1][bad[: i + 1]] if m})
            finite_vals = values[:j][np.isfinite(values[:j])]
            peak = float(finite_vals.max()) if len(finite_vals) else float("nan")
            peak_step = int(steps[:j][np.isfinite(values[:j])][int(finite_vals.argmax())]) if len(finite_vals) else -1
            return {"metric": metric, "value": str(value), "step": int(clock[first]),
                    "first_bad_step": int(clock[first]), "bad_points": int(cum[i]), "last_finite": last_f,
                    "last_finite_step": last_fs, "before": before, "metrics": ", ".join(metrics),
                    "zero_loss_points": int(zero_cum[i]), "peak_before": peak, "peak_before_step": peak_step}

        return CheckResult(clock, bad, evidence_at, tuple(names))


CHECK = NonFinite()
