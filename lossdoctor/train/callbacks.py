"""Metrics the Trainer does not log by itself: eval perplexity and train tokens/s.

Why on_log (placed first in the callback list) and not on_evaluate: ``Trainer.evaluate`` logs the metrics
*before* it calls ``on_evaluate``, so a value added there reaches neither the console, nor W&B, nor
``trainer_state.json``. In ``on_log`` we add the value to the dict the printer and W&B callbacks receive next,
and to the row just appended to ``state.log_history``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from transformers import TrainerCallback


def perplexity(loss: float) -> float:
    """exp(loss); inf when it overflows, NaN stays NaN."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


class ExtraMetricsCallback(TrainerCallback):
    """eval_perplexity = exp(eval_loss) (inf on overflow); train_tokens_per_second from trl's num_tokens."""

    def __init__(self) -> None:
        self._last_tokens: float | None = None
        self._last_time: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._last_time = time.perf_counter()
        self._last_tokens = 0.0
        return control

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        # evaluation time is not training time: restart the tokens/s clock after each eval
        self._last_time = time.perf_counter()
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if not logs:
            return control
        extra: dict[str, float] = {}
        loss = logs.get("eval_loss")
        if isinstance(loss, (int, float)) and not isinstance(loss, bool):
            extra["eval_perplexity"] = perplexity(float(loss)) if not math.isnan(loss) else math.nan
        tokens = logs.get("num_tokens")
        if "loss" in logs and isinstance(tokens, (int, float)):
            now = time.perf_counter()
            if self._last_time is not None and self._last_tokens is not None and now > self._last_time:
                extra["train_tokens_per_second"] = round(
                    (float(tokens) - self._last_tokens) / (now - self._last_time), 2
                )
            self._last_time, self._last_tokens = now, float(tokens)
        if extra:
            logs.update(extra)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(extra)
        return control
