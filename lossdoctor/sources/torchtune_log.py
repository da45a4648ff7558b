"""torchtune logs: the DiskLogger/StdoutLogger metric lines and the recipes' tqdm progress bar.

Formats (pytorch/torchtune, torchtune/training/metric_logging.py and recipes/*.py)::

    DiskLogger.log_dict:   f"Step {step} | " + "".join(f"{name}:{data} " for name, data in payload.items())
    DiskLogger.log:        f"Step {step} | {name}:{data}"
    recipes' progress bar: pbar.set_description(f"{curr_epoch + 1}|{self.global_step}|Loss: {loss_to_log}")
                           → tqdm prints "1|12|Loss: 2.3456789:  12%|█▏   | 12/100 [...]"

A payload value may be a tensor's repr (``grad_norm:tensor(0.5432, device='cuda:0')``); its number is
read. Keys: loss, lr, tokens_per_second_per_gpu, grad_norm, peak_memory_*, val_loss (validation lines).
When both kinds of line give train/loss at one step the metric-logger line wins (same value, more keys).
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

_STEP_LINE = re.compile(r"^\s*Step (\d+) \| ")
_ITEM = re.compile(rf"([A-Za-z_][\w./\-]*):(?:tensor\((?P<t>{NUMBER})[^)]*\)|(?P<v>\S+))")
_PBAR = re.compile(rf"(?<![\d|])(\d+)\|(\d+)\|Loss: ({NUMBER}):")


def _parse(line: str) -> tuple[str, int | None, list[tuple[str, float]], bool] | None:
    """(kind, step (None: not an int64; the point is dropped with a note), pairs, glued) for a metric line or a progress-bar segment."""
    m = _STEP_LINE.match(line)
    if m:
        rest = line[m.end() :]
        glued = bool(_STEP_LINE.search(rest) or re.search(r"Step \d+ \| ", rest) or RANK_ANYWHERE.search(rest))
        pairs: list[tuple[str, float]] = []
        seen: set[str] = set()
        for item in _ITEM.finditer(rest):
            value = parse_number(item.group("t") or item.group("v"))
            if value is None:
                continue
            if item.group(1) in seen:
                glued = True
            seen.add(item.group(1))
            pairs.append((item.group(1), value))
        return ("logger", to_step(m.group(1)), pairs, glued) if pairs else None
    bars = _PBAR.findall(line)
    if bars:
        value = parse_number(bars[0][2])
        if value is None:
            return None
        return "pbar", to_step(bars[0][1]), [("loss", value)], len(bars) > 1
    return None


class TorchtuneLogSource:
    kind = "torchtune-log"
    description = "torchtune metric logger lines (Step N | loss:… lr:…) and its epoch|step|Loss progress bar"
    example = "Step 1 | loss:2.345 lr:2e-05 tokens_per_second_per_gpu:1234.5"
    specificity = 40
    max_confidence = 0.85  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        if not target.is_file or not target.head:
            return 0.0
        text = target.head_text()
        if re.search(r"(?m)^\s*(?:\[(?:rank|default)\d+\]:\s?)?Step \d+ \| [A-Za-z_][\w./\-]*:\S", text):
            return 0.85
        if _PBAR.search(text):
            return 0.75
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        text, notes = read_text(target)
        points = Collector()
        for lineno, rank, line in ranked_lines(text, points):
            parsed = _parse(line)
            if parsed is None:
                continue
            kind, step, pairs, glued = parsed
            if glued:
                points.glued_lines.append(lineno)
                continue
            for key, value in pairs:
                points.add(step, key, value, rank=rank, priority=0 if kind == "logger" else 1, line=lineno)
        frame, more = points.frame()
        require_points(frame, target, "torchtune lines like 'Step 1 | loss:2.345 lr:2e-05'")
        return [make_run(target, self.kind, frame, notes + more)]


SOURCE = TorchtuneLogSource()
