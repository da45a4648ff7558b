"""`lossdoctor train`: real trl SFT runs of the tiny offline model on the example data (examples/make_data.py).

Each training takes a few seconds; runs are shared through session-scoped fixtures. Expected shapes follow from
how the examples are built: the overfit set is 32 rows of arbitrary answers for 12 epochs (eval loss must turn
up after an early minimum), the healthy set is one pass over 720 rows (eval loss must keep falling).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
OVERFIT_YAML = EXAMPLES / "train_overfit.yaml"
HEALTHY_YAML = EXAMPLES / "train_healthy.yaml"
OVERFIT_DATA = EXAMPLES / "data" / "overfit.jsonl"
ENV = dict(
    os.environ,
    HF_HUB_OFFLINE="1",
    PYTHONUNBUFFERED="1",
    OMP_NUM_THREADS="1",
    TOKENIZERS_PARALLELISM="false",
    WANDB_SILENT="true",
)

pytestmark = pytest.mark.slow


def lossdoctor_train(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lossdoctor", "train", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "trainer_state.json").read_text())["log_history"]


def curve(rows: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in rows if key in r]


@pytest.fixture(scope="session")
def overfit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("train") / "overfit"
    proc = lossdoctor_train("--config", str(OVERFIT_YAML), "--output-dir", str(out), "--wandb", "offline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.fixture(scope="session")
def healthy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """In-process through the Python API, with W&B off (the other fixture covers W&B)."""
    from lossdoctor.train import run_training
    from lossdoctor.train.config import build_config

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = tmp_path_factory.mktemp("train") / "healthy"
    config = build_config(str(HEALTHY_YAML), {"output_dir": str(out), "wandb": "off", "threads": 1})
    return run_training(config)


def test_example_data_is_deterministic(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLES / "make_data.py"), str(tmp_path)], check=True, capture_output=True)
    for name in ("overfit.jsonl", "healthy.jsonl"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / "data" / name).read_bytes()


def test_overfit_example_overfits(overfit_run) -> None:
    rows = history(overfit_run[0])
    evals = curve(rows, "eval_loss")
    train = curve(rows, "loss")
    assert len(evals) >= 6
    values = [v for _, v in evals]
    best = values.index(min(values))
    # an early minimum (not the first or last eval), then a clear rise
    assert 0 < best < len(values) // 2
    assert values[-1] > values[best] * 1.10
    assert all(v > values[best] * 1.05 for v in values[best + 1 :])
    # train loss falls toward zero: last < 10% of the first
    assert train[-1][1] < 0.1 * train[0][1]
    assert min(v for _, v in train[len(train) // 2 :]) < train[len(train) // 4][1]


def test_healthy_example_does_not_overfit(healthy_run: Path) -> None:
    rows = history(healthy_run)
    values = [v for _, v in curve(rows, "eval_loss")]
    assert len(values) >= 5
    assert values[-1] == min(values)  # still improving at the end
    assert all(b <= a * 1.01 for a, b in zip(values, values[1:]))  # never turns up
    manifest = json.loads((healthy_run / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["exit_code"] == 0


def test_metrics_logged(overfit_run) -> None:
    rows = history(overfit_run[0])
    train_rows = [r for r in rows if "loss" in r]
    for key in ("loss", "grad_norm", "learning_rate", "epoch", "train_tokens_per_second"):
        assert all(key in r for r in train_rows[1:]), key
    eval_rows = [r for r in rows if "eval_loss" in r]
    for r in eval_rows:
        assert r["eval_perplexity"] == pytest.approx(math.exp(r["eval_loss"]), rel=1e-9)
    console = (overfit_run[0] / "console.log").read_text(encoding="utf-8", errors="replace")
    assert "'eval_perplexity'" in console and "'loss'" in console and "it/s]" in console  # dicts + tqdm


def test_run_directory_contents(overfit_run) -> None:
    out = overfit_run[0]
    for name in (
        "console.log",
        "trainer_state.json",
        "run.json",
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "tiny-base/config.json",
    ):
        assert (out / name).is_file(), name
    runs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 192  # 32 rows / 2 × 12 epochs
    # the adapter loads onto the saved tiny base
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(out / "tiny-base"), out)
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_manifest(overfit_run) -> None:
    out = overfit_run[0]
    m = json.loads((out / "run.json").read_text())
    import hashlib

    assert m["status"] == "completed" and m["exit_code"] == 0 and m["global_step"] == 192
    assert m["data"]["train"]["sha256"] == hashlib.sha256(OVERFIT_DATA.read_bytes()).hexdigest()
    assert m["data"]["train_rows"] == 32 and m["data"]["eval_rows"] == 8
    for pkg in ("torch", "transformers", "trl", "peft"):
        assert m["versions"][pkg]
    assert m["config"]["lr"] == 0.008 and m["config"]["model"] == "tiny"
    assert m["started"] <= m["ended"]
    assert m["precision"] == ("fp32" if m["device"] == "cpu" else m["precision"])


def test_analyze_reads_the_run(overfit_run) -> None:
    """The run dir is what `lossdoctor analyze` is for: it finds the source itself, takes the flags and the
    end status from run.json, and its rules see the overfitting."""
    from lossdoctor import analyze
    from lossdoctor.sources import read_runs

    run = read_runs(str(overfit_run[0]))[0]
    assert run.provenance.kind == "trainer-state"
    manifest = json.loads((overfit_run[0] / "run.json").read_text())
    assert run.config["max_grad_norm"] == manifest["config"]["max_grad_norm"]
    assert run.config["lr"] == manifest["config"]["lr"]
    assert run.state == "finished"
    assert "overfitting" in [f.rule_id for f in analyze(run).findings]


BAD = {
    "missing-data": (["--data", "no/such.jsonl"], "no/such.jsonl: data file not found"),
    "malformed": (["--data", "{bad}/malformed.jsonl"], "malformed.jsonl:2: malformed JSON"),
    "neither": (["--data", "{bad}/neither.jsonl"], "neither.jsonl:3: row has neither `messages`"),
    "model-offline": (["--model", "nobody/no-such-model"], "nobody/no-such-model: model not in the local HF cache"),
    "not-empty": (["--output-dir", "{bad}/full"], "output directory exists and is not empty"),
    "quant": (["--quant", "4bit"], "--quant 4bit needs a CUDA GPU (bitsandbytes); use --quant none"),
    "yaml-key": (["--config", "{bad}/bad.yaml"], "bad.yaml:3:1: unknown key 'bogus-key'"),
    "unknown-rule": (["--stop-on-rule", "no-such-rule"], "unknown rule id(s) no-such-rule"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_exit_2(case: str, tmp_path: Path) -> None:
    if case == "quant":
        import torch

        if torch.cuda.is_available():
            pytest.skip("has CUDA")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "malformed.jsonl").write_text('{"text": "ok"}\n{"text": oops}\n')
    (bad / "neither.jsonl").write_text('{"text": "ok"}\n\n{"prompt": "x", "completion": "y"}\n')
    (bad / "full").mkdir()
    (bad / "full" / "keep.txt").write_text("mine")
    (bad / "bad.yaml").write_text("model: tiny\nlr: 0.001\nbogus-key: 3\n")
    args, expected = BAD[case]
    args = [a.replace("{bad}", str(bad)) for a in args]
    base = {"--data": str(OVERFIT_DATA), "--output-dir": str(tmp_path / "out")}
    for flag, value in base.items():
        if flag not in args:
            args += [flag, value]
    proc = lossdoctor_train(*args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lossdoctor: error: "), proc.stderr
    assert expected.replace("{bad}", str(bad)) in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert (bad / "full" / "keep.txt").read_text() == "mine"


def test_ctrl_c_leaves_valid_state(tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lossdoctor",
            "train",
            "--config",
            str(OVERFIT_YAML),
            "--output-dir",
            str(out),
            "--epochs",
            "500",
            "--wandb",
            "off",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    log = out / "console.log"
    while time.time() < deadline:  # wait until a few steps have been logged
        if log.exists() and log.read_text(errors="replace").count("'loss'") >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert 0 < state["global_step"] < 500 * 16
    assert sum("loss" in r for r in state["log_history"]) >= 3
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["exit_code"] == 130
    assert manifest["global_step"] == state["global_step"]
    assert b"Traceback" not in err
    from lossdoctor.sources import read_runs

    run = read_runs(str(out))[0]
    assert run.state == "interrupted"
    assert any("status 'interrupted'" in n for n in run.provenance.notes)


def test_every_run_ends_with_the_diagnosis_and_report_path(overfit_run) -> None:
    """Without --stop-on too: the last lines are the verdict, the findings and where the report is."""
    out, proc = overfit_run
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    reports = [ln.split("report: ", 1)[1] for ln in lines if ln.startswith("  report: ")]
    assert reports == [str(out / "report" / n) for n in ("report.html", "report.md", "diagnosis.json")]
    assert lines[-1] == f"  report: {out / 'report' / 'diagnosis.json'}"
    summary = lines[lines.index(next(ln for ln in lines if ln.startswith("overfit: "))) :]
    assert summary[0].startswith("overfit: needs attention") and "overfitting" in summary[0]
    assert any(ln.split()[:2] == ["WARNING", "overfitting"] for ln in summary)
    doc = json.loads((out / "report" / "diagnosis.json").read_text())
    assert doc["run"]["state"] == "finished" and "overfitting" in [f["rule_id"] for f in doc["findings"]]
    assert (out / "report" / "report.html").stat().st_size > 0


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "terminated"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lossdoctor",
            "train",
            "--config",
            str(OVERFIT_YAML),
            "--output-dir",
            str(out),
            "--epochs",
            "500",
            "--wandb",
            "off",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    log = out / "console.log"
    while time.time() < deadline:  # wait until a few steps have been logged
        if log.exists() and log.read_text(errors="replace").count("'loss'") >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()[-2000:]
    assert b"Traceback" not in err and b"terminated (SIGTERM) at step" in err
    state = json.loads((out / "trainer_state.json").read_text())
    assert 0 < state["global_step"] < 500 * 16
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["exit_code"] == 143
    assert manifest["global_step"] == state["global_step"]
    # the partial run is diagnosed too, as an interrupted run
    text = stdout.decode()
    assert text.strip().splitlines()[-1] == f"  report: {out / 'report' / 'diagnosis.json'}"
    doc = json.loads((out / "report" / "diagnosis.json").read_text())
    assert doc["run"]["state"] == "interrupted"
    assert "interrupted" in (out / "report" / "report.md").read_text()


def test_yaml_keys_dashes_underscores_and_flag_override(tmp_path: Path) -> None:
    from lossdoctor.train.config import build_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: d.jsonl\noutput_dir: o\nlora-r: 4\nlearning_rate: 1e-3\nstop-on-rule: overfitting\n")
    config = build_config(str(cfg), {"lora_r": 8})
    assert config.lora_r == 8 and config.lr == 0.001 and config.stop_on_rules == ("overfitting",)
    assert config.data == str(tmp_path / "d.jsonl")  # relative to the YAML file
    assert config.output_dir == "o"


def test_precision_resolution() -> None:
    from lossdoctor.errors import TrainError
    from lossdoctor.train.recipe import resolve_precision

    assert resolve_precision("auto", cuda=False, bf16_supported=False) == "fp32"
    assert resolve_precision("auto", cuda=True, bf16_supported=True) == "bf16"
    assert resolve_precision("auto", cuda=True, bf16_supported=False) == "fp16"
    with pytest.raises(TrainError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False, bf16_supported=False)


def test_help_does_not_import_torch() -> None:
    code = "import sys; from lossdoctor.cli import group; import lossdoctor.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    assert out.stdout.strip() == "False"


def test_torchrun_two_cpu_processes_rank0_writes(tmp_path: Path) -> None:
    """DDP through torchrun (2 CPU processes, gloo): one run dir written by rank 0, world size 2 recorded,
    one closing line, and the run reads back like any other."""
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "-m",
            "lossdoctor",
            "train",
            "--config",
            str(OVERFIT_YAML),
            "--output-dir",
            str(out),
            "--max-steps",
            "20",
            "--wandb",
            "off",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout + proc.stderr).count("lossdoctor: run completed at step 20") == 1
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["world_size"] == 2 and manifest["global_step"] == 20
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 20
    from lossdoctor.sources import read_runs

    run = read_runs(str(out))[0]
    assert run.state == "finished" and run.summary["global_step"] == 20 and run.has("train/loss")


def test_import_output_is_captured_not_shown(tmp_path: Path) -> None:
    """What a package prints while it is imported (at the fd level, like bitsandbytes' kernel-fetch failures on
    CPU) is kept by captured_output and never reaches the terminal."""
    pkg = tmp_path / "noisy_pkg.py"
    pkg.write_text(
        "import os, sys, logging\nos.write(2, b'C-level noise\\n')\nprint('stdout noise')\n"
        "logging.getLogger('noisy').warning('logged noise')\n"
    )
    code = (
        "from lossdoctor.train.quiet import captured_output\n"
        "with captured_output() as c:\n    import noisy_pkg\n"
        "import sys; sys.stderr.write('kept=' + repr(sorted(l for l in c.text.splitlines())) + '\\n')\n"
    )
    env = {**ENV, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip() == "kept=['C-level noise', 'logged noise', 'stdout noise']"
