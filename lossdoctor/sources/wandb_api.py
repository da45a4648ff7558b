"""Runs on a W&B server, read through the public API (``wandb.Api``), cached per user.

Why this shape:

* **Complete history, never sampled.** ``run.history()`` samples on the server (non-deterministic);
  ``scan_history`` is complete. From wandb 0.27 it reads the server's Parquet exports (only the column
  chunks asked for, over HTTP ranges) and pages only the live tail.
* **Only the keys the rules need, in parallel.** A scan with keys returns only rows holding *every* key,
  and HF logs train and eval metrics in different rows, so each metric is scanned on its own (with the
  step metric), all at once in a thread pool. Wide runs (system metrics, media) cost nothing extra.
  Wanted keys: every history key whose canonical name is in the alias table (train/loss, eval/loss,
  grad_norm, learning_rate, epoch, global_step, …) plus every ``eval/*`` key.
* **Deduplicated on step.** The page straddling the export boundary can come back twice.
* **Bounded time.** ``ReadOptions.timeout`` bounds the whole fetch: wandb-core's GraphQL retry settings
  (retries, waits, per-request timeout) are derived from it and applied to this Api only; transient
  failures (timeouts, 429 with Retry-After, 5xx) are retried inside that budget by wandb-core.
* **One-line errors.** Every wandb exception is mapped to a SourceError naming the run URL; the API key
  is scrubbed from any text that could reach output, notes or the cache.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from typing import Any, Iterator

import numpy as np

from lossdoctor.table import MetricTable
from lossdoctor.cache import RunCache
from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run, empty_metrics
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.wandb_url import NotARunURL, RunRef, looks_like_run_path, parse_run_ref

NO_KEY = "no W&B API key: set WANDB_API_KEY or run `wandb login`"
STEP_KEY = "train/global_step"
#: Rows per scan page. wandb's default is 1000; 10000 cuts wandb-core's Parquet range requests ~10x. If a
#: server caps pages below this, the per-key count check (historyKeys typeCounts) catches the shortfall and
#: that key is rescanned at SAFE_PAGE_SIZE.
PAGE_SIZE = 10_000
SAFE_PAGE_SIZE = 1000
MAX_WORKERS = 8
_STATES = {"finished": "finished", "crashed": "crashed", "failed": "crashed", "killed": "interrupted",
           "preempted": "interrupted", "preempting": "interrupted", "running": "running", "pending": "running"}
_NONFINITE = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf, "-inf": -math.inf}


def wanted_keys(history_keys: dict[str, Any]) -> list[str]:
    """History keys worth fetching: numeric, known to the alias table, or any ``eval/*``."""
    from lossdoctor.metrics.names import alias_table, canonicalise

    known = set(alias_table().values())
    out = []
    for key, info in sorted((history_keys or {}).items()):
        if key.startswith("_"):
            continue
        types = {t.get("type") for t in (info or {}).get("typeCounts", [])} if isinstance(info, dict) else set()
        if types and not types & {"number", "nan", "int", "float"}:
            continue
        if canonicalise(key) in known or key.startswith("eval/"):
            out.append(key)
    return out


def to_float(value: Any) -> float | None:
    """A history value as float: numbers, and the "NaN"/"Infinity" strings the server sends for non-finite
    values; None for anything else (missing, media, text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _NONFINITE.get(value.strip().lower())
    return None


# -- wandb-core retry/timeouts from our budget ----------------------------------------------------------

def retry_settings(timeout: float) -> dict[str, float | int]:
    """GraphQL retry settings whose worst case (waits + attempts) fits in ``timeout`` seconds."""
    timeout = max(1.0, float(timeout))
    per_request = max(1.0, min(30.0, timeout / 2))
    wait_min = max(0.5, min(2.0, timeout / 10))
    wait_max = max(wait_min, min(60.0, timeout / 4))
    spent, wait_s, retries = per_request, wait_min, 0
    while retries < 20 and spent + wait_s + per_request <= timeout * 1.5:
        spent += wait_s + per_request / 4
        retries += 1
        wait_s = min(wait_max, wait_s * 2)
    return {"x_graphql_retry_max": max(1, retries), "x_graphql_retry_wait_min_seconds": wait_min,
            "x_graphql_retry_wait_max_seconds": wait_max, "x_graphql_timeout_seconds": per_request}


_ENV_NAMES = {"x_graphql_retry_max": "WANDB_X_GRAPHQL_RETRY_MAX",
              "x_graphql_retry_wait_min_seconds": "WANDB_X_GRAPHQL_RETRY_WAIT_MIN_SECONDS",
              "x_graphql_retry_wait_max_seconds": "WANDB_X_GRAPHQL_RETRY_WAIT_MAX_SECONDS",
              "x_graphql_timeout_seconds": "WANDB_X_GRAPHQL_TIMEOUT_SECONDS"}
_SETTINGS_LOCK = threading.Lock()


@contextlib.contextmanager
def graphql_limits(timeout: float) -> Iterator[None]:
    """Apply retry settings for the Api created inside, then restore.

    wandb reads ``WANDB_X_GRAPHQL_*`` once, into a process-wide settings singleton that every ``Api()``
    copies; so both the environment (for a singleton created now) and the singleton's fields (when it
    already exists) are set, and both are put back afterwards."""
    from wandb.sdk import wandb_setup

    values = retry_settings(timeout)
    with _SETTINGS_LOCK:
        saved_env = {name: os.environ.get(name) for name in _ENV_NAMES.values()}
        for field, name in _ENV_NAMES.items():
            os.environ[name] = str(values[field])
        settings = wandb_setup.singleton().settings
        saved = {field: getattr(settings, field, None) for field in values}
        try:
            for field, value in values.items():
                setattr(settings, field, value)
            yield
        finally:
            for field, value in saved.items():
                with contextlib.suppress(Exception):
                    setattr(settings, field, value)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


# -- errors ------------------------------------------------------------------------------------------

def _scrub(text: str, secret: str | None) -> str:
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "***")
    return text[:2000]


def http_status(exc: BaseException) -> int | None:
    """The HTTP status wandb-core saw, dug out of the exception chain (CommError → WandbApiFailedError)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        response = getattr(cur, "response", None)
        status = getattr(response, "http_status", None) if response is not None else None
        if isinstance(status, int) and status:
            return status
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and status:
            return status
        todo.extend([getattr(cur, "exc", None), cur.__cause__, cur.__context__])
    return None


def map_error(exc: BaseException, ref: RunRef, location: str, timeout: float, secret: str | None) -> SourceError:
    """One line for each way the API fails; the message says what to do."""
    name = type(exc).__name__
    text = _scrub(str(exc), secret)
    low = text.lower()
    host = ref.api_base
    status = http_status(exc)
    if "no api key" in low or "no authentication configured" in low:
        return SourceError(NO_KEY, location)
    if "api key" in low and "invalid" in low:
        return SourceError(f"invalid W&B API key ({text})", location)
    if any(s in low for s in ("no such host", "name or service not known", "nodename nor servname",
                              "connection refused", "dial tcp", "network is unreachable", "no route to host",
                              "server misbehaving", "connection reset")):
        return SourceError(f"cannot reach W&B host {host}: {_cause(text)}", location)
    if status in (401, 403) or (name == "AuthenticationError" and "did not respond" not in low
                                and "giving up" not in low):
        return SourceError(f"W&B rejected the API key (HTTP {status or '401/403'}) at {host}; check WANDB_API_KEY "
                           f"or run `wandb login --relogin`", location)
    if status == 404 or "could not find run" in low or name == "RunNotFoundError":
        return SourceError(f"run not found: {ref.path} at {host} (check entity, project and run id, "
                           f"and that the key can see the project)", location)
    if (status in (408, 429) or (status or 0) >= 500 or isinstance(exc, TimeoutError)
            or any(s in low for s in ("did not respond in time", "timeout", "timed out", "deadline exceeded",
                                      "giving up after", "busy"))):
        return SourceError(f"W&B at {host} did not answer within the {timeout:g}s budget "
                           f"({_cause(text) or 'timed out'}); retry later or raise --timeout", location)
    return SourceError(f"W&B API error at {host}: {name}: {text}"
                       + (f" (HTTP {status})" if status else ""), location)


def _cause(text: str) -> str:
    """The most specific clause of a wandb-core error chain, e.g. "dial tcp: lookup x: no such host"."""
    tail = text.split("while retrying:")[-1].strip()
    if '": ' in tail:                       # 'Post "http://host/graphql": dial tcp ...'
        tail = tail.rsplit('": ', 1)[-1]
    return tail[:200]


# -- fetching ----------------------------------------------------------------------------------------

class _Progress:
    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.done = max(1, total), label, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.lock = threading.Lock()
        self.last = 0.0

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and now - self.last > 0.2:
                self.last = now
                pct = min(100.0, 100.0 * self.done / self.total)
                sys.stderr.write(f"\rfetching {self.label}: {self.done:,}/{self.total:,} points ({pct:.0f}%)")
                sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


Points = tuple[str, np.ndarray, np.ndarray, int]     # key, steps, values, points without the step key


def _scan_group(run: Any, group: list[str], step_key: str, progress: _Progress, deadline: float,
                expected: dict[str, int], min_step: int = 0) -> list[Points]:
    """Points of the keys in ``group`` from one scan (rows holding every key of the group). Keys logged
    in the same rows share one scan; any key that comes back short of the server's count for it (rows
    lacking another key of the group, or a server capping big pages) is rescanned alone at wandb's
    default page size, so the result is complete either way."""
    results = _scan_once(run, group, step_key, progress, deadline, PAGE_SIZE, min_step)
    out = []
    for res in results:
        key = res[0]
        if expected.get(key, 0) and len(np.unique(res[1])) + res[3] < expected[key]:
            res = _scan_once(run, [key], step_key, progress, deadline, SAFE_PAGE_SIZE, min_step)[0]
        out.append(res)
    return out


SAMPLED_HISTORY_PAGE = """
query SampledHistoryPage ($entity: String!, $project: String!, $run: String!, $spec: JSONString!) {
\tproject(name: $project, entityName: $entity) {
\t\trun(name: $run) {
\t\t\tsampledHistory(specs: [$spec])
\t\t}
\t}
}
"""


def _live_rows(run: Any, keys: list[str], page_size: int, min_step: int, max_step: int) -> Iterator[dict]:
    """Rows holding every key, for ``min_step ≤ _step ≤ max_step``, paged with the query wandb-core uses
    for live history (``sampledHistory`` with an inclusive ``maxStep``). Sent directly because
    ``scan_history`` also range-reads every Parquet export on each call, even past its last step."""
    import json

    ref_e, ref_p, ref_r = run.entity, run.project, run.id
    spec_keys = list(dict.fromkeys(keys + ["_step"]))
    for lo in range(min_step, max_step + 1, page_size):
        spec = json.dumps({"keys": spec_keys, "minStep": lo, "maxStep": min(max_step, lo + page_size - 1),
                           "samples": page_size})
        data = run._service_api.execute_graphql(SAMPLED_HISTORY_PAGE, {
            "entity": ref_e, "project": ref_p, "run": ref_r, "spec": spec})
        pages = (((data or {}).get("project") or {}).get("run") or {}).get("sampledHistory") or [[]]
        yield from (pages[0] or [])


def _scan_once(run: Any, group: list[str], step_key: str, progress: _Progress, deadline: float,
               page_size: int, min_step: int = 0) -> list[Points]:
    keys = list(dict.fromkeys(group + ([] if step_key == "_step" else [step_key])))
    if min_step > 0 and getattr(run, "_service_api", None) is not None:
        rows: Iterator[dict] = _live_rows(run, keys, page_size, min_step, int(run.lastHistoryStep))
    else:
        rows = iter(run.scan_history(keys=keys, page_size=page_size, min_step=min_step))
    steps: dict[str, list[float]] = {k: [] for k in group}
    values: dict[str, list[float]] = {k: [] for k in group}
    missing = dict.fromkeys(group, 0)
    count = 0
    for row in rows:
        count += 1
        if count % 5000 == 0:
            progress.add(5000)
            if time.monotonic() > deadline:
                raise TimeoutError("timed out")
        step = to_float(row.get(step_key))
        for key in group:
            value = to_float(row.get(key))
            if value is None:
                continue
            if step is None or not math.isfinite(step):
                missing[key] += 1
                continue
            steps[key].append(step)          # validated (integral, inside int64) by the tidy table
            values[key].append(value)
    progress.add(count % 5000)
    return [(k, np.asarray(steps[k], dtype="float64"), np.asarray(values[k], dtype="float64"), missing[k])
            for k in group]


def group_keys(keys: list[str], counts: dict[str, int]) -> list[list[str]]:
    """Keys with the same row count were almost surely logged in the same rows (HF: train/* in train rows,
    eval/* in eval rows): scan them together. Unknown counts scan alone."""
    groups: dict[object, list[str]] = {}
    for key in keys:
        count = counts.get(key, 0)
        groups.setdefault(count if count else ("alone", key), []).append(key)
    return list(groups.values())


PARQUET_HISTORY = """
query RunParquetHistory ($entity: String!, $project: String!, $runName: String!, $liveKeys: [String!]!) {
\tproject(name: $project, entityName: $entity) {
\t\trun(name: $runName) {
\t\t\tparquetHistory(liveKeys: $liveKeys) {
\t\t\t\tparquetUrls
\t\t\t\tliveData
\t\t\t}
\t\t}
\t}
}
"""


def _download(url: str, timeout: float) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:   # signed URLs: no credentials sent
        return resp.read()


def _parquet_points(blob: bytes, keys: list[str], step_key: str,
                    first_live: int) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """Points of ``keys`` from one exported history file (only the columns needed are decoded)."""
    import io

    import pyarrow.parquet as pq

    pf = pq.ParquetFile(io.BytesIO(blob))
    names = set(pf.schema_arrow.names)
    cols = sorted({"_step", step_key} | (set(keys) & names))
    table = pf.read(columns=[c for c in cols if c in names])
    step_col = table.column("_step").to_numpy(zero_copy_only=False).astype("float64")
    axis = (table.column(step_key).to_numpy(zero_copy_only=False).astype("float64")
            if step_key in names else (step_col if step_key == "_step" else np.full(len(step_col), np.nan)))
    before_live = step_col < first_live
    out = []
    for key in keys:
        if key not in names:
            continue
        col = table.column(key)
        present = ~col.is_null().to_numpy(zero_copy_only=False) & before_live
        values = col.to_numpy(zero_copy_only=False).astype("float64")[present]
        steps = axis[present]
        ok = np.isfinite(steps)
        out.append((key, steps[ok], values[ok], int((~ok).sum())))   # steps validated by the tidy table
    return out


def _fetch_parquet_part(wrun: Any, ref: RunRef, keys: list[str], step_key: str,
                        deadline: float) -> tuple[list[tuple[str, np.ndarray, np.ndarray, int]], int] | None:
    """The exported part of the history: all Parquet files downloaded in parallel, decoded with pyarrow.
    Returns (points, first live step) or None when the server has no exports (then everything is paged)."""
    data = wrun._service_api.execute_graphql(PARQUET_HISTORY, {
        "entity": ref.entity, "project": ref.project, "runName": ref.run_id, "liveKeys": ["_step"]})
    hist = (((data or {}).get("project") or {}).get("run") or {}).get("parquetHistory") or {}
    urls = [u for u in hist.get("parquetUrls") or [] if u]
    if not urls:
        return None
    live = hist.get("liveData") or []
    live_steps = [int(to_float(r.get("_step")) or 0) for r in live if isinstance(r, dict) and "_step" in r]
    first_live = min(live_steps) if live_steps else 2 ** 62
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(urls)), thread_name_prefix="wandb-parquet") as pool:
        blobs = list(pool.map(lambda u: _download(u, max(1.0, deadline - time.monotonic())), urls))
    points = [p for blob in blobs for p in _parquet_points(blob, keys, step_key, first_live)]
    return points, first_live


def fetch_history(run: Any, keys: list[str], step_key: str, *, timeout: float, progress: bool,
                  label: str, counts: dict[str, int], ref: RunRef | None = None) -> tuple[MetricTable, list[str]]:
    """All points of ``keys``: the Parquet exports read directly (parallel downloads, pyarrow), the live
    tail scanned per key in parallel; without exports every key is scanned. Deduplicated on
    (step, metric), the last kept."""

    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    if not keys:
        return empty_metrics(), []
    deadline = time.monotonic() + timeout
    notes: list[str] = []
    exported: list[Points] = []
    min_step = 0
    if ref is not None:
        try:
            part = _fetch_parquet_part(run, ref, keys, step_key, deadline)
        except Exception:  # noqa: BLE001 - any trouble with exports: page everything instead (complete)
            part = None
        if part is not None:
            exported, min_step = part
    done_counts = {k: 0 for k in keys}
    for key, steps, _, _ in exported:
        done_counts[key] += len(steps)
    bar = _Progress(sum(counts.get(k, 0) for k in keys), label, progress)
    bar.add(sum(done_counts.values()))
    expected = {k: max(0, counts.get(k, 0) - done_counts[k]) for k in keys}
    groups = group_keys(keys, counts)
    pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(groups)), thread_name_prefix="wandb-scan")
    try:
        futures = [pool.submit(_scan_group, run, g, step_key, bar, deadline, expected, min_step) for g in groups]
        done, pending = wait(futures, timeout=max(0.1, deadline - time.monotonic()), return_when=FIRST_EXCEPTION)
        for fut in done:
            if fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
        if pending:
            raise TimeoutError("history fetch did not finish in time")
        results = exported + [p for f in futures for p in f.result()]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
    missing = sum(r[3] for r in results)
    if missing:
        notes.append(f"{missing} point(s) without {step_key} skipped")
    frame, dup_notes = points_frame(results)
    return frame, notes + dup_notes


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


def _flat_scalars(data: Any, drop_wandb: bool = True) -> dict[str, Any]:
    from lossdoctor.sources.wandb_offline import flatten

    flat = flatten(dict(data or {}))
    return {k: v for k, v in flat.items()
            if not (drop_wandb and k.startswith("_wandb")) and (v is None or isinstance(v, (bool, int, float, str)))}


def fetch_run(ref: RunRef, location: str, options: ReadOptions) -> Run:
    """Talk to the server (real wandb client); every failure becomes a one-line SourceError."""
    try:
        import wandb
    except ImportError:
        raise SourceError("reading W&B runs needs the wandb package: pip install wandb", location) from None
    timeout = float(options.timeout)
    secret = os.environ.get("WANDB_API_KEY")
    started = time.monotonic()
    try:
        with graphql_limits(timeout):
            api = wandb.Api(overrides={"base_url": ref.api_base, "entity": ref.entity}, timeout=max(1, int(timeout)))
        secret = getattr(api, "api_key", None) or secret
        wrun = api.run(ref.path)
        state_raw = str(wrun.state or "unknown")
        history_keys = (wrun._attrs.get("historyKeys") or {}) if hasattr(wrun, "_attrs") else {}
        if isinstance(history_keys, str):
            import json

            history_keys = json.loads(history_keys)
        key_info = history_keys.get("keys", {}) or {}
        keys = wanted_keys(key_info)
        step_key = STEP_KEY if STEP_KEY in key_info else "_step"
        counts = {k: sum(int(t.get("count", 0)) for t in (key_info.get(k) or {}).get("typeCounts", []))
                  for k in keys}
        left = max(1.0, timeout - (time.monotonic() - started))
        frame, notes = fetch_history(wrun, keys, step_key, timeout=left, progress=options.progress,
                                     label=ref.path, counts=counts, ref=ref)
        config = _flat_scalars(wrun.config)
        summary = _flat_scalars(wrun.summary_metrics)
        name = str(wrun.name or ref.run_id)
        created = getattr(wrun, "created_at", None)
        tags = tuple(str(t) for t in (wrun.tags or ()))
    except SourceError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - wandb raises many types; all become one line
        if isinstance(exc, (SystemExit,)):
            raise
        raise map_error(exc, ref, location, timeout, secret) from None
    state = _STATES.get(state_raw.lower(), "unknown")
    if state == "running":
        last = int(frame["step"].max()) if len(frame) else None
        notes.append(f"run is still running on W&B: analysed as far as it got (step {last})")
    elif state_raw.lower() not in ("finished",):
        notes.append(f"W&B run state: {state_raw}")
    notes = [_scrub(n, secret) for n in notes]
    return Run(
        name=name,
        provenance=Provenance(kind=SOURCE.kind, location=location, step_source=step_key, notes=tuple(notes)),
        metrics=frame,
        config=config,
        summary=summary,
        state=state,
        created=str(created) if created else None,
        tags=tags,
    )


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
        run = fetch_run(ref, location, options)
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
