"""A local W&B GraphQL server for tests and the bench: the real ``wandb.Api`` client talks to it.

Why: the project rule is "the W&B public API exercised with the real wandb client against a local HTTP
server". This answers exactly the GraphQL that wandb 0.31's wandb-core sends (recorded in
shared/research/wandb-0.31-graphql-requests.jsonl): Viewer, GetDefaultEntity, Run, RunHistoryKeys,
RunParquetHistory (+ the parquet files over HTTP with Range support), HistoryPage, SampledHistoryPage,
RunFullHistory, RunSampledHistory; ``/sdk/otel`` gets 404. Run data comes from real offline runs parsed
by lossdoctor's own reader (``FakeRun.from_log``) or from columns (the bench's 1M-row run).

Failure modes are scripted per operation (``"GET"`` for the export downloads):
``server.fail("Run", 429, times=1, headers={"Retry-After": "1"})``, ``server.fail("Run", 500)``,
``server.fail("Run", hang=True)``, and ``mode=`` for faults a status code cannot say: ``"trickle"`` (1 byte a
second), ``"huge"`` (announces and streams ``size`` bytes), ``"endless"`` (chunked, never ends), ``"html"``
(a login page with 200), ``"garbage"`` (200 with a broken JSON body), ``"empty"`` (200, no body), ``"drop"``
(connection closed mid-answer), ``"deep"`` (JSON nested 100,000 levels). ``server.rewrite(op, fn)`` edits
normal answers (empty historyKeys or pages, ``file://`` export URLs, a huge lastStep). An unknown run answers
``run: null`` as the real server does.

    with FakeWandbServer() as server:
        server.add_run(FakeRun.from_log(read_wandb_file(path), entity="e", project="p", run_id="abc"))
        api = wandb.Api(overrides={"base_url": server.url})
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np


class _HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _matches(run: FakeRun, filters: dict[str, Any]) -> bool:
    """The subset of W&B's Mongo-style run filters that triage sends: state, tags, sweep; $in, $and, $or."""
    for key, want in filters.items():
        if key == "$and":
            if not all(_matches(run, f) for f in want):
                return False
            continue
        if key == "$or":
            if not any(_matches(run, f) for f in want):
                return False
            continue
        have: Any = {"state": run.state, "sweep": run.sweep, "name": run.run_id, "displayName": run.name}.get(key, None)
        if key == "tags":
            options = want["$in"] if isinstance(want, dict) and "$in" in want else [want]
            if not set(options) & set(run.tags):
                return False
            continue
        options = want["$in"] if isinstance(want, dict) and "$in" in want else [want]
        if have not in options:
            return False
    return True


_OP = re.compile(r"\b(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class FakeRun:
    """One run: sorted ``_step`` values and sparse columns (key → (present mask, float64 values))."""

    entity: str
    project: str
    run_id: str
    steps: np.ndarray
    columns: dict[str, tuple[np.ndarray, np.ndarray]]
    name: str = ""
    state: str = "finished"
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    created: str = "2026-01-01T00:00:00"
    exported_rows: int = 0  # the first N rows are served as parquet exports, the rest as live pages
    parquet_parts: int = 1
    sweep: str | None = None
    #: a broken run, for triage tests: "error" (its Run query answers HTTP 500 every time), "vanished"
    #: (listed, but `run: null` when fetched, as when it is deleted meanwhile); an empty history needs no flag
    broken: str | None = None

    @classmethod
    def from_rows(cls, rows: list[dict[str, float]], **kwargs: Any) -> FakeRun:
        steps = np.asarray([int(r["_step"]) for r in rows], dtype="int64")
        order = np.argsort(steps, kind="stable")
        steps = steps[order]
        keys = sorted({k for r in rows for k in r if k != "_step"})
        columns = {}
        for key in keys:
            mask = np.zeros(len(rows), dtype=bool)
            vals = np.full(len(rows), np.nan)
            for j, i in enumerate(order):
                if key in rows[i]:
                    mask[j] = True
                    vals[j] = rows[i][key]
            columns[key] = (mask, vals)
        return cls(steps=steps, columns=columns, **kwargs)

    @classmethod
    def from_log(cls, log: Any, **kwargs: Any) -> FakeRun:
        """From lossdoctor's parsed ``.wandb`` (``read_wandb_file``): rows, config, summary, metadata."""
        defaults = dict(
            entity=log.entity or "e",
            project=log.project or "p",
            run_id=log.run_id or "run",
            name=log.name,
            config=dict(log.config),
            summary=dict(log.summary),
            tags=tuple(log.tags),
            created=(log.created or "2026-01-01T00:00:00Z").rstrip("Z"),
            state="finished" if log.exit_code == 0 else "crashed" if log.exit_code else "running",
        )
        defaults.update(kwargs)
        return cls.from_rows(log.rows, **defaults)

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else -1

    def row(self, i: int, keys: list[str] | None = None) -> dict[str, Any] | None:
        out: dict[str, Any] = {"_step": int(self.steps[i])}
        for key in keys if keys is not None else self.columns:
            if key == "_step":
                continue
            col = self.columns.get(key)
            if col is None or not col[0][i]:
                if keys is not None:
                    return None  # the real sampledHistory returns only rows that have every key
                continue
            out[key] = float(col[1][i])
        return out

    def window(self, lo: int, hi_exclusive: int) -> tuple[int, int]:
        return (int(np.searchsorted(self.steps, lo, "left")), int(np.searchsorted(self.steps, hi_exclusive, "left")))

    def history_keys(self) -> dict[str, Any]:
        keys = {k: {"typeCounts": [{"type": "number", "count": int(m.sum())}]} for k, (m, _) in self.columns.items()}
        keys["_step"] = {"typeCounts": [{"type": "number", "count": len(self.steps)}]}
        return {"keys": keys, "lastStep": self.last_step}


def _dumps(obj: Any) -> str:
    """JSON as the W&B server sends it. Inside history *strings* NaN/Infinity tokens are kept (the client
    parses those leniently); in the GraphQL document itself they would be invalid JSON, so there
    non-finite numbers become the strings "NaN", "Infinity", "-Infinity"."""
    return json.dumps(_finite(obj), allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _row_string(row: dict[str, Any] | None) -> str:
    return json.dumps(row, allow_nan=True)


class _Listener(ThreadingHTTPServer):
    """The standard library's server listens with a backlog of 5: a triage's 16 runs at once, each paging
    its key groups in parallel, overflow it and the kernel drops their SYNs (the client's connect then
    waits the 1 s SYN retransmit), a cost no real server's accept queue adds."""

    request_queue_size = 128


class FakeWandbServer:
    def __init__(self) -> None:
        self.runs: dict[tuple[str, str, str], FakeRun] = {}
        self.latency = 0.0  # seconds added to every response (models a network round trip)
        self.failures: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-wandb-")
        self.files: dict[str, Path] = {}
        self.rewrites: dict[str, Any] = {}
        handler = type("Handler", (_Handler,), {"server_obj": self})
        self.httpd = _Listener(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeWandbServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._tmp.cleanup()

    def add_run(self, run: FakeRun) -> FakeRun:
        self.runs[(run.entity, run.project, run.run_id)] = run
        if run.exported_rows:
            self._write_parquet(run)
        return run

    def _write_parquet(self, run: FakeRun) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = min(run.exported_rows, len(run.steps))
        bounds = np.linspace(0, n, run.parquet_parts + 1).astype(int)
        for part in range(run.parquet_parts):
            a, b = int(bounds[part]), int(bounds[part + 1])
            arrays = {"_step": pa.array(run.steps[a:b], type=pa.int64())}
            for key, (mask, vals) in run.columns.items():
                arrays[key] = pa.array(vals[a:b], type=pa.float64(), mask=~mask[a:b])
            name = f"{run.entity}_{run.project}_{run.run_id}_{part}.parquet"
            path = Path(self._tmp.name) / name
            pq.write_table(pa.table(arrays), path, row_group_size=256 * 1024)
            self.files[name] = path

    def fail(
        self,
        operation: str | None,
        status: int = 500,
        times: int = 1,
        headers: dict | None = None,
        hang: bool = False,
        mode: str | None = None,
        size: int = 0,
    ) -> None:
        """The next ``times`` requests for ``operation`` (None = any) answer ``status`` (or hang, or ``mode``)."""
        with self.lock:
            self.failures.append(
                {
                    "op": operation,
                    "status": status,
                    "times": times,
                    "headers": headers or {},
                    "hang": hang,
                    "mode": mode,
                    "size": size,
                }
            )

    def rewrite(self, operation: str, fn: Any) -> None:
        """Answers to ``operation`` pass through ``fn(data) -> data`` (until ``rewrites.clear()``)."""
        self.rewrites[operation] = fn

    def _take_failure(self, op: str) -> dict[str, Any] | None:
        with self.lock:
            for rule in self.failures:
                if rule["op"] in (None, op) and rule["times"] > 0:
                    rule["times"] -= 1
                    return rule
        return None

    def ops(self) -> list[str]:
        return [r["op"] for r in self.requests]

    # -- GraphQL -------------------------------------------------------------------------------------
    def answer(self, op: str, variables: dict[str, Any]) -> dict[str, Any]:
        viewer = {
            "id": "VXNlcjox",
            "entity": "fake-entity",
            "username": "fake-user",
            "email": "",
            "flags": "{}",
            "teams": {"edges": []},
            "admin": False,
        }
        if op in ("Viewer", "GetDefaultEntity"):
            return {"viewer": viewer}
        entity = variables.get("entity")
        project = variables.get("project")
        if op == "Runs":
            return self._project_runs(entity, project, variables)
        name = variables.get("name") or variables.get("runName") or variables.get("run")
        run = self.runs.get((entity, project, name))
        if run is not None and run.broken == "error":
            raise _HttpError(500)
        if run is not None and run.broken == "vanished":
            run = None
        if run is None:
            return (
                {"project": {"run": None}}
                if op != "Run"
                else {"project": None if project not in {r.project for r in self.runs.values()} else {"run": None}}
            )
        if op == "Run":
            return {"project": {"run": self._run_fragment(run)}}
        if op == "RunHistoryKeys":
            return {"project": {"run": {"historyKeys": run.history_keys()}}}
        if op == "RunParquetHistory":
            n = min(run.exported_rows, len(run.steps))
            urls = (
                [
                    f"{self.url}/files/{run.entity}_{run.project}_{run.run_id}_{p}.parquet"
                    for p in range(run.parquet_parts)
                ]
                if n
                else []
            )
            live = [{"_step": int(s)} for s in run.steps[n:]]
            return {"project": {"run": {"parquetHistory": {"parquetUrls": urls, "liveData": live}}}}
        if op == "HistoryPage":
            a, b = run.window(int(variables["minStep"]), int(variables["maxStep"]))
            b = min(b, a + int(variables["pageSize"]))
            rows = [_row_string(run.row(i)) for i in range(a, b)]
            return {"project": {"run": {"history": rows}}}
        if op in ("SampledHistoryPage", "RunSampledHistory"):
            specs = [variables["spec"]] if op == "SampledHistoryPage" else variables["specs"]
            return {"project": {"run": {"sampledHistory": [self._sampled(run, json.loads(s)) for s in specs]}}}
        if op == "RunFullHistory":
            samples = int(variables.get("samples") or 500)
            idx = np.linspace(0, len(run.steps) - 1, min(samples, len(run.steps))).astype(int) if len(run.steps) else []
            return {"project": {"run": {"history": [_row_string(run.row(int(i))) for i in idx]}}}
        raise KeyError(op)

    def _project_runs(self, entity: str, project: str, variables: dict[str, Any]) -> dict[str, Any]:
        runs = [r for (e, p, _), r in self.runs.items() if e == entity and p == project]
        if not runs:
            return {"project": None}
        filters = json.loads(variables.get("filters") or "{}") or {}
        runs = [r for r in runs if _matches(r, filters)]
        runs.sort(key=lambda r: (r.created, r.run_id), reverse=str(variables.get("order", "")).startswith("-"))
        start = int(variables.get("cursor") or 0)
        per_page = int(variables.get("perPage") or 50)
        page = runs[start : start + per_page]
        edges = []
        for i, r in enumerate(page):
            node = self._run_fragment(r)
            node.update(projectId="1", sweepName=r.sweep)
            edges.append({"node": node, "cursor": str(start + i + 1)})
        return {
            "project": {
                "internalId": "UHJvamVjdDox",
                "runCount": len(runs),
                "readOnly": False,
                "runs": {
                    "edges": edges,
                    "pageInfo": {"endCursor": str(start + len(page)), "hasNextPage": start + per_page < len(runs)},
                },
            }
        }

    def _sampled(self, run: FakeRun, spec: dict[str, Any]) -> list[dict[str, Any]]:
        keys = list(dict.fromkeys(spec.get("keys") or []))
        lo = int(spec.get("minStep", 0))
        hi = int(spec.get("maxStep", run.last_step))  # inclusive, as the real server treats it
        a, b = run.window(lo, hi + 1)
        samples = int(spec.get("samples", 500))
        out = []
        for i in range(a, b):
            row = run.row(i, keys)
            if row is not None:
                out.append(row)
                if len(out) >= samples:
                    break
        return out

    @staticmethod
    def _run_fragment(run: FakeRun) -> dict[str, Any]:
        return {
            "id": f"UnVuOn{run.run_id}",
            "projectId": "1",
            "tags": list(run.tags),
            "name": run.run_id,
            "displayName": run.name or run.run_id,
            "sweepName": None,
            "state": run.state,
            "config": _dumps({k: {"value": v, "desc": None} for k, v in run.config.items()}),
            "group": None,
            "jobType": None,
            "commit": None,
            "readOnly": False,
            "createdAt": run.created,
            "heartbeatAt": run.created,
            "description": None,
            "notes": None,
            "systemMetrics": "{}",
            "summaryMetrics": _dumps(run.summary),
            "historyLineCount": len(run.steps),
            "user": {"name": "fake", "username": "fake-user"},
            "historyKeys": run.history_keys(),
        }


class _Handler(BaseHTTPRequestHandler):
    server_obj: FakeWandbServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid 40 ms ACK stalls

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        srv = self.server_obj
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.startswith("/graphql"):
            self._send(404, b"{}")
            return
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            self._send(400, b'{"errors":[{"message":"bad json"}]}')
            return
        query = payload.get("query") or ""
        m = _OP.search(query)
        op = m.group(1) if m else "<anonymous>"
        variables = payload.get("variables") or {}
        srv.requests.append(
            {"op": op, "variables": variables, "t": time.time(), "authorization": self.headers.get("Authorization", "")}
        )
        if srv.latency:
            time.sleep(srv.latency)
        rule = srv._take_failure(op)
        if rule is not None:
            self._fault(rule, b'{"errors":[{"message":"scripted failure"}]}')
            return
        try:
            data = srv.answer(op, variables)
        except _HttpError as exc:
            self._send(exc.status, b'{"errors":[{"message":"scripted failure"}]}')
            return
        except KeyError:
            self._send(400, _dumps({"errors": [{"message": f"fake server: unsupported operation {op}"}]}).encode())
            return
        if op in srv.rewrites:
            data = srv.rewrites[op](data)
        self._send(200, _dumps({"data": data}).encode())

    def _fault(self, rule: dict[str, Any], body: bytes) -> None:
        srv = self.server_obj
        mode = rule.get("mode")
        if rule["hang"]:
            srv.stop_event.wait(120)
            return
        try:
            if mode is None:
                self._send(rule["status"], body, headers=rule["headers"])
            elif mode == "html":
                self._send(200, b"<!doctype html><html><body>Please log in</body></html>", "text/html")
            elif mode == "garbage":
                self._send(200, b'{"data": {"project": {"run": [1, 2,,', "application/json")
            elif mode == "empty":
                self._send(200, b"", "application/json")
            elif mode == "deep":
                self._send(200, b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json")
            elif mode == "trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                for _ in range(1_000_000):
                    if srv.stop_event.wait(1.0):
                        return
                    self.wfile.write(b" ")
                    self.wfile.flush()
            elif mode in ("huge", "endless"):
                self.send_response(200)
                self.send_header(
                    "Content-Type", "application/json" if self.command == "POST" else "application/octet-stream"
                )
                if mode == "huge":
                    self.send_header("Content-Length", str(rule["size"]))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b'{"data": {"x": [' + b"1," * (1 << 19)
                sent = 0
                while (mode == "endless" or sent < rule["size"]) and not srv.stop_event.is_set():
                    part = block if mode == "endless" else block[: rule["size"] - sent]
                    if mode == "endless":
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    else:
                        self.wfile.write(part)
                    sent += len(part)
            elif mode == "drop":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b'{"data": {"pro')
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
            else:
                raise ValueError(f"unknown fault mode {mode!r}")
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    def _file(self) -> Path | None:
        if not self.path.startswith("/files/"):
            return None
        return self.server_obj.files.get(self.path[len("/files/") :].split("?")[0])

    def do_HEAD(self) -> None:  # noqa: N802
        path = self._file()
        if path is None:
            self._send(404, b"")
            return
        self._send(
            200, b"", "application/octet-stream", {"Accept-Ranges": "bytes", "Content-Length": str(path.stat().st_size)}
        )

    def do_GET(self) -> None:  # noqa: N802
        self.server_obj.requests.append(
            {"op": "GET " + self.path.split("?")[0], "variables": {}, "t": time.time(), "authorization": ""}
        )
        if self.server_obj.latency:
            time.sleep(self.server_obj.latency)
        rule = self.server_obj._take_failure("GET")
        if rule is not None:
            self._fault(rule, b"scripted failure")
            return
        path = self._file()
        if path is None:
            self._send(404, b"not found", "text/plain")
            return
        size = path.stat().st_size
        rng = self.headers.get("Range")
        with path.open("rb") as fh:
            if rng and rng.startswith("bytes="):
                first, _, last = rng[len("bytes=") :].split(",")[0].partition("-")
                if first == "":
                    start, end = max(0, size - int(last)), size - 1
                else:
                    start, end = int(first), min(size - 1, int(last)) if last else size - 1
                fh.seek(start)
                data = fh.read(end - start + 1)
                self._send(
                    206,
                    data,
                    "application/octet-stream",
                    {"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"},
                )
            else:
                self._send(200, fh.read(), "application/octet-stream", {"Accept-Ranges": "bytes"})


def formula_run(
    n_rows: int,
    *,
    exported_rows: int,
    entity: str = "e",
    project: str = "p",
    run_id: str = "big",
    eval_every: int = 100,
    parquet_parts: int = 1,
) -> FakeRun:
    """A large HF-shaped run from formulas (bench): train rows every step, eval rows every ``eval_every``."""
    steps = np.arange(n_rows, dtype="int64")
    gs = steps.astype(float)
    is_eval = (steps % eval_every) == (eval_every - 1)
    train = ~is_eval
    ones = np.ones(n_rows, dtype=bool)
    columns = {
        "train/global_step": (ones, gs),
        "train/loss": (train, 3.0 * np.exp(-gs / (n_rows / 4))),
        "train/grad_norm": (train, 1.0 + (steps % 7) / 10),
        "train/learning_rate": (train, 1e-4 * (1 - gs / n_rows)),
        "train/epoch": (ones, gs / (n_rows / 3)),
        "eval/loss": (is_eval, 2.0 + gs / n_rows),
        "eval/runtime": (is_eval, np.full(n_rows, 1.5)),
        "train/other_metric_a": (train, np.sin(gs)),
        "train/other_metric_b": (train, np.cos(gs)),
        "system/gpu_util": (train, np.full(n_rows, 99.0)),
    }
    return FakeRun(
        entity=entity,
        project=project,
        run_id=run_id,
        steps=steps,
        columns=columns,
        name=run_id,
        exported_rows=exported_rows,
        parquet_parts=parquet_parts,
        summary={"train/loss": float(columns["train/loss"][1][-2])},
    )


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


#: the kinds of run project_of_runs cycles through (what each one's curves do)
PROJECT_KINDS = ("healthy", "overfitting", "nan", "diverging", "healthy", "overfitting")


def small_run(kind: str, i: int, *, entity: str, project: str, rows: int = 120) -> FakeRun:
    """One small HF-shaped run from formulas: train rows every step, eval every 10 (triage tests, bench).
    ``kind``: healthy (both losses fall), overfitting (eval turns up at 40 % while train falls), nan (train
    loss NaN from 60 %), diverging (train loss climbs from 50 %), empty (no history at all)."""
    if kind == "empty":
        return FakeRun(
            entity=entity,
            project=project,
            run_id=f"run{i:04d}",
            steps=np.zeros(0, dtype="int64"),
            columns={},
            name=f"{kind}-{i}",
            state="crashed",
            created=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}",
        )
    steps = np.arange(1, rows + 1, dtype="int64")
    x = steps / rows
    wobble = 0.01 * np.sin(steps * (1.0 + i % 7))
    train = 2.5 * np.exp(-3 * x) + 0.3 + wobble
    evals = 2.6 * np.exp(-2.5 * x) + 0.5
    if kind == "overfitting":
        turn = 0.4
        evals = np.where(x < turn, 2.6 * np.exp(-2.5 * x) + 0.5, 2.6 * np.exp(-2.5 * turn) + 0.5 + 1.5 * (x - turn))
    if kind == "nan":
        train = np.where(x >= 0.6, np.nan, train)
    if kind == "diverging":
        train = train + 24.0 * np.clip(x - 0.5, 0.0, None) ** 1.2
    is_eval = steps % 10 == 0
    ones = np.ones(rows, dtype=bool)
    columns = {
        "train/global_step": (ones, steps.astype(float)),
        "train/loss": (ones, train),
        "train/grad_norm": (ones, 1.0 + 0.2 * np.cos(steps)),
        "train/learning_rate": (ones, 2e-4 * (1 - x)),
        "train/epoch": (ones, 3 * x),
        "eval/loss": (is_eval, evals),
    }
    return FakeRun(
        entity=entity,
        project=project,
        run_id=f"run{i:04d}",
        steps=steps,
        columns=columns,
        name=f"{kind}-{i}",
        state="crashed" if kind == "nan" else "finished",
        tags=(kind,),
        sweep="sweep1" if i % 2 == 0 else None,
        created=f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
    )


def project_of_runs(
    server: FakeWandbServer,
    n: int,
    *,
    entity: str = "team",
    project: str = "sweep",
    broken: dict[int, str] | None = None,
) -> list[FakeRun]:
    """Add ``n`` small runs (kinds cycling through PROJECT_KINDS) to ``server``; ``broken`` maps a run index to
    "error", "vanished" or "empty"."""
    broken = broken or {}
    out = []
    for i in range(n):
        how = broken.get(i)
        kind = "empty" if how == "empty" else PROJECT_KINDS[i % len(PROJECT_KINDS)]
        run = small_run(kind, i, entity=entity, project=project)
        if how in ("error", "vanished"):
            run.broken = how
        out.append(server.add_run(run))
    return out
