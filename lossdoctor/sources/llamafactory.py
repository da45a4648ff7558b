"""LLaMA-Factory's ``trainer_log.jsonl`` and the output dirs that hold it.

Format (LLaMA-Factory's ``LogCallback.on_log``, src/llamafactory/train/callbacks.py): one JSON object per
Trainer log call, ``{"current_steps": 10, "total_steps": 1000, "loss": 2.31, "lr": 2e-05, "epoch": 0.1,
"percentage": 1.0, "elapsed_time": "0:01:02", "remaining_time": "1:42:10"}``; eval calls carry
``eval_loss``, predict calls ``predict_loss``, DPO runs ``reward`` and ``accuracy`` (trl's
``rewards/accuracies``), runs counting tokens ``throughput`` and ``total_tokens``, ``RECORD_VRAM=1`` adds
``vram_allocated`` / ``vram_reserved``. Keys whose value is None are left out, so the end-of-training log
call (train_runtime, train_loss) leaves a line with progress keys only; an eval-only run writes a progress
line every 5 prediction steps. Older releases wrote ``learning_rate`` instead of ``lr``.

Mapping (documented choice):
- the step is ``current_steps`` (the Trainer's global_step); the run length is ``total_steps`` (max_steps).
  A run whose last step is short of total_steps is "interrupted" and says so ("incomplete"), one that
  reaches it is "finished";
- ``elapsed_time`` (``str(timedelta)``: "H:MM:SS", "1 day, 2:03:04") becomes the points' ``wall_time`` in
  seconds since the start of training; percentage and remaining_time are progress, not metrics;
- every other numeric value is a point at that step; lines without one (progress only) carry no points;
- a line that is not a JSON object is skipped and counted; a (step, metric) written twice (a resumed run
  appends to the same file; on several nodes each node's rank 0 writes it) keeps the last.

An output dir (``saves/<model>/lora/sft``) holds trainer_log.jsonl beside ``trainer_state.json`` (written at
the end by save_state, or in ``checkpoint-N/``) and ``all_results.json``. trainer_state.json is the better
source when it reaches as far as the log (it keeps grad_norm and every key the Trainer logged; the log keeps
a fixed subset), so it is read then; otherwise (a crashed run's stale checkpoint) trainer_log.jsonl is.
Either way the numbers of all_results.json / train_results.json / eval_results.json go to ``Run.summary``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.metrics.names import canonicalise
from lossdoctor.model import Run
from lossdoctor.sources._readkit import Collector, decode_with_notes, json_number, make_run, read_bytes
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.jsonl_metrics import iter_json_lines, looks_like_json_lines, sample_objects
from lossdoctor.sources.trainer_state import find_state_file, load_state, read_state_file
from lossdoctor.textfile import read_side_file

PRIMARY_FILE = "trainer_log.jsonl"
STEP_KEY = "current_steps"
TOTAL_KEY = "total_steps"
#: progress bookkeeping written on every line: never metrics
PROGRESS_KEYS = frozenset({STEP_KEY, TOTAL_KEY, "percentage", "elapsed_time", "remaining_time"})
#: LogCallback renames trl's keys; the canonical name follows the trainer's meaning
RENAMED = {"accuracy": "rewards/accuracies"}
RESULT_FILES = ("all_results.json", "train_results.json", "eval_results.json")
_TIMEDELTA = re.compile(r"^\s*(?:(-?\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)\s*$")


def parse_elapsed(text: Any) -> float | None:
    """Seconds from ``str(datetime.timedelta)`` ("0:01:02", "1 day, 2:03:04"); None for anything else."""
    if not isinstance(text, str):
        return None
    m = _TIMEDELTA.match(text)
    if m is None:
        return None
    days = int(m.group(1) or 0)
    return days * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))


def _step(obj: dict[str, Any], key: str) -> int | None:
    value = json_number(obj.get(key))
    if value is None or not math.isfinite(value) or value != int(value) or value < 0:
        return None
    return int(value)


def is_llamafactory_record(obj: dict[str, Any]) -> bool:
    return _step(obj, STEP_KEY) is not None and TOTAL_KEY in obj


def read_trainer_log(path: Path, location: str, name: str) -> Run:
    text, notes = decode_with_notes(read_bytes(path, location))
    points = Collector()
    bad: list[int] = []
    records = 0
    last_step: int | None = None
    max_step = -1
    total: int | None = None
    went_back = 0
    for lineno, obj in iter_json_lines(text):
        if obj is None or not is_llamafactory_record(obj):
            bad.append(lineno)
            continue
        records += 1
        step = _step(obj, STEP_KEY)
        assert step is not None
        total = _step(obj, TOTAL_KEY) if _step(obj, TOTAL_KEY) else total
        if last_step is not None and step < last_step:
            went_back += 1
        last_step = step
        max_step = max(max_step, step)
        elapsed = parse_elapsed(obj.get("elapsed_time"))
        for key, value in obj.items():
            if key in PROGRESS_KEYS:
                continue
            number = json_number(value)
            if number is None:
                continue
            renamed = RENAMED.get(key)
            points.add(step, key, number, wall_time=elapsed, metric=canonicalise(renamed) if renamed else None)
    if records == 0:
        where = f" (line {bad[0]} is not one)" if bad else ""
        raise SourceError(
            f"no LLaMA-Factory log records{where}; expected one JSON object per line with "
            f'"{STEP_KEY}" and "{TOTAL_KEY}" (trainer_log.jsonl)',
            location,
        )
    frame, more = points.frame()
    if bad:
        more.append(
            f"{len(bad)} line(s) that are not LLaMA-Factory log records skipped (line "
            f"{', '.join(str(n) for n in bad[:5])}{', ...' if len(bad) > 5 else ''})"
        )
    if went_back:
        more.append(
            f"current_steps went back {went_back} time(s): a run resumed into the same "
            "trainer_log.jsonl, or more than one process writing it (one per node); the points written "
            "last are kept"
        )
    if frame.empty:
        raise SourceError(
            f"{records} LLaMA-Factory log record(s) but no metric values in them (progress "
            "lines only: an eval-only run, or training that never logged)",
            location,
        )
    renamed_here = sorted(set(RENAMED) & set(frame["raw_name"]))
    if renamed_here:
        more.append("; ".join(f"'{k}' is LLaMA-Factory's name for trl's {RENAMED[k]}" for k in renamed_here))
    summary: dict[str, Any] = {"global_step": max_step}
    if total:
        summary["max_steps"] = total
    if total and max_step >= total:
        state = "finished"
    elif total:
        state = "interrupted"
        more.append(
            f"incomplete: the last logged step is {max_step} of total_steps {total} "
            f"({100.0 * max_step / total:.1f}%); the run stopped early or is still running"
        )
    else:
        state = "unknown"
    return make_run(
        Target(location=location, path=path),
        SOURCE.kind,
        frame,
        notes + more,
        name=name,
        summary=summary,
        state=state,
        location=location,
    )


def _log_last_step(path: Path) -> int:
    """The largest current_steps in a trainer_log.jsonl (-1 when none can be read)."""
    data = read_side_file(path, max_bytes=None)  # the log itself: as long as the run
    if data is None:
        return -1
    text = decode_with_notes(data)[0]
    steps = [_step(obj, STEP_KEY) for _, obj in iter_json_lines(text) if obj is not None]
    return max((s for s in steps if s is not None), default=-1)


def _results(directory: Path) -> tuple[dict[str, Any], list[str]]:
    """Numbers from the *_results.json files LLaMA-Factory writes at the end (train_loss, eval_loss, ...)."""
    summary: dict[str, Any] = {}
    notes: list[str] = []
    for file_name in RESULT_FILES:
        path = directory / file_name
        if not path.is_file():
            continue
        raw = read_side_file(path)
        try:
            if raw is None:
                raise ValueError("unreadable or larger than the side-file bound")
            data = json.loads(decode_with_notes(raw)[0])
        except (ValueError, RecursionError):
            notes.append(f"{file_name} could not be read as JSON; left out")
            continue
        if isinstance(data, dict):
            for key, value in data.items():
                number = json_number(value)
                if number is not None:
                    summary.setdefault(str(key), number)
    return summary, notes


def read_output_dir(directory: Path, location: str) -> Run:
    log_path = directory / PRIMARY_FILE
    results, result_notes = _results(directory)
    state_path = find_state_file(directory)
    if state_path is not None:
        log_last = _log_last_step(log_path)
        try:
            state_step = json_number(load_state(state_path, str(state_path)).get("global_step"))
        except SourceError:
            state_step = None
        if state_step is not None and state_step >= log_last:
            run = read_state_file(state_path, str(state_path))
            why = (
                f"LLaMA-Factory output dir: {state_path.relative_to(directory)} read (it reaches step "
                f"{int(state_step)}, as far as {PRIMARY_FILE}, and keeps every logged key)"
            )
            return replace(
                run,
                summary={**results, **run.summary},
                provenance=replace(run.provenance, notes=(why, *result_notes, *run.provenance.notes)),
            )
        result_notes.insert(
            0,
            f"{state_path.relative_to(directory)} stops at step "
            f"{'?' if state_step is None else int(state_step)}, {PRIMARY_FILE} at {log_last}: "
            f"{PRIMARY_FILE} read",
        )
    run = read_trainer_log(log_path, str(log_path), directory.resolve().name or str(directory))
    return replace(
        run,
        summary={**results, **run.summary},
        provenance=replace(run.provenance, notes=(*result_notes, *run.provenance.notes)),
    )


class LlamaFactorySource:
    kind = "llamafactory"
    description = "LLaMA-Factory trainer_log.jsonl (current_steps / total_steps lines) or an output dir holding one"
    example = '{"current_steps": 10, "total_steps": 1000, "loss": 2.31, "lr": 2e-05, "elapsed_time": "0:01:02"}'
    specificity = 70
    max_confidence = 0.95  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if target.is_dir and target.path is not None:
                return 0.9 if (target.path / PRIMARY_FILE).is_file() else 0.0
            if not target.is_file or not target.head:
                return 0.0
            objects, strays = sample_objects(target.head_text())
            if looks_like_json_lines(objects, strays) and any(is_llamafactory_record(o) for o in objects):
                return 0.95
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError(
                "expected a LLaMA-Factory trainer_log.jsonl or an output dir holding one", target.location
            )
        if target.is_dir:
            if not (target.path / PRIMARY_FILE).is_file():
                raise SourceError(f"no {PRIMARY_FILE} in this directory", target.location)
            return [read_output_dir(target.path, target.location)]
        path = target.path
        name = path.resolve().parent.name if path.name == PRIMARY_FILE else (path.stem or path.name)
        return [read_trainer_log(path, target.location, name)]


SOURCE = LlamaFactorySource()
