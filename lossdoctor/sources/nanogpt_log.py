"""nanoGPT-style console logs (karpathy/nanoGPT train.py and its many forks).

Format strings (train.py)::

    print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
    print(f"iter {iter_num}: loss {lossf:.4f}, time {dt*1000:.2f}ms, mfu {running_mfu*100:.2f}%")

Forks add pairs (``lr 6.00e-04``) and units (``loss 1.80 BPC`` in character-level forks); every
``name value[unit]`` pair after ``iter N:`` is read (the unit is dropped; ms become seconds).
Mapping: iter ``loss`` → train/loss (one batch); eval ``val loss`` → eval/loss; eval ``train loss`` →
``eval/train_loss`` — an estimate over eval_iters batches, kept apart so it does not mix with the per-batch
train/loss at the same step. ``time`` in ms → train/step_time in seconds. ``mfu`` is a percentage; nanoGPT
prints ``-100.00%`` until it has measured (running_mfu = -1), so negative mfu is skipped.
"""

from __future__ import annotations

import re

from lossdoctor.model import Run
from lossdoctor.sources._readkit import (
    NUMBER,
    RANK_ANYWHERE,
    Collector,
    make_run,
    parse_number,
    ranked_lines,
    read_text,
    require_points,
    to_step,
)
from lossdoctor.sources.base import ReadOptions, Target

_ITER = re.compile(r"^\s*iter (\d+): ")
_EVAL = re.compile(r"^\s*step (\d+): ")
_UNIT = r"ms|s|%|BPC|bpc|bpb|BPB|nats|bits"
_PAIR = re.compile(rf"([A-Za-z_][\w ]*?) ({NUMBER})\s?({_UNIT})?(?=,|$)")
_ANY_RECORD = re.compile(r"(?:iter|step) \d+: ")
_EVAL_NAMES = {"train loss": ("eval/train_loss", "train loss"), "val loss": ("eval/loss", "val loss")}


def _parse(line: str) -> tuple[int | None, list[tuple[str, str, float]], bool] | None:
    """(step (None: not an int64; the point is dropped with a note), [(canonical or "", raw name, value)], glued)."""
    m = _ITER.match(line) or _EVAL.match(line)
    if not m:
        return None
    is_eval = m.re is _EVAL
    rest = line[m.end() :].rstrip()
    glued = bool(_ANY_RECORD.search(rest) or RANK_ANYWHERE.search(rest))
    out: list[tuple[str, str, float]] = []
    for part in rest.split(", "):
        pm = _PAIR.fullmatch(part.strip())
        if not pm:
            continue
        name, unit = pm.group(1).strip(), pm.group(3) or ""
        value = parse_number(pm.group(2))
        if value is None:
            continue
        if is_eval:
            canon, raw = _EVAL_NAMES.get(name, ("", name))
            out.append((canon, raw, value))
            continue
        if name == "time":
            out.append(("train/step_time", "time", value / 1000 if unit == "ms" else value))
        elif name == "mfu":
            if value >= 0:
                out.append(("train/mfu", "mfu", value))
        else:
            out.append(("", name, value))
    return (to_step(m.group(1)), out, glued) if out else None


class NanoGPTLogSource:
    kind = "nanogpt-log"
    description = "nanoGPT console output: 'iter N: loss …, time …ms, mfu …%' and 'step N: train loss …, val loss …'"
    example = "iter 100: loss 2.3456, time 12.34ms, mfu 30.20%"
    specificity = 40
    max_confidence = 0.8  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        if not target.is_file or not target.head:
            return 0.0
        text = target.head_text()
        if re.search(rf"(?m)^\s*iter \d+: loss (?:{NUMBER})(?:\s?(?:{_UNIT}))?, ", text) or re.search(
            rf"(?m)^\s*step \d+: train loss (?:{NUMBER})(?:\s?(?:{_UNIT}))?, val loss", text
        ):
            return 0.8
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        text, notes = read_text(target)
        points = Collector()
        for lineno, rank, line in ranked_lines(text, points):
            parsed = _parse(line)
            if parsed is None:
                continue
            step, pairs, glued = parsed
            if glued:
                points.glued_lines.append(lineno)
                continue
            for canon, raw, value in pairs:
                points.add(step, raw, value, rank=rank, metric=canon or None, line=lineno)
        frame, more = points.frame()
        require_points(frame, target, "nanoGPT lines like 'iter 100: loss 2.3456, time 12.34ms, mfu 30.20%'")
        return [make_run(target, self.kind, frame, notes + more)]


SOURCE = NanoGPTLogSource()
