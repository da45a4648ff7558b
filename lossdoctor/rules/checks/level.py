"""level: a loss level no language model should show — above ln(V), the loss of a uniform guess over a
vocabulary of V tokens (V from the run's config, else the largest real vocabulary, ``default_vocab``).

A token-level cross-entropy above ln(V) is worse than guessing uniformly: labels that do not match the
inputs (shuffled or offset), a loss summed instead of averaged, the wrong tokenizer, or weights that have
diverged. The level is the rolling median of 3 logs (one spike is not a level), read at the start (``at:
start``: the first 3 logs), at the end (``at: end``) or at its highest (``at: max``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lossdoctor.model import Run
from lossdoctor.rules.checks import Param, config_number, empty_result, finite_points, global_result, rolling_median
from lossdoctor.rules.rolling import median as median_of


class Level:
    kind = "level"
    doc = "a loss level above ln(vocab size) (worse than a uniform guess)"
    params = {
        "series": Param("series", default="train/loss"),
        "at": Param("choice", default="max", choices=("start", "end", "max")),
        "vocab_from": Param(
            "names", default=["vocab_size", "model.vocab_size", "config.vocab_size", "model_config.vocab_size"]
        ),
        "default_vocab": Param("int", default=262144, doc="V when the config does not say (Gemma 3's 262,144)"),
        "min_points": Param("int", default=3),
        "ends_above": Param(
            "fraction",
            default=None,
            doc="also: the end level (median of the last fifth of the logs) still at least this "
            "fraction of ln(V) - the loss never came down to a language model's level",
        ),
        "unless_ends_low": Param(
            "series",
            default=None,
            doc="silent when this series (e.g. eval/loss) ended (median of its last 3 points) "
            "below ends_above x ln(V): the held-out loss says the model learned",
        ),
    }
    evidence_keys = frozenset(
        {"level", "level_step", "ln_vocab", "vocab", "vocab_source", "metric", "ratio", "end_level", "end_ratio"}
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> Any:
        metric, steps, values = finite_points(run, args["series"])
        if metric is None:
            return empty_result((args["series"],), "global")
        if len(values) < max(1, int(args["min_points"])):
            return global_result(False, int(steps[-1]) if len(steps) else None, {}, (metric,))
        vocab, key = config_number(run, args["vocab_from"])
        source = f"the run's config ({key})" if vocab and vocab > 1 else "the largest real vocabulary"
        vocab = float(vocab) if vocab and vocab > 1 else float(args["default_vocab"])
        ln_v = math.log(vocab)
        at = str(args["at"])
        k = min(3, len(values))  # a level: the median of 3 points in a row (of all of them, when fewer)
        if at == "max" and len(values) > k:
            med = rolling_median(values, k)[k - 1 :]  # every 3 in a row
            where = int(np.argmax(med))
            level = float(med[where])
        else:  # the first or the last 3: one median (not a million of them on a long run)
            where = len(values) - k if at == "end" else 0
            level = float(median_of(values[where : where + k]))
        end = float(median_of(values[-max(3, len(values) // 5) :]))
        holds = level > ln_v
        if args.get("ends_above") is not None:
            holds = holds and end >= float(args["ends_above"]) * ln_v
            other = args.get("unless_ends_low")
            if holds and other:
                o_metric, _, o_vals = finite_points(run, other)
                if (
                    o_metric is not None
                    and len(o_vals)
                    and float(median_of(o_vals[-3:])) < float(args["ends_above"]) * ln_v
                ):
                    holds = False
        return global_result(
            holds,
            int(steps[where + k - 1]),
            {
                "level": level,
                "level_step": int(steps[where + k - 1]),
                "ln_vocab": ln_v,
                "vocab": int(vocab),
                "vocab_source": source,
                "metric": metric,
                "ratio": level / ln_v,
                "end_level": end,
                "end_ratio": end / ln_v,
            },
            (metric,),
        )


CHECK = Level()
