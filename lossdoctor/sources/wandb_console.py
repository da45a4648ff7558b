"""The W&B end-of-run console block (``wandb: Run history:`` sparklines + ``wandb: Run summary:``).

Often the only record a blog post or a pasted terminal keeps. What it holds (wandb/sdk/wandb_run.py
``_footer_history`` and wandb/sdk/lib/sparkline.py): each metric's own logged values, downsampled to at
most 40, drawn as one glyph per value, level = round((x - min) * 7 / (max - min)) over ``▁▂▃▄▅▆▇█``;
a non-finite value is drawn as a space; a constant series is all ``▁``. The summary holds final values
(floats rounded to 5 decimals).

What we recover (confidence 0.5, step_source "ordinal"):
- shape: level ℓ → value. With the summary's final value v > 0 as the anchor of the last point, values are
  v·(1 + ℓ/7)/(1 + ℓ_last/7), i.e. the last point is exact and max = 2 × min is *assumed* (the true range is
  lost). A metric with no such anchor (e.g. a learning rate that ends at 0.0) is left out when others are
  anchored — a unit-less shape would trip absolute thresholds (lr range). Only when nothing is anchored
  (no summary printed) are values the bare levels 1 + ℓ/7. Order and direction are right; magnitudes not.
- steps: every metric's points are spread evenly over the run: point i of n sits at round(S·(i+1)/n) where
  S is the summary's train/global_step (exact when a metric was logged at a fixed cadence up to the last
  step, e.g. eval every 20 of 100 steps); without it S is the longest sparkline's length, so series of
  different lengths still line up.
- a U+FFFD inside a sparkline is level 0 (``▁`` lost by a bad re-encoding, as in seed 001).
"""

from __future__ import annotations

import math
import re
from typing import TypeGuard

from lossdoctor.model import Run
from lossdoctor.sources._readkit import (
    WANDB_RUN_LINE,
    Collector,
    iter_lines,
    make_run,
    parse_number,
    read_text,
    require_points,
    tail_text,
    to_step,
    wandb_run_name,
)
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.text_log import count_records

GLYPHS = "▁▂▃▄▅▆▇█"
_LEVEL = {ch: i for i, ch in enumerate(GLYPHS)}
_LEVEL["\ufffd"] = 0
_SPARK_CHARS = set(_LEVEL) | {" "}
_WANDB = re.compile(r"wandb:\s?(.*)$")
_ROW = re.compile(r"^\s*(\S+) (.*)$")
_HF_DICT = re.compile(r"\{'(?:loss|eval_loss|train_runtime|learning_rate)'\s*:")
_STEP_KEYS = ("train/global_step", "global_step", "trainer/global_step", "_step")
NOTE = "shape recovered from W&B console sparklines (sampled, lossy)"


def _levels(spark: str) -> list[int | None] | None:
    body = spark.rstrip("\r\n")
    if not body.strip() or any(ch not in _SPARK_CHARS for ch in body):
        return None
    return [None if ch == " " else _LEVEL[ch] for ch in body]


def parse_block(text: str) -> tuple[dict[str, list[int | None]], dict[str, object], str | None, int]:
    """(history sparkline levels by raw key, summary by raw key, run name, rows skipped)."""
    history: dict[str, list[int | None]] = {}
    summary: dict[str, object] = {}
    name: str | None = None
    section: str | None = None
    skipped = 0
    for _, line in iter_lines(text):
        m = _WANDB.search(line)
        if not m:
            section = None
            continue
        n = WANDB_RUN_LINE.search(line)
        if n:
            name = wandb_run_name(n)
        content = m.group(1)
        stripped = content.strip()
        if stripped in ("Run history:", "Run summary:"):
            section = stripped
            continue
        if not stripped:
            section = None
            continue
        if section is None:
            continue
        row = _ROW.match(content)
        if not row:
            skipped += 1
            continue
        key, rest = row.group(1), row.group(2)
        if section == "Run history:":
            levels = _levels(rest)
            if levels is None:
                skipped += 1  # "+3 ..." (more metrics than shown) or a damaged row
                continue
            history[key] = levels
        else:
            text_value = rest.strip()
            value = parse_number(text_value)
            if value is None:
                summary[key] = text_value
            else:
                exact = to_step(text_value) if re.fullmatch(r"[-+]?\d+", text_value) else None
                summary[key] = exact if exact is not None else value  # a counter within int64 stays exact
    return history, summary, name, skipped


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_block(text: str) -> bool:
    return "Run history:" in text and "wandb:" in text


class WandbConsoleSource:
    kind = "wandb-console"
    description = "the W&B end-of-run console block (Run history sparklines + Run summary): shape only"
    example = "wandb:               eval/loss ▁▇███"
    specificity = 10
    max_confidence = 0.8  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        if not target.is_file or not target.head:
            return 0.0
        head = target.head_text()
        text = head if _has_block(head) else tail_text(target)
        if not _has_block(text):
            return 0.0
        if _HF_DICT.search(head) or _HF_DICT.search(text):
            return 0.6  # hf-console (0.7) reads exact values from the same file

        if count_records(head) >= 2:
            return 0.25  # exact per-step lines exist: any line reader should win
        return 0.8

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        text, notes = read_text(target)
        history, summary, name, skipped = parse_block(text)
        points = Collector()
        longest = max((len(v) for k, v in history.items() if k not in _STEP_KEYS), default=0)
        total = next((summary[k] for k in _STEP_KEYS if _is_number(summary.get(k))), None)
        total_step = to_step(total) if _is_number(total) else None
        known_total = total_step is not None and total_step >= longest > 0
        span = total_step if known_total and total_step is not None else longest

        def anchor_of(key: str) -> float | None:
            value, last = summary.get(key), history[key][-1]
            if _is_number(value) and math.isfinite(value) and value > 0 and last is not None:
                return float(value)
            return None

        keys = [k for k in sorted(history) if k not in _STEP_KEYS]
        anchored = [k for k in keys if anchor_of(k) is not None]
        unanchored = [k for k in keys if anchor_of(k) is None]
        for key in anchored or keys:
            levels = history[key]
            n, anchor, last = len(levels), anchor_of(key), levels[-1]
            for i, level in enumerate(levels):
                step = int(round(span * (i + 1) / n))
                if level is None:
                    value = math.nan
                elif anchor is not None and last is not None:  # an anchor is only found where last is a level
                    value = anchor * (1 + level / 7) / (1 + last / 7)
                else:
                    value = 1 + level / 7
                points.add(step, key, value)
        frame, more = points.frame()
        require_points(frame, target, "a 'wandb: Run history:' block with sparklines")
        how = (
            f"steps: each metric's points spread evenly up to global step {span} (from the summary)"
            if known_total
            else f"steps: each metric's points spread evenly over 1..{span} (no global step in the summary)"
        )
        notes = (
            [
                NOTE,
                how,
                "values scaled from glyph levels (8 levels; last point anchored to the "
                "summary value where positive; range assumed max = 2 x min)",
            ]
            + notes
            + more
        )
        if anchored and unanchored:
            notes.append(
                "left out (no positive final value in the summary to anchor the shape): " + ", ".join(unanchored)
            )
        elif not anchored:
            notes.append("no summary values to anchor the shapes: values are glyph levels 1..2, not the metric's units")
        if skipped:
            notes.append(f"{skipped} history/summary row(s) not understood, skipped")
        return [
            make_run(target, self.kind, frame, notes, step_source="ordinal", confidence=0.5, name=name, summary=summary)
        ]


SOURCE = WandbConsoleSource()
