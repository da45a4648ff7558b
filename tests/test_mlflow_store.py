"""The MLflow reader against stores written by the real MLflow client (tests/make_tracker_stores.py): the
mlruns/ file store and the mlflow.db SQLite store. Expected tables come from make_logs.formula().
"""

from __future__ import annotations

import math
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs

pytest.importorskip("mlflow")
sys.path.insert(0, str(Path(__file__).parent))
import make_tracker_stores as mk  # noqa: E402


def expected() -> pd.DataFrame:
    return pd.DataFrame(mk.make_logs.formula(), columns=["step", "metric", "value"]).astype(
        {"step": "int64", "value": "float64"}
    )


def core(run) -> pd.DataFrame:
    return (
        run.frame()
        .astype({"metric": "str"})[["step", "metric", "value"]]
        .sort_values(["step", "metric"])
        .reset_index(drop=True)
    )


@pytest.fixture(scope="module", params=["mlflow-file", "mlflow-sqlite"])
def store(request, tmp_path_factory) -> Path:
    return mk.make(request.param, tmp_path_factory.mktemp(request.param))


def test_store_is_detected_and_the_latest_run_read(store: Path) -> None:
    source, confidence = detect(make_target(str(store)))
    assert source.kind == "mlflow" and confidence >= 0.85
    (run,) = read_runs(str(store))
    assert run.name == "second" and run.state == "finished"
    train = {s: v + 1 for s, m, v in mk.make_logs.formula() if m == "train/loss"}
    assert run.series("train/loss").to_dict() == train
    evals = run.series("eval/loss")
    assert math.isnan(evals[mk.NAN_STEP]) and evals[mk.INF_STEP] == math.inf
    assert any("holds 2 runs" in n for n in run.provenance.notes)


def test_all_runs_params_tags_and_times(store: Path) -> None:
    first, second = read_runs(str(store), ReadOptions(all_runs=True))
    assert (first.name, second.name) == ("first", "second")
    pd.testing.assert_frame_equal(core(first), expected())
    assert first.config["learning_rate"] == 0.0002 and first.config["model"] == "tiny"
    assert first.config["tags.purpose"] == "lossdoctor test"
    assert not any(k.startswith("tags.mlflow.") for k in first.config)
    assert first.created is not None and np.isfinite(first.metrics["wall_time"]).all()


def test_project_dir_run_dir_and_experiment_dir(store: Path) -> None:
    (run,) = read_runs(str(store.parent))  # the directory holding mlruns/ or mlflow.db
    assert run.name == "second"
    if store.is_dir():  # the file store: one run, one experiment
        (first_dir,) = [
            d
            for e in store.iterdir()
            if (e / "meta.yaml").is_file()
            for d in e.iterdir()
            if (d / "meta.yaml").is_file() and "first" in (d / "meta.yaml").read_text()
        ]
        assert detect(make_target(str(first_dir)))[0].kind == "mlflow"
        (run,) = read_runs(str(first_dir))
        pd.testing.assert_frame_equal(core(run), expected())
        (run,) = read_runs(str(first_dir.parent))
        assert run.name == "second"


def test_reading_needs_no_mlflow(store: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    (run,) = read_runs(str(store))
    assert run.name == "second"


def test_bad_stores_are_one_clear_error(store: Path, tmp_path: Path) -> None:
    if store.is_file():
        data = store.read_bytes()
        for size in (len(data) // 3, 100):
            cut = tmp_path / "mlflow.db"
            cut.write_bytes(data[:size])
            with pytest.raises(SourceError) as err:
                read_runs(str(cut))
            assert str(err.value).startswith(str(cut)) and "\n" not in str(err.value)
            assert "SQLite" in str(err.value)
        empty = tmp_path / "empty" / "mlflow.db"
        empty.parent.mkdir()
        shutil.copy(store, empty)
        with sqlite3.connect(empty) as conn:
            conn.execute("DELETE FROM runs")
        with pytest.raises(SourceError, match="no MLflow runs"):
            read_runs(str(empty))
    else:
        empty = tmp_path / "mlruns"
        shutil.copytree(store, empty)
        for exp in empty.iterdir():
            for run_dir in [d for d in exp.iterdir() if d.is_dir()] if exp.is_dir() else []:
                shutil.rmtree(run_dir)
        assert detect(make_target(str(empty)))[0].kind == "mlflow"
        with pytest.raises(SourceError, match="no MLflow runs"):
            read_runs(str(empty))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("nothing here\n")
    with pytest.raises(SourceError, match="no MLflow runs here"):
        read_runs(str(plain), ReadOptions(source_kind="mlflow"))


def test_hf_summary_metrics_are_not_points(tmp_path: Path) -> None:
    """MLflowCallback logs the Trainer's summary (train_runtime, train_loss, ...) at the last step. Written in the
    file store's documented line format ('timestamp value step') since it is the layout under test."""
    run_dir = tmp_path / "mlruns" / "1" / "abc"
    (run_dir / "metrics").mkdir(parents=True)
    (tmp_path / "mlruns" / "1" / "meta.yaml").write_text("experiment_id: '1'\nname: hf\nlifecycle_stage: active\n")
    (run_dir / "meta.yaml").write_text(
        "run_id: abc\nrun_name: hf\nstatus: 3\nstart_time: 1700000000000\nlifecycle_stage: active\n"
    )
    lines = "".join(f"{1700000000000 + s} {3.0 - s / 10} {s}\n" for s in range(1, 11))
    (run_dir / "metrics" / "loss").write_text(lines)
    (run_dir / "metrics" / "train_loss").write_text("1700000000100 2.45 10\n")
    (run_dir / "metrics" / "train_runtime").write_text("1700000000100 12.5 10\n")
    (run,) = read_runs(str(tmp_path / "mlruns"))
    assert run.series("train/loss").to_dict() == {s: 3.0 - s / 10 for s in range(1, 11)}
    assert run.summary == {"train_loss": 2.45, "train_runtime": 12.5}
