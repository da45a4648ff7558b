"""W&B failure modes through the real CLI in a child process, against the fault-injecting fake server:
every fault ends with exit 2 and one true line on stderr, within ``--timeout`` + 2 s from ``cli.main`` to
the end of interpreter shutdown (imports are paid before the clock starts), the process gone
(``os.wait4`` returns), peak RSS <= 500 MB, and nothing cached from an incomplete answer."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import make_wandb_runs as mk  # noqa: E402
from wandb_fake_server import FakeRun, FakeWandbServer  # noqa: E402

from lossdoctor.sources.wandb_offline import read_wandb_file  # noqa: E402

KEY = "dummykeySECRET0123456789abcdef0123456789abcdef"
E, P = "test-entity", "test-project"
TIMEOUT = 3.0
RSS_CAP_MB = 500


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("wandb-faults")
    run_dir = mk.make_offline_run(root / "made", mk.RunSpec())
    log = read_wandb_file(next(run_dir.glob("*.wandb")))
    env = dict(
        os.environ,
        HOME=str(root / "home"),
        WANDB_API_KEY=KEY,
        LOSSDOCTOR_CACHE_DIR=str(root / "ldcache"),
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
    )
    env.pop("WANDB_BASE_URL", None)
    with FakeWandbServer() as server:
        server.add_run(FakeRun.from_log(log, entity=E, project=P, run_id="live"))
        server.add_run(FakeRun.from_log(log, entity=E, project=P, run_id="exported", exported_rows=150))
        yield {"server": server, "env": env, "root": root}


#: The child: imports paid first (start-up is not fetch time), then cli.main; the time from there to the
#: end of interpreter shutdown (non-daemon threads joined, atexit) is written to argv[1].
CHILD = """
import atexit, sys, time
import pandas, numpy, lossdoctor.cli, lossdoctor.commands.analyze, lossdoctor.sources.wandb_api
from lossdoctor.sources import registry
registry()
t0 = time.monotonic()
def hwm():
    return next(int(ln.split()[1]) / 1024 for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
atexit.register(lambda: open(sys.argv[1], "w").write(f"{time.monotonic() - t0} {hwm()}"))
lossdoctor.cli.main(sys.argv[2:])
"""


def child(world, target: str, *extra: str, timeout: float = TIMEOUT) -> tuple[int, str, float, float]:
    """(exit code, stderr, seconds from cli.main to interpreter exit, peak RSS MB) of one `lossdoctor analyze`
    child (``--refresh`` unless ``--offline`` is asked for)."""
    out = world["root"] / "out"
    clock = world["root"] / "elapsed.txt"
    clock.unlink(missing_ok=True)
    fresh = [] if "--offline" in extra else ["--refresh"]
    args = [
        sys.executable,
        "-c",
        CHILD,
        str(clock),
        "analyze",
        target,
        *fresh,
        "--timeout",
        str(timeout),
        "--format",
        "json",
        "--out",
        str(out),
        *extra,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=world["env"])
    err: list[bytes] = []
    pumps = [
        threading.Thread(target=lambda: proc.stdout.read(), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True),
    ]  # type: ignore[union-attr]
    for t in pumps:
        t.start()
    watchdog = threading.Timer(timeout + 60, proc.kill)
    watchdog.start()
    _, status, _ = os.wait4(proc.pid, 0)
    watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in pumps:
        t.join(10)
    assert proc.returncode != -9, f"{target}: still running {timeout + 60:.0f}s after start (killed)"
    # peak RSS from the child's VmHWM (ru_maxrss would count the forking pytest process's size too)
    wall, rss = (float(x) for x in clock.read_text().split())
    return proc.returncode, b"".join(err).decode("utf-8", "replace"), wall, rss


def url(world, run_id: str = "live") -> str:
    return f"{world['server'].url}/{E}/{P}/runs/{run_id}"


@pytest.fixture(scope="module")
def startup(world) -> float:
    """Seconds from cli.main to the end of a child that fails at once (401): argument parsing, reader
    detection, interpreter shutdown; reported, and a floor for the others."""
    world["server"].fail("Run", 401)
    code, err, wall, _ = child(world, url(world))
    assert code == 2 and "rejected the API key (HTTP 401)" in err, err
    world["server"].failures.clear()
    return wall


def huge_last_step(data: dict) -> dict:
    data["project"]["run"]["historyKeys"]["lastStep"] = 10**15
    return data


def no_history_keys(data: dict) -> dict:
    data["project"]["run"]["historyKeys"] = {"keys": {}, "lastStep": 199}
    return data


def empty_pages(data: dict) -> dict:
    data["project"]["run"]["sampledHistory"] = [[]]
    return data


def export_urls(*urls: str):
    def fn(data: dict) -> dict:
        data["project"]["run"]["parquetHistory"]["parquetUrls"] = list(urls)
        return data

    return fn


# (name, run id, failures [(op, kwargs)], rewrites {op: fn}, what the one line must say)
FAULTS = [
    ("404", "live", [("Run", {"status": 404})], {}, "HTTP 404"),
    ("persistent 503", "live", [("Run", {"status": 503, "times": 1000})], {}, "kept failing within the 3s budget"),
    ("hang", "live", [("Run", {"hang": True, "times": 1000})], {}, "did not answer within the 3s budget"),
    ("trickle", "live", [("Run", {"mode": "trickle", "times": 1000})], {}, "did not answer within the 3s budget"),
    ("announced 3 GB", "live", [("Run", {"mode": "huge", "size": 3 << 30})], {}, "above the 32 MB cap"),
    ("endless body", "live", [("Run", {"mode": "endless"})], {}, "larger than the 32 MB cap"),
    ("html page 200", "live", [("Run", {"mode": "html"})], {}, "text/html, not JSON"),
    ("garbage json", "live", [("Run", {"mode": "garbage"})], {}, "malformed JSON"),
    ("empty body", "live", [("Run", {"mode": "empty"})], {}, "empty body"),
    ("deep json", "live", [("Run", {"mode": "deep"})], {}, "nested too deeply"),
    ("dropped connections", "live", [("Run", {"mode": "drop", "times": 1000})], {}, "kept dropping the connection"),
    ("page hang", "live", [("SampledHistoryPage", {"hang": True, "times": 1000})], {}, "did not answer"),
    ("page 500", "live", [("SampledHistoryPage", {"status": 500, "times": 1000})], {}, "HTTP 500"),
    ("page endless", "live", [("SampledHistoryPage", {"mode": "endless", "times": 1000})], {}, "cap"),
    ("export trickle", "exported", [("GET", {"mode": "trickle", "times": 1000})], {}, "did not answer"),
    (
        "export endless",
        "exported",
        [("GET", {"mode": "endless", "times": 1000})],
        {},
        ("within the 3s budget", "larger than the 1,024 MB cap"),
    ),  # whichever comes first
    (
        "file:// export",
        "exported",
        [],
        {"RunParquetHistory": export_urls("file:///etc/passwd")},
        "refused to download file:///etc/passwd",
    ),
    (
        "foreign export host",
        "exported",
        [],
        {"RunParquetHistory": export_urls("http://203.0.113.9/x.parquet")},
        "not on the W&B API host",
    ),
    ("export 404", "exported", [("GET", {"status": 404, "times": 1000})], {}, "HTTP 404"),
    ("empty historyKeys", "live", [], {"Run": no_history_keys}, "historyKeys lists no keys"),
    ("empty history pages", "live", [], {"SampledHistoryPage": empty_pages}, "came back empty"),
    (
        "huge lastStep, no exports",
        "live",
        [("RunParquetHistory", {"status": 400, "times": 1000})],
        {"Run": huge_last_step},
        "pages (cap",
    ),
]


@pytest.mark.parametrize("name,run_id,failures,rewrites,needle", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_ends_in_time_with_one_true_line(world, startup: float, name, run_id, failures, rewrites, needle) -> None:
    server = world["server"]
    server.failures.clear()
    server.rewrites.clear()
    for op, kwargs in failures:
        server.fail(op, **kwargs)
    for op, fn in rewrites.items():
        server.rewrite(op, fn)
    try:
        code, err, wall, rss = child(world, url(world, run_id))
    finally:
        server.failures.clear()
        server.rewrites.clear()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (name, code, err)
    needles = needle if isinstance(needle, tuple) else (needle,)
    assert len(lines) == 1 and any(n in lines[0] for n in needles), (name, err)
    assert lines[0].startswith(f"lossdoctor: error: {url(world, run_id)}: "), lines[0]
    assert KEY not in err and "Traceback" not in err
    assert wall <= TIMEOUT + 2, (name, wall, startup)
    assert rss <= RSS_CAP_MB, (name, rss)
    print(f"\n{name:<28} exit {code}  {wall:5.2f}s  RSS {rss:4.0f} MB  {lines[0][-110:]}")
    # nothing incomplete was cached
    from lossdoctor.sources._wandb_cache import RunCache
    from lossdoctor.sources._wandb_url import parse_run_ref

    assert RunCache(world["root"] / "ldcache").load(parse_run_ref(url(world, run_id)), "x") is None, name


def test_no_network_and_refused_fail_fast(world, startup: float) -> None:
    for target, needle in (
        ("https://nonexistent-host.invalid/e/p/runs/x", "cannot resolve host"),
        ("http://127.0.0.1:1/e/p/runs/x", "connection refused"),
    ):
        code, err, wall, _ = child(world, target, timeout=30)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
        assert wall < 3, (target, wall, startup)  # no silent retries for 30 s


def test_run_after_faults_is_whole_and_cached(world) -> None:
    """The same server without faults: complete, cached, and equal to what the offline run holds."""
    code, err, _, _ = child(world, url(world, "exported"), timeout=30)
    assert code in (0, 1), err
    code, err, _, _ = child(world, url(world, "exported"), "--offline")
    assert code in (0, 1) and "run not cached" not in err, err


def test_deadline_covers_retries_in_process(world) -> None:
    """In-process: a server that answers 503 with Retry-After 1 forever ends at the deadline, and the worker
    threads of a hanging page fetch are gone (cancelled) shortly after the error."""
    import threading

    from lossdoctor.errors import SourceError
    from lossdoctor.sources import ReadOptions, read_runs

    server = world["server"]
    os.environ["WANDB_API_KEY"] = KEY
    server.fail("Run", 503, times=1000, headers={"Retry-After": "1"})
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="HTTP 503"):
        read_runs(url(world), ReadOptions(refresh=True, timeout=2.5, cache_dir=str(world["root"] / "c2")))
    assert time.monotonic() - t0 <= 2.5 + 2
    server.failures.clear()
    server.fail("SampledHistoryPage", hang=True, times=1000)
    try:
        with pytest.raises(SourceError, match="did not answer within the 2s budget"):
            read_runs(url(world), ReadOptions(refresh=True, timeout=2, cache_dir=str(world["root"] / "c2")))
    finally:
        server.failures.clear()
    time.sleep(0.5)
    assert not [t for t in threading.enumerate() if t.name.startswith("wandb-") and not t.daemon]
    assert math.isfinite(t0)
