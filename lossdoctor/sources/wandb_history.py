"""W&B run directories of wandb versions before the ``.wandb`` transaction log (≤0.9, and any run dir whose
history was kept as ``wandb-history.jsonl``).

Layout (checked on runs written by wandb 0.9.7, tests/data/wandb_old/): ``wandb/run-<date>_<time>-<id>/`` (or
``dryrun-...`` offline) holding ``wandb-history.jsonl`` (one JSON object per ``wandb.log`` call with
``_step``, ``_runtime``, ``_timestamp``; NaN / Infinity as JSON literals), ``wandb-summary.json``,
``config.yaml`` (``key: {desc, value}``), ``wandb-metadata.json`` (``state``, ``exitcode``,
``startedAt``), ``output.log`` and ``wandb-events.jsonl`` (system metrics, not read). The same files may
sit in a ``files/`` sub-directory (later versions' layout, and runs downloaded from W&B).

Mapping: points at ``_step`` (wandb's log-call counter), or at ``train/global_step`` when most rows carry it
(the HF integration); nested keys joined with "." as W&B shows them; media values skipped and counted;
``_timestamp`` becomes ``wall_time``; summary and config from their files; state from the metadata.
A run dir that holds a ``.wandb`` file is the wandb-offline reader's: that log is the complete record.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import Collector, decode_with_notes, json_number, make_run, read_bytes
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.jsonl_metrics import iter_json_lines, looks_like_json_lines, sample_objects
from lossdoctor.sources.wandb_offline import flatten
from lossdoctor.textfile import read_side_file

HISTORY = "wandb-history.jsonl"
HF_STEP_KEY = "train/global_step"
_RUN_DIR = re.compile(r"^(?:run|dryrun|offline-run)-(\d{8}_\d{6})-([A-Za-z0-9_-]+)$")
_STATES = {
    "finished": "finished",
    "failed": "crashed",
    "crashed": "crashed",
    "killed": "interrupted",
    "running": "running",
}
#: bytes read from the small side files (summary, config, metadata)
MAX_SIDE_BYTES = 4 << 20


def history_file(run_dir: Path) -> Path | None:
    for candidate in (run_dir / HISTORY, run_dir / "files" / HISTORY):
        if candidate.is_file():
            return candidate
    return None


def is_history_run_dir(path: Path) -> bool:
    """A run dir with a history JSONL and no .wandb log (that one is the wandb-offline reader's)."""
    try:
        return history_file(path) is not None and not any(path.glob("*.wandb"))
    except OSError:
        return False


def run_dirs(wandb_dir: Path) -> list[Path]:
    """Old-style run dirs under a ``wandb/`` dir, oldest first (their names carry the start time)."""
    try:
        entries = [p for p in wandb_dir.iterdir() if p.is_dir() and not p.is_symlink() and _RUN_DIR.match(p.name)]
    except OSError:
        return []
    found = [p for p in entries if is_history_run_dir(p)]
    return sorted(found, key=_started)


def _started(run_dir: Path) -> tuple[str, str]:
    """Sort key of a run dir: the start time in its name (run-20240101_120000-id), then the name."""
    m = _RUN_DIR.match(run_dir.name)
    return (m.group(1) if m else "", run_dir.name)


def locate(path: Path, all_runs: bool) -> list[Path]:
    """History files for a path: the file itself, a run dir, or the latest (every) run under ``wandb/``."""
    if path.is_file():
        return [path]
    # history_file is None only where the file went away since the directory was looked at
    if is_history_run_dir(path):
        return [f for f in (history_file(path),) if f is not None]
    for wandb_dir in (path, path / "wandb"):
        dirs = run_dirs(wandb_dir) if wandb_dir.is_dir() else []
        if dirs:
            return [f for f in (history_file(d) for d in (dirs if all_runs else dirs[-1:])) if f is not None]
    return []


def _side_json(path: Path) -> Any:
    data = read_side_file(path, MAX_SIDE_BYTES)
    if data is None:
        return None
    try:
        return json.loads(decode_with_notes(data)[0])
    except (ValueError, RecursionError):
        return None


def _config(path: Path) -> dict[str, Any]:
    import yaml

    raw = read_side_file(path, MAX_SIDE_BYTES)
    if raw is None:
        return {}
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for key, entry in data.items():
        if not isinstance(key, str) or key.startswith("_") or key == "wandb_version":
            continue
        value = entry.get("value") if isinstance(entry, dict) and "value" in entry else entry
        for leaf, leaf_value in flatten(value, key).items():
            if leaf_value is None or isinstance(leaf_value, (bool, int, float, str)):
                out[leaf] = leaf_value
    return out


def read_history(path: Path, location: str) -> Run:
    text, notes = decode_with_notes(read_bytes(path, location))
    rows: list[tuple[int, dict[str, Any]]] = []
    bad: list[int] = []
    for lineno, obj in iter_json_lines(text):
        if obj is None:
            bad.append(lineno)
        else:
            rows.append((lineno, obj))
    if not rows:
        raise SourceError(
            "no history rows; expected one JSON object per wandb.log call "
            '(e.g. {"loss": 2.3, "_step": 0, "_runtime": 1.2, "_timestamp": 1600000000.0})',
            location,
        )
    with_hf = sum(1 for _, row in rows if json_number(row.get(HF_STEP_KEY)) is not None)
    step_key = HF_STEP_KEY if with_hf * 2 > len(rows) else "_step"
    points = Collector()
    no_step = media = 0
    for _, row in rows:
        step = json_number(row.get(step_key))
        if step is None or not math.isfinite(step):
            no_step += 1
            continue
        wall = json_number(row.get("_timestamp"))
        for key, value in flatten(row).items():
            if key.startswith("_") or key == step_key:
                continue
            number = json_number(value)
            if number is None:
                media += isinstance(value, (dict, list, str))
                continue
            points.add(int(step), key, number, wall_time=wall)
    frame, more = points.frame()
    notes.extend(more)
    if bad:
        notes.append(
            f"{len(bad)} line(s) that are not JSON objects skipped (line "
            f"{', '.join(str(n) for n in bad[:5])}{', ...' if len(bad) > 5 else ''})"
        )
    if no_step:
        notes.append(f"{no_step} history row(s) without {step_key} skipped")
    if media:
        notes.append(f"{media} non-numeric history value(s) skipped (media, text)")
    if frame.empty:
        raise SourceError(f"no numeric metrics in the history rows (placed at {step_key})", location)
    run_dir = path.parent.parent if path.parent.name == "files" else path.parent
    side = path.parent
    summary_data = _side_json(side / "wandb-summary.json")
    summary = (
        {
            k: v
            for k, v in flatten(summary_data).items()
            if not k.startswith("_") and (v is None or isinstance(v, (bool, int, float, str)))
        }
        if isinstance(summary_data, dict)
        else {}
    )
    meta = _side_json(side / "wandb-metadata.json")
    meta = meta if isinstance(meta, dict) else {}
    state = _STATES.get(str(meta.get("state") or ""), "unknown")
    exitcode = json_number(meta.get("exitcode"))
    if exitcode is not None and exitcode != 0:
        state = "crashed"
        notes.append(f"run exited with code {int(exitcode)}")
    m = _RUN_DIR.match(run_dir.name)
    name = str(meta.get("name") or (m.group(2) if m else run_dir.name))
    run = make_run(
        Target(location=location, path=path),
        SOURCE.kind,
        frame,
        notes,
        name=name,
        summary=summary,
        config=_config(side / "config.yaml"),
        state=state,
        location=location,
        step_source="train/global_step" if step_key == HF_STEP_KEY else "_step",
    )
    started = meta.get("startedAt")
    return replace(run, created=started if isinstance(started, str) else None)


class WandbHistorySource:
    kind = "wandb-history"
    description = "old W&B run dir (wandb ≤0.9: wandb-history.jsonl, wandb-summary.json, config.yaml), or that file"
    example = "wandb/run-20200101_120000-abc123  (or wandb/dryrun-*, wandb/ with --all, wandb-history.jsonl)"
    specificity = 85
    max_confidence = 0.9  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if target.is_dir and target.path is not None:
                if is_history_run_dir(target.path):
                    return 0.85
                return 0.75 if locate(target.path, all_runs=False) else 0.0
            if target.is_file and target.path is not None and target.path.name == HISTORY and target.head:
                objects, strays = sample_objects(target.head_text())
                if looks_like_json_lines(objects, strays) and any("_step" in o for o in objects):
                    return 0.9
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected an old W&B run directory or its wandb-history.jsonl", target.location)
        files = locate(target.path, options.all_runs)
        if not files:
            raise SourceError(
                f"no {HISTORY} here (expected wandb/run-*/ or dryrun-*/ holding one, without a .wandb file)",
                target.location,
            )
        if len(files) == 1:
            location = target.location if target.path.is_file() else str(files[0])
            return [read_history(files[0], location)]
        return [read_history(f, str(f)) for f in files]


SOURCE = WandbHistorySource()
