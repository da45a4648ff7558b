"""Triage of a W&B project (`lossdoctor analyze ENTITY/PROJECT`) against one-by-one analysis of its runs.

    /work/venv/bin/python bench/bench_triage.py                     # 200 runs, 50 ms per request, 16 jobs
    /work/venv/bin/python bench/bench_triage.py --runs 200 --latency-ms 0

The project is served by tests/wandb_fake_server.py on 127.0.0.1 to the real wandb client: ``--runs`` small
HF-shaped runs (healthy, overfitting, NaN, diverging) plus broken ones (a run whose queries answer HTTP 500, one
deleted between listing and fetching, one with no history). ``--latency-ms`` is added to every request (a
network round trip; a run fetch is ~6 requests).

Both sides do the same work per run with a cold cache of their own: read (fetch) + diagnose + write the JSON
report. Baseline, measured in the same run: one run after the other in this process. Triage: the listing plus
``--jobs`` runs read at once (``lossdoctor.triage``). Then triage again on the warm cache. Prints the times,
the ratio, and whether every run is accounted for (fetched, cached, or an error line).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=5.0, help="per-run network budget (the broken run uses it up)")
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="bench-triage-"))
    atexit.register(shutil.rmtree, root, True)  # ~100 MB of runs and reports
    for k, v in {
        "HOME": root / "home",
        "WANDB_CONFIG_DIR": root / "cfg",
        "WANDB_CACHE_DIR": root / "wc",
        "WANDB_API_KEY": "dummykey0123456789abcdef0123456789abcdef00",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_SILENT": "true",
    }.items():
        os.environ[k] = str(v)
    from wandb_fake_server import FakeWandbServer, project_of_runs

    from lossdoctor.commands._triage import run_triage
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.report import write_reports
    from lossdoctor.rules.packs import load_rules
    from lossdoctor.sources.base import ReadOptions
    from lossdoctor.triage import _read, expand

    ruleset = load_rules(())
    n = args.runs
    broken = {n // 3: "error", n // 2: "vanished", (2 * n) // 3: "empty"}
    with FakeWandbServer() as server:
        project_of_runs(server, n, broken=broken)
        server.latency = args.latency_ms / 1000.0
        project = f"{server.url}/team/sweep"

        # baseline: one by one
        t0 = time.monotonic()
        items = expand((project,), (), None, args.timeout, False)
        opts = ReadOptions(timeout=args.timeout, cache_dir=str(root / "cache-seq"))
        outcomes = {"fetched": 0, "error": 0}
        t_failing = 0.0  # the one-by-one time spent on runs that end as error lines
        for item in items:  # type: ignore[union-attr]
            got = _read(item, opts)
            outcomes["error" if got.status == "error" else "fetched"] += 1
            if got.status == "error":
                t_failing += got.seconds
            for run in got.runs:
                write_reports(diagnose(run, ruleset), ("json",), root / "seq" / item.label)
        t_seq = time.monotonic() - t0

        def triage(cache: str, out: str) -> tuple[float, str, int]:
            t = time.monotonic()
            its = expand((project,), (), None, args.timeout, False)
            o = ReadOptions(timeout=args.timeout, cache_dir=str(root / cache))
            err, std = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
                code = run_triage(its, project, ruleset, o, None, str(root / out), "never", args.jobs, True)
            return time.monotonic() - t, err.getvalue().strip().splitlines()[-1], code

        t_par, last_par, code = triage("cache-par", "par")
        t_warm, last_warm, _ = triage("cache-par", "par2")

    lines = (root / "par" / "summary.json").read_text()
    import json

    rows = json.loads(lines)["runs"]
    print(f"{n} runs ({len(broken)} broken), {args.latency_ms:g} ms per request, per-run timeout {args.timeout:g} s")
    print(
        f"one by one:        {t_seq:7.1f} s  ({outcomes['fetched']} read, {outcomes['error']} errors; "
        f"{t_failing:.1f} s of it on the runs that fail: {(t_seq - t_failing) / t_seq:.0%} is the readable runs)"
    )
    print(f"triage, {args.jobs:2d} jobs:   {t_par:7.1f} s  = {t_seq / t_par:.1f}x faster (target >= 8x)  [{last_par}]")
    print(f"triage, warm cache:{t_warm:7.1f} s  = {t_seq / t_warm:.1f}x  [{last_warm}]")
    print(
        f"without the failing runs' one-by-one time: {t_seq - t_failing:.1f} s = {(t_seq - t_failing) / t_par:.1f}x "
        f"cold, {(t_seq - t_failing) / t_warm:.1f}x warm (a run alone has no other runs to tell its fault from an "
        "outage by, so it retries for the whole budget)"
    )
    accounted = len(rows) == len(items)  # type: ignore[arg-type]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print(
        f"every run accounted for: {accounted} ({len(rows)} rows for {len(items)} listed runs: "  # type: ignore[arg-type]
        + ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
        + f"); exit code {code}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
