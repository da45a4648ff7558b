"""One tidy-table policy for every format: the same logged content (a repeated point, HF's end-of-run summary
row, a step outside int64) written as CSV, JSONL, trainer_state.json, TensorBoard events and a text log reads
to the same table, with the same notes; plus the constructor itself (steps validated, never a crash)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lossdoctor.sources import ReadOptions, read_runs
from lossdoctor.tidy import Coded, tidy_points

BAD_STEP = 10**30  # finite and integral, but outside int64
#: (step, {raw name: value}) in the order logged: step 20's loss logged twice (a resumed run re-logs it; the
#: later value is the run that went on), HF's summary row at the last step, one point at an impossible step
ROWS: list[tuple[int, dict[str, float]]] = [
    (10, {"loss": 2.5, "learning_rate": 1e-4}),
    (20, {"loss": 2.0, "learning_rate": 1e-4}),
    (20, {"loss": 1.5, "learning_rate": 1e-4}),
    (
        20,
        {
            "train_runtime": 100.0,
            "train_samples_per_second": 3.0,
            "train_steps_per_second": 0.2,
            "total_flos": 1e12,
            "train_loss": 9.875,
        },
    ),
    (BAD_STEP, {"loss": 7.0}),
]


def write_csv(tmp: Path) -> Path:
    keys = sorted({k for _, row in ROWS for k in row})
    lines = [",".join(["step"] + keys)]
    lines += [",".join([str(step)] + [repr(row[k]) if k in row else "" for k in keys]) for step, row in ROWS]
    path = tmp / "metrics.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(tmp: Path) -> Path:
    path = tmp / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": step, **row}) + "\n" for step, row in ROWS))
    return path


def write_trainer_state(tmp: Path) -> Path:
    path = tmp / "trainer_state.json"
    path.write_text(
        json.dumps({"global_step": 20, "max_steps": 20, "log_history": [{**row, "step": step} for step, row in ROWS]})
    )
    return path


def write_text_log(tmp: Path) -> Path:
    path = tmp / "train.log"
    path.write_text(
        "".join(f"step={step} " + " ".join(f"{k}={v!r}" for k, v in row.items()) + "\n" for step, row in ROWS)
    )
    return path


def write_tensorboard(tmp: Path) -> Path:
    """HF's TensorBoardCallback tags (train/ prefix). An event's step is an int64: the bad step cannot be
    written, the rest is."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp / "tb"))
    for step, row in ROWS:
        if step == BAD_STEP:
            continue
        for key, value in row.items():
            writer.add_scalar(f"train/{key}", value, global_step=step)
    writer.close()
    return tmp / "tb"


WRITERS: dict[str, Callable[[Path], Path]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
    "trainer-state": write_trainer_state,
    "text-log": write_text_log,
    "tensorboard": write_tensorboard,
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_one_policy_for_every_format(kind: str, tmp_path: Path) -> None:
    path = WRITERS[kind](tmp_path)
    runs = read_runs(str(path), ReadOptions(source_kind=kind))
    assert len(runs) == 1
    run = runs[0]
    assert run.metrics["step"].dtype == np.int64 and run.metrics["value"].dtype == np.float64
    # the repeat: the last logged value kept, said in a note (trainer_state drops nothing else the same way)
    assert run.series("train/loss").to_dict() == {10: 2.5, 20: 1.5}
    notes = " | ".join(run.provenance.notes)
    assert "repeated (step, metric) point(s) dropped; the last kept" in notes
    # the end-of-run summary: never a point (no fake last-step loss), kept as the run's summary
    raw = set(run.metrics["raw_name"])
    assert not any(name.endswith(("train_loss", "train_runtime", "total_flos", "per_second")) for name in raw)
    assert run.summary.get("train_loss") == 9.875
    # the impossible step: dropped and counted, never a crash (TensorBoard cannot even write it)
    assert BAD_STEP not in set(run.metrics["step"])
    if kind != "tensorboard":
        assert "dropped: step not a finite integer within int64" in notes
    assert run.metric_names() == ("train/learning_rate", "train/loss")


def test_constructor_validates_steps_of_any_type() -> None:
    steps = [1, 2.0, float("nan"), float("inf"), 2.5, -3, 2**63, "7", None, True]
    t = tidy_points(np.asarray(steps, dtype=object), ["x"] * len(steps), list(range(len(steps))))
    assert t.frame["step"].tolist() == [-3, 1, 2, 7]
    assert t.frame["step"].dtype == np.int64
    assert t.notes == ("6 point(s) dropped: step not a finite integer within int64",)
    floats = tidy_points(np.asarray([1e300, 3.0, -np.inf]), ["x"] * 3, [1.0, 2.0, 3.0])
    assert floats.frame["step"].tolist() == [3]


def test_constructor_ranks_priorities_and_identical_repeats() -> None:
    # rank 1 first, rank 0 after; priority 1 (a progress bar) loses to priority 0 at the same rank
    t = tidy_points(
        [5, 5, 6, 6, 7, 7],
        ["loss"] * 6,
        [9.0, 1.0, 2.0, 3.0, 4.0, 4.0],
        rank=[1, 0, 0, 0, 0, 0],
        priority=[0, 0, 0, 1, 0, 0],
    )
    assert t.frame["value"].tolist() == [1.0, 2.0, 4.0]
    assert t.notes == (
        "1 point(s) from ranks other than the lowest-numbered dropped (same step and metric; rank 0 kept)",
        "1 repeated (step, metric) point(s) dropped; the last kept",
    )


def test_constructor_summary_only_where_train_runtime_is() -> None:
    """A per-step ``train_loss`` (Lightning, custom loops) is a curve; only the one beside ``train_runtime``
    is HF's summary."""
    t = tidy_points(
        [1, 2, 3, 3], Coded(np.asarray([0, 0, 0, 1]), ["train_loss", "train_runtime"]), [3.0, 2.0, 1.7, 60.0]
    )
    assert t.frame["value"].tolist() == [3.0, 2.0] and dict(t.summary) == {"train_loss": 1.7, "train_runtime": 60.0}
    plain = tidy_points([1, 2], ["train_loss"] * 2, [3.0, 2.0])
    assert plain.frame["value"].tolist() == [3.0, 2.0] and not plain.summary and not plain.notes


def test_constructor_keeps_nan_and_inf_values() -> None:
    t = tidy_points([1, 2], ["loss", "loss"], [math.nan, math.inf])
    values = t.frame["value"].tolist()
    assert math.isnan(values[0]) and values[1] == math.inf


#: a resumed run: steps 10-40 logged, then the run went on from its step-20 checkpoint and re-logged 20-40
#: (other loss and grad-norm values, the same learning rate) before reaching 50. Values are exact in float32
#: (TensorBoard stores float32), so both files hold the same numbers.
RESUMED: list[tuple[int, dict[str, float]]] = [
    (step, {"loss": 4.0 - step / 16, "grad_norm": 1.0 + step / 64, "learning_rate": 2.0**-10})
    for step in (10, 20, 30, 40)
] + [
    (step, {"loss": 3.5 - step / 32, "grad_norm": 0.5 + step / 128, "learning_rate": 2.0**-10})
    for step in (20, 30, 40, 50)
]


def test_csv_and_tensorboard_read_a_resumed_run_to_the_same_table(tmp_path: Path) -> None:
    """The same points written by the CSV writer a training script uses and by the real TensorBoard writer
    (HF's ``train/`` tags): both readers give the same table, point for point, the last logged value per
    (step, metric), and say the same about the repeats."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    keys = ["grad_norm", "learning_rate", "loss"]
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(
        "step,"
        + ",".join(keys)
        + "\n"
        + "".join(f"{step}," + ",".join(repr(row[k]) for k in keys) + "\n" for step, row in RESUMED)
    )
    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    for step, row in RESUMED:
        for key in keys:
            writer.add_scalar(f"train/{key}", row[key], global_step=step)
    writer.close()

    def table(path: Path, kind: str) -> tuple[list[tuple[str, int, float]], list[str]]:
        (run,) = read_runs(str(path), ReadOptions(source_kind=kind))
        t = run.metrics
        rows = list(zip(t["metric"].tolist(), t["step"].tolist(), t["value"].tolist()))
        return rows, [n for n in run.provenance.notes if "repeated" in n]

    csv_rows, csv_notes = table(csv_path, "csv")
    tb_rows, tb_notes = table(tmp_path / "tb", "tensorboard")
    expected: dict[tuple[str, int], float] = {}
    for step, row in RESUMED:
        for key in keys:
            expected[(f"train/{key}", step)] = row[key]  # later writes win
    assert csv_rows == tb_rows == [(m, s, v) for (m, s), v in sorted(expected.items())]
    # loss and grad_norm were re-logged with other values at 20, 30, 40; the learning rate repeats identically
    assert csv_notes == tb_notes == ["6 repeated (step, metric) point(s) dropped; the last kept"]


def test_a_table_built_by_hand_is_resolved_by_the_constructor() -> None:
    """A Run given a table with repeats and in any order (a DataFrame built by hand, tables concatenated)
    cuts its series as the constructor would have built them: one point per step, the last row kept."""
    import pandas as pd

    from lossdoctor.model import Provenance, Run
    from lossdoctor.tidy import retidy

    frame = pd.DataFrame(
        {
            "step": [30, 10, 20, 10, 20],
            "metric": ["train/loss"] * 5,
            "value": [1.0, 3.0, 2.0, 2.5, 1.5],
            "raw_name": ["loss"] * 5,
        }
    )
    run = Run(name="by-hand", provenance=Provenance(kind="test", location="-"), metrics=frame)
    assert run.series("train/loss").to_dict() == {10: 2.5, 20: 1.5, 30: 1.0}
    assert run.n_points == 5  # the table itself stays as given
    built = tidy_points(frame["step"], frame["raw_name"], frame["value"], canonical=frame["metric"])
    again = retidy(run.metrics)
    assert again.frame["step"].tolist() == built.frame["step"].tolist() == [10, 20, 30]
    assert again.frame["value"].tolist() == built.frame["value"].tolist()
    # priority: lower wins whatever the order (the notebook reader's run points before its eval tables)
    first = retidy(run.metrics, priority=[0, 1, 1, 0, 0])
    assert first.frame["value"].tolist() == [2.5, 1.5, 1.0]
    second = retidy(run.metrics, priority=[0, 0, 0, 1, 1])
    assert second.frame["value"].tolist() == [3.0, 2.0, 1.0]
