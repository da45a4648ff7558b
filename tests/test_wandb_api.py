"""The W&B API reader (lossdoctor's bounded GraphQL client, sending what wandb 0.31 sends) against
tests/wandb_fake_server.py, serving runs made by the real wandb package offline and parsed by lossdoctor's own
.wandb reader. Failure modes (hangs, trickles, huge bodies, file:// URLs, empty answers) are in
tests/test_wandb_faults.py.

Isolation: HOME, WANDB_CONFIG_DIR and WANDB_CACHE_DIR point into a temp dir (no netrc, no user settings),
WANDB_ERROR_REPORTING=false, a dummy 40+ character key. One wandb-core service serves the whole module.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import make_wandb_runs as mk  # noqa: E402
from wandb_fake_server import FakeRun, FakeWandbServer  # noqa: E402

from lossdoctor.errors import SourceError  # noqa: E402
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs  # noqa: E402
from lossdoctor.sources.wandb_offline import read_wandb_file  # noqa: E402

KEY = "dummykeySECRET0123456789abcdef0123456789abcdef"
E, P = "test-entity", "test-project"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("wandb-api")
    spec = mk.RunSpec()
    run_dir = mk.make_offline_run(root / "made", spec)
    log = read_wandb_file(next(run_dir.glob("*.wandb")))
    mp = pytest.MonkeyPatch()
    for k, v in {
        "HOME": str(root / "home"),
        "WANDB_CONFIG_DIR": str(root / "cfg"),
        "WANDB_CACHE_DIR": str(root / "wcache"),
        "WANDB_API_KEY": KEY,
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_SILENT": "true",
        "LOSSDOCTOR_CACHE_DIR": str(root / "ldcache"),
    }.items():
        mp.setenv(k, v)
    mp.delenv("WANDB_BASE_URL", raising=False)
    mp.delenv("WANDB_ENTITY", raising=False)
    with FakeWandbServer() as server:
        server.add_run(FakeRun.from_log(log, run_id="r-offline"))
        # the same rows, the first 150 as a parquet export and the rest as live pages
        server.add_run(FakeRun.from_log(log, run_id="r-parquet", exported_rows=150))
        server.add_run(FakeRun.from_log(log, run_id="r-running", state="running"))
        yield {"server": server, "spec": spec, "log": log, "root": root, "run_dir": run_dir}
    mp.undo()


def url(world, run_id: str, tail: str = "") -> str:
    return f"{world['server'].url}/{E}/{P}/runs/{run_id}{tail}"


def fresh(timeout: float = 20.0, **kw) -> ReadOptions:
    return ReadOptions(refresh=True, timeout=timeout, **kw)


def same_series(a, b) -> None:
    assert a.index.tolist() == b.index.tolist()
    for x, y in zip(a.tolist(), b.tolist()):
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-12)


@pytest.mark.parametrize("run_id", ["r-offline", "r-parquet"])
def test_api_run_equals_offline_run_and_formula(world, run_id: str) -> None:
    start = len(world["server"].requests)
    (api_run,) = read_runs(url(world, run_id, "/overview?nw=nwuserme"), fresh())
    ops = world["server"].ops()[start:]
    assert any(op.startswith("GET /files/") for op in ops) == (run_id == "r-parquet")
    assert "SampledHistoryPage" in ops  # live rows (all of r-offline, the tail of r-parquet)
    (offline,) = read_runs(str(world["run_dir"]))
    assert api_run.provenance.kind == "wandb-api"
    assert api_run.provenance.step_source == "train/global_step"
    for metric in ("train/loss", "eval/loss", "train/grad_norm"):
        same_series(api_run.series(metric), offline.series(metric))
    exp = mk.expected_points(world["spec"])
    assert math.isnan(api_run.series("train/loss").loc[10 * mk.STEP_FACTOR])
    assert math.isinf(api_run.series("train/grad_norm").loc[11 * mk.STEP_FACTOR])
    assert api_run.series("eval/loss").to_dict() == pytest.approx(exp["eval/loss"])
    assert api_run.state == "finished" and api_run.name == world["spec"].name
    assert api_run.tags == world["spec"].tags and api_run.config["learning_rate"] == 0.001
    assert api_run.config["model.layers"] == 2
    assert KEY not in repr((api_run.config, api_run.summary, api_run.provenance, api_run.name))


def test_url_forms_reach_the_same_run_and_cache_serves_without_network(world, monkeypatch) -> None:
    server = world["server"]
    (first,) = read_runs(url(world, "r-offline", "/logs"), fresh())
    n = len(server.requests)
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    for form in (
        url(world, "r-offline"),
        url(world, "r-offline", "/files/output.log?x=1#f"),
        f"{E}/{P}/runs/r-offline",
        f"{E}/{P}/r-offline",
    ):
        (run,) = read_runs(form, ReadOptions(timeout=20))
        same_series(run.series("train/loss"), first.series("train/loss"))
        assert any("local cache" in note for note in run.provenance.notes)
    assert len(server.requests) == n  # finished run: served from cache, no request at all
    (offline,) = read_runs(url(world, "r-offline"), ReadOptions(offline=True))
    same_series(offline.series("eval/loss"), first.series("eval/loss"))
    read_runs(url(world, "r-offline"), ReadOptions(refresh=True, timeout=20))
    assert len(server.requests) > n  # --refresh refetches
    for path in Path(world["root"], "ldcache").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()
    assert detect(make_target(url(world, "r-offline")))[0].kind == "wandb-api"


def test_offline_without_cache_is_an_error(world) -> None:
    with pytest.raises(SourceError, match="run not cached; run once without --offline"):
        read_runs(url(world, "never-fetched"), ReadOptions(offline=True))


def test_running_run_is_analysed_so_far_and_not_served_from_cache(world) -> None:
    server = world["server"]
    (run,) = read_runs(url(world, "r-running"), fresh())
    assert run.state == "running"
    assert any("still running" in note for note in run.provenance.notes)
    n = len(server.requests)
    read_runs(url(world, "r-running"), ReadOptions(timeout=20))
    assert len(server.requests) > n


@pytest.mark.parametrize(
    "op,status,expect",
    [
        ("Run", 401, "W&B rejected the API key (HTTP 401)"),
        ("Run", 403, "W&B rejected the API key (HTTP 403)"),
        ("Run", 404, "no W&B API at"),  # an HTTP 404 is a wrong endpoint; a missing run is run: null
    ],
)
def test_http_errors_are_one_line(world, op: str, status: int, expect: str) -> None:
    world["server"].fail(op, status)
    with pytest.raises(SourceError) as info:
        read_runs(url(world, "r-offline"), fresh())
    message = str(info.value)
    assert expect in message and "\n" not in message and KEY not in message
    assert message.startswith(url(world, "r-offline"))


def test_unknown_run_is_not_found(world) -> None:
    with pytest.raises(SourceError, match="run not found: test-entity/test-project/nope"):
        read_runs(url(world, "nope"), fresh())


@pytest.mark.parametrize("status,headers", [(429, {"Retry-After": "1"}), (500, {}), (503, {})])
def test_transient_failures_are_retried(world, status: int, headers: dict) -> None:
    server = world["server"]
    server.fail("Run", status, times=1, headers=headers)
    start = len(server.requests)
    (run,) = read_runs(url(world, "r-offline"), fresh(timeout=20))
    assert len(run.series("train/loss")) == world["spec"].steps
    assert server.ops()[start:].count("Run") == 2  # the failure, then the retry


def test_persistent_5xx_and_hang_stop_within_the_budget(world) -> None:
    server = world["server"]
    for kwargs, expect in (
        ({"status": 500, "times": 1000}, "kept failing within the 4s budget: .*HTTP 500"),
        ({"hang": True, "times": 1000}, "did not answer within the 4s budget"),
    ):
        server.fail("Run", **kwargs)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=expect):
            read_runs(url(world, "r-offline"), fresh(timeout=4))
        assert time.monotonic() - t0 < 4 * 2
        server.failures.clear()


def test_no_key_unreachable_host_and_not_a_run(world, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY")
    with pytest.raises(SourceError, match="no W&B API key: set WANDB_API_KEY or run `wandb login`"):
        read_runs(url(world, "r-offline"), fresh())
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    with pytest.raises(SourceError, match="cannot reach W&B host http://127.0.0.1:1: .*connection refused"):
        read_runs("http://127.0.0.1:1/e/p/runs/x", fresh(timeout=3))
    with pytest.raises(SourceError, match="not a run URL: https://wandb.ai/e/p/workspace"):
        read_runs("https://wandb.ai/e/p/workspace?nw=1")
