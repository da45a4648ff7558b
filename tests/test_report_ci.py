"""CI formats: SARIF 2.1.0 and JUnit XML validated against their published schemas (vendored in
tests/data/schemas/, sources and licences in its README), GitHub workflow commands, and the analyze CLI
around them (stdin, --fail-on case, --full-series, file modes, a reused --out)."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from report_samples import hostile_diagnosis, overfit_diagnosis

from lossdoctor.diagnosis import diagnose
from lossdoctor.report import render, write_reports
from lossdoctor.report.data import ReportOptions
from lossdoctor.rules.packs import load_rules
from lossdoctor.sources import read_runs
from lossdoctor.sources.base import ReadOptions
from lossdoctor.table import MAX_PLOT_POINTS

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "tests" / "data" / "schemas"
CORPUS = ROOT / "tests" / "corpus"


def cli(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "lossdoctor", *args],
        capture_output=True,
        input=stdin,
        cwd=cwd or ROOT,
        env=env,
        timeout=300,
    )


def real_diagnosis(path: Path):  # noqa: ANN201
    (run,) = read_runs(str(path), ReadOptions())
    return diagnose(run, load_rules(()))


@pytest.fixture(scope="module")
def sarif_validator():  # noqa: ANN201
    import jsonschema

    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def junit_schema():  # noqa: ANN201
    import xmlschema

    return xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd"))


def _nan_keyvalue_log(tmp_path: Path) -> tuple[Path, int]:
    """A custom-trainer log (keyvalue reader, which records line numbers) whose loss turns NaN at step 30."""
    lines = ["starting run", "config: lr=1e-4"]
    nan_line = 0
    for step in range(5, 51, 5):
        loss = "nan" if step >= 30 else f"{2.0 - step / 100:.4f}"
        lines.append(f"step {step} / 50 | loss: {loss} | lr: 0.0001")
        if step == 30:
            nan_line = len(lines)
    lines.append("Training finished.")
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, nan_line


# --------------------------------------------------------------------------- SARIF


def test_sarif_validates_and_names_rules_file_and_line(tmp_path: Path, sarif_validator) -> None:  # noqa: ANN001
    log, nan_line = _nan_keyvalue_log(tmp_path)
    diag = real_diagnosis(log)
    assert diag.run.state == "finished"  # "step 50 / 50" then "Training finished."
    doc = json.loads(render(diag, "sarif")["report.sarif"])
    sarif_validator.validate(doc)
    assert doc["version"] == "2.1.0"
    (run,) = doc["runs"]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    # every rule in force is described (stable ids: the rule's own id), not only those that fired
    assert rule_ids == [o.rule_id for o in diag.rule_outcomes] and len(rule_ids) > 10
    nonfinite = [r for r in run["results"] if r["ruleId"] == "nonfinite-loss"]
    assert nonfinite and nonfinite[0]["level"] == "error"
    loc = nonfinite[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == log.as_uri()[len("file://") :] or loc["artifactLocation"]["uri"].endswith(
        "/train.log"
    )
    assert loc["region"]["startLine"] == nan_line
    assert run["tool"]["driver"]["rules"][nonfinite[0]["ruleIndex"]]["id"] == "nonfinite-loss"
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_relative_location_and_fingerprints_stable(sarif_validator) -> None:  # noqa: ANN001
    diag = real_diagnosis(Path("tests/corpus/gen-overfit-lr-1/trainer_state.json"))
    a = json.loads(render(diag, "sarif")["report.sarif"])
    sarif_validator.validate(a)
    results = a["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {f.rule_id for f in diag.findings}
    uri = results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "tests/corpus/gen-overfit-lr-1/trainer_state.json"  # as given: relative to the repo root
    assert "region" not in results[0]["locations"][0]["physicalLocation"]  # json reader: no line numbers
    again = json.loads(
        render(real_diagnosis(Path("tests/corpus/gen-overfit-lr-1/trainer_state.json")), "sarif")["report.sarif"]
    )
    assert [r["partialFingerprints"] for r in again["runs"][0]["results"]] == [
        r["partialFingerprints"] for r in results
    ]


def test_sarif_crashed_check_and_hostile_strings(sarif_validator) -> None:  # noqa: ANN001
    import dataclasses

    diag = dataclasses.replace(hostile_diagnosis(), crashed_checks=("x: ValueError: boom",))
    doc = json.loads(render(diag, "sarif")["report.sarif"])
    sarif_validator.validate(doc)
    inv = doc["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False and "boom" in inv["toolExecutionNotifications"][0]["message"]["text"]


# --------------------------------------------------------------------------- JUnit


def test_junit_one_case_per_rule_validates(tmp_path: Path, junit_schema) -> None:  # noqa: ANN001
    log, _ = _nan_keyvalue_log(tmp_path)
    diag = real_diagnosis(log)
    xml = render(diag, "junit")["junit.xml"]
    junit_schema.validate(xml.decode("utf-8"))
    root = ET.fromstring(xml)
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [o.rule_id for o in diag.rule_outcomes]
    by_name = {c.get("name"): c for c in cases}
    fired = {f.rule_id for f in diag.findings}
    for name, case in by_name.items():
        kids = [k.tag for k in case]
        if name in fired:
            assert kids == ["failure"], (name, kids)
        elif any(o.rule_id == name and o.status == "skipped" for o in diag.rule_outcomes):
            assert kids == ["skipped"] and case[0].get("message"), name
        else:
            assert kids == [], (name, kids)
    # no eval loss in this log: the overfitting rule cannot be judged, and says why
    assert by_name["overfitting"][0].tag == "skipped" and "eval/loss" in by_name["overfitting"][0].get("message")
    assert by_name["nonfinite-loss"][0].get("type") == "error"
    suite = root.find("testsuite")
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == len(fired)
    assert int(suite.get("skipped")) == sum(1 for o in diag.rule_outcomes if o.status == "skipped")


def test_junit_escapes_hostile_strings(junit_schema) -> None:  # noqa: ANN001
    import dataclasses

    diag = hostile_diagnosis()
    evil = dataclasses.replace(diag, run=dataclasses.replace(diag.run, name='a\x00b\x1b]c<d>&"e'))
    xml = render(evil, "junit")["junit.xml"].decode()
    junit_schema.validate(xml)
    root = ET.fromstring(xml)
    # characters XML 1.0 cannot carry (NUL, ESC) become spaces in attributes; the rest is escaped
    assert root.find("testsuite").get("name") == 'lossdoctor: a b ]c<d>&"e'
    assert "<script>" not in xml


# --------------------------------------------------------------------------- GitHub annotations


def test_github_annotations_escaped_one_per_finding() -> None:
    import dataclasses

    diag = overfit_diagnosis(location="runs/x/trainer_state.json")
    f0 = dataclasses.replace(diag.findings[0], message="line1\nline2 100% ::error::injected", title="a,b:c")
    text = render(dataclasses.replace(diag, findings=(f0, *diag.findings[1:])), "github")[
        "github-annotations.txt"
    ].decode()
    lines = text.splitlines()
    assert len(lines) == len(diag.findings) + 1
    assert lines[0].startswith(
        "::error file=runs/x/trainer_state.json,title=lossdoctor grad-norm-explosion%3A a%2Cb%3Ac"
    )
    assert "line1%0Aline2 100%25 ::error::injected" not in lines[0]  # messages are made one line first
    assert lines[0].endswith(
        "line1 line2 100%25 ::error::injected What to do: Lower the learning rate or set max_grad_norm=1.0."
    )
    assert lines[1].startswith("::warning file=runs/x/trainer_state.json,")
    assert lines[-1].startswith("::notice title=lossdoctor%3A ")


def test_github_format_goes_to_stdout_not_a_file(tmp_path: Path) -> None:
    log, nan_line = _nan_keyvalue_log(tmp_path)
    out = tmp_path / "out"
    proc = cli("analyze", str(log), "--format", "github,json", "--out", str(out))
    assert proc.returncode == 1, proc.stderr  # nonfinite-loss is an error
    stdout = proc.stdout.decode()
    assert f"::error file={log},line={nan_line},title=lossdoctor nonfinite-loss" in stdout
    assert sorted(p.name for p in out.iterdir()) == [".lossdoctor-files", "diagnosis.json"]


# --------------------------------------------------------------------------- CLI around the reports


def test_stdin_fail_on_case_and_file_modes(tmp_path: Path) -> None:
    data = (CORPUS / "gen-overfit-lr-1" / "trainer_state.json").read_bytes()
    out = tmp_path / "o"
    old = os.umask(0o022)
    try:
        proc = cli("analyze", "-", "--format", "json,md", "--out", str(out), "--fail-on", "WARNING", stdin=data)
    finally:
        os.umask(old)
    assert proc.returncode == 1, proc.stderr.decode()
    doc = json.loads((out / "diagnosis.json").read_text())
    assert doc["run"]["provenance"]["location"] == "<stdin>" and doc["run"]["name"] == "stdin"
    assert "lossdoctor-stdin" not in (out / "report.md").read_text()
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    proc = cli("analyze", "-", "--format", "json", "--out", str(tmp_path / "e"), stdin=b"")
    assert proc.returncode == 2 and b"<stdin>: standard input is empty" in proc.stderr
    assert not (tmp_path / "e").exists()
    proc = cli("analyze", "-", "--format", "json", "--out", str(tmp_path / "g"), stdin=b"\x00\x01garbage\n")
    assert proc.returncode == 2 and proc.stderr.decode().startswith("lossdoctor: error: <stdin>")
    assert b"Traceback" not in proc.stderr and b"lossdoctor-stdin" not in proc.stderr


def test_file_mode_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_reports(overfit_diagnosis(), ("json",), tmp_path / "r")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r" / "diagnosis.json").stat().st_mode) == 0o640


def test_reused_out_removes_own_stale_files_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_reports(overfit_diagnosis(), ("html", "md", "json", "sarif"), out)
    (out / "notes.txt").write_text("mine")
    (out / "plots").mkdir()
    (out / "plots" / "keep.png").write_bytes(b"x")  # not ours (not in the listing)
    write_reports(overfit_diagnosis(), ("json",), out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".lossdoctor-files",
        "diagnosis.json",
        "notes.txt",
        "plots/keep.png",
    ]


def test_reused_out_removes_legacy_png_plots(tmp_path: Path) -> None:
    """A report written before the listing existed: its report.md named plots/*.png, which go."""
    out = tmp_path / "old"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "loss.png").write_bytes(b"png")
    (out / "plots" / "other.png").write_bytes(b"png")
    (out / "report.md").write_text("![Loss](plots/loss.png)\n")
    write_reports(overfit_diagnosis(), ("md",), out)
    assert not (out / "plots" / "loss.png").exists() and (out / "plots" / "other.png").exists()


def test_json_decimated_keeps_evidence_and_nonfinite_full_series_keeps_all() -> None:
    import dataclasses

    from lossdoctor.model import Facts, Finding, Run, make_metrics

    n = 20_000
    steps = np.arange(1, n + 1)
    loss = 2.0 + np.sin(steps / 50.0) * 0.1
    loss[12_345] = np.nan
    metrics = make_metrics(steps, ["loss"] * n, loss)
    run = Run(
        name="big",
        provenance=__import__("lossdoctor.model", fromlist=["Provenance"]).Provenance(kind="csv", location="big.csv"),
        metrics=metrics,
        state="finished",
    )
    finding = Finding(
        rule_id="loss-spike",
        severity="info",
        title="t",
        message="m",
        remediation=(),
        series=("train/loss",),
        first_step=7_777,
        last_step=7_777,
        evidence={"step": 7_777, "peak_step": 9_999},
        origin="x:1",
    )
    diag = dataclasses.replace(overfit_diagnosis(), run=run, findings=(finding,), facts=Facts(last_step=n))
    doc = json.loads(render(diag, "json")["diagnosis.json"])
    (m,) = doc["run"]["metrics"]
    assert m["points"] == n and m["decimated"] is True and len(m["steps"]) <= MAX_PLOT_POINTS + 10
    assert {7_777, 9_999, 12_346, 1, n} <= set(m["steps"])
    assert m["values"][m["steps"].index(12_346)] == "nan" and m["nonfinite"] == 1
    full = json.loads(render(diag, "json", ReportOptions(full_series=True))["diagnosis.json"])
    fm = full["run"]["metrics"][0]
    assert fm["steps"] == list(range(1, n + 1)) and fm["decimated"] is False and full["run"]["full_series"]
    assert math.isclose(fm["values"][0], loss[0])


def test_report_path_imports_only_what_a_format_uses(tmp_path: Path) -> None:
    """No matplotlib on the analyze path at all; jinja2 and the SVG code only for HTML/Markdown."""
    state = CORPUS / "gen-overfit-lr-1" / "trainer_state.json"
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['lossdoctor', 'analyze', sys.argv[1], '--format', sys.argv[2], '--out', sys.argv[3], "
        "'--fail-on', 'never', '-q']\n"
        "try:\n    runpy.run_module('lossdoctor', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('matplotlib', 'jinja2', 'lossdoctor.report.svg', 'xml.sax.saxutils', "
        "'torch') if m in sys.modules), file=sys.stderr)\n"
    )
    seen = {}
    for fmt in ("json", "html,md", "sarif,junit"):
        proc = subprocess.run(
            [sys.executable, "-c", probe, str(state), fmt, str(tmp_path / fmt)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        seen[fmt] = proc.stderr.strip().splitlines()[-1]
    assert seen["json"] == "[]"
    assert seen["html,md"] == "['jinja2', 'lossdoctor.report.svg']"
    assert seen["sarif,junit"] == "['xml.sax.saxutils']"


def test_wandb_sparkline_facts_say_only_what_is_known(tmp_path: Path) -> None:
    """The W&B console block holds 8-level sparklines and the summary's final values: the facts and the
    verdict give the summary's values, the order and the shape, never a number read off the glyphs."""
    log = ROOT / "tests" / "data" / "logs" / "seed001_wandb_block.log"
    proc = cli("analyze", str(log), "--format", "json,md,html", "--out", str(tmp_path / "o"), "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr.decode()
    doc = json.loads((tmp_path / "o" / "diagnosis.json").read_text())
    summary = doc["run"]["summary"]
    facts = doc["facts"]
    assert facts["best_eval_loss"] is None and facts["final_gap_pct"] is None
    assert facts["final_eval_loss"] == summary["eval/loss"] and facts["final_train_loss"] == summary["train/loss"]
    assert facts["early_stopping_would_help"] is True
    levels = [v for m in doc["run"]["metrics"] if m["name"] == "eval/loss" for v in m["values"]]
    reconstructed = min(levels)  # the shape's lowest point: not a measured value
    md = (tmp_path / "o" / "report.md").read_text()
    facts_table = md.split("### Findings")[0]
    assert f"{reconstructed:.4g}" not in facts_table and "100.0%" not in facts_table
    assert f"{summary['eval/loss']:.4g} (run summary)" in facts_table
    assert "its value is not recorded" in facts_table
    assert f"{reconstructed:.4g}" not in doc["verdict"] and "%" not in doc["verdict"]
    assert "read off a recovered shape" in md  # the findings' numbers are flagged as such


def test_a_finished_log_is_not_called_incomplete(tmp_path: Path) -> None:
    """seed 004: the last record is 'step 50 / 50' and the script then prints 'Training finished.'"""
    log = ROOT / "tests" / "data" / "logs" / "seed004_ddp.log"
    diag = real_diagnosis(log)
    assert diag.run.state == "finished"
    assert "so far" not in diag.verdict
    text = render(diag, "md")["report.md"].decode()
    assert "may be incomplete" not in text and "still running" not in text
    cut = tmp_path / "cut.log"  # the same log stopped at step 30 of 50 is not finished
    lines = log.read_text(encoding="utf-8").splitlines()
    keep = [
        ln for ln in lines if "step 40 / 50" not in ln and "step 50 / 50" not in ln and "Training finished" not in ln
    ]
    cut.write_text("\n".join(keep) + "\n", encoding="utf-8")
    assert real_diagnosis(cut).run.state == "unknown"
