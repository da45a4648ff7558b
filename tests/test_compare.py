"""`lossdoctor compare`: findings matched across runs, the verdict-level diff, the pick of the best run, the four
formats and the --fail-on-new gate. The runs are real tiny trainings (tests/data/compare/make_runs.py) and the
seed-001 console log; the slow test trains them again and checks the same verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossdoctor import analyze, load_run
from lossdoctor.compare import FIXED, NEW, PERSISTING, compare, gate_new, run_keys

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "tests" / "data" / "compare"
SEED001 = ROOT / "tests" / "data" / "console" / "seed001_console.log"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "lossdoctor", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=300,
    )


def diag(path: Path):
    return analyze(load_run(str(path)))


def row(cmp, rule_id: str):
    return next(r for r in cmp.rows if r.rule_id == rule_id)


def test_fixed_rerun_says_overfitting_fixed_and_picks_it() -> None:
    a, b = diag(RUNS / "overfit"), diag(RUNS / "fixed")
    assert any(f.rule_id == "overfitting" for f in a.findings)
    assert not any(f.rule_id == "overfitting" for f in b.findings)
    cmp = compare([a, b])
    assert row(cmp, "overfitting").status == ("baseline", FIXED)
    assert "overfitting fixed" in cmp.headlines[0]
    assert cmp.best == 1 and cmp.best_reason.startswith("B (fixed)")
    assert "final eval loss" in cmp.best_reason  # the reason names what decided


def test_seed001_log_against_the_fixed_rerun() -> None:
    cmp = compare([diag(SEED001), diag(RUNS / "fixed")])
    assert "overfitting fixed" in cmp.headlines[0]
    assert cmp.best == 1


def test_same_finding_persists_with_its_onset_shift() -> None:
    a, c = diag(RUNS / "overfit"), diag(RUNS / "overfit-slow")
    fa = next(f for f in a.findings if f.rule_id == "overfitting")
    fc = next(f for f in c.findings if f.rule_id == "overfitting")
    assert fa.first_step != fc.first_step
    r = row(compare([a, c]), "overfitting")
    assert r.status[1] == PERSISTING
    later = fc.first_step > fa.first_step
    assert f"onset step {fa.first_step} → {fc.first_step}" in r.details[1]
    assert ("later" if later else "earlier") in r.details[1]
    assert r.trend[1] in ("better", "mixed") if later else r.trend[1] in ("worse", "mixed")


def test_new_finding_and_gate() -> None:
    healthy, sick = diag(RUNS / "fixed"), diag(RUNS / "overfit")
    cmp = compare([healthy, sick])
    assert row(cmp, "overfitting").status == ("baseline", NEW)
    assert gate_new(cmp, "warning") and not gate_new(cmp, "error") and not gate_new(cmp, "never")
    # the other way round nothing warning-level is new
    assert not gate_new(compare([sick, healthy]), "warning")


def test_run_keys() -> None:
    assert run_keys(3) == ("A", "B", "C")
    assert run_keys(28)[25:] == ("Z", "AA", "AB")


def test_cli_formats_exit_codes_and_escaping(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    proc = cli(
        "compare",
        str(RUNS / "fixed"),
        str(RUNS / "overfit"),
        "--out",
        str(out),
        "--format",
        "html,md,json,txt",
        "--fail-on-new",
        "warning",
    )
    assert proc.returncode == 1, proc.stderr  # B adds overfitting, a warning
    assert "B vs A: " in proc.stdout and "new overfitting (warning)" in proc.stdout
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["schema"] == "lossdoctor.comparison" and doc["baseline"] == "A"
    ov = next(r for r in doc["findings"] if r["rule_id"] == "overfitting")
    assert ov["runs"]["B"]["status"] == "new" and ov["runs"]["A"]["where"] is None
    assert doc["best"]["key"] == "A"
    html = (out / "compare.html").read_text()
    assert 'id="finding-B-overfitting"' in html  # B's finding span on the overlay plot
    md = (out / "compare.md").read_text()
    # no image files (a PR comment cannot show them): each run's key series as a sparkline row
    assert not (out / "plots").exists() and ".png" not in md
    assert "| Eval loss | A: " in md and "| Eval loss | B: " in md
    assert (out / "compare.txt").read_text().startswith("compare: A = ")
    # no gate by default
    assert (
        cli(
            "compare", str(RUNS / "fixed"), str(RUNS / "overfit"), "--out", str(tmp_path / "c2"), "--format", "json"
        ).returncode
        == 0
    )


def test_cli_needs_two_runs_and_escapes_names(tmp_path: Path) -> None:
    proc = cli("compare", str(RUNS / "fixed"), "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "at least two runs" in proc.stderr and not (tmp_path / "x").exists()
    # a run named like markup comes out escaped
    evil = tmp_path / "<script>alert(1)<"
    evil.mkdir()
    (evil / "trainer_state.json").write_text((RUNS / "overfit" / "trainer_state.json").read_text())
    proc = cli("compare", str(evil), str(RUNS / "fixed"), "--out", str(tmp_path / "e"), "--format", "html,md")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "e" / "compare.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<script>" not in (tmp_path / "e" / "compare.md").read_text()


@pytest.mark.slow
def test_real_training_fix_and_regression(tmp_path: Path) -> None:
    """Train the three runs again (real trl + peft on CPU) and compare them: the verdicts hold."""
    sys.path.insert(0, str(RUNS))
    import make_runs

    make_runs.main([str(tmp_path)])
    proc = cli(
        "compare",
        str(tmp_path / "overfit"),
        str(tmp_path / "fixed"),
        str(tmp_path / "overfit-slow"),
        "--out",
        str(tmp_path / "r"),
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    assert "B vs A: overfitting fixed" in proc.stdout
    assert "C vs A:" in proc.stdout and "overfitting persisting" in proc.stdout and "onset step" in proc.stdout
    doc = json.loads((tmp_path / "r" / "comparison.json").read_text())
    assert doc["best"]["key"] == "B"
