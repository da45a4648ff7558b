"""Real trackio projects and MLflow stores for the tracker readers' tests, written by the real packages.

Why a child process: trackio reads TRACKIO_DIR at import and keeps a process-wide run; MLflow keeps an active
run and a tracking URI per process. A child keeps that out of pytest. Values follow make_logs.formula()
(tests/data/logs/make_logs.py), so tests compare against the formula, not against output:

    python tests/make_tracker_stores.py trackio OUT_DIR         # OUT_DIR/formula.db: runs "first", "hf-style"
    python tests/make_tracker_stores.py mlflow-file OUT_DIR     # OUT_DIR/mlruns: runs "first", "second"
    python tests/make_tracker_stores.py mlflow-sqlite OUT_DIR   # OUT_DIR/mlflow.db: runs "first", "second"

Run "first" logs the formula at its steps (train metrics, then eval at eval steps, one call each);
trackio's "hf-style" logs like the transformers TrackioCallback (no step; train/global_step in every row);
MLflow's "second" (started later) logs the formula's train loss + 1 and a NaN and an inf eval loss.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("make_logs", HERE / "data" / "logs" / "make_logs.py")
make_logs = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(make_logs)

CONFIG = {"learning_rate": 0.0002, "lora": {"r": 8, "alpha": 16}, "model": "tiny"}
NAN_STEP, INF_STEP = 50, 75


def formula_calls() -> list[tuple[int, dict[str, float]]]:
    """(step, dict) per log call: the train metrics, then eval/loss on its own at eval steps."""
    calls: list[tuple[int, dict[str, float]]] = []
    for step in range(make_logs.TRAIN_EVERY, make_logs.LAST + 1, make_logs.TRAIN_EVERY):
        calls.append(
            (
                step,
                {
                    "train/loss": make_logs.train_loss(step),
                    "train/learning_rate": make_logs.learning_rate(step),
                    "train/epoch": float(make_logs.epoch(step)),
                },
            )
        )
        if step % make_logs.EVAL_EVERY == 0:
            calls.append((step, {"eval/loss": make_logs.eval_loss(step)}))
    return calls


def write_trackio(out: Path) -> None:
    import trackio

    trackio.init(project="formula", name="first", config=CONFIG)
    for step, values in formula_calls():
        trackio.log(values, step=step)
    trackio.finish()
    trackio.init(project="formula", name="hf-style", config=CONFIG)
    for step, values in formula_calls():
        trackio.log({**values, "train/global_step": step})
    trackio.finish()


def write_mlflow(uri: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("formula")
    with mlflow.start_run(run_name="first"):
        mlflow.log_params({k: str(v) for k, v in CONFIG.items() if not isinstance(v, dict)})
        mlflow.set_tag("purpose", "lossdoctor test")
        for step, values in formula_calls():
            mlflow.log_metrics(values, step=step)
    with mlflow.start_run(run_name="second"):
        for step, values in formula_calls():
            if "train/loss" in values:
                mlflow.log_metric("train/loss", values["train/loss"] + 1, step=step)
        mlflow.log_metric("eval/loss", float("nan"), step=NAN_STEP)
        mlflow.log_metric("eval/loss", float("inf"), step=INF_STEP)


def make(kind: str, out: Path, timeout: float = 240) -> Path:
    """Write the store in a child process; returns the path to read."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRACKIO_DIR=str(out),
        MLFLOW_ALLOW_FILE_STORE="true",
        MLFLOW_REGISTRY_URI=f"file:{out / 'registry'}",
        GIT_PYTHON_REFRESH="quiet",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    proc = subprocess.run(
        [sys.executable, __file__, kind, str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=out,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} store failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return {"trackio": out / "formula.db", "mlflow-file": out / "mlruns", "mlflow-sqlite": out / "mlflow.db"}[kind]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    kind, out = argv[1], Path(argv[2])
    if kind == "trackio":
        write_trackio(out)
    elif kind == "mlflow-file":
        write_mlflow(f"file:{out / 'mlruns'}")
    elif kind == "mlflow-sqlite":
        write_mlflow(f"sqlite:///{out / 'mlflow.db'}")
    else:
        print(f"unknown kind {kind!r}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
