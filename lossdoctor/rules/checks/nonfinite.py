"""nonfinite: NaN or ±inf in any of the named series (also a loss of exactly 0 logged with a NaN grad_norm,
which is how HF's ``logging_nan_inf_filter`` hides a NaN step loss).

Transient or persistent (``persistence``): fp16 mixed precision skips a step whose gradients overflowed,
halves the loss scale and goes on — the log shows an isolated ``grad_norm: inf/nan`` followed by normal
steps. The non-finite points are **transient** when there are at most ``max_transient`` of them (or that share
of the logs), none is the last log or next to another (except a
run of them at the very start: the scaler calibrating its initial 2^16 scale), the train loss is never logged as exactly 0.0 at or
after them (the hidden-NaN signature) and the train loss after the last one is finite and not above
``blowup`` x its level before the first one, nor at the end above ``blowup`` x the lowest it had been before
the first one (a run that diverged around them). Anything else is **persistent**. ``persistence: any`` (the
default) keeps the old behaviour: every non-finite point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.rules.checks import CheckResult, Param, arrays, empty_result, resolve_series, sorted_unique
from lossdoctor.rules.rolling import median as median_of

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class NonFinite:
    kind = "nonfinite"
    doc = "NaN/inf in any matching series"
    params = {
        "series": Param("series_list", required=True, doc="names or globs"),
        "persistence": Param("choice", default="any", choices=("any", "transient", "persistent")),
        "max_transient": Param("int", default=3, doc="at most this many isolated points are transient ..."),
        "max_transient_share": Param("fraction", default=0.02, doc="... or this share of the logs"),
        "blowup": Param("number", default=1.5, doc="train loss after / before above this: not transient"),
    }
    evidence_keys = frozenset(
        {
            "metric",
            "value",
            "step",
            "first_bad_step",
            "bad_points",
            "last_finite",
            "before",
            "last_finite_step",
            "metrics",
            "zero_loss_points",
            "peak_before",
            "peak_before_step",
            "persistence",
            "pattern",
        }
    )

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
        loss_steps, loss_values = (
            arrays(run, "train/loss") if run.has("train/loss") else (np.zeros(0, "int64"), np.zeros(0))
        )
        zero_loss_steps = loss_steps[loss_values == 0.0]
        zero_at_bad = np.isin(clock, zero_loss_steps) & bad
        zero_cum = np.cumsum(zero_at_bad)
        transient, pattern = _classify(bad, clock, loss_steps, loss_values, args)
        want = str(args["persistence"])
        if want != "any" and transient != (want == "transient"):
            bad = np.zeros(len(clock), dtype=bool)

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
            before = (
                f"last finite value {last_f:.4g} at step {last_fs}"
                if last_f is not None
                else "no finite value before it"
            )
            metrics = sorted({str(m) for m in first_bad_metric[: i + 1][bad[: i + 1]] if m})
            finite_vals = values[:j][np.isfinite(values[:j])]
            peak = float(finite_vals.max()) if len(finite_vals) else float("nan")
            peak_step = int(steps[:j][np.isfinite(values[:j])][int(finite_vals.argmax())]) if len(finite_vals) else -1
            return {
                "metric": metric,
                "value": str(value),
                "step": int(clock[first]),
                "first_bad_step": int(clock[first]),
                "bad_points": int(cum[i]),
                "last_finite": last_f,
                "last_finite_step": last_fs,
                "before": before,
                "metrics": ", ".join(metrics),
                "zero_loss_points": int(zero_cum[i]),
                "peak_before": peak,
                "peak_before_step": peak_step,
                "persistence": "transient" if transient else "persistent",
                "pattern": pattern,
            }

        return CheckResult(clock, bad, evidence_at, tuple(names))


def _classify(
    bad: np.ndarray, clock: np.ndarray, loss_steps: np.ndarray, loss_values: np.ndarray, args: Mapping[str, Any]
) -> tuple[bool, str]:
    """(transient?, the pattern in words) of the non-finite points on ``clock``."""
    at = np.flatnonzero(bad)
    k, n = len(at), len(clock)
    if k == 0:
        return False, ""
    limit = max(int(args["max_transient"]), int(float(args["max_transient_share"]) * n))
    # the loss scaler's calibration: fp16 starts at scale 2^16 and may overflow at the first few steps in a row
    # before any finite norm; a leading run like that is the scaler settling, not a failure
    lead = int(np.flatnonzero(~bad)[0]) if (~bad).any() else n
    later = at[at >= lead]
    adjacent = bool(len(later) > 1 and (np.diff(later) == 1).any())
    at_end = bool(at[-1] == n - 1)
    first, last = int(clock[at[0]]), int(clock[at[-1]])
    finite = np.isfinite(loss_values)
    zero_after = bool(((loss_values == 0.0) & (loss_steps >= first)).any())
    before = loss_values[(loss_steps < first) & finite][-5:]
    after = loss_values[loss_steps > last][:5]
    blew_up = bool(
        len(after)
        and (
            not np.isfinite(after).all()
            or (len(before) and median_of(after) > float(args["blowup"]) * median_of(before))
        )
    )
    # ... or a run that diverged around them: the loss at the end above blowup x the lowest it had been before
    # (3-log medians), though the loss right around the point looked continuous (it was already up)
    prior = loss_values[(loss_steps < first) & finite]
    tail = loss_values[finite][-5:]
    if len(prior) >= 3 and len(tail):
        lows = np.array([median_of(prior[i : i + 3]) for i in range(len(prior) - 2)])
        lowest = float(lows.min())
        blew_up = blew_up or bool(lowest > 0 and median_of(tail) > float(args["blowup"]) * lowest)
    gaps = np.diff(clock[at]) if k > 1 else np.zeros(0)
    spacing = f", {int(median_of(gaps))} steps apart (median)" if len(gaps) else ""
    where = f"{k} non-finite point(s) of {n} logs, steps {first}-{last}{spacing}"
    if lead:
        where += f" ({lead} at the start, before the first finite one: the loss scaler calibrating)"
    if k > limit:
        return False, f"{where}: too many to be skipped steps"
    if adjacent or at_end:
        return False, f"{where}: " + ("consecutive logs" if adjacent else "the last log is non-finite")
    if zero_after:
        return False, f"{where}, and train/loss logged as exactly 0.0 from there on (a NaN loss hidden as 0)"
    if blew_up:
        return False, (
            f"{where}, and the train loss after them (or at the end) is non-finite or above "
            f"{args['blowup']}x its level before"
        )
    return True, f"{where}, each followed by normal steps and a train loss that carried on"


CHECK = NonFinite()
