"""Runs on a W&B server, read through the public GraphQL API, cached per user.

Why this shape:

* **Complete history, never sampled.** ``run.history()`` samples on the server (non-deterministic).
  Like wandb 0.31's ``scan_history``, the exported part of the history is read from the server's Parquet
  exports (only the columns asked for) and the live tail is paged with ``SampledHistoryPage`` in windows
  built from the live step list the server returns, so each window holds at most one page of rows.
* **Only the keys the rules need, in parallel.** A page with keys returns only rows holding *every* key,
  and HF logs train and eval metrics in different rows, so keys logged in the same rows are paged together
  and groups run in parallel. Wanted keys: every history key whose canonical name is in the alias table
  plus every ``eval/*`` key.
* **Bounded.** Requests go through :mod:`lossdoctor.sources._wandb_http` (not ``wandb.Api``, whose wandb-core
  process cannot be bounded from here): one ``--timeout`` deadline for every request, retry and download,
  daemon workers cancelled with it, size caps, downloads only from the API's or a storage host.
* **Complete or not cached.** Each key's point count is checked against the server's own count
  (``historyKeys.typeCounts``); a short key is paged again at a small page size; a run still short, or a
  Run answer with empty ``historyKeys`` for a run that has history, is never stored in the cache.
* **One-line errors.** Every failure is a SourceError naming the run URL and saying what happened (status
  code, content type, timeout, size cap); the API key never reaches output, notes or the cache.
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lossdoctor.table import MetricTable
from lossdoctor.sources._wandb_cache import RunCache
from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run, empty_metrics
from lossdoctor.sources._readkit import load_json, to_step
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources._wandb_http import Deadline, FetchError, HttpClient
from lossdoctor.sources._wandb_url import NotARunURL, RunRef, looks_like_run_path, parse_run_ref

NO_KEY = "no W&B API key: set WANDB_API_KEY or run `wandb login`"
STEP_KEY = "train/global_step"
#: Rows per page. wandb's default is 1000; 10000 cuts round trips ~10x. If a server caps pages below this,
#: the per-key count check catches the shortfall and that key is paged again at SAFE_PAGE_SIZE.
PAGE_SIZE = 10_000
SAFE_PAGE_SIZE = 1000
MAX_WORKERS = 8
#: Most points one run may bring (memory stays bounded whatever the server announces).
MAX_POINTS = 20_000_000
#: Most step-window pages when the server lists no live steps (servers without parquetHistory).
MAX_PAGES = 20_000
_NUMERIC_TYPES = {"number", "nan", "int", "float"}
_STATES = {"finished": "finished", "crashed": "crashed", "failed": "crashed", "killed": "interrupted",
           "preempted": "interrupted", "preempting": "interrupted", "running": "running", "pending": "running"}
_NONFINITE = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf, "-inf": -math.inf}

RUN_QUERY = """
query Run($project: String!, $entity: String!, $name: String!) {
  project(name: $project, entityName: $entity) {
    run(name: $name) {
      id name displayName state config summaryMetrics historyLineCount historyKeys createdAt tags
    }
  }
}
"""
PARQUET_HISTORY = """
query RunParquetHistory($entity: String!, $project: String!, $runName: String!, $liveKeys: [String!]!) {
  project(name: $project, entityName: $entity) {
    run(name: $runName) { parquetHistory(liveKeys: $liveKeys) { parquetUrls liveData } }
  }
}
"""
SAMPLED_HISTORY_PAGE = """
query SampledHistoryPage($entity: String!, $project: String!, $run: String!, $spec: JSONString!) {
  project(name: $project, entityName: $entity) { run(name: $run) { sampledHistory(specs: [$spec]) } }
}
"""


class Incomplete(Exception):
    """The server's answer is not whole (empty historyKeys for a run with history, ...)."""


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


def to_float(value: Any) -> float | None:
    """A history value as float: numbers, and the "NaN"/"Infinity" strings the server sends for non-finite
    values; None for anything else (missing, media, text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        return _NONFINITE.get(value.strip().lower())
    return None


# -- credentials ---------------------------------------------------------------------------------------

def api_key_for(api_base: str) -> str | None:
    """``$WANDB_API_KEY``, else the key ``wandb login`` stored in netrc for the API host."""
    key = (os.environ.get("WANDB_API_KEY") or "").strip()
    if key:
        return key
    import netrc
    from urllib.parse import urlsplit

    host = (urlsplit(api_base).hostname or "").lower()
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError, UnicodeDecodeError):
        return None
    return auth[2] if auth and auth[2] else None


# -- errors --------------------------------------------------------------------------------------------

def _scrub(text: str, secret: str | None) -> str:
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "***")
    return text[:2000]


def map_error(exc: FetchError, ref: RunRef, location: str, timeout: float, secret: str | None) -> SourceError:
    """One line that says what happened, and what to do."""
    host = ref.api_base
    text = _scrub(str(exc), secret)
    if exc.kind == "dns":
        return SourceError(f"cannot reach W&B host {host}: {text}", location)
    if exc.kind == "network":
        return SourceError(f"cannot reach W&B host {host}: {text}", location)
    if exc.status in (401, 403):
        return SourceError(f"W&B rejected the API key (HTTP {exc.status}) at {host}; check WANDB_API_KEY or run "
                           f"`wandb login --relogin`", location)
    if exc.kind == "status" and exc.status == 404 and not text.startswith("download of"):
        return SourceError(f"no W&B API at {host} (HTTP 404 for /graphql): {text}; check the URL's host", location)
    if exc.kind == "timeout" or exc.kind == "cancelled":
        return SourceError(f"W&B at {host} did not answer within the {timeout:g}s budget ({text}); retry later "
                           f"or raise --timeout", location)
    if exc.kind == "status" and "gave up after" in text:
        return SourceError(f"W&B at {host} kept failing within the {timeout:g}s budget: {text}; retry later",
                           location)
    if exc.kind == "dropped":
        return SourceError(f"W&B at {host} kept dropping the connection: {text}; retry later", location)
    return SourceError(f"W&B at {host}: {text}", location)


# -- progress ------------------------------------------------------------------------------------------

class _Progress:
    """A one-line progress report on a terminal's stderr for fetches longer than a second (never on a
    pipe: a failing fetch must leave exactly one line there)."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label = max(1, total), label
        self.points = 0
        self.bytes = 0
        self.enabled = enabled and sys.stderr.isatty()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def add(self, points: int = 0, nbytes: int = 0) -> None:
        with self.lock:
            self.points += points
            self.bytes += nbytes
            now = time.monotonic()
            if self.enabled and now - self.started > 1.0 and now - self.last > 0.25:
                self.last = now
                self.shown = True
                pct = min(100.0, 100.0 * self.points / self.total)
                mb = f", {self.bytes / 1e6:,.1f} MB of exports" if self.bytes else ""
                sys.stderr.write(f"\r\x1b[Kfetching {self.label}: {self.points:,}/{self.total:,} points "
                                 f"({pct:.0f}%){mb}")
                sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


# -- workers -------------------------------------------------------------------------------------------

def run_parallel(tasks: list[Callable[[], Any]], deadline: Deadline, label: str) -> list[Any]:
    """Run ``tasks`` on at most MAX_WORKERS daemon threads; results in task order. The first failure, or
    the deadline, cancels every other task (each stops at its next request or chunk), and the daemon threads
    never hold the process open after the error is reported."""
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException] = []
    lock = threading.Lock()
    todo = list(enumerate(tasks))
    done = threading.Event()
    remaining = [len(tasks)]

    def worker() -> None:
        while not deadline.cancelled:
            with lock:
                if not todo:
                    return
                i, task = todo.pop(0)
            try:
                results[i] = task()
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                with lock:
                    errors.append(exc)
                deadline.cancel()
                done.set()
                return
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

    if not tasks:
        return []
    for n in range(min(MAX_WORKERS, len(tasks))):
        threading.Thread(target=worker, name=f"wandb-{label}-{n}", daemon=True).start()
    finished = done.wait(max(0.0, deadline.left()))
    if errors:
        first = next((e for e in errors if not (isinstance(e, FetchError) and e.kind == "cancelled")), errors[0])
        raise first
    if not finished:
        deadline.cancel()
        raise FetchError(f"{label}: not finished within the {deadline.seconds:g}s budget", "timeout")
    return results


# -- history -------------------------------------------------------------------------------------------

Points = tuple[str, np.ndarray, np.ndarray, int]     # key, steps, values, points without a usable step


def _dig(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


class _Budget:
    """Points collected so far across threads (MAX_POINTS)."""

    def __init__(self) -> None:
        self.points = 0
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        with self.lock:
            self.points += n
            if self.points > MAX_POINTS:
                raise FetchError(f"the history holds more than {MAX_POINTS:,} points of the wanted keys; "
                                 f"lossdoctor reads at most that many", "size")


def _page_rows(client: HttpClient, ref: RunRef, keys: list[str], lo: int, hi: int, page_size: int) -> list[dict]:
    import json

    spec = json.dumps({"keys": keys, "minStep": lo, "maxStep": hi, "samples": page_size})
    data = client.graphql("SampledHistoryPage", SAMPLED_HISTORY_PAGE,
                          {"entity": ref.entity, "project": ref.project, "run": ref.run_id, "spec": spec})
    run = _dig(data, "project", "run")
    if run is None:
        raise FetchError("SampledHistoryPage: the run is gone (project/run null)", "content")
    pages = run.get("sampledHistory")
    if not isinstance(pages, list) or not pages or not isinstance(pages[0], (list, type(None))):
        raise FetchError("SampledHistoryPage: no sampledHistory list in the answer", "content")
    rows = pages[0] or []
    if len(rows) > page_size:
        raise FetchError(f"SampledHistoryPage: {len(rows):,} rows for a page of {page_size:,}", "content")
    return [r if isinstance(r, dict) else {} for r in rows]


def _scan(client: HttpClient, ref: RunRef, group: list[str], step_key: str, windows: list[tuple[int, int]],
          page_size: int, bar: _Progress, budget: _Budget) -> list[Points]:
    """Points of ``group`` from rows holding every key of the group, page by page over ``windows``."""
    keys = list(dict.fromkeys(group + ["_step"] + ([] if step_key == "_step" else [step_key])))
    steps: dict[str, list[int]] = {k: [] for k in group}
    values: dict[str, list[float]] = {k: [] for k in group}
    missing = dict.fromkeys(group, 0)
    for lo, hi in windows:
        rows = _page_rows(client, ref, keys, lo, hi, page_size)
        added = 0
        for row in rows:
            raw = row.get(step_key)
            step = to_step(raw) if not isinstance(raw, float) or math.isfinite(raw) else None
            for key in group:
                value = to_float(row.get(key))
                if value is None:
                    continue
                added += 1
                if step is None:
                    missing[key] += 1
                    continue
                steps[key].append(step)
                values[key].append(value)
        budget.take(added)
        bar.add(points=added)
    return [(k, np.asarray(steps[k], dtype="int64"), np.asarray(values[k], dtype="float64"), missing[k])
            for k in group]


def group_keys(keys: list[str], counts: dict[str, int]) -> list[list[str]]:
    """Keys with the same row count were almost surely logged in the same rows (HF: train/* in train rows,
    eval/* in eval rows): page them together. Unknown counts page alone."""
    groups: dict[object, list[str]] = {}
    for key in keys:
        count = counts.get(key, 0)
        groups.setdefault(count if count else ("alone", key), []).append(key)
    return list(groups.values())


def windows_from_steps(steps: np.ndarray, page_size: int) -> list[tuple[int, int]]:
    """Inclusive step windows holding at most ``page_size`` of the listed steps each."""
    if not len(steps):
        return []
    starts = steps[::page_size]
    ends = steps[np.minimum(np.arange(page_size - 1, len(steps) + page_size - 1, page_size), len(steps) - 1)]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def _parquet_points(path: Path, keys: list[str], step_key: str, first_live: int) -> list[Points]:
    """Points of ``keys`` from one exported history file (only the needed columns decoded; sizes checked
    from the file's metadata before anything is decoded)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        if "_step" not in names:
            raise FetchError("an exported history file has no _step column", "content")
        cols = sorted({"_step", step_key} | (set(keys) & names))
        meta = pf.metadata
        if meta.num_rows > MAX_POINTS:
            raise FetchError(f"an exported history file holds {meta.num_rows:,} rows (cap {MAX_POINTS:,})", "size")
        wanted_idx = [i for i, n in enumerate(pf.schema_arrow.names) if n in cols]
        raw_size = sum(meta.row_group(g).column(i).total_uncompressed_size
                       for g in range(meta.num_row_groups) for i in wanted_idx)
        if raw_size > 16 * MAX_POINTS:
            raise FetchError(f"an exported history file's columns decode to {raw_size / 1e6:,.0f} MB", "size")
        table = pf.read(columns=cols)
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise FetchError(f"an exported history file is not readable Parquet ({type(exc).__name__})",
                         "content") from None

    def floats(name: str) -> np.ndarray:
        col = table.column(name)
        try:
            return col.to_numpy(zero_copy_only=False).astype("float64")
        except (TypeError, ValueError):
            raise FetchError(f"exported column {name!r} is not numeric", "content") from None

    step_col = floats("_step")
    axis = floats(step_key) if step_key in names else (step_col if step_key == "_step"
                                                       else np.full(len(step_col), np.nan))
    before_live = step_col < first_live
    out = []
    for key in keys:
        if key not in names:
            continue
        present = ~table.column(key).is_null().to_numpy(zero_copy_only=False) & before_live
        try:
            values = floats(key)[present]
        except FetchError:
            continue                               # a text/media column: no points
        steps = axis[present]
        ok = np.isfinite(steps) & (np.abs(steps) < 2.0 ** 63)
        out.append((key, steps[ok].astype("int64"), values[ok], int((~ok).sum())))
    return out


def fetch_history(client: HttpClient, ref: RunRef, keys: list[str], step_key: str, counts: dict[str, int],
                  last_step: int | None, bar: _Progress) -> tuple[pd.DataFrame, list[str], bool]:
    """All points of ``keys``: (table, notes, complete). Exports downloaded in parallel and decoded with
    pyarrow; the live tail paged per key group in parallel; a key short of the server's count paged again
    alone at SAFE_PAGE_SIZE. ``complete`` is False when a key is still short."""
    if not keys:
        return empty_metrics(), [], True
    deadline = client.deadline
    budget = _Budget()
    notes: list[str] = []
    exported: list[Points] = []
    live_steps: np.ndarray | None = None
    first_live = 2 ** 62
    try:
        data = client.graphql("RunParquetHistory", PARQUET_HISTORY, {
            "entity": ref.entity, "project": ref.project, "runName": ref.run_id, "liveKeys": ["_step"]})
        hist = _dig(data, "project", "run", "parquetHistory")
    except FetchError as exc:
        if exc.kind in ("dns", "network", "timeout", "cancelled") or exc.status in (401, 403):
            raise
        hist = None          # a server without exports (or a broken answer): page everything by windows
    if isinstance(hist, dict):
        urls = [u for u in (hist.get("parquetUrls") or []) if isinstance(u, str) and u]
        live = hist.get("liveData") or []
        steps_list = [to_step(r.get("_step")) for r in live if isinstance(r, dict)] if isinstance(live, list) else []
        live_steps = np.unique(np.asarray([s for s in steps_list if s is not None], dtype="int64"))
        if len(live_steps):
            first_live = int(live_steps[0])
        if urls:
            with tempfile.TemporaryDirectory(prefix="lossdoctor-wandb-") as tmp:
                files = [Path(tmp) / f"part-{i}.parquet" for i in range(len(urls))]
                run_parallel([lambda u=u, f=f: client.download(u, f) for u, f in zip(urls, files)], deadline,
                             "exports")
                for f in files:
                    deadline.check("decoding exports")
                    part = _parquet_points(f, keys, step_key, first_live)
                    budget.take(sum(len(p[1]) + p[3] for p in part))
                    exported.extend(part)
                    bar.add(points=sum(len(p[1]) for p in part))
    if live_steps is None:
        if last_step is None or last_step < 0:
            windows = []
        else:
            n_pages = last_step // PAGE_SIZE + 1
            if n_pages > MAX_PAGES:
                raise FetchError(f"the server lists no live steps and the history runs to step {last_step:,}: "
                                 f"{n_pages:,} pages (cap {MAX_PAGES:,})", "size")
            windows = [(lo, min(last_step, lo + PAGE_SIZE - 1)) for lo in range(0, last_step + 1, PAGE_SIZE)]
    else:
        windows = windows_from_steps(live_steps, PAGE_SIZE)

    got = {k: 0 for k in keys}
    for key, steps, _, missing in exported:
        got[key] += len(steps) + missing
    expected = {k: max(0, counts.get(k, 0) - got[k]) for k in keys}
    groups = group_keys(keys, counts)
    scanned = run_parallel([lambda g=g: _scan(client, ref, g, step_key, windows, PAGE_SIZE, bar, budget)
                            for g in groups], deadline, "history")
    live_points = [p for part in scanned for p in part]
    short = [p[0] for p in live_points if expected.get(p[0], 0) and len(p[1]) + p[3] < expected[p[0]]]
    if short:
        small = windows_from_steps(live_steps, SAFE_PAGE_SIZE) if live_steps is not None else \
            [(lo, min(w[1], lo + SAFE_PAGE_SIZE - 1)) for w in windows for lo in range(w[0], w[1] + 1, SAFE_PAGE_SIZE)]
        again = run_parallel([lambda k=k: _scan(client, ref, [k], step_key, small, SAFE_PAGE_SIZE, bar, budget)[0]
                              for k in short], deadline, "history")
        redone = {p[0]: p for p in again}
        live_points = [redone.get(p[0], p) for p in live_points]
    complete = True
    for key, steps, _, missing in live_points:
        if expected.get(key, 0) and len(steps) + missing < expected[key]:
            complete = False
            notes.append(f"{key}: {len(steps) + missing:,} of the {expected[key]:,} live points the server counts "
                         f"arrived; analysed what arrived (not cached)")
    results = exported + live_points
    missing_total = sum(r[3] for r in results)
    if missing_total:
        notes.append(f"{missing_total} point(s) without an integer {step_key} skipped")
    frame, dup_notes = points_frame(results)
    return frame, notes + dup_notes, complete


def points_frame(results: list[tuple[str, np.ndarray, np.ndarray, int]]) -> tuple[MetricTable, list[str]]:
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
        parts_s.append(np.asarray(steps, dtype="float64"))
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
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()
            if not str(k).startswith("_wandb")}


def _run_answer(client: HttpClient, ref: RunRef, location: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run object, historyKeys object) from the Run query; one retry when historyKeys comes back empty for
    a run that has history (never taken for a finished run with no metrics)."""
    for attempt in (1, 2):
        data = client.graphql("Run", RUN_QUERY, {"entity": ref.entity, "project": ref.project, "name": ref.run_id})
        if _dig(data, "project") is None or _dig(data, "project", "run") is None:
            raise SourceError(f"run not found: {ref.path} at {ref.api_base} (check entity, project and run id, "
                              f"and that the key can see the project)", location)
        run = _dig(data, "project", "run")
        if not isinstance(run, dict):
            raise FetchError("Run: the answer's run is not an object", "content")
        history_keys = _json_field(run.get("historyKeys"))
        keys = history_keys.get("keys")
        lines = to_step(run.get("historyLineCount")) or 0
        last = to_step(history_keys.get("lastStep"))
        if (not isinstance(keys, dict) or not keys) and (lines > 0 or (last is not None and last >= 0)):
            if attempt == 1 and client.deadline.sleep(min(1.0, client.deadline.left() / 4)):
                continue
            raise FetchError(f"Run: incomplete answer: {ref.path} has history ({lines:,} rows) but historyKeys "
                             f"lists no keys", "content")
        return run, history_keys
    raise AssertionError("unreachable")


def fetch_run(ref: RunRef, location: str, options: ReadOptions) -> tuple[Run, bool]:
    """(run, complete): talk to the server under one deadline; every failure is a one-line SourceError."""
    timeout = float(options.timeout)
    secret = api_key_for(ref.api_base)
    if not secret:
        raise SourceError(NO_KEY, location)
    deadline = Deadline(timeout)
    bar: _Progress | None = None
    try:
        client = HttpClient(ref.api_base, secret, deadline)
        wrun, history_keys = _run_answer(client, ref, location)
        key_info = history_keys.get("keys") if isinstance(history_keys.get("keys"), dict) else {}
        keys = wanted_keys(key_info)
        step_key = STEP_KEY if STEP_KEY in key_info else "_step"
        counts = {k: numeric_count(key_info.get(k)) for k in keys}
        bar = _Progress(sum(counts.values()), ref.path, options.progress)
        client.progress = lambda n: bar.add(nbytes=n)  # type: ignore[union-attr]
        frame, notes, complete = fetch_history(client, ref, keys, step_key, counts,
                                               to_step(history_keys.get("lastStep")), bar)
        if frame.empty and sum(counts.values()):
            raise FetchError(f"the server counts {sum(counts.values()):,} points of the wanted keys "
                             f"({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}) but the history pages "
                             f"came back empty", "content")
    except FetchError as exc:
        deadline.cancel()
        raise map_error(exc, ref, location, timeout, secret) from None
    finally:
        deadline.cancel()            # stops any worker still running
        if bar is not None:
            bar.close()
    from lossdoctor.sources.wandb_offline import flatten

    config = {k: v for k, v in flatten(_config(_json_field(wrun.get("config")))).items()
              if v is None or isinstance(v, (bool, int, float, str))}
    summary = {k: v for k, v in flatten(_json_field(wrun.get("summaryMetrics"))).items()
               if not k.startswith("_wandb") and (v is None or isinstance(v, (bool, int, float, str)))}
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
    notes = [_scrub(n, secret) for n in notes]
    run = Run(
        name=name,
        provenance=Provenance(kind=SOURCE.kind, location=location, step_source=step_key, notes=tuple(notes)),
        metrics=frame,
        config=config,
        summary=summary,
        state=state,
        created=str(created)[:64] if isinstance(created, str) and created else None,
        tags=tags,
    )
    return run, complete


class WandbApiSource:
    kind = "wandb-api"
    description = "a run on a W&B server, by URL or entity/project/runs/id (public API, cached)"
    example = "https://wandb.ai/my-team/my-project/runs/abc123xy"
    specificity = 80

    def sniff(self, target: Target) -> float:
        if target.path is not None:
            return 0.0
        text = target.location.strip()
        if looks_like_run_path(text):
            if "://" in text or "/runs/" in text:
                return 0.95
            # "e/p/id": only when the id looks like a run id, so a mistyped "dir/sub/file.log" is not
            # sent to the network
            last = text.rstrip("/").rsplit("/", 1)[-1]
            return 0.6 if last.replace("-", "").replace("_", "").isalnum() else 0.0
        if text.startswith(("http://", "https://")):
            return 0.5      # a URL but not a run: read() says "not a run URL"
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        location = target.location
        try:
            ref = parse_run_ref(location)
        except NotARunURL as exc:
            raise SourceError(str(exc), location) from None
        cache = RunCache(options.cache_dir)
        cached = None if options.refresh else cache.load(ref, location)
        if options.offline:
            if cached is None:
                raise SourceError("run not cached; run once without --offline", location)
            return [_with_note(cached.run, cached.fetched_at)]
        if cached is not None and cached.run.state in ("finished", "crashed", "interrupted"):
            return [_with_note(cached.run, cached.fetched_at)]
        run, complete = fetch_run(ref, location, options)
        if complete and not run.metrics.empty:         # only whole, consistent fetches are cached
            cache.store(ref, run)
        return [run]


def _with_note(run: Run, fetched_at: float) -> Run:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(fetched_at)) if fetched_at else "earlier"
    prov = run.provenance
    note = f"read from the local cache (fetched {when}; --refresh to refetch)"
    return Run(name=run.name, provenance=Provenance(prov.kind, prov.location, prov.step_source,
                                                    prov.notes + (note,), prov.confidence),
               metrics=run.metrics, config=run.config, summary=run.summary, state=run.state,
               created=run.created, tags=run.tags)


SOURCE = WandbApiSource()
