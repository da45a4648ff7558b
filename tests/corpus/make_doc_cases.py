"""Make the documented-format cases of the labelled corpus: tests/corpus/doc-<what>-<n>/.

Signatures that real training on this machine's CPU cannot produce (fp16 loss scaling needs a CUDA GPU; a
logger that hides NaN losses as 0.0 needs a run that goes NaN at some steps and not others; a run stopped at a
quarter of its max_steps with its summary row written anyway) are written here as ``trainer_state.json`` files
in the format HF Trainer documents and writes (``TrainerState``: ``log_history`` entries with ``step``,
``epoch``, ``loss`` / ``grad_norm`` / ``learning_rate``, eval entries with ``eval_loss``, and the end-of-training
summary entry with ``train_runtime`` / ``train_loss``; ``global_step``, ``max_steps``, ``logging_steps``,
``eval_steps``). The numbers come from a seeded formula, and the label from the construction: each file header
in ``label.yaml`` (``source: documented-format``) says what was written and why it has that verdict.

    /work/venv/bin/python tests/corpus/make_doc_cases.py          # writes every doc-* case (instant)
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _state(
    logs: list[dict[str, Any]],
    max_steps: int,
    global_step: int | None = None,
    logging_steps: int = 1,
    eval_steps: int = 50,
    summary: bool = True,
) -> dict[str, Any]:
    global_step = max_steps if global_step is None else global_step
    history = list(logs)
    if summary:
        train = [e["loss"] for e in logs if "loss" in e and isinstance(e["loss"], float) and math.isfinite(e["loss"])]
        history.append(
            {
                "epoch": logs[-1].get("epoch", 1.0),
                "step": global_step,
                "total_flos": 1.0e15,
                "train_loss": sum(train) / max(1, len(train)),
                "train_runtime": 1234.5,
                "train_samples_per_second": 8.1,
                "train_steps_per_second": 1.0,
            }
        )
    return {
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": history[-1].get("epoch", 1.0),
        "eval_steps": eval_steps,
        "global_step": global_step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": logging_steps,
        "max_steps": max_steps,
        "num_train_epochs": 1,
        "save_steps": 500,
        "total_flos": 1.0e15,
        "train_batch_size": 4,
        "trial_name": None,
        "trial_params": None,
    }


def _loss(
    step: int, steps: int, start: float = 2.4, end: float = 1.1, noise: float = 0.03, rng: random.Random | None = None
) -> float:
    """A smoothly falling loss (exponential approach to `end`) plus seeded noise."""
    base = end + (start - end) * math.exp(-4.0 * step / steps)
    return round(base + (rng.gauss(0.0, noise) if rng else 0.0), 4)


def _train_logs(
    steps: int,
    rng: random.Random,
    grad: Callable[[int], float],
    loss: Callable[[int], float],
    lr: float = 2e-4,
    every: int = 1,
) -> list[dict[str, Any]]:
    out = []
    for s in range(every, steps + 1, every):
        out.append(
            {
                "epoch": round(s / steps, 4),
                "grad_norm": grad(s),
                "learning_rate": lr * (1 - (s - 1) / steps),
                "loss": loss(s),
                "step": s,
            }
        )
    return out


def _evals(steps: int, every: int, f: Callable[[int], float]) -> list[dict[str, Any]]:
    return [
        {
            "epoch": round(s / steps, 4),
            "eval_loss": f(s),
            "eval_runtime": 3.2,
            "eval_samples_per_second": 31.0,
            "eval_steps_per_second": 7.8,
            "step": s,
        }
        for s in range(every, steps + 1, every)
    ]


def _merge(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((e for g in groups for e in g), key=lambda e: (e["step"], "eval_loss" in e))


def cases() -> dict[str, tuple[dict[str, Any], str, str]]:
    out: dict[str, tuple[dict[str, Any], str, str]] = {}
    # 1. a healthy fp16 run: one grad_norm of Infinity in the middle of a smoothly falling loss (the scaler
    #    skipped that step and halved its scale)
    rng = random.Random(1)
    steps = 300
    logs = _train_logs(
        steps,
        rng,
        lambda s: math.inf if s == 137 else round(1.2 + rng.gauss(0, 0.08), 4),
        lambda s: _loss(s, steps, rng=rng),
        every=1,
    )
    evals = _evals(steps, 50, lambda s: round(_loss(s, steps, 2.5, 1.25), 4))
    out["doc-fp16-overflow-1"] = (
        _state(_merge(logs, evals), steps, eval_steps=50),
        "healthy",
        "fp16 run (logging_steps=1, 300 steps): a smoothly falling loss (2.4 -> 1.1 plus "
        "noise 0.03) and grad_norm ~1.2, except grad_norm = Infinity at step 137 alone: the "
        "loss scaler skipped that step. Eval loss falls at every eval. Healthy by "
        "construction.",
    )
    # 2. a healthy fp16 run whose first three logs have NaN grad norms (the scaler calibrating from 2^16)
    rng = random.Random(2)
    logs = _train_logs(
        steps,
        rng,
        lambda s: math.nan if s <= 3 else round(1.5 + rng.gauss(0, 0.1), 4),
        lambda s: _loss(s, steps, 2.2, 1.0, rng=rng),
        every=1,
    )
    evals = _evals(steps, 50, lambda s: round(_loss(s, steps, 2.3, 1.15), 4))
    out["doc-fp16-overflow-2"] = (
        _state(_merge(logs, evals), steps, eval_steps=50),
        "healthy",
        "fp16 run (logging_steps=1, 300 steps): grad_norm NaN at steps 1-3 (the loss scaler "
        "overflowing at its initial 2^16 scale and halving it), finite (~1.5) from step 4 on; "
        "loss 2.2 -> 1.0, eval loss falling. Healthy by construction.",
    )
    # 3. NaN hidden as 0.0: logging_steps=1 and logging_nan_inf_filter on; at 9 steps the loss was NaN and was
    #    logged as exactly 0.0; large loss spikes around them; no grad_norm logged (a TensorBoard-style log)
    rng = random.Random(3)
    zeros = {41, 57, 58, 90, 121, 122, 123, 160, 181}
    spikes = {40: 6.5, 56: 8.2, 89: 5.9, 120: 9.4, 159: 7.7, 180: 6.1}
    steps = 200

    def nan_loss(s: int) -> float:
        if s in zeros:
            return 0.0
        return spikes.get(s, _loss(s, steps, 1.9, 1.2, noise=0.05, rng=rng))

    logs = [
        {"epoch": round(s / steps, 4), "learning_rate": 2e-4, "loss": nan_loss(s), "step": s}
        for s in range(1, steps + 1)
    ]
    out["doc-nan-as-zero-1"] = (
        _state(logs, steps),
        "nonfinite",
        "QLoRA-style run, logging_steps=1, logging_nan_inf_filter on: the loss was NaN at 9 "
        "steps (41, 57-58, 90, 121-123, 160, 181), which the Trainer logs as exactly 0.0, "
        "right after loss spikes to 6-9 (otherwise 1.9 -> 1.2). Non-finite by construction.",
    )
    # 4. masked labels: the loss falls, then is exactly 0.0 from step 61 on (every label -100 after a collator
    #    change); grad_norm 0.0 there too (nothing to differentiate)
    rng = random.Random(4)
    steps = 100
    logs = _train_logs(
        steps,
        rng,
        lambda s: 0.0 if s > 60 else round(1.3 + rng.gauss(0, 0.1), 4),
        lambda s: 0.0 if s > 60 else _loss(s, steps, 2.4, 1.3, rng=rng),
        every=2,
    )
    out["doc-masked-labels-1"] = (
        _state(logs, steps, logging_steps=2),
        "not-learning",
        "logging_steps=2, 100 steps: loss 2.4 -> ~1.6 by step 60, then exactly 0.0 (and "
        "grad_norm 0.0) at every log from step 62 on: every label masked, nothing scored. "
        "Not learning from there by construction.",
    )
    # 5. stopped at a quarter of max_steps with the summary row written (a callback ended it): healthy so far
    rng = random.Random(5)
    logs = _train_logs(
        1000, rng, lambda s: round(1.1 + rng.gauss(0, 0.05), 4), lambda s: _loss(s, 4000, 2.4, 1.1, rng=rng), every=10
    )
    evals = _evals(1000, 250, lambda s: round(_loss(s, 4000, 2.5, 1.2), 4))
    out["doc-stopped-early-1"] = (
        _state(_merge(logs, evals), 4000, global_step=1000, logging_steps=10, eval_steps=250),
        "healthy",
        "max_steps 4000, global_step 1000, with the end-of-training summary row "
        "(train_runtime) present: the run stopped at 25%. Loss and eval loss falling. "
        "Healthy (so far) by construction; it is not finished.",
    )
    return out


def main() -> int:
    for name, (state, verdict, why) in cases().items():
        d = HERE / name
        d.mkdir(exist_ok=True)
        (d / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        (d / "label.yaml").write_text(
            f"source: documented-format\norigin: {json.dumps('tests/corpus/make_doc_cases.py (' + name + ')')}\n"
            f"verdicts: [{verdict}]\n"
            + (f"eval_interval: {state['eval_steps']}\n" if any("eval_loss" in e for e in state["log_history"]) else "")
            + f"why: {json.dumps(why)}\n",
            encoding="utf-8",
        )
        print(name, verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
