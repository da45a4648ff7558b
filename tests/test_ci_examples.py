"""The CI examples in examples/ci/ run as written: their shell steps are extracted from the YAML and executed
with bash (as the runners do: ``bash -e -o pipefail``) in a throwaway git repository whose last push adds
two training runs, with lossdoctor installed by the workflow's own install command into a fresh venv
(from this checkout instead of the package index: there is no network here).

Also checked: no ``${{ }}`` expression is pasted into a script (inputs reach the shell through env:), a
hostile workflow_dispatch input stays one inert path, the job summary gets each run's Markdown, and the
SARIF / JUnit files the steps leave validate against their schemas.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / "examples" / "ci" / "github-lossdoctor.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-lossdoctor.yml"
SCHEMAS = ROOT / "tests" / "data" / "schemas"

pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def nan_log() -> str:
    lines = [
        f"step {s} / 50 | loss: {'nan' if s >= 30 else f'{2 - s / 100:.3f}'} | lr: 0.0001" for s in range(5, 51, 5)
    ]
    return "\n".join(lines) + "\nTraining finished.\n"


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv where the workflow's own install command installs lossdoctor (from a copy of this
    checkout; its dependencies are seen through a .pth onto the test venv, so nothing is downloaded)."""
    base = tmp_path_factory.mktemp("ci-venv")
    venv = base / "venv"
    # without its own pip/setuptools: the test venv's (seen through the .pth) install into this one
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    import sysconfig

    (site / "test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    src = base / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "tests", "reports", "build", "*.egg-info", "__pycache__", "wandb"
        ),
    )
    return venv / "bin", src


def run_step(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture()
def pushed_repo(tmp_path: Path) -> tuple[Path, str, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("model repo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    before = git(repo, "rev-parse", "HEAD")
    (repo / "runs" / "a").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "corpus" / "gen-overfit-lr-1" / "trainer_state.json", repo / "runs" / "a")
    (repo / "logs").mkdir()
    (repo / "logs" / "train.log").write_text(nan_log())
    (repo / "notes.txt").write_text("not a run\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two runs")
    return repo, before, git(repo, "rev-parse", "HEAD")


def github_steps() -> tuple[dict, list[dict]]:
    doc = yaml.safe_load(GITHUB.read_text())
    job = doc["jobs"]["diagnose"]
    return job, job["steps"]


def test_no_expression_is_pasted_into_a_script() -> None:
    _, steps = github_steps()
    scripts = [s["run"] for s in steps if "run" in s]
    assert len(scripts) == 3
    for script in scripts:
        assert "${{" not in script, script
    gitlab = yaml.safe_load(GITLAB.read_text())["lossdoctor"]
    assert gitlab["artifacts"]["reports"]["junit"] == "lossdoctor-report/*/junit.xml"
    # installs a pinned lossdoctor from the package index, not the user's own repository
    job, _ = github_steps()
    assert job["env"]["LOSSDOCTOR_SPEC"].startswith("lossdoctor==")
    assert gitlab["variables"]["LOSSDOCTOR_SPEC"].startswith("lossdoctor==")


def _github_env(step: dict, job: dict, expressions: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env.update({k: str(v) for k, v in job.get("env", {}).items()})
    for key, value in step.get("env", {}).items():
        value = str(value)
        if "${{" in value:
            assert value in expressions, f"the test does not know {value!r}"
            value = expressions[value]
        env[key] = value
    return env


def _install(step_script: str, env: dict[str, str], src: Path, cwd: Path) -> None:
    env = dict(
        env, LOSSDOCTOR_SPEC=str(src), PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1"
    )
    proc = run_step(step_script, env, cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_workflow_on_a_push(venv_bin, pushed_repo, tmp_path: Path) -> None:  # noqa: ANN001
    import jsonschema

    bin_dir, src = venv_bin
    repo, before, head = pushed_repo
    job, steps = github_steps()
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "LANG": "C.UTF-8",
    }
    expressions = {
        "${{ github.event_name }}": "push",
        "${{ github.event.before }}": before,
        "${{ github.event.pull_request.base.sha }}": "",
        "${{ github.sha }}": head,
        "${{ inputs.runs }}": "",
        "${{ inputs.fail-on || 'error' }}": "error",
        "${{ secrets.WANDB_API_KEY }}": "",
    }
    results = {}
    for step in steps:
        if "run" not in step:
            continue
        env = _github_env(step, job, expressions, base)
        if step["name"] == "Install lossdoctor":
            _install(step["run"], env, src, repo)
            continue
        results[step["name"]] = run_step(step["run"], env, repo)
    listed = results["List the runs to diagnose"]
    assert listed.returncode == 0, listed.stderr
    assert (repo / "lossdoctor-runs.txt").read_text().split("\n")[:2] == ["logs/train.log", "runs/a/trainer_state.json"]
    assert "runs=2" in output.read_text()
    diag = results["Diagnose"]
    assert diag.returncode == 1, diag.stdout + diag.stderr  # the NaN log has an error finding
    assert "::error file=logs/train.log,line=" in diag.stdout  # annotations on the changed file
    assert "::warning file=runs/a/trainer_state.json," in diag.stdout
    text = summary.read_text()
    assert text.count("## ") >= 2 and "nonfinite-loss" in text and "overfitting" in text
    assert str(repo) not in text  # no local absolute paths
    sarifs = sorted((repo / "lossdoctor-report").glob("*/report.sarif"))
    assert len(sarifs) == 2
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    ids = set()
    for path in sarifs:
        doc = json.loads(path.read_text())
        jsonschema.validate(doc, schema)
        ids.add(doc["runs"][0]["automationDetails"]["id"])
        uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri in ("logs/train.log", "runs/a/trainer_state.json")  # repository-relative
    assert len(ids) == 2  # one code-scanning category per run


def test_github_workflow_dispatch_input_is_inert(venv_bin, pushed_repo, tmp_path: Path) -> None:  # noqa: ANN001
    bin_dir, src = venv_bin
    repo, before, head = pushed_repo
    job, steps = github_steps()
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "LANG": "C.UTF-8",
    }
    hostile = 'runs/a/trainer_state.json $(touch PWNED) ";touch PWNED2"'
    expressions = {
        "${{ github.event_name }}": "workflow_dispatch",
        "${{ github.event.before }}": "",
        "${{ github.event.pull_request.base.sha }}": "",
        "${{ github.sha }}": head,
        "${{ inputs.runs }}": hostile,
        "${{ inputs.fail-on || 'error' }}": "warning",
        "${{ secrets.WANDB_API_KEY }}": "",
    }
    codes = {}
    for step in steps:
        if "run" not in step or step["name"] == "Install lossdoctor":
            continue
        proc = run_step(step["run"], _github_env(step, job, expressions, base), repo)
        codes[step["name"]] = proc.returncode
    assert not list(repo.glob("PWNED*"))
    listed = (repo / "lossdoctor-runs.txt").read_text().splitlines()
    assert listed[0] == "runs/a/trainer_state.json" and "$(touch" in listed[1]
    assert codes["Diagnose"] == 2  # the odd words are unreadable paths: exit 2, the worst code
    assert "could not read" in summary.read_text() and "overfitting" in summary.read_text()


def test_gitlab_job_on_a_push(venv_bin, pushed_repo, tmp_path: Path) -> None:  # noqa: ANN001
    import xmlschema

    bin_dir, _ = venv_bin
    repo, before, head = pushed_repo
    job = yaml.safe_load(GITLAB.read_text())["lossdoctor"]
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "CI_COMMIT_BEFORE_SHA": before,
        "CI_COMMIT_SHA": head,
        "CI_PIPELINE_SOURCE": "push",
    }
    env.update({k: str(v) for k, v in job["variables"].items()})
    proc = run_step("\n".join(job["script"]), env, repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 run(s) diagnosed" in proc.stdout
    reports = sorted(repo.glob(job["artifacts"]["reports"]["junit"]))
    assert len(reports) == 2
    schema = xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd"))
    for path in reports:
        schema.validate(str(path))
    assert any('<failure type="error"' in p.read_text() for p in reports)
