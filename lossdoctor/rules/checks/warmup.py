"""warmup: the learning-rate warm-up never ended — configured longer than the run, or (without a config) the
logged lr still rising at the last log.

From the config (keys tried in order): ``warmup_steps`` >= the run's length (``max_steps``, else the last
logged step). From the curve alone: at least ``min_points`` lr logs, every one >= the one before and the last three
strictly above theirs (a warm-up that reached a constant lr has ended), the last at least ``min_rise`` x the
first — the run ended while the lr was still climbing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lossdoctor.model import Run
from lossdoctor.rules.checks import Param, config_number, empty_result, finite_points, global_result


class Warmup:
    kind = "warmup"
    doc = "warm-up longer than the run (config), or the lr still rising at the last log"
    params = {
        "series": Param("series", default="train/learning_rate"),
        "warmup_steps_from": Param("names", default=["warmup_steps", "trainer.warmup_steps", "args.warmup_steps"]),
        "max_steps_from": Param("names", default=["trainer.max_steps", "max_steps", "args.max_steps"]),
        "min_points": Param("int", default=5),
        "min_rise": Param("number", default=3.0, doc="last lr / first lr, for the curve-only judgement"),
    }
    evidence_keys = frozenset({"problem", "warmup_steps", "run_steps", "first_lr", "last_lr", "last_step"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> Any:
        metric, steps, values = finite_points(run, args["series"])
        warmup, wkey = config_number(run, args["warmup_steps_from"])
        max_steps, _ = config_number(run, args["max_steps_from"])
        last_step = int(run.metrics["step"].max()) if len(run.metrics) else 0
        run_steps = int(max_steps) if max_steps and max_steps > 0 else last_step
        evidence: dict[str, Any] = {
            "warmup_steps": float(warmup or 0),
            "run_steps": run_steps,
            "first_lr": float(values[0]) if len(values) else float("nan"),
            "last_lr": float(values[-1]) if len(values) else float("nan"),
            "last_step": last_step,
        }
        if warmup and warmup > 0 and run_steps > 0 and warmup >= run_steps:
            evidence["problem"] = (
                f"{wkey} = {warmup:g} but the run is {run_steps} steps long: the learning rate never reached its peak"
            )
            return global_result(True, last_step, evidence, (metric or args["series"],))
        if metric is None:
            return empty_result((args["series"],), "global")
        n = len(values)
        diffs = np.diff(values)
        positive = values[values > 0]  # the Trainer logs lr 0 at step 1 of a warm-up
        rising = (
            n >= int(args["min_points"])
            and bool((diffs >= 0).all())
            and bool((diffs[-3:] > 0).all())
            and len(positive) > 0
            and values[-1] >= float(args["min_rise"]) * positive[0]
        )
        evidence["problem"] = (
            f"the learning rate rose at every log, {values[0]:.3g} at step {int(steps[0])} to "
            f"{values[-1]:.3g} at step {int(steps[-1])}: the run ended inside its warm-up"
            if rising
            else ""
        )
        return global_result(bool(rising), last_step, evidence, (metric,))


CHECK = Warmup()
