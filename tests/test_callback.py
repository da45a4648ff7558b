"""LossDoctorCallback: live rules inside the Trainer, printing findings once and stopping training.

The stop test is a real trl run of the overfit example with ``--stop-on warning``; the unit tests drive the
callback with transformers' own TrainerState/TrainerControl over a log history made by a formula.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OVERFIT_YAML = ROOT / "examples" / "train_overfit.yaml"
EVAL_STEPS = 24  # examples/train_overfit.yaml
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("cb") / "stopped"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lossdoctor",
            "train",
            "--config",
            str(OVERFIT_YAML),
            "--output-dir",
            str(out),
            "--wandb",
            "off",
            "--stop-on",
            "warning",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return out, proc


@pytest.mark.slow
def test_stop_on_warning_stops_after_the_eval_minimum(stopped_run) -> None:
    out, proc = stopped_run
    assert proc.returncode == 1, proc.stderr[-3000:]  # stopped by a rule = EXIT_GATE
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [(r["step"], r["eval_loss"]) for r in state["log_history"] if "eval_loss" in r]
    best_step, best = min(evals, key=lambda e: e[1])
    stop = state["global_step"]
    assert stop < 192  # the full run is 192 steps
    assert best_step < stop <= best_step + 2 * EVAL_STEPS  # within two evals after the minimum
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    assert (out / f"checkpoint-{best_step}").is_dir()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "stopped-by-rule" and manifest["exit_code"] == 1
    assert manifest["stopped_by"]["rule_id"] == "overfitting" and manifest["stopped_by"]["step"] == stop
    assert manifest["best_checkpoint"] == f"checkpoint-{best_step}"
    console = (out / "console.log").read_text(errors="replace")
    lines = [ln for ln in console.splitlines() if "[lossdoctor] WARNING overfitting @ step" in ln]
    assert len(lines) == 1 and f"@ step {stop}:" in lines[0]
    assert (out / "report" / "report.md").is_file() and (out / "report" / "diagnosis.json").is_file()


@pytest.mark.slow
def test_saved_adapter_is_the_best_checkpoint(stopped_run) -> None:
    out, _ = stopped_run
    state = json.loads((out / "trainer_state.json").read_text())
    best = Path(state["best_model_checkpoint"]).name
    from safetensors.torch import load_file

    final = load_file(str(out / "adapter_model.safetensors"))
    kept = load_file(str(out / best / "adapter_model.safetensors"))
    assert final.keys() == kept.keys()
    assert all((final[k] == kept[k]).all() for k in final)


def _history(n_steps: int, eval_every: int, turn: int) -> list[dict]:
    """Train loss 3·0.98^step; eval loss falls to a minimum at ``turn`` and then rises 4% per eval."""
    rows = []
    for step in range(1, n_steps + 1):
        rows.append(
            {"loss": 3.0 * 0.98**step, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": step / 10, "step": step}
        )
        if step % eval_every == 0:
            k = step // eval_every
            t = turn // eval_every
            value = 2.0 - 0.1 * k if k <= t else (2.0 - 0.1 * t) * (1 + 0.04 * (k - t))
            rows.append({"eval_loss": value, "eval_runtime": 0.1, "epoch": step / 10, "step": step})
    return rows


def _drive(cb, rows):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(output_dir="unused", report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    stopped_at = None
    for row in rows:
        state.global_step = row["step"]
        state.log_history.append(row)
        cb.on_log(args, state, control, logs=row)
        if control.should_training_stop and stopped_at is None:
            stopped_at = row["step"]
    return stopped_at


def test_callback_import_loads_no_training_stack() -> None:
    code = (
        "import sys; from lossdoctor.integrations import LossDoctorCallback; "
        "print(sorted(m for m in ('transformers', 'torch', 'peft', 'bitsandbytes', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""


def test_callback_answers_every_trainer_event() -> None:
    """The Trainer calls getattr(callback, event) for each event TrainerCallback defines: all must exist."""
    import inspect

    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

    from lossdoctor.integrations import LossDoctorCallback

    cb = LossDoctorCallback()
    events = [n for n, _ in inspect.getmembers(TrainerCallback, inspect.isfunction) if n.startswith("on_")]
    assert "on_log" in events and "on_step_end" in events
    args = TrainingArguments(output_dir="unused", report_to=[], use_cpu=True)
    for event in events:
        getattr(cb, event)(args, TrainerState(), TrainerControl(), metrics={})
    with pytest.raises(AttributeError):
        cb.not_an_event  # noqa: B018


def test_prints_each_finding_once_and_stops() -> None:
    from lossdoctor.integrations import LossDoctorCallback

    printed: list[str] = []
    cb = LossDoctorCallback(stop_on="warning", print_fn=printed.append)
    stopped_at = _drive(cb, _history(100, 10, 40))
    # min at 40; 50 is +4%, 60 is +8% (≥5%), 70 +12%: the rule needs 2 evals at ≥5% → fires at 70
    assert stopped_at == 70
    over = [p for p in printed if " overfitting @ step" in p]
    assert len(over) == 1 and over[0].startswith("[lossdoctor] WARNING overfitting @ step 70: ")
    assert cb.stopped_by.rule_id == "overfitting"
    assert not any("no-eval-loss" in p for p in printed)  # absence rules wait for the end of training


def test_never_stops_but_still_reports() -> None:
    from lossdoctor.integrations import LossDoctorCallback

    printed: list[str] = []
    cb = LossDoctorCallback(stop_on="never", print_fn=printed.append)
    assert _drive(cb, _history(100, 10, 40)) is None
    assert "overfitting" in cb.fired and cb.stopped_by is None


def test_stop_on_rule_overrides_severity() -> None:
    from lossdoctor.integrations import LossDoctorCallback

    cb = LossDoctorCallback(stop_on="error", stop_on_rules=("overfitting",), print_fn=lambda s: None)
    assert _drive(cb, _history(100, 10, 40)) == 70
    cb2 = LossDoctorCallback(stop_on="error", print_fn=lambda s: None)
    assert _drive(cb2, _history(100, 10, 40)) is None


def test_healthy_history_is_silent() -> None:
    from lossdoctor.integrations import LossDoctorCallback

    printed: list[str] = []
    cb = LossDoctorCallback(stop_on="warning", print_fn=printed.append)
    assert _drive(cb, _history(100, 10, 1000)) is None
    assert not [p for p in printed if "WARNING" in p or "ERROR" in p]


def test_ingests_only_new_rows() -> None:
    from lossdoctor.integrations import LossDoctorCallback

    cb = LossDoctorCallback(print_fn=lambda s: None, max_overhead=1e9)  # no budget: judge every log
    rows = _history(20, 10, 1000)
    _drive(cb, rows)
    expected = sum(len([k for k in r if k != "step"]) for r in rows)
    assert len(cb._values) == expected  # each row ingested exactly once
    # the table holds one point per (step, metric): an eval row's epoch repeats its train row's (merged by
    # the tidy-table constructor since issue 11)
    distinct = {(r["step"], k) for r in rows for k in r if k != "step"}
    assert len(cb.current_run().metrics) == len(distinct)
    assert cb.evaluations == len(rows)


def test_live_series_match_the_run_model() -> None:
    """The callback's fast per-metric columns give exactly what Run.series gives from the tidy frame."""
    from lossdoctor.integrations import LossDoctorCallback
    from lossdoctor.model import Run

    cb = LossDoctorCallback(print_fn=lambda s: None)
    rows = _history(30, 10, 10)
    rows.insert(5, {"loss": 9.0, "step": rows[4]["step"]})  # same metric twice at one step: the last wins
    _drive(cb, rows)
    live = cb.current_run()
    plain = Run(live.name, live.provenance, live.metrics)
    for metric in live.metric_names():
        assert live.series(metric).equals(plain.series(metric)), metric


def test_out_of_order_rows_then_more_rows_of_that_metric() -> None:
    """A row logged behind its metric's last step drops that metric's fast column; later rows of the metric
    are still ingested (they once crashed on the dropped column) and series() falls back to the tidy frame."""
    from lossdoctor.integrations import LossDoctorCallback
    from lossdoctor.model import Run

    cb = LossDoctorCallback(print_fn=lambda s: None, max_overhead=1e9)
    rows = _history(30, 10, 10)
    rows.insert(8, {"loss": 5.0, "step": 2})  # behind step 8's train loss
    _drive(cb, rows)
    assert len(cb._values) == sum(len([k for k in r if k != "step"]) for r in rows)
    live = cb.current_run()
    plain = Run(live.name, live.provenance, live.metrics)
    assert live.series("train/loss").equals(plain.series("train/loss"))
    assert live.series("eval/loss").equals(plain.series("eval/loss"))


def test_replaced_history_starts_over() -> None:
    """History shorter than what was ingested (resumed from a checkpoint): the callback forgets it all."""
    from lossdoctor.integrations import LossDoctorCallback

    cb = LossDoctorCallback(print_fn=lambda s: None, max_overhead=1e9)
    _drive(cb, _history(30, 10, 10))
    assert cb.fired
    rows = _history(5, 10, 1000)
    _drive(cb, rows)
    assert len(cb._values) == sum(len([k for k in r if k != "step"]) for r in rows)
    assert cb.current_run().series("train/loss").index.tolist() == [1, 2, 3, 4, 5]
    assert not cb.fired


def test_overhead_budget_skips_train_logs_but_not_evals() -> None:
    from lossdoctor.integrations import LossDoctorCallback

    cb = LossDoctorCallback(stop_on="warning", print_fn=lambda s: None, max_overhead=0.0)
    rows = _history(100, 10, 40)
    assert _drive(cb, rows) == 70  # eval logs are always judged
    assert cb.evaluations == 1 + 10  # the first log + one per eval


def test_unknown_stop_rule_is_rejected() -> None:
    from lossdoctor.integrations import LossDoctorCallback

    with pytest.raises(ValueError, match="no-such-rule"):
        LossDoctorCallback(stop_on_rules=("no-such-rule",))
