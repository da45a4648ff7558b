"""The CLI contract: exit codes 0/1/2, one-line errors naming the file, nothing written on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_version_and_help() -> None:
    from lossdoctor import __version__

    assert cli("--version").stdout.strip().endswith(__version__)
    for command in ("analyze", "rules", "train", "sources"):
        proc = cli(command, "--help")
        assert proc.returncode == 0 and "Usage:" in proc.stdout, (command, proc.stderr)


def test_analyze_does_not_import_torch() -> None:
    code = (
        "import sys, lossdoctor.cli, lossdoctor.commands.analyze, lossdoctor.sources as s; s.registry(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b"", "empty file"),
        (bytes(range(256)) * 40, "binary file"),
        (b"hello\nthis log has no metrics at all\njust words\n", "no training metrics"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path: Path, content: bytes, fragment: str) -> None:
    bad = tmp_path / "run.log"
    bad.write_bytes(content)
    out = tmp_path / "out"
    proc = cli("analyze", str(bad), "--out", str(out))
    assert_one_line_error(proc, str(bad), fragment)
    assert not out.exists()


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "trainer_state.json"
    proc = cli("analyze", str(missing), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, str(missing))
    assert not (tmp_path / "out").exists()


def test_bad_rule_files_exit_2_before_reading(tmp_path: Path) -> None:
    yaml_error = tmp_path / "broken.yaml"
    yaml_error.write_text("version: 1\nrules: [\n", encoding="utf-8")
    unknown_kind = tmp_path / "kind.yaml"
    unknown_kind.write_text(
        "version: 1\nrules:\n  - id: x\n    severity: error\n    title: X\n"
        "    when: {check: crystal-ball}\n    message: m\n",
        encoding="utf-8",
    )
    for rules, fragment in ((yaml_error, "YAML syntax error"), (unknown_kind, "unknown check kind 'crystal-ball'")):
        proc = cli("analyze", str(SEED001), "--rules", str(rules), "--out", str(tmp_path / "out"))
        assert_one_line_error(proc, str(rules), fragment)
        assert not (tmp_path / "out").exists()
    proc = cli("rules", "validate", str(unknown_kind))
    assert proc.returncode == 2 and f"{unknown_kind}:6:" in proc.stderr


def test_bad_format_is_usage_error(tmp_path: Path) -> None:
    proc = cli("analyze", str(SEED001), "--format", "html,pdf", "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "pdf")


def test_seed001_overfitting_gates_on_warning(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = cli("analyze", str(SEED001), "--format", "json,md,html", "--out", str(out), "--fail-on", "warning")
    assert proc.returncode == 1, proc.stderr
    data = json.loads((out / "diagnosis.json").read_text(encoding="utf-8"))
    assert data["facts"]["best_eval_step"] == 20
    assert round(data["facts"]["best_eval_loss"], 3) == 2.681
    assert round(data["facts"]["final_gap_pct"], 1) == 35.7
    assert data["facts"]["early_stopping_would_help"] is True
    overfit = [f for f in data["findings"] if f["rule_id"] == "overfitting"]
    assert overfit and overfit[0]["first_step"] == 20
    assert (out / "report.md").exists() and (out / "report.html").exists()
    # default --fail-on error: a warning does not gate
    assert cli("analyze", str(SEED001), "--format", "json", "--out", str(tmp_path / "r2")).returncode == 0
    assert (
        cli("analyze", str(SEED001), "--format", "json", "--out", str(tmp_path / "r3"), "--fail-on", "never").returncode
        == 0
    )


def test_user_override_can_disable_the_gate(tmp_path: Path) -> None:
    rules = tmp_path / "mine.yaml"
    rules.write_text(
        "version: 1\nextends: default\noverrides:\n  overfitting: disable\n  many-epochs: disable\n", encoding="utf-8"
    )
    proc = cli(
        "analyze",
        str(SEED001),
        "--rules",
        str(rules),
        "--format",
        "json",
        "--out",
        str(tmp_path / "o"),
        "--fail-on",
        "warning",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_out_dir_is_reports_run_name(tmp_path: Path) -> None:
    log = tmp_path / "seed.log"
    log.write_bytes(SEED001.read_bytes())
    proc = cli("analyze", str(log), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = list((tmp_path / "reports").glob("*/diagnosis.json"))
    assert len(written) == 1
