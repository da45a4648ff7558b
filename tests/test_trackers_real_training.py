"""One real trl/HF Trainer run (tests/tinytrain.py) reported to trackio and MLflow at once: the trackio and
MLflow readers must give the curves the Trainer itself recorded in trainer_state.json."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lossdoctor.sources import detect, make_target, read_runs

sys.path.insert(0, str(Path(__file__).parent))


@pytest.mark.slow
def test_trainer_run_reads_alike_from_trackio_mlflow_and_trainer_state(tmp_path: Path) -> None:
    for module in ("trl", "trackio", "mlflow"):
        pytest.importorskip(module)
    from tinytrain import run_tiny_training

    env = {
        "TRACKIO_DIR": str(tmp_path / "trackio"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_REGISTRY_URI": f"file:{tmp_path / 'registry'}",
        "MLFLOW_EXPERIMENT_NAME": "tiny",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    run = run_tiny_training(tmp_path / "train", report_to=("trackio", "mlflow"), env=env)
    (truth,) = read_runs(str(run.trainer_state))
    assert detect(make_target(str(tmp_path / "trackio")))[0].kind == "trackio"
    assert detect(make_target(str(tmp_path / "mlflow.db")))[0].kind == "mlflow"
    (from_trackio,) = read_runs(str(tmp_path / "trackio"))
    (from_mlflow,) = read_runs(str(tmp_path / "mlflow.db"))
    for metric in ("train/loss", "eval/loss", "train/learning_rate", "train/grad_norm"):
        expected = truth.series(metric).to_dict()
        assert expected, metric
        assert from_trackio.series(metric).to_dict() == pytest.approx(expected), metric
        assert from_mlflow.series(metric).to_dict() == pytest.approx(expected), metric
    assert from_trackio.provenance.step_source == "train/global_step"
    # the end-of-training summary is the run's summary, never a point of the loss curve
    assert "train_runtime" in from_mlflow.summary and "train_loss" in from_mlflow.summary
    assert from_mlflow.state == "finished"
    assert from_mlflow.config.get("learning_rate") == pytest.approx(3e-3)
