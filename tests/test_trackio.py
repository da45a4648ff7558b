"""The trackio reader against projects written by the real trackio package (tests/make_tracker_stores.py).

Expected tables come from make_logs.formula(), never from reading the store back.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs

pytest.importorskip("trackio")
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


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return mk.make("trackio", tmp_path_factory.mktemp("trackio"))


def test_project_file_is_detected_and_the_latest_run_read(project: Path) -> None:
    source, confidence = detect(make_target(str(project)))
    assert (source.kind, confidence) == ("trackio", 1.0)
    (run,) = read_runs(str(project))
    assert run.name == "hf-style"
    # the TrackioCallback way: no step given, train/global_step in every row → rows placed at it
    assert run.provenance.step_source == "train/global_step"
    pd.testing.assert_frame_equal(core(run), expected())
    assert "train/global_step" not in set(run.metrics["metric"])
    assert any("holds 2 runs" in n for n in run.provenance.notes)


def test_all_runs_with_config_and_wall_time(project: Path) -> None:
    first, hf = read_runs(str(project), ReadOptions(all_runs=True))
    assert (first.name, hf.name) == ("first", "hf-style")
    pd.testing.assert_frame_equal(core(first), expected())
    assert first.provenance.step_source == "logged"
    assert first.config == {"learning_rate": 0.0002, "lora.r": 8, "lora.alpha": 16, "model": "tiny"}
    assert first.created is not None and first.created <= hf.created
    assert np.isfinite(first.metrics["wall_time"]).all()


def test_trackio_dir_is_detected(project: Path) -> None:
    source, confidence = detect(make_target(str(project.parent)))
    assert (source.kind, confidence) == ("trackio", 0.7)
    (run,) = read_runs(str(project.parent))
    assert run.name == "hf-style"


def test_truncated_project_is_one_clear_error(project: Path, tmp_path: Path) -> None:
    data = project.read_bytes()
    for size in (len(data) // 2, 200):
        cut = tmp_path / f"cut{size}.db"
        cut.write_bytes(data[:size])
        with pytest.raises(SourceError) as err:
            read_runs(str(cut))
        message = str(err.value)
        assert message.startswith(str(cut)) and "\n" not in message
        assert "SQLite" in message or "trackio" in message, message


def test_empty_project_and_foreign_sqlite(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    shutil.copy(project, empty)
    with sqlite3.connect(empty) as conn:
        conn.execute("DELETE FROM metrics")
    with pytest.raises(SourceError, match="no runs in trackio project 'empty'"):
        read_runs(str(empty))
    foreign = tmp_path / "notes.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, 'hello')")
    assert detect_kind_or_none(foreign) != "trackio"
    with pytest.raises(SourceError, match="without trackio's tables"):
        read_runs(str(foreign), ReadOptions(source_kind="trackio"))


def test_nothing_in_the_file_is_executed(project: Path, tmp_path: Path) -> None:
    """A view and a trigger planted in the file are never used: the reader selects from the table only."""
    planted = tmp_path / "planted.db"
    shutil.copy(project, planted)
    with sqlite3.connect(planted) as conn:
        conn.execute("CREATE TABLE log (x TEXT)")
        conn.execute("CREATE TRIGGER t AFTER INSERT ON metrics BEGIN INSERT INTO log VALUES ('ran'); END")
        conn.execute("CREATE VIEW metrics_view AS SELECT * FROM metrics")
    before = planted.read_bytes()
    (run,) = read_runs(str(planted))
    pd.testing.assert_frame_equal(core(run), expected())
    assert planted.read_bytes() == before


def detect_kind_or_none(path: Path) -> str | None:
    try:
        return detect(make_target(str(path)))[0].kind
    except SourceError:
        return None
