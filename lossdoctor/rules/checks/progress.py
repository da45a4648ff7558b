"""progress: the run stopped short of the length it was configured for (``global_step`` < ``max_steps``),
whatever else the file says — an end-of-training summary row is written by ``trainer.train()`` returning,
which also happens when a callback or an exception handler ended it early, and a checkpoint's
trainer_state.json is a snapshot of a run that went on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lossdoctor.model import Run
from lossdoctor.rules.checks import Param, config_number, global_result


class Progress:
    kind = "progress"
    doc = "the last step (global_step, else the last logged step) below max_steps"
    params = {
        "step_from": Param("names", default=["trainer.global_step", "global_step"]),
        "max_steps_from": Param("names", default=["trainer.max_steps", "max_steps", "args.max_steps"]),
        "max_done": Param("fraction", default=0.98, doc="holds below this fraction of max_steps"),
    }
    evidence_keys = frozenset({"step", "max_steps", "done_pct", "state"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> Any:
        max_steps, _ = config_number(run, args["max_steps_from"])
        step, _ = config_number(run, args["step_from"])
        if step is None:
            for key in ("global_step",):
                value = run.summary.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    step = float(value)
        if step is None and len(run.metrics):
            step = float(run.metrics["step"].max())
        if not max_steps or max_steps <= 0 or step is None:
            return global_result(False, None, {}, ())
        done = step / max_steps
        return global_result(
            done < float(args["max_done"]),
            int(step),
            {"step": int(step), "max_steps": int(max_steps), "done_pct": 100.0 * done, "state": run.state},
            (),
        )


CHECK = Progress()
