"""trackio projects: Hugging Face's local-first tracker (``report_to="trackio"``, ``trackio.init/log``).

trackio keeps one SQLite file per project, ``<project>.db``, in ``$TRACKIO_DIR`` (default
``~/.cache/huggingface/trackio/``). Layout (checked on files written by trackio 0.43 in
tests/test_trackio.py; older releases lack run_id and keep metrics as TEXT):

- ``metrics(id, run_id?, timestamp, run_name, step, metrics, ...)``: one row per ``trackio.log`` call, the
  logged dict as JSON (non-finite numbers as "NaN" / "Infinity" strings, nested dicts kept nested);
- ``configs(run_id?, run_name, config, created_at)``: the run's config as JSON (``_Created``, ``_Username``,
  ``_Group`` are trackio's own).

Mapping: one Run per trackio run (the latest by default; ``--all`` for every run, of every project when a
directory is given). Nested keys are joined with "/". The step is trackio's own ``step`` column, except that
the transformers TrackioCallback logs without a step and adds ``train/global_step`` to every row: when most
rows carry it, rows are placed at that (as for W&B). ``timestamp`` becomes ``wall_time``. trackio records no
run status, so the state is "unknown". The file is read through :mod:`lossdoctor.sources._sqlite`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import Collector, json_number, make_run
from lossdoctor.sources._sqlite import MAX_ROWS, is_sqlite, open_readonly, peek_schema, schema
from lossdoctor.sources.base import ReadOptions, Target

WHAT = "a trackio project database (<project>.db with a metrics table: run_name, step, metrics)"
METRICS_COLUMNS = frozenset({"run_name", "step", "metrics"})
HF_STEP_KEY = "train/global_step"
#: one logged dict at most this large (bytes of JSON); bigger rows are skipped and counted
MAX_ROW_BYTES = 1 << 20


def is_trackio_schema(tables: dict[str, set[str]] | None) -> bool:
    if not tables:
        return False
    return METRICS_COLUMNS <= tables.get("metrics", set())


def _flatten(obj: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "_type" not in value:
            yield from _flatten(value, name + "/")
        else:
            yield name, value


def _seconds(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _loads(blob: Any) -> dict[str, Any] | None:
    if isinstance(blob, bytes):
        if len(blob) > MAX_ROW_BYTES:
            return None
        blob = blob.decode("utf-8", errors="replace")
    if not isinstance(blob, str) or len(blob) > MAX_ROW_BYTES:
        return None
    try:
        value = json.loads(blob)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _project_files(directory: Path) -> list[Path]:
    """trackio project files in a directory, oldest written first."""
    try:
        files = [p for p in directory.glob("*.db") if p.is_file()]
    except OSError:
        return []
    found = []
    for path in files:
        try:
            with path.open("rb") as fh:
                if not is_sqlite(fh.read(16)):
                    continue
        except OSError:
            continue
        if is_trackio_schema(peek_schema(path)):
            found.append(path)
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def read_project(path: Path, location: str, all_runs: bool) -> list[Run]:
    project = path.stem
    with open_readonly(path, location, WHAT) as conn:
        tables = schema(conn)
        if not is_trackio_schema(tables):
            raise SourceError(f"an SQLite database without trackio's tables; expected {WHAT}", location)
        key = "run_id" if "run_id" in tables["metrics"] else "run_name"
        order = "id" if "id" in tables["metrics"] else "rowid"
        runs = conn.execute(
            f"SELECT {key}, MAX(run_name), MIN({order}) FROM metrics GROUP BY {key} ORDER BY MIN({order})"
        ).fetchall()
        if not runs:
            raise SourceError(f"no runs in trackio project {project!r} (its metrics table is empty)", location)
        chosen = runs if all_runs else runs[-1:]
        configs = _configs(conn, tables, key)
        has_time = "timestamp" in tables["metrics"]
        out = []
        for run_key, run_name, _ in chosen:
            rows = conn.execute(
                f"SELECT step, metrics, {'timestamp' if has_time else 'NULL'} FROM metrics "
                f"WHERE {key} = ? ORDER BY {order} LIMIT ?",
                (run_key, MAX_ROWS + 1),
            ).fetchall()
            out.append(
                _to_run(rows, str(run_name), project, location, configs.get(run_key), 1 if all_runs else len(runs))
            )
    return out


def _configs(conn: Any, tables: dict[str, set[str]], key: str) -> dict[Any, dict[str, Any]]:
    columns = tables.get("configs", set())
    if "config" not in columns or key not in columns:
        return {}
    out: dict[Any, dict[str, Any]] = {}
    for run_key, blob in conn.execute(f"SELECT {key}, config FROM configs LIMIT 100000"):
        parsed = _loads(blob)
        if parsed is not None:
            out[run_key] = parsed
    return out


def _to_run(
    rows: list[tuple[Any, Any, Any]], name: str, project: str, location: str, config: dict[str, Any] | None, n_runs: int
) -> Run:
    notes: list[str] = []
    if len(rows) > MAX_ROWS:
        rows = rows[:MAX_ROWS]
        notes.append(f"only the first {MAX_ROWS} logged rows read")
    parsed = [(_loads(blob), step, stamp) for step, blob, stamp in rows]
    with_hf_step = sum(1 for obj, _, _ in parsed if obj is not None and json_number(obj.get(HF_STEP_KEY)) is not None)
    use_hf_step = with_hf_step * 2 > len(parsed)
    points = Collector()
    bad = media = no_step = 0
    for obj, step_value, stamp in parsed:
        if obj is None:
            bad += 1
            continue
        raw_step = json_number(obj.get(HF_STEP_KEY)) if use_hf_step else json_number(step_value)
        if raw_step is None or not math.isfinite(raw_step):
            no_step += 1
            continue
        wall = _seconds(stamp)
        for metric, value in _flatten(obj):
            if use_hf_step and metric == HF_STEP_KEY:
                continue
            number = json_number(value)
            if number is None:
                media += isinstance(value, dict)
                continue
            points.add(int(raw_step), metric, number, wall_time=wall)
    frame, more = points.frame()
    notes.extend(more)
    if use_hf_step:
        notes.append(
            f"rows placed at {HF_STEP_KEY} (the transformers TrackioCallback's step), not trackio's log-call counter"
        )
    if bad:
        notes.append(f"{bad} logged row(s) that are not a JSON object (or over {MAX_ROW_BYTES} bytes) skipped")
    if no_step:
        notes.append(f"{no_step} row(s) without {HF_STEP_KEY} skipped")
    if media:
        notes.append(f"{media} media value(s) (images, tables, histograms) skipped")
    if n_runs > 1:
        notes.append(f"trackio project {project!r} holds {n_runs} runs; this is {name!r} (--all reads every one)")
    run_config: dict[str, Any] = {}
    created = None
    if config:
        for key, value in _flatten(config):
            if key == "_Created" and isinstance(value, str):
                created = value
            elif not key.startswith("_") and (value is None or isinstance(value, (bool, int, float, str))):
                run_config[key.replace("/", ".")] = value
    if frame.empty:
        raise SourceError(f"trackio run {name!r} of project {project!r} has no numeric metrics", location)
    run = make_run(
        Target(location=location, path=None),
        SOURCE.kind,
        frame,
        notes,
        name=name,
        config=run_config,
        location=location,
        step_source=HF_STEP_KEY if use_hf_step else "logged",
    )
    if created:
        from dataclasses import replace

        run = replace(run, created=created)
    return run


class TrackioSource:
    kind = "trackio"
    description = "trackio project database (<project>.db in $TRACKIO_DIR, ~/.cache/huggingface/trackio) or that dir"
    example = "~/.cache/huggingface/trackio/my-project.db  (--all for every run)"
    specificity = 80
    max_confidence = 1.0  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if target.is_dir and target.path is not None:
                return 0.7 if _project_files(target.path) else 0.0
            if target.is_file and target.path is not None and is_sqlite(target.head):
                tables = peek_schema(target.path)
                if is_trackio_schema(tables):
                    return 1.0
                # an SQLite file whose schema cannot be read (truncated, damaged): read() says so
                return 0.25 if tables is None and target.path.suffix == ".db" else 0.0
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError(f"expected {WHAT}", target.location)
        if target.is_dir:
            projects = _project_files(target.path)
            if not projects:
                raise SourceError(f"no trackio project (*.db) in this directory; expected {WHAT}", target.location)
            chosen = projects if options.all_runs else projects[-1:]
            runs = [run for path in chosen for run in read_project(path, str(path), options.all_runs)]
            if len(projects) > 1 and not options.all_runs:
                from dataclasses import replace

                note = (
                    f"{len(projects)} trackio projects here; read the last written, {chosen[0].stem!r} "
                    "(--all reads every one)"
                )
                runs = [replace(r, provenance=replace(r.provenance, notes=(note, *r.provenance.notes))) for r in runs]
            return runs
        if not is_sqlite(target.head):
            raise SourceError(f"not an SQLite file; expected {WHAT}", target.location)
        return read_project(target.path, target.location, options.all_runs)


SOURCE = TrackioSource()
