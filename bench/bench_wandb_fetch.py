"""Fetching a long W&B history: lossdoctor vs plain ``scan_history()`` vs paging ``HistoryPage`` alone.

One run of ``--rows`` history rows (HF-shaped: train rows, an eval row every 100, a few extra keys) is
served by tests/wandb_fake_server.py: most rows as a Parquet export, a live tail (``--live``) as pages.
All three fetches run in this process against the same server, then a cached re-analysis is timed
(cache → Run, plus ``lossdoctor.analyze`` when the rule engine is present). Ratios are against baselines
measured in the same run.

    /work/venv/bin/python bench/bench_wandb_fetch.py               # 1,000,000 rows
    /work/venv/bin/python bench/bench_wandb_fetch.py --rows 100000  # quicker
    /work/venv/bin/python bench/bench_wandb_fetch.py --latency-ms 20  # with a network round trip per request
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

HISTORY_PAGE = """
query HistoryPage ($entity: String!, $project: String!, $run: String!, $minStep: Int64!, $maxStep: Int64!, $pageSize: Int!) {
\tproject(name: $project, entityName: $entity) {
\t\trun(name: $run) {
\t\t\thistory(minStep: $minStep, maxStep: $maxStep, samples: $pageSize)
\t\t}
\t}
}
"""


def rss_mb() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def page_alone(server_url: str, key: str, n_rows: int, page: int) -> int:
    """What wandb ≤0.26 did: one HistoryPage GraphQL round trip per page of full rows."""
    rows = 0
    auth = "Basic " + __import__("base64").b64encode(f"api:{key}".encode()).decode()
    for lo in range(0, n_rows, page):
        body = json.dumps(
            {
                "query": HISTORY_PAGE,
                "variables": {
                    "entity": "e",
                    "project": "p",
                    "run": "big",
                    "minStep": lo,
                    "maxStep": lo + page,
                    "pageSize": page,
                },
            }
        ).encode()
        req = urllib.request.Request(
            f"{server_url}/graphql", data=body, headers={"Content-Type": "application/json", "Authorization": auth}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = json.loads(resp.read())
        for text in data["data"]["project"]["run"]["history"]:
            json.loads(text)
            rows += 1
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--live", type=int, default=None, help="rows served as live pages (default rows/20)")
    ap.add_argument("--page", type=int, default=1000)
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay added to every server response (a network round trip; 0 = localhost)",
    )
    args = ap.parse_args()
    live = args.live if args.live is not None else max(1, args.rows // 20)

    tmp = Path(tempfile.mkdtemp(prefix="bench-wandb-"))
    atexit.register(shutil.rmtree, tmp, True)  # ~100 MB of cache and reports
    key = "benchkey0123456789abcdef0123456789abcdef00"
    os.environ.update(
        HOME=str(tmp / "home"),
        WANDB_CONFIG_DIR=str(tmp / "cfg"),
        WANDB_CACHE_DIR=str(tmp / "wc"),
        WANDB_API_KEY=key,
        WANDB_ERROR_REPORTING="false",
        WANDB_SILENT="true",
        LOSSDOCTOR_CACHE_DIR=str(tmp / "ld"),
    )
    from wandb_fake_server import FakeWandbServer, formula_run

    from lossdoctor.sources import ReadOptions, read_runs

    t0 = time.perf_counter()
    fake = formula_run(args.rows, exported_rows=args.rows - live, parquet_parts=4)
    with FakeWandbServer() as server:
        server.add_run(fake)
        server.latency = args.latency_ms / 1000
        build = time.perf_counter() - t0
        print(
            f"run: {args.rows:,} rows ({args.rows - live:,} as parquet in 4 files, {live:,} live), "
            f"{len(fake.columns) + 1} keys; "
            f"latency {args.latency_ms:g} ms/request; server ready in {build:.1f}s"
        )
        url = f"{server.url}/e/p/runs/big"

        # warm the wandb-core service once so no contender pays its start-up
        import wandb

        wandb.Api(overrides={"base_url": server.url, "entity": "e"}, timeout=60).run("e/p/big")

        t = time.perf_counter()
        (run,) = read_runs(url, ReadOptions(refresh=True, timeout=600))
        t_ld = time.perf_counter() - t
        n_points = len(run.metrics)

        t = time.perf_counter()
        api = wandb.Api(overrides={"base_url": server.url, "entity": "e"}, timeout=600)
        n_scan = sum(1 for _ in api.run("e/p/big").scan_history(page_size=args.page, use_cache=False))
        t_scan = time.perf_counter() - t

        t = time.perf_counter()
        n_page = page_alone(server.url, key, args.rows, args.page)
        t_page = time.perf_counter() - t

    t = time.perf_counter()
    (cached,) = read_runs(url, ReadOptions(offline=True))
    t_cache_read = time.perf_counter() - t
    analysed = ""
    try:
        from lossdoctor import analyze

        t = time.perf_counter()
        diagnosis = analyze(cached)
        t_an = time.perf_counter() - t
        analysed = f" + analyze {t_an:.2f}s ({len(diagnosis.findings)} findings)"
    except ImportError as exc:  # rule engine not present
        t_an = 0.0
        analysed = f" (analyze unavailable: {exc})"
    me, kids = rss_mb()
    print(
        f"lossdoctor fetch (keys the rules need, parallel): {t_ld:7.2f}s  {n_points:,} points "
        f"({len(run.metric_names())} metrics)"
    )
    print(f"plain scan_history() (all keys):                 {t_scan:7.2f}s  {n_scan:,} rows")
    print(f"HistoryPage paging alone (page {args.page}):          {t_page:7.2f}s  {n_page:,} rows")
    print(f"ratio scan_history / lossdoctor: {t_scan / t_ld:.2f}x   (target >= 1.0)")
    print(f"ratio paging alone / lossdoctor: {t_page / t_ld:.2f}x   (target >= 5)")
    print(f"cached re-analysis: read {t_cache_read:.2f}s{analysed}; total {t_cache_read + t_an:.2f}s (target < 3s)")
    print(f"peak RSS: this process {me:.0f} MiB, children (wandb-core) {kids:.0f} MiB")


if __name__ == "__main__":
    main()
