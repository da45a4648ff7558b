"""Local W&B runs (``wandb/offline-run-*``, ``wandb/run-*``, ``latest-run``, the ``.wandb`` file itself).

Why the ``.wandb`` transaction log and not the files next to it: wandb ≥0.31 writes no
``wandb-summary.json`` or ``config.yaml`` for offline runs, and ``files/output.log`` is the user's console
only. The log holds every history row, config and summary update, the ``define_metric`` records and the
exit code. Framing and damage recovery live in :mod:`lossdoctor.sources._wandb_records`; this module turns the
records into a :class:`~lossdoctor.model.Run`.

Step axis: when the run defines a step metric (the HF integration calls
``define_metric("*", step_metric="train/global_step")``), rows carrying it are placed at that value;
otherwise at ``_step`` (wandb's own ``log()`` counter, which the HF callback advances for eval rows too).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run, empty_metrics
from lossdoctor.sources._readkit import json_number, load_json, read_bytes, to_step
from lossdoctor.sources._registry import detect, make_target
from lossdoctor.sources._wandb_records import BLOCK, Damage, decode, has_magic, record_class, scan_log
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.table import MetricTable
from lossdoctor.tidy import tidy_points

_RUN_DIR = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-[A-Za-z0-9_-]+$")
#: wandb's bookkeeping keys: never metrics.
_INTERNAL = ("_step", "_runtime", "_timestamp", "_wandb")


@dataclass
class WandbLog:
    """Everything lossdoctor needs from one ``.wandb`` file (also feeds the tests' fake GraphQL server)."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)  # history rows, numeric values only (+_step)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    entity: str = ""
    project: str = ""
    name: str = ""
    tags: tuple[str, ...] = ()
    created: str | None = None
    exit_code: int | None = None
    step_metrics: Counter = field(default_factory=Counter)  # step metric name → metric records using it
    notes: list[str] = field(default_factory=list)
    skipped_values: int = 0


#: Nesting deeper than this is kept as one value (a hostile file must not cost a recursion per level).
MAX_DEPTH = 32


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """Nested dicts → dotted keys (the UI's convention); leaves kept as they are."""
    out = {} if out is None else out
    if isinstance(value, dict) and "_type" not in value and depth < MAX_DEPTH:
        for key, sub in value.items():
            flatten(sub, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    else:
        out[prefix] = value
    return out


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return json_number(value)


def _item_key(item: Any) -> str:
    return item.key if item.key else ".".join(item.nested_key)


def _item_value(item: Any) -> Any:
    kind = item.WhichOneof("value")
    if kind == "number":
        return item.number
    if kind == "integer":
        return item.integer
    if kind in ("boolean", "text", "none"):
        return getattr(item, kind) if kind != "none" else None
    raw = item.json if kind == "json" else item.value_json
    if not raw:
        return None
    try:
        return load_json(raw)  # accepts the NaN / Infinity / -Infinity tokens wandb writes
    except ValueError:
        return None


def _apply_updates(target: dict[str, Any], updates: Iterable[Any], removes: Iterable[Any]) -> None:
    for item in updates:
        path = [item.key] if item.key else list(item.nested_key)
        if not path or path[0] == "_wandb":
            continue
        try:
            value = load_json(item.value_json) if item.value_json else None
        except ValueError:
            value = item.value_json
        node = target
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    for item in removes:
        path = [item.key] if item.key else list(item.nested_key)
        node = target
        for part in path[:-1]:
            child = node.get(part)
            node = child if isinstance(child, dict) else {}
        if path:
            node.pop(path[-1], None)


def _iso(seconds: int, nanos: int) -> str | None:
    if not seconds:
        return None
    try:
        stamp = datetime.fromtimestamp(seconds + nanos / 1e9, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):  # a start time no calendar holds: not known
        return None
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def describe_damage(damage: list[Damage], size: int) -> list[str]:
    out = []
    for d in damage:
        if d.reason == "truncated":
            out.append(
                f"wandb file truncated at byte {d.offset} of {size}: the record there and anything "
                f"after it is lost (run killed or file cut while copying)"
            )
        else:
            where = (
                f"reading resumed at the next {BLOCK // 1024} KiB block, byte {d.resumed_at}"
                if d.resumed_at is not None
                else "nothing after it could be read"
            )
            out.append(f"wandb file damaged at byte {d.offset} ({d.reason}): {where}")
    return out


def history_values(history: Any) -> tuple[dict[str, float], int]:
    """One history record's numbers by key (nested dicts flattened to ``a/b``) and how many values were
    skipped: media (a dict with ``_type``: images, tables, histograms) and anything not a number."""
    row: dict[str, float] = {}
    skipped = 0
    # a media value may also arrive split into nested-key items (samples._type, samples.nrows, ...)
    media = {
        tuple(item.nested_key[:-1])
        for item in history.item
        if not item.key and len(item.nested_key) > 1 and item.nested_key[-1] == "_type"
    }
    for item in history.item:
        if media and not item.key and any(tuple(item.nested_key[: len(m)]) == m for m in media):
            skipped += 1
            continue
        key = _item_key(item)
        value = _item_value(item)
        if isinstance(value, dict):
            if "_type" in value:
                skipped += 1
                continue
            leaves = flatten(value, key)
        else:
            leaves = {key: value}
        for leaf, val in leaves.items():
            num = _numeric(val)
            if num is None:
                skipped += 1
            else:
                row[leaf] = num
    return row, skipped


def read_wandb_file(path: Path, location: str | None = None) -> WandbLog:
    """Parse one ``.wandb`` file; damage becomes notes, never an exception (bad magic does raise)."""
    location = location or str(path)
    data = read_bytes(path, location)
    if not has_magic(data):
        raise SourceError("not a W&B transaction log (expected the ':W&B' header of a .wandb file)", location)
    try:
        cls = record_class()
    except ImportError:
        raise SourceError("reading .wandb files needs the wandb package: pip install wandb", location) from None
    scan = scan_log(data)
    log = WandbLog(path=path)
    log.notes.extend(describe_damage(scan.damage, scan.size))
    undecodable = 0
    pending_step: int | None = None
    for _offset, payload in scan.records:
        rec = decode(payload, cls)
        if rec is None:
            undecodable += 1
            continue
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            row, skipped = history_values(rec.history)
            log.skipped_values += skipped
            if "_step" not in row:
                row["_step"] = float(
                    rec.history.step.num
                    if rec.history.HasField("step")
                    else (pending_step + 1 if pending_step is not None else 0)
                )
            pending_step = to_step(row["_step"])
            log.rows.append(row)
        elif kind == "run":
            r = rec.run
            log.run_id = r.run_id or log.run_id
            log.entity = r.entity or log.entity
            log.project = r.project or log.project
            log.name = r.display_name or log.name
            log.tags = tuple(r.tags) or log.tags
            if r.HasField("start_time"):
                log.created = _iso(r.start_time.seconds, r.start_time.nanos)
            _apply_updates(log.config, r.config.update, [])
            _apply_updates(log.summary, r.summary.update, [])
        elif kind == "config":
            _apply_updates(log.config, rec.config.update, rec.config.remove)
        elif kind == "summary":
            _apply_updates(log.summary, rec.summary.update, rec.summary.remove)
        elif kind == "metric":
            if rec.metric.step_metric:
                log.step_metrics[rec.metric.step_metric] += 1
        elif kind == "exit":
            log.exit_code = int(rec.exit.exit_code)
    if undecodable:
        log.notes.append(
            f"{undecodable} record(s) with an intact checksum could not be decoded (written by a newer wandb?)"
        )
    log.config = flatten(log.config)
    log.summary = {
        k: v
        for k, v in flatten(log.summary).items()
        if not k.startswith("_wandb") and (v is None or isinstance(v, (bool, int, float, str)))
    }
    _note_lost_rows(log, scan.damage)
    return log


def _note_lost_rows(log: WandbLog, damage: list[Damage]) -> None:
    """After damage, gaps in wandb's contiguous ``_step`` counter say exactly which history rows were lost."""
    if not damage or not log.rows:
        return
    steps = np.unique(np.asarray([s for s in (to_step(r["_step"]) for r in log.rows) if s is not None], dtype="int64"))
    gaps = np.nonzero(np.diff(steps) > 1)[0]
    for i in gaps[:5]:
        a, b = int(steps[i]) + 1, int(steps[i + 1]) - 1
        log.notes.append(f"history rows _step {a}-{b} lost ({b - a + 1} rows)")
    if len(gaps) > 5:
        log.notes.append(f"... and {len(gaps) - 5} more gaps in _step")


def choose_step_key(log: WandbLog) -> str:
    """The defined step metric carried by the most rows (HF: train/global_step), else ``_step``."""
    for key, _ in log.step_metrics.most_common():
        if any(key in row for row in log.rows):
            return key
    return "_step"


def to_frame(rows: list[dict[str, Any]], step_key: str) -> tuple[MetricTable, list[str], dict[str, float]]:
    """History rows → tidy table (through the one constructor: a repeated (step, metric) keeps the last
    logged; HF's end-of-run summary row is kept out of the curves and returned). Rows without the step key
    are dropped (said in a note)."""
    steps: list[int] = []
    names: list[str] = []
    values: list[float] = []
    missing = 0
    for row in rows:
        step = to_step(row.get(step_key))
        if step is None:
            missing += 1
            continue
        for key, val in row.items():
            if key.startswith("_"):
                continue
            steps.append(step)
            names.append(key)
            values.append(val)
    notes = []
    if missing:
        notes.append(f"{missing} history row(s) without an integer {step_key} skipped")
    if not steps:
        return empty_metrics(), notes, {}
    table = tidy_points(np.asarray(steps, dtype=np.int64), names, values)
    return table.frame, notes + list(table.notes), dict(table.summary)


def state_of(exit_code: int | None) -> tuple[str, list[str]]:
    if exit_code is None:
        return "unknown", ["no exit record: run still running or killed"]
    if exit_code == 0:
        return "finished", []
    return "crashed", [f"run exited with code {exit_code}"]


def log_to_run(log: WandbLog, location: str) -> Run:
    step_key = choose_step_key(log)
    frame, notes, run_summary = to_frame(log.rows, step_key)
    state, state_notes = state_of(log.exit_code)
    all_notes = list(log.notes) + state_notes + notes
    if log.skipped_values:
        all_notes.append(f"{log.skipped_values} non-numeric history value(s) skipped (media, text)")
    if frame.empty:
        fallback = _output_log_run(log.path.parent, location)
        if fallback is not None:
            frame = fallback.metrics
            step_key = fallback.provenance.step_source
            all_notes.append("no history in the .wandb file; metrics read from files/output.log")
            all_notes.extend(fallback.provenance.notes)
    return Run(
        name=log.name or log.run_id or log.path.stem,
        provenance=Provenance(kind=SOURCE.kind, location=location, step_source=step_key, notes=tuple(all_notes)),
        metrics=frame,
        config=log.config,
        summary={**run_summary, **log.summary},
        state=state,
        created=log.created,
        tags=log.tags,
    )


def _output_log_run(run_dir: Path, location: str) -> Run | None:
    """Fallback: the console reader on ``files/output.log`` (the user's stdout, \\r resolved)."""
    path = run_dir / "files" / "output.log"
    if not path.is_file():
        return None
    target = make_target(str(path))
    try:
        source, score = detect(target, skip=frozenset((SOURCE.kind, "wandb-api")))
    except SourceError:
        return None
    if score < 0.3:
        return None
    try:
        runs = source.read(target, ReadOptions())
    except SourceError:
        return None
    return runs[0] if runs and not runs[0].metrics.empty else None


# -- locating runs ------------------------------------------------------------------------------------


def _wandb_file(run_dir: Path) -> Path | None:
    files = sorted(run_dir.glob("*.wandb"))
    return files[-1] if files else None


def _run_dirs(wandb_dir: Path) -> list[Path]:
    """Run directories under a ``wandb/`` dir, oldest first (names carry the start time)."""
    try:
        entries = [p for p in wandb_dir.iterdir() if p.is_dir() and not p.is_symlink() and _RUN_DIR.match(p.name)]
    except OSError:
        return []
    dirs = [p for p in entries if _wandb_file(p) is not None]
    return sorted(
        dirs,
        key=lambda p: (p.name.split("-", 2)[-1] if p.name.startswith("offline-") else p.name.split("-", 1)[-1], p.name),
    )


def _latest(wandb_dir: Path) -> list[Path]:
    link = wandb_dir / "latest-run"
    if link.is_dir() and _wandb_file(link) is not None:
        return [link.resolve()]
    dirs = _run_dirs(wandb_dir)
    return dirs[-1:]


def locate(path: Path, all_runs: bool) -> list[Path]:
    """``.wandb`` files for a path: the file itself, a run dir, or the latest (or every) run under a
    ``wandb/`` dir or a dir containing one."""
    if path.is_file():
        return [path]
    own = _wandb_file(path)
    if own is not None and (_RUN_DIR.match(path.resolve().name) or path.name == "latest-run" or not _run_dirs(path)):
        return [own]
    for wandb_dir in (path, path / "wandb"):
        if wandb_dir.is_dir() and _run_dirs(wandb_dir):
            dirs = _run_dirs(wandb_dir) if all_runs else _latest(wandb_dir)
            return [f for f in (_wandb_file(d) for d in dirs) if f is not None]
    return []


class WandbOfflineSource:
    kind = "wandb-offline"
    description = "local W&B run: wandb/offline-run-*/ or run-*/ directory, latest-run, or its .wandb file"
    example = "wandb/offline-run-20250101_120000-abc123  (or wandb/latest-run, or run-abc123.wandb)"
    specificity = 90
    max_confidence = 1.0  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if target.is_file:
                return 1.0 if has_magic(target.head) else 0.0
            if target.path is not None and target.is_dir:
                return 0.8 if locate(target.path, all_runs=False) else 0.0
        except OSError:
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected a local W&B run directory or .wandb file", target.location)
        files = locate(target.path, options.all_runs)
        if not files:
            raise SourceError(
                "no W&B run found (expected wandb/run-*/ or offline-run-*/ with a .wandb file)", target.location
            )
        runs = []
        for path in files:
            location = target.location if len(files) == 1 else str(path.parent)
            runs.append(log_to_run(read_wandb_file(path, location), location))
        return runs


SOURCE = WandbOfflineSource()
