"""HF Trainer ``trainer_state.json``: the Trainer's own record of every logged dict, with its step.

Accepted targets: the JSON file itself; a checkpoint dir (``checkpoint-40/``) holding one; an output dir
holding one (``output_dir/trainer_state.json``, written by ``trainer.save_state()``, wins) or checkpoints
(the highest ``checkpoint-N`` wins: it has the longest history).

Mapping (documented choice):
- ``log_history`` entries → points at their ``step`` (step_source "logged"); train and eval entries alike.
  The entry holding ``train_runtime`` is the end-of-training summary → ``Run.summary`` (its ``train_loss``
  is an average over the run, not a point). ``epoch`` is kept as train/epoch from train entries only.
- top-level scalars (global_step, max_steps, best_metric, best_model_checkpoint, best_global_step,
  logging_steps, eval_steps, save_steps, num_train_epochs, train_batch_size, epoch, total_flos ...) →
  ``Run.config`` under ``trainer.<key>`` (flat dotted keys); ``max_steps`` and ``global_step`` are
  also copied to ``Run.summary`` so every reader reports the run length the same way.
- a ``run.json`` manifest of ``lossdoctor train`` beside it (or above a checkpoint dir) adds the flags the run
  was trained with to ``Run.config`` (plain keys: lr, lr_scheduler, warmup_steps, max_grad_norm ...) and
  its status to ``Run.state`` (completed -> finished, failed -> crashed, interrupted/stopped-by-rule ->
  interrupted), so the config-aware rules (clipping, schedule) have what they need.
- state: "finished" when global_step >= max_steps or the summary entry is present; else "interrupted"
  (with a note) when a max_steps is known; else "unknown".
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run
from lossdoctor.sources._readkit import json_number, to_step
from lossdoctor.tidy import tidy_points
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.text import decode_bytes

PRIMARY_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_SUMMARY_KEYS = ("train_runtime",)
_NOT_POINTS = {"step", "total_flos"}


def find_state_file(directory: Path) -> Path | None:
    """output_dir/trainer_state.json, else the one in the highest checkpoint-N/."""
    direct = directory / PRIMARY_FILE
    if direct.is_file():
        return direct
    best: tuple[int, Path] | None = None
    try:
        entries = list(directory.iterdir())
    except OSError:
        return None
    for entry in entries:
        m = _CHECKPOINT.match(entry.name)
        if m and (entry / PRIMARY_FILE).is_file():
            n = int(m.group(1))
            if best is None or n > best[0]:
                best = (n, entry / PRIMARY_FILE)
    return best[1] if best else None


def load_state(path: Path, location: str) -> dict[str, Any]:
    """The parsed JSON; malformed input → SourceError with the line of the problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
    text = decode_bytes(data)[0]
    try:
        state = json.loads(text)   # Python's json accepts the NaN/Infinity the Trainer writes
    except json.JSONDecodeError as exc:
        raise SourceError(f"malformed JSON ({exc.msg}); expected a trainer_state.json", location,
                          line=exc.lineno) from None
    except RecursionError:
        raise SourceError("JSON nested too deeply; expected a trainer_state.json", location) from None
    except ValueError as exc:      # e.g. an integer literal past Python's digit limit
        raise SourceError(f"malformed JSON ({' '.join(str(exc).split())[:120]}); expected a trainer_state.json",
                          location) from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise SourceError("no 'log_history' list; expected an HF trainer_state.json", location)
    return state


def state_to_run(state: dict[str, Any], location: str, name: str) -> Run:
    steps: list[int] = []
    raws: list[str] = []
    values: list[float] = []
    summary: dict[str, Any] = {}
    skipped = 0
    for entry in state["log_history"]:
        if not isinstance(entry, dict):
            skipped += 1
            continue
        if any(k in entry for k in _SUMMARY_KEYS):
            for key, value in entry.items():
                num = json_number(value)
                if num is not None and key != "step":
                    summary[key] = num
            continue
        step = entry.get("step")
        if json_number(step) is None:     # NaN / fractional / huge steps: dropped and counted by the tidy table
            skipped += 1
            continue
        is_eval = any(str(k).startswith("eval_") for k in entry)
        for key, value in entry.items():
            if key in _NOT_POINTS or (key == "epoch" and is_eval):
                continue
            num = json_number(value)
            if num is None:
                continue
            steps.append(step)
            raws.append(str(key))
            values.append(num)
    if not steps:
        raise SourceError("log_history holds no logged metrics (train or eval entries with a 'step')", location)
    config: dict[str, Any] = {}
    for key, value in sorted(state.items()):
        if key == "log_history":
            continue
        if isinstance(value, (int, float, str)) or value is None:
            config[f"trainer.{key}"] = value
    global_step = to_step(state.get("global_step"))       # None when absent, non-finite or not a counter
    max_steps = to_step(state.get("max_steps"))
    for key, num in (("global_step", global_step), ("max_steps", max_steps)):
        if num is not None:
            summary[key] = num
    notes: list[str] = []
    if skipped:
        notes.append(f"{skipped} log_history entr(y/ies) without an integer step skipped")
    if (global_step is not None and max_steps is not None and max_steps > 0 and global_step >= max_steps) \
            or "train_runtime" in summary:
        run_state = "finished"
    elif max_steps is not None and max_steps > 0 and global_step is not None:
        run_state = "interrupted"
        notes.append(f"global_step {global_step} < max_steps {max_steps}: training stopped early "
                     "(interrupted, or this is an intermediate checkpoint)")
    else:
        run_state = "unknown"
    table = tidy_points(steps, raws, values)
    notes.extend(table.notes)
    metrics = table.frame
    if metrics.empty:
        raise SourceError("log_history holds no logged metrics with a valid step", location)
    return Run(name=name, provenance=Provenance(kind=SOURCE.kind, location=location, step_source="logged",
                                                notes=tuple(notes)),
               metrics=metrics, config=config, summary=summary, state=run_state)


def _run_name(path: Path) -> str:
    """The output dir's name (a checkpoint dir is named after its parent)."""
    parent = path.parent
    if _CHECKPOINT.match(parent.name) and parent.parent.name:
        return parent.parent.name
    return parent.name or path.stem


#: run.json status (lossdoctor train's manifest) -> Run.state
_MANIFEST_STATES = {"completed": "finished", "running": "running", "interrupted": "interrupted",
                    "failed": "crashed", "stopped-by-rule": "interrupted"}


def _manifest(path: Path) -> dict[str, Any] | None:
    """The run.json that `lossdoctor train` leaves beside trainer_state.json (or above a checkpoint dir)."""
    for directory in (path.parent, path.parent.parent):
        candidate = directory / "run.json"
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) and data.get("tool") == "lossdoctor train" else None
    return None


def read_state_file(path: Path, location: str) -> Run:
    run = state_to_run(load_state(path, location), location, _run_name(path.resolve()))
    manifest = _manifest(path)
    if manifest is None:
        return run
    # the flags the run was trained with (lr, lr_scheduler, warmup_steps, max_grad_norm ...) and how it ended
    config = {str(k): v for k, v in (manifest.get("config") or {}).items()
              if isinstance(v, (int, float, str, bool)) or v is None}
    config.update(run.config)
    status = str(manifest.get("status") or "")
    state = _MANIFEST_STATES.get(status, run.state)
    notes = run.provenance.notes
    if status and status != "completed":
        notes = notes + (f"run.json: the run ended with status {status!r}",)
    from dataclasses import replace

    return replace(run, config=config, state=state, provenance=replace(run.provenance, notes=notes))


class TrainerStateSource:
    kind = "trainer-state"
    description = "HF Trainer trainer_state.json (log_history), a checkpoint dir or an output dir holding one"
    example = "outputs/checkpoint-40/trainer_state.json"
    specificity = 60

    def sniff(self, target: Target) -> float:
        try:
            if target.is_dir and target.path is not None:
                return 0.85 if find_state_file(target.path) is not None else 0.0
            if not target.is_file or not target.head:
                return 0.0
            head = target.head_text().lstrip()
            if head.startswith("{") and '"log_history"' in head:
                return 0.9
            if head.startswith("{") and target.path is not None and target.path.name == PRIMARY_FILE:
                return 0.9   # log_history may sit after a long preamble
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected a trainer_state.json, a checkpoint dir or an output dir", target.location)
        if target.is_dir:
            path = find_state_file(target.path)
            if path is None:
                raise SourceError(f"no {PRIMARY_FILE} here or in a checkpoint-N/ subdirectory", target.location)
            return [read_state_file(path, str(path))]
        return [read_state_file(target.path, target.location)]


SOURCE = TrainerStateSource()
