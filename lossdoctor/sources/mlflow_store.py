"""MLflow local tracking stores, read from the files themselves (mlflow need not be installed).

Two layouts (checked on stores written by mlflow 3.x in tests/test_mlflow_store.py):

- the file store ``mlruns/``: ``<experiment_id>/meta.yaml`` (name, lifecycle_stage) and
  ``<experiment_id>/<run_id>/`` holding ``meta.yaml`` (run_name, status 1-5 = RUNNING, SCHEDULED, FINISHED,
  FAILED, KILLED, start_time / end_time in ms, lifecycle_stage), ``metrics/<key>`` with one
  ``timestamp value step`` line per logged point (``timestamp value`` in stores from before steps existed,
  ``... dataset_name dataset_digest`` after MLflow 2.15), ``params/<key>`` and ``tags/<key>`` holding the
  value; a key with "/" is a sub-directory;
- the SQLAlchemy store ``mlflow.db`` (SQLite): tables ``metrics(key, value, timestamp, step, is_nan,
  run_uuid)``, ``runs(run_uuid, name, status, start_time, end_time, lifecycle_stage, experiment_id)``,
  ``experiments``, ``params``, ``tags``. NaN is stored as value 0 with is_nan = 1, ±inf as ±1.797e308
  (the largest double); both are turned back.

Mapping: one Run per MLflow run, the latest started by default (``--all``: every run not deleted). Points at
their logged step with ``wall_time`` from the timestamp; params → ``Run.config`` (numbers parsed), user tags →
``config["tags.<key>"]``; status → state (FINISHED finished, FAILED crashed, KILLED interrupted, RUNNING
running). The transformers MLflowCallback logs the end-of-training summary (train_runtime, train_loss, ...)
as metrics at the last step: those go to ``Run.summary``, never onto the loss curve. A store whose points all
sit at step 0 (``log_metric`` without ``step``) is placed on the order of logging instead ("ordinal").
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import Collector, json_number, make_run, parse_number
from lossdoctor.sources._sqlite import MAX_ROWS, is_sqlite, open_readonly, peek_schema, schema
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.textfile import read_side_file

WHAT = "an MLflow tracking store (an mlruns/ directory or an mlflow.db SQLite file)"
DB_NAME = "mlflow.db"
STORE_DIR = "mlruns"
#: the Trainer's end-of-training summary, logged by MLflowCallback as metrics at the last step
HF_SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")
FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
STATES = {
    "FINISHED": "finished",
    "FAILED": "crashed",
    "KILLED": "interrupted",
    "RUNNING": "running",
    "SCHEDULED": "unknown",
}
#: bytes read from one params/ or tags/ file, and from one meta.yaml
MAX_VALUE_BYTES = 64 * 1024
_MAX_DOUBLE = sys.float_info.max


@dataclass
class StoreRun:
    """One MLflow run as read from either layout, before it becomes a Run."""

    run_id: str
    name: str
    experiment: str
    status: str = ""
    start_time: int | None = None
    end_time: int | None = None
    points: list[tuple[str, int, float, int | None]] = field(default_factory=list)  # key, step, value, ts ms
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- the file store -----------------------------------------------------------------------------------


def _small_text(path: Path) -> str | None:
    data = read_side_file(path, MAX_VALUE_BYTES)
    return data.decode("utf-8", errors="replace") if data is not None else None


def _meta(path: Path) -> dict[str, Any] | None:
    import yaml

    text = _small_text(path)
    if text is None:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _experiment_dirs(store: Path) -> list[Path]:
    try:
        return sorted(
            p for p in store.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "meta.yaml").is_file()
        )
    except OSError:
        return []


def _run_dirs(experiment: Path) -> list[Path]:
    try:
        return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "meta.yaml").is_file())
    except OSError:
        return []


def is_file_store(path: Path) -> bool:
    """An mlruns/ directory: experiment dirs holding meta.yaml (the Default experiment 0 at least)."""
    return any((e / "meta.yaml").is_file() for e in _experiment_dirs(path)) and not (path / "metrics").is_dir()


def is_run_dir(path: Path) -> bool:
    return (path / "meta.yaml").is_file() and (path / "metrics").is_dir()


def _key_files(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        return []
    return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())


def _int(value: Any) -> int | None:
    number = json_number(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _file_run(run_dir: Path, experiment: str) -> StoreRun | None:
    meta = _meta(run_dir / "meta.yaml") or {}
    if meta.get("lifecycle_stage") == "deleted":
        return None
    status = meta.get("status")
    run = StoreRun(
        run_id=str(meta.get("run_id") or meta.get("run_uuid") or run_dir.name),
        name=str(meta.get("run_name") or ""),
        experiment=experiment,
        status=FILE_STATUS.get(status, str(status or "")) if isinstance(status, int) else str(status or ""),
        start_time=_int(meta.get("start_time")),
        end_time=_int(meta.get("end_time")),
    )
    malformed = 0
    for key, path in _key_files(run_dir / "metrics"):
        data = read_side_file(path, max_bytes=None)  # a metric's history: as long as the run
        if data is None:
            malformed += 1
            continue
        text = data.decode("utf-8", errors="replace")
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3, 5):
                malformed += 1
                continue
            stamp, value = _int(parts[0]), parse_number(parts[1])
            step = _int(parts[2]) if len(parts) >= 3 else 0
            if stamp is None or value is None or step is None:
                malformed += 1
                continue
            run.points.append((key, step, value, stamp))
            if len(run.points) > MAX_ROWS:
                break
    if malformed:
        run.notes.append(f"{malformed} malformed metric line(s) skipped (expected 'timestamp value step')")
    for kind, target in (("params", run.params), ("tags", run.tags)):
        for key, path in _key_files(run_dir / kind):
            content = _small_text(path)
            if content is not None:
                target[key] = content
    run.name = run.name or run.tags.get("mlflow.runName", "") or run.run_id
    return run


def file_store_runs(store: Path) -> list[StoreRun]:
    runs = []
    for exp_dir in _experiment_dirs(store):
        meta = _meta(exp_dir / "meta.yaml") or {}
        if meta.get("lifecycle_stage") == "deleted":
            continue
        name = str(meta.get("name") or exp_dir.name)
        for run_dir in _run_dirs(exp_dir):
            run = _file_run(run_dir, name)
            if run is not None:
                runs.append(run)
    return runs


# -- the SQLite store ---------------------------------------------------------------------------------

METRICS_COLUMNS = frozenset({"key", "value", "timestamp", "run_uuid", "step"})


def is_mlflow_schema(tables: dict[str, set[str]] | None) -> bool:
    if not tables:
        return False
    return METRICS_COLUMNS <= tables.get("metrics", set()) and "run_uuid" in tables.get("runs", set())


def _pick(columns: set[str], wanted: tuple[str, ...]) -> str:
    return ", ".join(c if c in columns else "NULL" for c in wanted)


def sqlite_runs(path: Path, location: str, all_runs: bool) -> list[StoreRun]:
    with open_readonly(path, location, WHAT) as conn:
        tables = schema(conn)
        if not is_mlflow_schema(tables):
            raise SourceError(f"an SQLite database without MLflow's metrics and runs tables; expected {WHAT}", location)
        experiments: dict[Any, str] = {}
        if {"experiment_id", "name"} <= tables.get("experiments", set()):
            experiments = {e: str(n) for e, n in conn.execute("SELECT experiment_id, name FROM experiments")}
        cols = _pick(
            tables["runs"], ("run_uuid", "name", "status", "start_time", "end_time", "lifecycle_stage", "experiment_id")
        )
        found = []
        for run_id, name, status, start, end, stage, exp in conn.execute(f"SELECT {cols} FROM runs"):
            if stage == "deleted":
                continue
            found.append(
                StoreRun(
                    run_id=str(run_id),
                    name=str(name or ""),
                    experiment=experiments.get(exp, str(exp)),
                    status=str(status or ""),
                    start_time=_int(start),
                    end_time=_int(end),
                )
            )
        chosen = _latest(found, all_runs)
        is_nan = "is_nan" if "is_nan" in tables["metrics"] else "0"
        for run in chosen:
            rows = conn.execute(
                f"SELECT key, step, value, timestamp, {is_nan} FROM metrics WHERE run_uuid = ? "
                "ORDER BY timestamp, step LIMIT ?",
                (run.run_id, MAX_ROWS + 1),
            ).fetchall()
            clamped = 0
            for key, step, value, stamp, nan in rows[:MAX_ROWS]:
                number = json_number(value)
                if number is None or _int(step) is None:
                    continue
                if nan:
                    number = math.nan
                elif abs(number) == _MAX_DOUBLE:
                    number = math.copysign(math.inf, number)
                    clamped += 1
                run.points.append((str(key), _int(step) or 0, number, _int(stamp)))
            if len(rows) > MAX_ROWS:
                run.notes.append(f"only the first {MAX_ROWS} metric rows read")
            if clamped:
                run.notes.append(
                    f"{clamped} value(s) of ±1.797e308 read as ±inf (how MLflow's SQL store keeps infinities)"
                )
            for kind, target in (("params", run.params), ("tags", run.tags)):
                if {"key", "value", "run_uuid"} <= tables.get(kind, set()):
                    for key, value in conn.execute(
                        f"SELECT key, value FROM {kind} WHERE run_uuid = ? LIMIT 100000", (run.run_id,)
                    ):
                        target[str(key)] = str(value)[:MAX_VALUE_BYTES] if value is not None else ""
            run.name = run.name or run.tags.get("mlflow.runName", "") or run.run_id
    return chosen


# -- both ---------------------------------------------------------------------------------------------


def _latest(runs: list[StoreRun], all_runs: bool) -> list[StoreRun]:
    ordered = sorted(runs, key=lambda r: (r.start_time or 0, r.run_id))
    return ordered if all_runs else ordered[-1:]


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    try:
        stamp = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def to_run(run: StoreRun, location: str, n_runs: int) -> Run:
    notes = list(run.notes)
    points = run.points
    summary: dict[str, Any] = {}
    keys = {p[0] for p in points}
    if "train_runtime" in keys:
        last = max(p[1] for p in points if p[0] == "train_runtime")
        summary = {p[0]: p[2] for p in points if p[0] in HF_SUMMARY_KEYS and p[1] == last}
        points = [p for p in points if not (p[0] in HF_SUMMARY_KEYS and p[1] == last)]
        notes.append(
            f"the Trainer's end-of-training summary ({', '.join(sorted(summary))}) kept as the run "
            "summary, not as points"
        )
    step_source = "logged"
    ordinal = bool(points) and all(p[1] == 0 for p in points) and len(points) > len({p[0] for p in points})
    collector = Collector()
    counters: dict[str, int] = {}
    for key, step, value, stamp in sorted(points, key=lambda p: p[3] or 0) if ordinal else points:
        if ordinal:
            step = counters.get(key, 0)
            counters[key] = step + 1
        collector.add(step, key, value, wall_time=None if stamp is None else stamp / 1000.0)
    if ordinal:
        step_source = "ordinal"
        notes.append("every point was logged at step 0 (log_metric without step): placed in the order logged")
    frame, more = collector.frame()
    notes.extend(more)
    if frame.empty:
        raise SourceError(f"MLflow run {run.name!r} ({run.run_id}) has no metrics", location)
    status = run.status.upper()
    state = STATES.get(status, "unknown")
    if status == "RUNNING":
        notes.append("status RUNNING: still running, or the process died before ending the run")
    elif status in ("FAILED", "KILLED"):
        notes.append(f"MLflow run status {status}")
    if n_runs > 1:
        notes.append(
            f"the store holds {n_runs} runs; this is {run.name!r} in experiment {run.experiment!r} "
            "(--all reads every one)"
        )
    config: dict[str, Any] = {}
    for key, text in sorted(run.params.items()):
        number = parse_number(text)
        config[key] = number if number is not None else text
    for key, text in sorted(run.tags.items()):
        if not key.startswith("mlflow."):
            config[f"tags.{key}"] = text
    made = make_run(
        Target(location=location, path=None),
        SOURCE.kind,
        frame,
        notes,
        name=run.name,
        config=config,
        summary=summary,
        state=state,
        location=location,
        step_source=step_source,
    )
    return replace(made, created=_iso(run.start_time))


def _locate(path: Path) -> tuple[str, Path] | None:
    """("db" | "store" | "run" | "experiment", path) for a target, or None."""
    if path.is_file():
        return ("db", path)
    if is_run_dir(path):
        return ("run", path)
    if (path / "meta.yaml").is_file() and _run_dirs(path):
        return ("experiment", path)
    if is_file_store(path):
        return ("store", path)
    db = path / DB_NAME
    if db.is_file():
        return ("db", db)
    if is_file_store(path / STORE_DIR):
        return ("store", path / STORE_DIR)
    return None


class MlflowStoreSource:
    kind = "mlflow"
    description = "MLflow local tracking store: mlruns/ (file store, or one run or experiment in it) or mlflow.db"
    example = "mlruns/  (or mlflow.db, mlruns/<experiment>/<run_id>; --all for every run)"
    specificity = 80
    max_confidence = 1.0  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if target.is_file and target.path is not None and is_sqlite(target.head):
                tables = peek_schema(target.path)
                if is_mlflow_schema(tables):
                    return 1.0
                return 0.3 if tables is None and target.path.name == DB_NAME else 0.0
            if target.is_dir and target.path is not None:
                found = _locate(target.path)
                if found is None:
                    return 0.0
                return {"run": 0.9, "experiment": 0.85, "store": 0.85}.get(found[0], 0.6)
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError(f"expected {WHAT}", target.location)
        found = _locate(target.path)
        if found is None:
            raise SourceError(f"no MLflow runs here; expected {WHAT}", target.location)
        how, path = found
        location = target.location if path == target.path else str(path)
        if how == "db":
            if not target.is_dir and not is_sqlite(target.head):
                raise SourceError(f"not an SQLite file; expected {WHAT}", location)
            runs = sqlite_runs(path, location, options.all_runs)
            total = None
        elif how == "run":
            experiment = (_meta(path.parent / "meta.yaml") or {}).get("name") or path.parent.name
            one = _file_run(path, str(experiment))
            runs = [one] if one is not None else []
            total = 1
        else:
            every = (
                file_store_runs(path)
                if how == "store"
                else [
                    r
                    for r in (
                        _file_run(d, str((_meta(path / "meta.yaml") or {}).get("name") or path.name))
                        for d in _run_dirs(path)
                    )
                    if r is not None
                ]
            )
            runs = _latest(every, options.all_runs)
            total = len(every)
        if not runs:
            raise SourceError(
                f"no MLflow runs in this store (it holds no run that is not deleted); expected {WHAT}", location
            )
        n = 1 if options.all_runs else total if total is not None else _count_db_runs(path, location)
        return [to_run(r, location, n) for r in runs]


def _count_db_runs(path: Path, location: str) -> int:
    with open_readonly(path, location, WHAT) as conn:
        stage = "lifecycle_stage" in schema(conn).get("runs", set())
        query = "SELECT COUNT(*) FROM runs" + (" WHERE lifecycle_stage IS NOT 'deleted'" if stage else "")
        return int(conn.execute(query).fetchone()[0])


SOURCE = MlflowStoreSource()
