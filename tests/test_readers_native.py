"""Detection across the native readers (LLaMA-Factory, trackio, MLflow, old W&B): each new format is claimed by
its reader, no older fixture is taken by one of them, and bad input is one line naming the file, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import detect, make_target

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
NEW_KINDS = {"llamafactory", "trackio", "mlflow", "wandb-history"}
NEW_FIXTURES = (DATA / "logs" / "llamafactory_medical", DATA / "wandb_old")


def older_fixtures() -> list[Path]:
    files = [
        p
        for p in sorted(DATA.rglob("*"))
        if p.is_file()
        and not p.name.endswith((".py", ".md"))
        and not any(p.is_relative_to(new) for new in NEW_FIXTURES)
    ]
    return files + sorted((ROOT / "examples" / "data").glob("*"))


def test_no_older_fixture_is_taken_by_a_new_reader() -> None:
    fixtures = older_fixtures()
    assert len(fixtures) >= 15
    for path in fixtures:
        try:
            kind = detect(make_target(str(path)))[0].kind
        except SourceError:
            continue
        assert kind not in NEW_KINDS, (path, kind)
    for directory in (DATA / "logs", DATA / "console", ROOT / "examples"):
        try:
            kind = detect(make_target(str(directory)))[0].kind
        except SourceError:
            continue
        assert kind not in NEW_KINDS, (directory, kind)


def test_each_new_format_is_claimed_by_its_reader() -> None:
    (run09,) = sorted((DATA / "wandb_old" / "v0.9" / "wandb").iterdir())
    cases = {
        DATA / "logs" / "llamafactory_medical": "llamafactory",
        DATA / "logs" / "llamafactory_medical" / "trainer_log.jsonl": "llamafactory",
        run09: "wandb-history",
        run09 / "wandb-history.jsonl": "wandb-history",
    }
    for path, kind in cases.items():
        assert detect(make_target(str(path)))[0].kind == kind, path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "lossdoctor", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


def _truncated_sqlite(tmp: Path, name: str) -> Path:
    import sqlite3

    full = tmp / f"full-{name}"
    with sqlite3.connect(full) as conn:
        conn.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_name TEXT, step INTEGER, metrics TEXT)")
        conn.executemany(
            "INSERT INTO metrics (run_name, step, metrics) VALUES ('r', ?, ?)",
            [(i, f'{{"loss": {i}}}') for i in range(5000)],
        )
    cut = tmp / name
    cut.write_bytes(full.read_bytes()[:150])
    return cut


@pytest.mark.parametrize(
    "case",
    [
        "trackio-truncated",
        "mlflow-truncated",
        "llamafactory-progress-only",
        "mlflow-empty-store",
        "wandb-history-garbage",
    ],
)
def test_bad_input_is_one_line_naming_the_file_exit_2(case: str, tmp_path: Path) -> None:
    if case == "trackio-truncated":
        target = _truncated_sqlite(tmp_path, "project.db")
    elif case == "mlflow-truncated":
        target = _truncated_sqlite(tmp_path, "mlflow.db")
    elif case == "llamafactory-progress-only":
        target = tmp_path / "trainer_log.jsonl"
        target.write_text('{"current_steps": 5, "total_steps": 10, "percentage": 50.0}\n')
    elif case == "mlflow-empty-store":
        target = tmp_path / "mlruns"
        (target / "0").mkdir(parents=True)
        (target / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: Default\nlifecycle_stage: active\n")
    else:
        target = tmp_path / "wandb" / "run-20200101_000000-abc"
        target.mkdir(parents=True)
        (target / "wandb-history.jsonl").write_text("\x00garbage\n")
    out = tmp_path / "reports"
    proc = cli("analyze", str(target), "--out", str(out))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(target) in lines[0]
    assert not out.exists() or not any(out.rglob("*"))
    shutil.rmtree(tmp_path, ignore_errors=True)
