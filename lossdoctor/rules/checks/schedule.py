"""schedule: the logged learning-rate curve does not match the schedule the run's config asked for.

Two mismatches, both read against the config (keys tried in order; nothing is assumed when they are absent):
- warmup asked for (``warmup_steps``, or ``warmup_ratio`` x ``max_steps``) but the lr logged well inside the
  warmup is already at >= 90% of its peak: no warmup happened;
- a decaying scheduler (linear, cosine, polynomial) asked for, the run >= 90% through its ``max_steps``, and
  the lr still >= ``max_remaining`` of its peak: the schedule never decayed (wrong max_steps, a restarted
  scheduler, or a constant one in effect).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lossdoctor.rules.checks import (
    CheckResult,
    Param,
    config_number,
    config_value,
    empty_result,
    finite_points,
    global_result,
)

if TYPE_CHECKING:  # the model (pandas) is not imported just to validate a rule file
    from lossdoctor.model import Run

DECAYING = ("linear", "cosine", "polynomial", "cosine_with_restarts")


def _scheduler_name(value: Any) -> str:
    text = str(value or "").lower()
    return text.rsplit(".", 1)[-1]  # "SchedulerType.COSINE" -> "cosine"


class Schedule:
    kind = "schedule"
    doc = "lr curve vs the configured warmup and decay (needs the run's config)"
    params = {
        "series": Param("series", default="train/learning_rate"),
        "warmup_steps_from": Param("names", default=["warmup_steps", "trainer.warmup_steps"]),
        "warmup_ratio_from": Param("names", default=["warmup_ratio"]),
        "max_steps_from": Param("names", default=["trainer.max_steps", "max_steps"]),
        "scheduler_from": Param("names", default=["lr_scheduler_type", "lr_scheduler"]),
        "max_remaining": Param("fraction", default=0.5, doc="lr/peak still above this near the end = no decay"),
        "min_points": Param("int", default=4),
    }
    evidence_keys = frozenset(
        {
            "problem",
            "peak",
            "first_lr",
            "first_step",
            "last_lr",
            "last_step",
            "warmup_steps",
            "scheduler",
            "max_steps",
            "lr_ratio",
        }
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        metric, steps, values = finite_points(run, args["series"])
        if metric is None:
            return empty_result((args["series"],), "global")
        if len(values) < int(args["min_points"]) or values.max() <= 0:
            return global_result(False, int(steps[-1]) if len(steps) else None, {}, (metric,))
        peak = float(values.max())
        max_steps, _ = config_number(run, args["max_steps_from"])
        warmup, _ = config_number(run, args["warmup_steps_from"])
        ratio, _ = config_number(run, args["warmup_ratio_from"])
        if (warmup is None or warmup <= 0) and ratio and max_steps and max_steps > 0:
            warmup = ratio * max_steps
        scheduler = _scheduler_name(config_value(run, args["scheduler_from"])[0])
        problems = []
        if warmup and warmup > 0 and steps[0] < warmup / 2 and values[0] >= 0.9 * peak:
            problems.append(
                f"warmup of {warmup:g} steps was configured, but the lr at step {int(steps[0])} was "
                f"already {values[0]:.3g} ({values[0] / peak:.0%} of its peak): no warmup happened"
            )
        last_ratio = float(values[-1] / peak)
        if (
            scheduler in DECAYING
            and max_steps
            and max_steps > 0
            and steps[-1] >= 0.9 * max_steps
            and last_ratio >= float(args["max_remaining"])
        ):
            problems.append(
                f"a {scheduler} schedule was configured, but at step {int(steps[-1])} of {int(max_steps)} "
                f"the lr was still {values[-1]:.3g} ({last_ratio:.0%} of its peak): it never decayed"
            )
        evidence = {
            "problem": "; ".join(problems),
            "peak": peak,
            "first_lr": float(values[0]),
            "first_step": int(steps[0]),
            "last_lr": float(values[-1]),
            "last_step": int(steps[-1]),
            "warmup_steps": float(warmup or 0),
            "scheduler": scheduler or "unknown",
            "max_steps": int(max_steps or 0),
            "lr_ratio": last_ratio,
        }
        return global_result(bool(problems), int(steps[-1]), evidence, (metric,))


CHECK = Schedule()
