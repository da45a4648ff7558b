"""relation: two series moving in given directions over the same span, the span starting where ``b`` was at
its best (``from: best_b``) — e.g. train loss still falling while eval loss climbs back from its minimum."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.rules.checks import (
    CheckResult,
    Param,
    arrays,
    asof,
    ema,
    empty_result,
    final_run_only,
    resolve_series,
    running_best,
)

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


def _moved(change: np.ndarray, direction: str, amount: float) -> np.ndarray:
    signed = change if direction == "up" else -change
    return np.isfinite(signed) & (signed >= amount)


class Relation:
    kind = "relation"
    doc = "a and b moved in the given directions since b's best point (or since the start)"
    params = {
        "a": Param("series", required=True),
        "b": Param("series", required=True),
        "a_direction": Param("choice", required=True, choices=("up", "down")),
        "b_direction": Param("choice", required=True, choices=("up", "down")),
        "from": Param("choice", default="best_b", choices=("best_b", "start")),
        "min_change_a": Param("fraction", default=0.0),
        "min_change_b": Param("fraction", default=0.0),
        "smooth_a": Param("int", default=1, doc="EMA span for a (train loss is noisy)"),
        "until_end": Param("bool", default=False, doc="the relation must still hold at b's last point"),
    }
    evidence_keys = frozenset(
        {
            "a_from",
            "a_to",
            "a_change_pct",
            "a_drop_pct",
            "b_from",
            "b_to",
            "b_change_pct",
            "from_step",
            "to_step",
            "a",
            "b",
        }
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        a_names, b_names = resolve_series(run, args["a"]), resolve_series(run, args["b"])
        if not a_names or not b_names:
            return empty_result((args["a"], args["b"]))
        a_name, b_name = a_names[0], b_names[0]
        a_steps, a_raw = arrays(run, a_name)
        b_steps, b_vals = arrays(run, b_name)
        a_vals = ema(a_raw, int(args["smooth_a"]))
        if args["from"] == "best_b":
            b_ref, ref_idx = running_best(b_vals, "min" if args["b_direction"] == "up" else "max")
        else:
            ref_idx = np.zeros(len(b_vals), dtype="int64")
            b_ref = np.full(len(b_vals), b_vals[0] if len(b_vals) else np.nan)
        ref_steps = b_steps[ref_idx] if len(b_steps) else b_steps
        a_from = asof(ref_steps, a_steps, a_vals)
        # a logged less often than b (e.g. 9 train logs, 45 evals): no a point yet at b's best step -> use the
        # first a point after it, so the comparison still starts at (about) b's best
        if len(a_steps):
            missing = np.isnan(a_from)
            if missing.any():
                nxt = np.searchsorted(a_steps, ref_steps[missing], side="left")
                ok = nxt < len(a_steps)
                fill = np.full(int(missing.sum()), np.nan)
                fill[ok] = a_vals[nxt[ok]]
                a_from[missing] = fill
        a_to = asof(b_steps, a_steps, a_vals)
        with np.errstate(divide="ignore", invalid="ignore"):
            a_change = (a_to - a_from) / np.abs(a_from)
            b_change = (b_vals - b_ref) / np.abs(b_ref)
        mask = (
            _moved(a_change, args["a_direction"], float(args["min_change_a"]))
            & _moved(b_change, args["b_direction"], float(args["min_change_b"]))
            & (np.arange(len(b_vals)) > ref_idx)
        )
        if bool(args["until_end"]):
            mask = final_run_only(mask)

        def evidence_at(i: int) -> dict[str, Any]:
            ac = float(a_change[i] * 100.0)
            return {
                "a_from": float(a_from[i]),
                "a_to": float(a_to[i]),
                "a_change_pct": ac,
                "a_drop_pct": -ac,
                "b_from": float(b_ref[i]),
                "b_to": float(b_vals[i]),
                "b_change_pct": float(b_change[i] * 100.0),
                "from_step": int(ref_steps[i]),
                "to_step": int(b_steps[i]),
                "a": a_name,
                "b": b_name,
            }

        return CheckResult(b_steps, mask, evidence_at, (a_name, b_name), onset_at=lambda i: int(ref_steps[i]))


CHECK = Relation()
