"""Triage many runs at once: a W&B project (``ENTITY/PROJECT``, a project or sweep URL) or a directory of runs.

``expand`` turns the command-line sources into items (one per run) when one of them is a collection;
``fetch_all`` reads the items in parallel with bounded concurrency (a thread pool: reading a W&B run is
network wait; the existing per-user cache answers finished runs without the network); ``Judges`` diagnoses
each run and writes its report as results arrive, in the caller's thread or, for a large triage, in worker
processes (the judging is CPU: in the reading process it holds the GIL that every read needs to handle its
answer). Every item ends as exactly one row: fetched, cached, read (a local run) or an error line.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lossdoctor.errors import LossdoctorError, SourceError, UsageError
from lossdoctor.report.formats.markdown import md_escape
from lossdoctor.sources import detect, make_target, read_runs
from lossdoctor.sources._registry import _DIR_SKIP_SUFFIXES, _detect_in_dir

#: --filter keys and the W&B run field each one filters on
FILTER_KEYS: dict[str, str] = {"state": "state", "tag": "tags", "sweep": "sweep"}
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NOT_PROJECT_SUFFIXES = (".log", ".txt", ".json", ".jsonl", ".csv", ".out", ".wandb", ".yaml", ".yml")
#: level order for the summary, worst first
LEVEL_ORDER: dict[str, int] = {"unreadable": 0, "incomplete": 1, "error": 2, "warning": 3, "info": 4, "ok": 5}


@dataclass(frozen=True)
class ProjectRef:
    """A W&B project (or one sweep of it) to triage, on a given API host."""

    api_base: str
    entity: str
    project: str
    sweep: str | None = None

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}"


@dataclass(frozen=True)
class Item:
    """One run to triage: a label for the table and what ``read_runs`` is given."""

    label: str
    location: str
    remote: bool = False


@dataclass(frozen=True)
class Fetched:
    """What reading one triage item gave: its runs, or the error, and how long it took."""

    item: Item
    runs: tuple[Any, ...]  # Run objects ((), on error)
    status: str  # fetched | cached | read | error
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    label: str
    name: str
    status: str
    level: str  # unreadable | incomplete | error | warning | info | ok
    verdict: str
    top_finding: str
    best_eval: str
    onset: str
    report: str


def parse_project_ref(text: str, env: dict[str, str] | None = None) -> ProjectRef | None:
    """``ENTITY/PROJECT``, ``https://HOST/ENTITY/PROJECT[/workspace|/table|/runs]`` or a sweep URL
    ``.../ENTITY/PROJECT/sweeps/ID``; None for anything else (a run URL, a local path, ...)."""
    import os

    from lossdoctor.sources._wandb_url import _api_for_host, _default_base

    env = dict(os.environ) if env is None else env
    raw = text.strip()
    if re.match(r"^https?://", raw):
        parts = urlsplit(raw)
        segs = [unquote(s) for s in parts.path.split("/") if s]
        host = parts.netloc.lower().split("@")[-1].split(":")[0]
        if host in ("forge.coreweave.com", "api.forge.coreweave.com") and segs[:1] == ["wandb"]:
            segs = segs[1:]
        base = _api_for_host(parts.scheme, parts.netloc)
        if len(segs) == 4 and segs[2] == "sweeps":
            return ProjectRef(base, segs[0], segs[1], segs[3])
        if len(segs) == 2 or (len(segs) == 3 and segs[2] in ("workspace", "table", "runs", "overview")):
            return ProjectRef(base, segs[0], segs[1])
        return None
    if "\\" in raw or raw.startswith((".", "/", "~")) or Path(raw).exists():
        return None
    segs = raw.split("/")
    if len(segs) != 2 or not all(_SEGMENT.match(s) for s in segs):
        return None
    if segs[1].lower().endswith(_NOT_PROJECT_SUFFIXES) or Path(segs[0]).exists():
        return None  # a mistyped local file, not a project: never sent to the network
    return ProjectRef(_default_base(env), segs[0], segs[1])


def parse_filters(filters: tuple[str, ...], sweep: str | None = None) -> dict[str, Any]:
    """``state=finished``, ``tag=baseline``, ``sweep=ID`` (repeatable; the same key twice means either) →
    a W&B run filter."""
    wanted: dict[str, list[str]] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in FILTER_KEYS or not value:
            raise UsageError(
                f"--filter {text!r}: expected KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)} "
                "(e.g. --filter state=finished --filter tag=baseline)"
            )
        wanted.setdefault(FILTER_KEYS[key], []).append(value)
    if sweep:
        wanted.setdefault("sweep", []).append(sweep)
    parts = [
        {field: values[0]} if len(values) == 1 else {field: {"$in": values}} for field, values in sorted(wanted.items())
    ]
    parts = [{"tags": {"$in": [p["tags"]]}} if "tags" in p and isinstance(p["tags"], str) else p for p in parts]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


#: the project's runs, one page at a time (the fields the wandb client's own Runs query asks for that triage uses)
RUNS_QUERY = """
query Runs($project: String!, $entity: String!, $cursor: String, $perPage: Int = 50, $order: String,
           $filters: JSONString) {
  project(name: $project, entityName: $entity) {
    internalId
    runCount(filters: $filters)
    runs(filters: $filters, after: $cursor, first: $perPage, order: $order) {
      edges { node { id name displayName state } cursor }
      pageInfo { endCursor hasNextPage }
    }
  }
}
"""


def list_project(
    ref: ProjectRef, filters: dict[str, Any], limit: int | None, timeout: float, location: str
) -> list[Item]:
    """The project's runs (oldest first, as the server orders them), through the same bounded client as the
    run reader (lossdoctor/sources/_wandb_http.py): one --timeout deadline, size caps, one-line errors."""
    import json

    from lossdoctor.sources._readkit import dig
    from lossdoctor.sources._wandb_errors import NO_KEY, api_key_for, scrub
    from lossdoctor.sources._wandb_http import Deadline, FetchError, HttpClient

    secret = api_key_for(ref.api_base)
    if not secret:
        raise SourceError(NO_KEY, location)
    deadline = Deadline(timeout)
    items: list[Item] = []
    cursor: str | None = None
    per_page = min(100, limit or 100)
    try:
        client = HttpClient(ref.api_base, secret, deadline)
        while True:
            data = client.graphql(
                "Runs",
                RUNS_QUERY,
                {
                    "entity": ref.entity,
                    "project": ref.project,
                    "cursor": cursor,
                    "perPage": per_page,
                    "order": "+created_at",
                    "filters": json.dumps(filters) if filters else None,
                },
            )
            project = dig(data, "project")
            if project is None:
                raise SourceError(f"W&B project {ref.path} not found on {ref.api_base}", location)
            runs = dig(data, "project", "runs")
            edges = runs.get("edges") if isinstance(runs, dict) else None
            if not isinstance(edges, list):
                raise FetchError("Runs: the answer has no runs list", "content")
            for edge in edges:
                node = edge.get("node") if isinstance(edge, dict) else None
                run_id = str(node.get("name") or "")[:200] if isinstance(node, dict) else ""
                if not run_id:
                    continue
                items.append(
                    Item(
                        label=run_id,
                        remote=True,
                        location=f"{ref.api_base.rstrip('/')}/{ref.entity}/{ref.project}/runs/{run_id}"
                        if "://" in ref.api_base
                        else f"{ref.entity}/{ref.project}/runs/{run_id}",
                    )
                )
                if limit is not None and len(items) >= limit:
                    return items
            info = runs.get("pageInfo") if isinstance(runs, dict) else None
            if not isinstance(info, dict) or not info.get("hasNextPage") or not edges:
                return items
            cursor = str(info.get("endCursor") or "")
    except FetchError as exc:
        if exc.status in (401, 403):
            raise SourceError(f"not authorised to list runs (HTTP {exc.status}); set WANDB_API_KEY", location) from None
        if exc.status == 404:
            raise SourceError(f"W&B project {ref.path} not found on {ref.api_base}", location) from None
        raise SourceError(f"could not list the runs of {ref.path}: {scrub(str(exc), secret)[:200]}", location) from None
    finally:
        deadline.cancel()


def _claimed(path: Path) -> bool:
    """A reader claims the path as it is (a file, or a directory as a whole)."""
    try:
        detect(make_target(str(path)))
        return True
    except SourceError:
        return False


def _single_run(path: Path) -> bool:
    """What ``read_runs`` reads as one run: a claimed path, or a directory holding one claimed file."""
    if _claimed(path):
        return True
    if path.is_dir():
        try:
            _detect_in_dir(make_target(str(path)))
            return True
        except SourceError:
            return False
    return False


def dir_items(path: Path) -> list[Item] | None:
    """A directory that is not itself one run but holds runs: one item per child a reader claims (run
    directories and log files). None when a reader claims the directory itself, or when it holds no run
    directory and one log file (analyze reads that file as the run)."""

    if not path.is_dir() or _claimed(path):
        return None
    children = [
        c
        for c in sorted(path.iterdir())
        if not c.name.startswith(".") and not c.name.lower().endswith(_DIR_SKIP_SUFFIXES)
    ]
    run_dirs = [c for c in children if c.is_dir() and _single_run(c)]
    if not run_dirs and _single_run(path):
        return None
    items = [
        Item(label=c.name, location=str(c))
        for c in children
        if (c.is_dir() and c in run_dirs) or (c.is_file() and _claimed(c))
    ]
    return items or None


def expand(
    sources: tuple[str, ...], filters: tuple[str, ...], limit: int | None, timeout: float, offline: bool
) -> list[Item] | None:
    """Items when any source is a collection (a project, a sweep URL, a directory of runs), else None."""
    items: list[Item] = []
    collection = False
    for source in sources:
        ref = parse_project_ref(source)
        if ref is not None:
            if offline:
                raise UsageError(f"{source}: listing a W&B project needs the network (drop --offline)")
            collection = True
            items.extend(list_project(ref, parse_filters(filters, ref.sweep), limit, timeout, source))
            continue
        found = dir_items(Path(source))
        if found is not None:
            collection = True
            items.extend(found[:limit] if limit else found)
            continue
        items.append(Item(label=source, location=source))
    if not collection:
        if filters:
            raise UsageError("--filter applies to a W&B project (ENTITY/PROJECT) only")
        return None
    return items


def _was_cached(item: Item, options: Any) -> bool:
    """Whether the W&B reader will answer from the cache (a finished run's entry exists): its small JSON
    metadata says, without loading the metric table."""
    if not item.remote or options.refresh:
        return False
    import json

    from lossdoctor.sources._wandb_cache import RunCache
    from lossdoctor.sources._wandb_url import NotARunURL, parse_run_ref
    from lossdoctor.textfile import read_side_file

    try:
        table, meta = RunCache(options.cache_dir).paths(parse_run_ref(item.location))
        raw = read_side_file(meta)
        state = json.loads(raw.decode("utf-8")).get("state") if raw is not None else None
    except (NotARunURL, OSError, ValueError, AttributeError):
        return False
    return table.is_file() and state in ("finished", "crashed", "interrupted")


def _read(item: Item, options: Any) -> Fetched:
    t0 = time.monotonic()
    cached = _was_cached(item, options)
    try:
        runs = tuple(read_runs(item.location, options))
    except LossdoctorError as exc:
        return Fetched(item, (), "error", str(exc), time.monotonic() - t0)
    except Exception as exc:  # noqa: BLE001 - one run's bug must not take the others down; said in its row
        return Fetched(item, (), "error", f"internal error: {type(exc).__name__}: {exc}", time.monotonic() - t0)
    status = "cached" if cached else "fetched" if item.remote else "read"
    return Fetched(item, runs, status, "", time.monotonic() - t0)


def fetch_all(items: list[Item], options: Any, jobs: int, stop: threading.Event | None = None) -> Iterator[Fetched]:
    """Read every item with at most ``jobs`` at once; results in completion order, one per item."""
    jobs = max(1, int(jobs))
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait  # only when fetching

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lossdoctor-fetch") as pool:
        queue = list(items)
        running: set[Future[Fetched]] = set()
        while queue or running:
            while queue and len(running) < jobs and not (stop and stop.is_set()):
                running.add(pool.submit(_read, queue.pop(0), options))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
        for item in queue:  # stopped early: still accounted for
            yield Fetched(item, (), "error", "not read (stopped)")


def _fmt(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


@dataclass(frozen=True)
class Judged:
    """What the summary needs of one diagnosed run whose report is written: small, so that it crosses from a
    judging process cheaply (the Diagnosis, with its series, stays where it was made)."""

    name: str
    level: str
    verdict: str
    top_finding: str
    best_eval: str
    onset: str
    report: str  # the primary report file, relative to the triage directory ("" when none)
    crashed_checks: tuple[str, ...]
    severities: tuple[str, ...]


def judge(run: Any, ruleset: Any, formats: tuple[str, ...], out: Path, base: Path) -> Judged:
    """Diagnose one run and write its report into ``out`` (under the triage directory ``base``)."""
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.report import write_reports

    diag = diagnose(run, ruleset)
    written = write_reports(diag, formats, out)
    f = diag.facts
    top = diag.findings[0] if diag.findings else None
    return Judged(
        name=diag.run.name,
        level="incomplete" if diag.crashed_checks else (diag.worst_severity or "ok"),
        verdict=diag.verdict,
        top_finding=f"{top.rule_id} ({top.severity})" if top else "-",
        best_eval="-" if f.best_eval_step is None else f"{_fmt(f.best_eval_loss)} @ {f.best_eval_step}",
        onset="-" if top is None or top.first_step is None else str(top.first_step),
        report=str(written[0].relative_to(base)) if written else "",
        crashed_checks=tuple(diag.crashed_checks),
        severities=tuple(x.severity for x in diag.findings),
    )


#: a triage of at least this many W&B runs is judged in worker processes when the machine has a second core (a
#: run's diagnose + report is ~10 ms of CPU; the workers' start-up ~0.5 s of CPU, overlapping the first reads)
POOL_MIN_RUNS = 32
#: at most this many judging processes
POOL_MAX_WORKERS = 4
#: runs waiting per worker beyond which this thread judges the next run itself (the workers cannot keep up:
#: no idle core; below this, judging here would take the GIL turns the reads need)
POOL_QUEUE_PER_WORKER = 16
_WORKER: dict[str, Any] = {}


def _init_worker(ruleset: Any, formats: tuple[str, ...], base: Path) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops the pool)
    _WORKER.update(ruleset=ruleset, formats=formats, base=base)


def _judge_in_worker(run: Any, out: Path) -> tuple[Judged | None, str]:
    """(judged, "") or (None, the one-line error): lossdoctor's errors are re-raised by the parent."""
    try:
        return judge(run, _WORKER["ruleset"], _WORKER["formats"], out, _WORKER["base"]), ""
    except LossdoctorError as exc:
        return None, str(exc)


class Judges:
    """Judges runs (diagnose + write the report) as they are read. In this thread; or, for a triage of at
    least POOL_MIN_RUNS runs (``runs``: the caller counts those worth it) on a machine with a second core,
    in worker processes (forkserver: the server imports the analysis once and forks the workers; the parent
    keeps no lock a fork could copy), so the judging uses another core and never holds the GIL that the
    reading threads need to handle their answers (in-process, the judging thread made every read wait for
    its turn). The pool starts in a thread of its own (starting the forkserver waits for its imports: the
    reading must not) and the runs read meanwhile wait for it. When more runs wait for the workers than they
    keep up with, this thread judges the next one itself. A pool that cannot start or breaks leaves its runs
    to this thread: every run is judged once. As with any process pool, the program's main module is
    imported again in each worker (guard it with ``if __name__ == "__main__"``)."""

    def __init__(self, ruleset: Any, formats: tuple[str, ...], base: Path, runs: int) -> None:
        self.ruleset, self.formats, self.base = ruleset, formats, base
        self._done: list[tuple[Fetched, Judged]] = []
        self._pending: dict[Any, tuple[Fetched, Any, Path]] = {}
        self._backlog: list[tuple[Fetched, Any, Path]] = []
        self._pool: Any = None
        self._started: Any = None
        self._starting: threading.Thread | None = None
        self._workers = 0
        from lossdoctor.workers import usable_cpus

        cpus = usable_cpus()
        if runs >= POOL_MIN_RUNS and cpus >= 2:
            import multiprocessing

            if "forkserver" in multiprocessing.get_all_start_methods():
                workers = self._workers = max(1, min(POOL_MAX_WORKERS, cpus - 1))
                self._starting = threading.Thread(
                    target=self._start_pool, args=(workers,), name="lossdoctor-judges-start", daemon=True
                )
                self._starting.start()

    def _start_pool(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        try:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["lossdoctor.triage", "lossdoctor.diagnosis", "lossdoctor.report"])
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.ruleset, self.formats, self.base),
            )
            pool.submit(int).result()  # the forkserver and a first worker are up
        except Exception:  # noqa: BLE001 - no semaphores, no shared memory, a worker that dies at start: inline
            return
        self._started = pool

    def _settle(self, block: bool) -> None:
        """Once the pool's start has ended (waiting for it with ``block``): use it, or judge here."""
        starting = self._starting
        if starting is None or (starting.is_alive() and not block):
            return
        starting.join()
        self._starting, self._pool = None, self._started
        backlog, self._backlog = self._backlog, []
        for fetched, run, out in backlog:
            self.submit(fetched, run, out)

    @property
    def in_processes(self) -> bool:
        self._settle(block=True)
        return self._pool is not None

    def _inline(self, fetched: Fetched, run: Any, out: Path) -> None:
        self._done.append((fetched, judge(run, self.ruleset, self.formats, out, self.base)))

    def submit(self, fetched: Fetched, run: Any, out: Path) -> None:
        self._settle(block=False)
        if self._starting is not None:
            self._backlog.append((fetched, run, out))
            return
        if self._pool is not None and len(self._pending) < POOL_QUEUE_PER_WORKER * self._workers:
            from concurrent.futures.process import BrokenProcessPool

            try:
                self._pending[self._pool.submit(_judge_in_worker, run, out)] = (fetched, run, out)
                return
            except (BrokenProcessPool, RuntimeError, OSError):
                self._give_up_pool()
        self._inline(fetched, run, out)

    def _give_up_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def take(self, wait: bool = False) -> list[tuple[Fetched, Judged]]:
        """The runs judged since the last call (all of them, with ``wait``), in completion order."""
        self._settle(block=wait)
        if self._pending:
            from concurrent.futures import wait as wait_for
            from concurrent.futures.process import BrokenProcessPool

            finished, _ = wait_for(list(self._pending), timeout=None if wait else 0)
            for fut in [f for f in self._pending if f in finished]:
                fetched, run, out = self._pending.pop(fut)
                try:
                    judged, error = fut.result()
                except (BrokenProcessPool, OSError):  # a worker died (killed, out of memory): judged here
                    self._give_up_pool()
                    self._inline(fetched, run, out)
                    continue
                if judged is None:
                    raise UsageError(error)
                self._done.append((fetched, judged))
            if wait and self._pending:
                return self.take(wait=True)
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting, self._pool = None, self._started
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def row_for(fetched: Fetched, judged: Judged | None) -> Row:
    """A summary row for a judged run, or an error line (``judged`` None)."""
    if judged is None:
        return Row(
            label=fetched.item.label,
            name="",
            status="error",
            level="unreadable",
            verdict="could not be read: " + fetched.error,
            top_finding="-",
            best_eval="-",
            onset="-",
            report="",
        )
    j = judged
    return Row(
        fetched.item.label, j.name, fetched.status, j.level, j.verdict, j.top_finding, j.best_eval, j.onset, j.report
    )


def sort_rows(rows: list[Row]) -> list[Row]:
    """Worst first: unreadable, incomplete, error, warning, info, ok; then by label."""
    return sorted(rows, key=lambda r: (LEVEL_ORDER.get(r.level, 9), r.label, r.name))


def summary_text(rows: list[Row], clean: Callable[[str], str]) -> str:
    header = ["run", "status", "verdict", "top finding", "best eval", "onset"]
    table = [
        [
            clean(r.label if not r.name or r.name == r.label else f"{r.label} ({r.name})"),
            r.status,
            clean(r.verdict),
            clean(r.top_finding),
            r.best_eval,
            r.onset,
        ]
        for r in rows
    ]
    cut = [[c if len(c) <= 60 else c[:59] + "…" for c in row] for row in [header, *table]]
    widths = [max(len(row[i]) for row in cut) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cut)


def summary_markdown(rows: list[Row], title: str) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.level] = counts.get(r.level, 0) + 1
    lines = [
        f"## {md_escape(title)}",
        "",
        ", ".join(f"{n} {lvl}" for lvl, n in sorted(counts.items(), key=lambda kv: LEVEL_ORDER.get(kv[0], 9))),
        "",
        "| Run | Status | Verdict | Top finding | Best eval | Onset | Report |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        name = r.label if not r.name or r.name == r.label else f"{r.label} ({r.name})"
        link = f"[report]({r.report})" if r.report else "-"
        lines.append(
            f"| {md_escape(name)} | {r.status} | {md_escape(r.verdict)} | {md_escape(r.top_finding)} | "
            f"{md_escape(r.best_eval)} | {r.onset} | {link} |"
        )
    return "\n".join(lines) + "\n"
