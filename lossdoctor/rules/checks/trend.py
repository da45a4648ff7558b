"""trend: a series moved up or down by at least ``min_change`` (relative), measured from its best point so far
(``from: best``, e.g. eval loss climbing back from its minimum) or from its first point (``from: start``).

Robustness: the series is smoothed first (``smooth``: EMA span, or a causal rolling median with
``smooth_kind: median``, over ``max(smooth, smooth_frac x points)`` points) and the best point is taken on the
smoothed series too, so neither one noisy point nor one lucky low point decides. ``min_abs_change`` adds an
absolute floor in the series' own units, ``min_change_of_first`` one relative to where the series started
(a loss that went 2.5 -> 0.0001 -> 0.0002 rose +100% from its best, but by 0.004% of its scale: rounding).
``until_end`` counts only a change that still holds at the last point (it did not recover).
``confirm: N`` wants the change on N consecutive points unless one point moved ``strong_change`` or more
(persistence for small moves, none for big ones). ``onset_within`` puts the onset at the first point within that fraction of the best (the start of the best
basin: a noisy eval's exact minimum is a coin toss between near-equal points; stopping at the basin's start
loses less than the tolerance)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.rules.checks import (
    CheckResult,
    Param,
    arrays,
    empty_result,
    final_run_only,
    resolve_series,
    running_best,
    smooth,
)
from lossdoctor.rules.noise import level_noise

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run


class Trend:
    kind = "trend"
    doc = "relative change of a (smoothed) series from its best (or first) point, up or down"
    params = {
        "series": Param("series", required=True),
        "direction": Param("choice", required=True, choices=("up", "down")),
        "from": Param("choice", default="best", choices=("best", "start")),
        "min_change": Param("fraction", default=0.05, doc="relative change, e.g. 5%"),
        "smooth": Param("int", default=1, doc="smoothing span in points (1 = raw)"),
        "smooth_kind": Param("choice", default="ema", choices=("ema", "median")),
        "smooth_frac": Param("fraction", default=0.0, doc="smoothing span as a fraction of the points"),
        "min_abs_change": Param("number", default=0.0, doc="absolute change also required (series units)"),
        "min_change_of_first": Param(
            "fraction",
            default=0.0,
            doc="absolute change also required, as a fraction of the first (smoothed) "
            "level: scale-free, unlike min_abs_change",
        ),
        "until_end": Param("bool", default=False, doc="the change must still hold at the last point"),
        "min_points": Param("int", default=3, doc="points needed before it may hold"),
        "confirm": Param("int", default=1, doc="consecutive points the change must hold (persistence) ..."),
        "strong_change": Param(
            "fraction", default=0.0, doc="... unless a single point moved at least this much (0 = always confirm)"
        ),
        "onset_within": Param(
            "fraction", default=0.0, doc="onset = first point within this of the best (the start of the best basin)"
        ),
        "raw_end": Param(
            "int",
            default=0,
            doc="also judge the last N raw points (0 = off): rising at each of them and each "
            "min_change above the smoothed best - a blow-up in the last logs that a smooth "
            "lags behind",
        ),
        "raw_noise_z": Param(
            "number", default=4.0, doc="... and above it by this many noise deviations of the points before them"
        ),
        "unless_improving": Param(
            "series",
            default=None,
            doc="silent while this series (e.g. eval/loss) is at its best at its last point "
            "and improve_by below its first: a train loss that rises while the held-out "
            "loss keeps improving measures something else (a curriculum, a display "
            "loss), not a model that diverged",
        ),
        "improve_by": Param("fraction", default=0.05, doc="first vs last point of unless_improving"),
    }
    evidence_keys = frozenset(
        {
            "best",
            "best_step",
            "last",
            "last_step",
            "change_pct",
            "abs_change_pct",
            "rise_pct",
            "drop_pct",
            "points",
            "metric",
            "first",
            "first_step",
            "saving_pct",
            "smoothing",
        }
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        names = resolve_series(run, args["series"])
        if not names:
            return empty_result((args["series"],))
        metric = names[0]
        steps, raw = arrays(run, metric)
        span = max(int(args["smooth"]), int(round(float(args["smooth_frac"]) * len(raw))))
        values = smooth(raw, str(args["smooth_kind"]), span)
        up = args["direction"] == "up"
        n = len(values)
        if args["from"] == "best":  # best and current level both on the smoothed series
            ref, ref_idx = running_best(values, "min" if up else "max")
        else:
            finite = np.flatnonzero(np.isfinite(values))
            first = int(finite[0]) if len(finite) else 0
            ref = np.full(n, values[first] if n else np.nan)
            ref_idx = np.full(n, first, dtype="int64")
        with np.errstate(divide="ignore", invalid="ignore"):
            change = (values - ref) / np.abs(ref)
            finite = np.flatnonzero(np.isfinite(values))
            first_level = abs(float(values[finite[0]])) if len(finite) else np.nan
            floor = max(float(args["min_abs_change"]), float(args["min_change_of_first"]) * first_level)
            moved = np.abs(values - ref) >= floor
        signed = change if up else -change
        idx = np.arange(n)
        mask = (
            np.isfinite(signed)
            & (signed >= float(args["min_change"]))
            & (idx >= int(args["min_points"]) - 1)
            & (idx > ref_idx)
            & moved
        )
        confirm = int(args["confirm"])
        if confirm > 1 and n:
            # held for `confirm` consecutive points, or one point beyond strong_change (big moves need no wait)
            last_false = np.maximum.accumulate(np.where(~mask, idx, -1))
            run_len = np.where(mask, idx - last_false, 0)  # length of the run of True ending here
            strong = float(args["strong_change"])
            mask = mask & ((run_len >= confirm) | ((signed >= strong) if strong > 0 else False))
        if bool(args["until_end"]):
            mask = final_run_only(mask)
        raw_hit = (
            _raw_end(
                raw, values, ref, up, int(args["raw_end"]), float(args["min_change"]), floor, float(args["raw_noise_z"])
            )
            if args["from"] == "best"
            else np.zeros(n, dtype=bool)
        )
        mask = mask | raw_hit
        if args.get("unless_improving") and mask.any():
            best_step = int(steps[int(ref_idx[int(np.flatnonzero(mask)[-1])])])
            if _still_improving(run, args["unless_improving"], float(args["improve_by"]), up, best_step):
                mask = np.zeros(n, dtype=bool)
        smoothing = "raw" if span <= 1 else f"{args['smooth_kind']} over {span} points"
        # the turn, for people: the lowest (highest) raw point among those the smoothed best was made of;
        # computed only for the indices whose evidence is asked for (a few), not for every point
        pick = np.where(np.isfinite(raw), raw if up else -raw, np.inf)

        def turn(i: int) -> int:
            r = int(ref_idx[i])
            if span <= 1 or args["from"] != "best":
                return r
            lo = max(0, r - span + 1)
            return lo + int(np.argmin(pick[lo : r + 1]))

        def evidence_at(i: int) -> dict[str, Any]:
            r, t = int(ref_idx[i]), turn(i)
            pct = float(change[i] * 100.0) if np.isfinite(change[i]) else float("nan")
            last = float(raw[i]) if raw_hit[i] else float(values[i])
            saving = (last - float(values[r])) / abs(last) * 100.0 if last else float("nan")
            return {
                "best": float(values[r]),
                "best_step": int(steps[t]),
                "last": last,
                "last_step": int(steps[i]),
                "change_pct": pct,
                "abs_change_pct": abs(pct),
                "rise_pct": pct,
                "drop_pct": -pct,
                "points": int(i + 1),
                "metric": metric,
                "first": float(values[0]),
                "first_step": int(steps[0]),
                "saving_pct": saving,
                "smoothing": f"raw, the last {int(raw_hit.sum())} logs rising" if raw_hit[i] else smoothing,
            }

        tol = float(args["onset_within"])

        def onset_at(i: int) -> int:
            t = turn(i)
            if tol > 0 and args["from"] == "best":
                best = float(values[int(ref_idx[i])])
                near = np.flatnonzero(
                    (values[: t + 1] <= best * (1 + tol)) if up else (values[: t + 1] >= best * (1 - tol))
                )
                t = int(near[0]) if len(near) else t
            return int(steps[t])

        return CheckResult(steps, mask, evidence_at, (metric,), onset_at=onset_at)


def _still_improving(run: Run, series: str, improve_by: float, up: bool, since_step: int) -> bool:
    """The other series (a loss: lower is better when the watched one must not go ``up``) has at least 3 points,
    one of them at or before ``since_step`` (the watched series' best: the held-out curve saw the turn), its
    last one is its best, and that is ``improve_by`` better than where it was at ``since_step``."""
    names = resolve_series(run, series)
    if not names:
        return False
    s, v = arrays(run, names[0])
    ok = np.isfinite(v)
    s, v = s[ok], v[ok]
    before = np.flatnonzero(s <= since_step)
    if len(v) < 3 or not len(before):
        return False
    if not up:
        v = -v
    ref = float(v[before[-1]])
    if ref == 0:
        return False
    gain = (ref - v[-1]) / abs(ref)
    return bool(v[-1] <= v[:-1].min() and gain >= improve_by)


def _raw_end(
    raw: np.ndarray, smoothed: np.ndarray, ref: np.ndarray, up: bool, k: int, min_change: float, floor: float, z: float
) -> np.ndarray:
    """The trailing raw points that rose at every log and sit ``min_change`` (and ``floor``, and ``z`` noise
    deviations of the points before them) beyond the smoothed best reached before them."""
    n = len(raw)
    out = np.zeros(n, dtype=bool)
    if k < 2 or n < k + 2:
        return out
    tail = raw[-k:]
    sign = 1.0 if up else -1.0
    if not np.isfinite(tail).all() or not (np.diff(tail) * sign > 0).all():
        return out
    best = float(ref[n - k - 1])
    if not np.isfinite(best) or best == 0:
        return out
    moved = (tail - best) * sign
    ok = (moved / abs(best) >= min_change) & (moved >= floor)
    noise = level_noise(raw[:-k])
    if np.isfinite(noise) and noise > 0:
        ok &= moved > z * noise
    out[-k:] = final_run_only(ok)
    return out


CHECK = Trend()
