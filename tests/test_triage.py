"""Triage: `lossdoctor analyze ENTITY/PROJECT` through the real wandb client against the local GraphQL server
(a project with healthy, overfitting, NaN and diverging runs plus broken ones), and a directory of runs.
Every run must come back as exactly one row: fetched, cached, read, or an error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from wandb_fake_server import FakeWandbServer, project_of_runs  # noqa: E402

from lossdoctor.errors import UsageError  # noqa: E402
from lossdoctor.triage import parse_filters, parse_project_ref  # noqa: E402

KEY = "dummykeySECRET0123456789abcdef0123456789abcdef"
N = 24
BROKEN = {3: "error", 5: "vanished", 7: "empty"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("triage")
    env = dict(
        os.environ,
        HOME=str(root / "home"),
        WANDB_CONFIG_DIR=str(root / "cfg"),
        WANDB_CACHE_DIR=str(root / "wc"),
        WANDB_API_KEY=KEY,
        WANDB_ERROR_REPORTING="false",
        WANDB_SILENT="true",
        LOSSDOCTOR_CACHE_DIR=str(root / "ldcache"),
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
    )
    env.pop("WANDB_BASE_URL", None)
    with FakeWandbServer() as server:
        runs = project_of_runs(server, N, broken=BROKEN)
        yield {"server": server, "runs": runs, "env": env, "root": root}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lossdoctor", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )


def test_project_every_run_accounted_for_worst_first(project, tmp_path: Path) -> None:
    url = f"{project['server'].url}/team/sweep"
    proc = cli(project["env"], "analyze", url, "--out", str(tmp_path / "t"), "--timeout", "4", "--jobs", "6")
    assert proc.returncode == 2, proc.stderr  # broken runs are error lines: exit 2 after the rest
    doc = json.loads((tmp_path / "t" / "summary.json").read_text())
    rows = doc["runs"]
    assert sorted(r["run"] for r in rows) == sorted(r.run_id for r in project["runs"])
    errors = {r["run"] for r in rows if r["status"] == "error"}
    assert errors == {f"run{i:04d}" for i in BROKEN}
    assert {r["status"] for r in rows} == {"fetched", "error"}
    order = [r["level"] for r in rows]
    rank = {"unreadable": 0, "incomplete": 1, "error": 2, "warning": 3, "info": 4, "ok": 5}
    assert order == sorted(order, key=rank.__getitem__)  # worst first
    by_run = {r["run"]: r for r in rows}
    nan_run = next(r for r in project["runs"] if r.name.startswith("nan") and r.broken is None)
    assert by_run[nan_run.run_id]["level"] == "error" and "nonfinite" in by_run[nan_run.run_id]["top_finding"]
    over = next(r for r in project["runs"] if r.name.startswith("overfitting"))
    assert by_run[over.run_id]["top_finding"].startswith("overfitting")
    assert by_run[over.run_id]["best_eval"] != "-" and by_run[over.run_id]["onset"] != "-"
    for r in rows:  # each readable run has its own report
        if r["status"] != "error":
            assert (tmp_path / "t" / r["report"]).is_file()
    # progress on stderr, one line per run, and the table on stdout
    assert sum(1 for ln in proc.stderr.splitlines() if ln.startswith("[")) == N
    assert proc.stdout.splitlines()[0].split()[:2] == ["run", "status"]
    # a second triage answers the finished runs from the cache
    again = cli(project["env"], "analyze", url, "--out", str(tmp_path / "t2"), "--timeout", "4")
    rows2 = json.loads((tmp_path / "t2" / "summary.json").read_text())["runs"]
    assert {r["status"] for r in rows2} == {"cached", "error"} and len(rows2) == N, again.stderr


def test_project_filter_limit_and_sweep_url(project, tmp_path: Path) -> None:
    base = project["server"].url
    proc = cli(
        project["env"],
        "analyze",
        f"{base}/team/sweep",
        "--filter",
        "tag=nan",
        "--out",
        str(tmp_path / "a"),
        "--format",
        "json",
    )
    rows = json.loads((tmp_path / "a" / "summary.json").read_text())["runs"]
    want = sorted(r.run_id for r in project["runs"] if "nan" in r.tags)
    assert sorted(r["run"] for r in rows) == want and proc.returncode == 1, proc.stderr
    proc = cli(
        project["env"],
        "analyze",
        f"{base}/team/sweep/sweeps/sweep1",
        "--filter",
        "state=finished",
        "--limit",
        "3",
        "--out",
        str(tmp_path / "b"),
    )
    rows = json.loads((tmp_path / "b" / "summary.json").read_text())["runs"]
    assert len(rows) == 3
    listed = {r.run_id for r in project["runs"] if r.sweep == "sweep1" and r.state == "finished"}
    assert {r["run"] for r in rows} <= listed
    bad = cli(project["env"], "analyze", f"{base}/team/nosuch")
    assert bad.returncode == 2 and "not found" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_directory_of_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    corpus = ROOT / "tests" / "corpus"
    for name in ("gen-healthy-1", "gen-nan-1", "gen-overfit-epochs-1"):
        (runs / name).mkdir()
        (runs / name / "trainer_state.json").write_bytes((corpus / name / "trainer_state.json").read_bytes())
    (runs / "seed001.log").write_bytes((ROOT / "tests" / "data" / "console" / "seed001_console.log").read_bytes())
    (runs / "README.md").write_text("not a run")
    proc = subprocess.run(
        [sys.executable, "-m", "lossdoctor", "analyze", str(runs), "--out", str(tmp_path / "o"), "--fail-on", "never"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "o" / "summary.json").read_text())["runs"]
    assert [r["run"] for r in rows][0] == "gen-nan-1"  # the error-level run first
    assert sorted(r["run"] for r in rows) == ["gen-healthy-1", "gen-nan-1", "gen-overfit-epochs-1", "seed001.log"]
    assert all(r["status"] == "read" for r in rows)
    md = (tmp_path / "o" / "summary.md").read_text()
    assert "| gen-nan-1 |" in md or "gen\\-nan\\-1" in md


def test_project_refs_and_filters() -> None:
    env = {"WANDB_BASE_URL": "http://127.0.0.1:9"}
    ref = parse_project_ref("team/proj", env)
    assert ref is not None and (ref.api_base, ref.entity, ref.project) == ("http://127.0.0.1:9", "team", "proj")
    ref = parse_project_ref("https://wandb.ai/team/proj/sweeps/abc123", env)
    assert ref is not None and ref.sweep == "abc123" and ref.api_base == "https://api.wandb.ai"
    assert parse_project_ref("https://wandb.ai/team/proj/runs/abc", env) is None  # a run, not a project
    assert parse_project_ref("logs/train.log", env) is None  # a mistyped file
    assert parse_project_ref("a/b/c", env) is None
    assert parse_filters(("state=finished",)) == {"state": "finished"}
    assert parse_filters(("tag=a", "tag=b")) == {"tags": {"$in": ["a", "b"]}}
    assert parse_filters(("tag=a", "state=crashed"), sweep="s") == {
        "$and": [{"state": "crashed"}, {"sweep": "s"}, {"tags": {"$in": ["a"]}}]
    }
    with pytest.raises(UsageError):
        parse_filters(("colour=red",))


def _runs_in_process(project, monkeypatch, items, timeout: float, cache: Path, jobs: int):
    from lossdoctor.sources.base import ReadOptions
    from lossdoctor.triage import fetch_all

    monkeypatch.setenv("WANDB_API_KEY", KEY)
    return {f.item.label: f for f in fetch_all(items, ReadOptions(timeout=timeout, cache_dir=str(cache)), jobs)}


def _run_requests(server, start: int, run_id: str) -> int:
    return sum(1 for r in server.requests[start:] if r["op"] == "Run" and r["variables"].get("name") == run_id)


def test_one_broken_run_gives_up_early_while_the_server_serves_the_others(project, monkeypatch, tmp_path) -> None:
    """A run whose every query answers HTTP 500 while the same server answers the other runs is that run's
    problem: it ends as an error line after OWN_FAULT_TRIES attempts, not after the whole budget (60 s here,
    which would be ~9 attempts at the client's backoff), and every other run is fetched."""
    from lossdoctor.sources._wandb_http import OWN_FAULT_TRIES
    from lossdoctor.triage import expand

    server = project["server"]
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    items = expand((f"{server.url}/team/sweep",), (), None, 10, False)
    assert items is not None
    start = len(server.requests)
    got = _runs_in_process(project, monkeypatch, items, 60, tmp_path / "c", 6)
    assert sorted(got) == sorted(r.run_id for r in project["runs"])
    broken = got["run0003"]
    assert broken.status == "error" and "serves other runs but not this one" in broken.error, broken.error
    assert f"gave up after {OWN_FAULT_TRIES} attempts" in broken.error and "HTTP 500" in broken.error
    assert _run_requests(server, start, "run0003") == OWN_FAULT_TRIES
    assert {f.status for k, f in got.items() if int(k[3:]) not in BROKEN} == {"fetched"}


def test_server_wide_transient_outage_still_gets_the_full_retry_budget(project, monkeypatch, tmp_path) -> None:
    """Every query answers 500 for a while (all runs at once: an outage, not one run's fault), then the
    server is fine: every run is fetched, although some failed OWN_FAULT_TRIES times or more first."""
    from lossdoctor.sources._wandb_http import OWN_FAULT_TRIES
    from lossdoctor.triage import Item, expand

    server = project["server"]
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    listed = expand((f"{server.url}/team/sweep",), (), None, 10, False)
    assert listed is not None
    items: list[Item] = [it for it in listed if int(it.label[3:]) not in BROKEN][:4]
    start = len(server.requests)
    server.fail(None, 500, times=4 * OWN_FAULT_TRIES)  # the 4 runs' first attempts all fail
    try:
        got = _runs_in_process(project, monkeypatch, items, 60, tmp_path / "c", 4)
    finally:
        server.failures.clear()
    assert {f.status for f in got.values()} == {"fetched"}, [f.error for f in got.values()]
    attempts = [_run_requests(server, start, it.label) for it in items]
    assert max(attempts) > OWN_FAULT_TRIES, attempts  # failed OWN_FAULT_TRIES times and still went on


def test_server_health_tells_one_runs_fault_from_an_outage() -> None:
    from lossdoctor.sources._wandb_http import ServerHealth

    h = ServerHealth()
    h.record(1, False)
    since = 0.0
    assert not h.others_fine_since(1, since)  # nobody else heard from: alone, keep retrying
    h.record(2, True)
    assert not h.others_fine_since(1, since)  # one witness is not enough
    h.record(3, True)
    h.record(4, True)
    h.record(5, False)  # another broken run among healthy ones
    assert h.others_fine_since(1, since)
    h.record(6, False)
    h.record(7, False)
    assert not h.others_fine_since(1, since)  # others failing too: a flaky server or an outage
    h.record(6, True)
    h.record(7, True)
    assert h.others_fine_since(1, since)  # the latest answer per client counts
    import time

    assert not h.others_fine_since(1, time.monotonic() + 1)  # only answers since the first failure count


def test_judging_in_worker_processes_gives_what_judging_inline_gives(tmp_path: Path) -> None:
    """A large triage judges (diagnose + report) in worker processes: the same rows and the same report bytes
    as judging in the reading process; a report that cannot be written is the same one-line error."""
    from lossdoctor.rules.packs import load_rules
    from lossdoctor.sources import read_runs
    from lossdoctor.triage import POOL_MIN_RUNS, Fetched, Item, Judges
    from lossdoctor.workers import usable_cpus

    if usable_cpus() < 2:
        pytest.skip("one CPU: triage judges inline")
    ruleset = load_rules(())
    names = ("gen-healthy-1", "gen-nan-1", "gen-overfit-epochs-1")
    runs = {n: read_runs(str(ROOT / "tests" / "corpus" / n / "trainer_state.json"))[0] for n in names}
    got = {}
    for how, size in (("pool", POOL_MIN_RUNS), ("inline", 1)):
        base = tmp_path / how
        judges = Judges(ruleset, ("json", "md"), base, size)
        assert judges.in_processes == (how == "pool")
        try:
            for n, run in runs.items():
                judges.submit(Fetched(Item(n, n), (run,), "read"), run, base / n)
            got[how] = {f.item.label: j for f, j in judges.take(wait=True)}
        finally:
            judges.close()
    assert got["pool"] == got["inline"] and sorted(got["pool"]) == sorted(names)
    assert got["pool"]["gen-nan-1"].level == "error" and "nonfinite" in got["pool"]["gen-nan-1"].top_finding
    for n in names:
        for f in ("diagnosis.json", "report.md"):
            assert (tmp_path / "pool" / n / f).read_bytes() == (tmp_path / "inline" / n / f).read_bytes()
    (tmp_path / "blocked").write_text("a file where the report directory goes")
    judges = Judges(ruleset, ("json",), tmp_path, POOL_MIN_RUNS)
    try:
        judges.submit(Fetched(Item("x", "x"), (runs[names[0]],), "read"), runs[names[0]], tmp_path / "blocked")
        with pytest.raises(UsageError, match="cannot write report"):
            judges.take(wait=True)
    finally:
        judges.close()


def test_large_project_triage_through_the_cli(tmp_path: Path) -> None:
    """POOL_MIN_RUNS W&B runs: the CLI judges them in worker processes (the forkserver re-imports the CLI's main
    module in each worker), and every run is still one row with its report, worst first."""
    from lossdoctor.triage import POOL_MIN_RUNS

    env = dict(os.environ, HOME=str(tmp_path / "home"), WANDB_API_KEY=KEY, LOSSDOCTOR_CACHE_DIR=str(tmp_path / "c"))
    env.pop("WANDB_BASE_URL", None)
    with FakeWandbServer() as server:
        runs = project_of_runs(server, POOL_MIN_RUNS)
        proc = cli(env, "analyze", f"{server.url}/team/sweep", "--out", str(tmp_path / "o"), "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "o" / "summary.json").read_text())["runs"]
    assert sorted(r["run"] for r in rows) == sorted(r.run_id for r in runs)
    assert {r["status"] for r in rows} == {"fetched"}
    rank = {"unreadable": 0, "incomplete": 1, "error": 2, "warning": 3, "info": 4, "ok": 5}
    assert [r["level"] for r in rows] == sorted((r["level"] for r in rows), key=rank.__getitem__)  # worst first
    nan = {r.run_id for r in runs if r.name.startswith("nan")}
    assert {r["level"] for r in rows if r["run"] in nan} == {"error"}
    assert all((tmp_path / "o" / r["report"]).is_file() for r in rows)
    assert "Traceback" not in proc.stderr
