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
