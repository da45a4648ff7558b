"""Fetching a run from a W&B server: the keys to fetch, the history composed from the Parquet exports and the
paged live tail, the run's metadata, and the table built through the one tidy-table constructor. Used by the
registered reader :mod:`lossdoctor.sources.wandb_api`, which imports this module (and the HTTP stack under it)
only when a run is actually read, so detection and local analyses never pay for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run, empty_metrics
from lossdoctor.sources._readkit import dig, load_json, to_step
from lossdoctor.sources._wandb_errors import NO_KEY, api_key_for, map_error, scrub
from lossdoctor.sources._wandb_http import Deadline, FetchError, HttpClient
from lossdoctor.sources._wandb_paging import Budget, Points, fetch_live, plan_windows
from lossdoctor.sources._wandb_parquet import fetch_exports
from lossdoctor.sources._wandb_url import RunRef
from lossdoctor.sources._wandb_workers import Progress
from lossdoctor.sources.base import ReadOptions
from lossdoctor.table import MetricTable

STEP_KEY = "train/global_step"
_NUMERIC_TYPES = {"number", "nan", "int", "float"}
_STATES = {
    "finished": "finished",
    "crashed": "crashed",
    "failed": "crashed",
    "killed": "interrupted",
    "preempted": "interrupted",
    "preempting": "interrupted",
    "running": "running",
    "pending": "running",
}

RUN_QUERY = """
query Run($project: String!, $entity: String!, $name: String!) {
  project(name: $project, entityName: $entity) {
    run(name: $name) {
      id name displayName state config summaryMetrics historyLineCount historyKeys createdAt tags
    }
  }
}
"""


def _type_counts(info: Any) -> list[dict[str, Any]]:
    counts = info.get("typeCounts") if isinstance(info, dict) else None
    return [t for t in counts if isinstance(t, dict)] if isinstance(counts, list) else []


def numeric_count(info: Any) -> int:
    """How many numeric values the server says a key holds (0 when it does not say)."""
    total = 0
    for t in _type_counts(info):
        n = to_step(t.get("count"))
        if t.get("type") in _NUMERIC_TYPES and n is not None and n > 0:
            total += n
    return total


def wanted_keys(history_keys: dict[str, Any]) -> list[str]:
    """History keys worth fetching: numeric, known to the alias table, or any ``eval/*``."""
    from lossdoctor.metrics.names import alias_table, canonicalise

    known = set(alias_table().values())
    out = []
    for key, info in sorted((history_keys or {}).items()):
        if not isinstance(key, str) or key.startswith("_") or len(key) > 500:
            continue
        types = {t.get("type") for t in _type_counts(info)}
        if types and not types & _NUMERIC_TYPES:
            continue
        if canonicalise(key) in known or key.startswith("eval/"):
            out.append(key)
    return out


def fetch_history(
    client: HttpClient,
    ref: RunRef,
    keys: list[str],
    step_key: str,
    counts: dict[str, int],
    last_step: int | None,
    bar: Progress,
) -> tuple[MetricTable, list[str], bool]:
    """All points of ``keys``: (table, notes, complete). Exports downloaded in parallel and decoded with
    pyarrow; the live tail paged per key group in parallel; a key short of the server's count paged again
    alone at SAFE_PAGE_SIZE. ``complete`` is False when a key is still short."""
    if not keys:
        return empty_metrics(), [], True
    budget = Budget()
    exported, live_steps = fetch_exports(client, ref, keys, step_key, bar, budget)
    windows = plan_windows(live_steps, last_step)
    got = {k: 0 for k in keys}
    for key, steps, _, missing in exported:
        got[key] += len(steps) + missing
    expected = {k: max(0, counts.get(k, 0) - got[k]) for k in keys}
    live_points, notes, complete = fetch_live(
        client, ref, keys, step_key, counts, expected, live_steps, windows, bar, budget
    )
    results = exported + live_points
    missing_total = sum(r[3] for r in results)
    if missing_total:
        notes.append(f"{missing_total} point(s) without an integer {step_key} skipped")
    frame, dup_notes = points_frame(results)
    return frame, notes + dup_notes, complete


def points_frame(results: list[Points]) -> tuple[MetricTable, list[str]]:
    """The tidy table from per-key (steps, values) arrays, through the one constructor (numpy all the way:
    millions of points). Per metric one value per step, the last fetched wins (the export boundary page
    can come back twice)."""
    from lossdoctor.tidy import Coded, tidy_points

    keys: list[str] = []
    parts_s, parts_v, parts_c = [], [], []
    for key, steps, values, _ in results:
        if not len(steps):
            continue
        if key not in keys:
            keys.append(key)
        parts_s.append(np.asarray(steps, dtype="int64"))  # int64: exact beyond 2**53
        parts_v.append(np.asarray(values, dtype="float64"))
        parts_c.append(np.full(len(steps), keys.index(key), dtype="int64"))
    if not keys:
        return empty_metrics(), []
    table = tidy_points(np.concatenate(parts_s), Coded(np.concatenate(parts_c), keys), np.concatenate(parts_v))
    return table.frame, list(table.notes)


def _json_field(value: Any) -> dict[str, Any]:
    """A JSON-string (or already decoded) object field of the Run answer; {} when it is not one."""
    if isinstance(value, str):
        try:
            value = load_json(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    """``{k: {"value": v, "desc": ...}}`` (the server's form) or plain ``{k: v}``."""
    return {
        k: (v["value"] if isinstance(v, dict) and "value" in v else v)
        for k, v in raw.items()
        if not str(k).startswith("_wandb")
    }


def _run_answer(client: HttpClient, ref: RunRef, location: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run object, historyKeys object) from the Run query; one retry when historyKeys comes back empty for
    a run that has history (never taken for a finished run with no metrics)."""
    for attempt in (1, 2):
        data = client.graphql("Run", RUN_QUERY, {"entity": ref.entity, "project": ref.project, "name": ref.run_id})
        if dig(data, "project") is None or dig(data, "project", "run") is None:
            raise SourceError(
                f"run not found: {ref.path} at {ref.api_base} (check entity, project and run id, "
                f"and that the key can see the project)",
                location,
            )
        run = dig(data, "project", "run")
        if not isinstance(run, dict):
            raise FetchError("Run: the answer's run is not an object", "content")
        history_keys = _json_field(run.get("historyKeys"))
        keys = history_keys.get("keys")
        lines = to_step(run.get("historyLineCount")) or 0
        last = to_step(history_keys.get("lastStep"))
        if (not isinstance(keys, dict) or not keys) and (lines > 0 or (last is not None and last >= 0)):
            if attempt == 1 and client.deadline.sleep(min(1.0, client.deadline.left() / 4)):
                continue
            raise FetchError(
                f"Run: incomplete answer: {ref.path} has history ({lines:,} rows) but historyKeys lists no keys",
                "content",
            )
        return run, history_keys
    raise AssertionError("unreachable")


def fetch_run(ref: RunRef, location: str, options: ReadOptions, kind: str) -> tuple[Run, bool]:
    """(run, complete): talk to the server under one deadline; every failure is a one-line SourceError.
    ``kind`` is the reader's, for the run's provenance."""
    timeout = float(options.timeout)
    secret = api_key_for(ref.api_base)
    if not secret:
        raise SourceError(NO_KEY, location)
    deadline = Deadline(timeout)
    bar: Progress | None = None
    try:
        client = HttpClient(ref.api_base, secret, deadline)
        wrun, history_keys = _run_answer(client, ref, location)
        raw_keys = history_keys.get("keys")
        key_info: dict[str, Any] = raw_keys if isinstance(raw_keys, dict) else {}
        keys = wanted_keys(key_info)
        step_key = STEP_KEY if STEP_KEY in key_info else "_step"
        counts = {k: numeric_count(key_info.get(k)) for k in keys}
        total = sum(counts.values())
        bar = live_bar = Progress(total, ref.path, options.progress)
        client.progress = lambda n: live_bar.add(nbytes=n)
        frame, notes, complete = fetch_history(
            client, ref, keys, step_key, counts, to_step(history_keys.get("lastStep")), bar
        )
        if frame.empty and total:
            raise FetchError(
                f"the server counts {total:,} points of the wanted keys "
                f"({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}) but the history pages "
                f"came back empty",
                "content",
            )
    except FetchError as exc:
        deadline.cancel()
        raise map_error(exc, ref, location, timeout, secret) from None
    finally:
        deadline.cancel()  # stops any worker still running
        if bar is not None:
            bar.close()
    from lossdoctor.sources.wandb_offline import flatten

    config = {
        k: v
        for k, v in flatten(_config(_json_field(wrun.get("config")))).items()
        if v is None or isinstance(v, (bool, int, float, str))
    }
    summary = {
        k: v
        for k, v in flatten(_json_field(wrun.get("summaryMetrics"))).items()
        if not k.startswith("_wandb") and (v is None or isinstance(v, (bool, int, float, str)))
    }
    name = str(wrun.get("displayName") or wrun.get("name") or ref.run_id)[:500]
    created = wrun.get("createdAt")
    tags_raw = wrun.get("tags")
    tags = tuple(str(t)[:200] for t in tags_raw[:100]) if isinstance(tags_raw, list) else ()
    state_raw = str(wrun.get("state") or "unknown")[:40]
    state = _STATES.get(state_raw.lower(), "unknown")
    if state == "running":
        last = int(frame["step"].max()) if len(frame) else None
        notes.append(f"run is still running on W&B: analysed as far as it got (step {last})")
    elif state_raw.lower() not in ("finished",):
        notes.append(f"W&B run state: {state_raw}")
    notes = [scrub(n, secret) for n in notes]
    run = Run(
        name=name,
        provenance=Provenance(kind=kind, location=location, step_source=step_key, notes=tuple(notes)),
        metrics=frame,
        config=config,
        summary=summary,
        state=state,
        created=str(created)[:64] if isinstance(created, str) and created else None,
        tags=tags,
    )
    return run, complete
