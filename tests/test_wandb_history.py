"""Old W&B runs: wandb 0.9 run dirs (wandb-history.jsonl) and a wandb 0.10 .wandb file, both written by the real
old wandb packages (tests/data/wandb_old/make_old_runs.py says how). Expected values come from that script's
formulas. The names (training_loss, epoch_loss, train/lr(1e-3)) are the ones the issue met; which role each
takes is the generic name layer's job, these tests check that every point is read at its step.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs, registry

OLD = Path(__file__).parent / "data" / "wandb_old"
_spec = importlib.util.spec_from_file_location("make_old_runs", OLD / "make_old_runs.py")
gen = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(gen)
(RUN09,) = sorted((OLD / "v0.9" / "wandb").iterdir())
(RUN10,) = sorted((OLD / "v0.10" / "wandb").iterdir())


def same(actual: dict, expected: dict) -> bool:
    return actual.keys() == expected.keys() and all(
        (math.isnan(a) and math.isnan(expected[k])) or a == pytest.approx(expected[k]) for k, a in actual.items()
    )


def raw(run, name: str) -> dict:
    """step → value of one raw (as logged) name: the canonical name is the name layer's choice."""
    frame = run.frame()
    rows = frame[frame["raw_name"] == name]
    return dict(zip(rows["step"].tolist(), rows["value"].tolist()))


def check_formula(run, train_key: str) -> None:
    assert same(raw(run, train_key), {i: gen.loss(i) for i in range(gen.N)})
    assert raw(run, "validation_loss") == pytest.approx({i: gen.val_loss(i) for i in range(0, gen.N, 3)})
    # logged divided by 1e-3 (the scale in the name): role inference multiplies it back (metrics/aliases.yaml)
    assert raw(run, "train/lr(1e-3)") == pytest.approx({i: 1e-3 * (1.0 - i / 20) for i in range(gen.N)})
    assert run.series("train/learning_rate").to_dict() == pytest.approx(
        {i: 1e-3 * (1.0 - i / 20) for i in range(gen.N)}
    )


@pytest.mark.parametrize(
    "where, confidence",
    [(RUN09 / "wandb-history.jsonl", 0.9), (RUN09, 0.85), (RUN09.parent, 0.75), (RUN09.parent.parent, 0.75)],
)
def test_wandb_09_run_is_found_from_every_level(where: Path, confidence: float) -> None:
    source, got = detect(make_target(str(where)))
    assert (source.kind, got) == ("wandb-history", confidence)
    (run,) = read_runs(str(where))
    check_formula(run, "training_loss")
    assert run.name == RUN09.name.rsplit("-", 1)[1]
    assert run.state == "finished" and run.provenance.step_source == "_step"
    assert run.config == {"epochs": 3, "lr": 0.001, "optimizer.name": "adam"}
    assert run.summary["validation_loss"] == pytest.approx(gen.val_loss(gen.N - 3))
    assert run.created is not None and np.isfinite(run.metrics["wall_time"]).all()


def test_files_subdir_layout_and_all_runs(tmp_path: Path) -> None:
    wandb_dir = tmp_path / "wandb"
    older = wandb_dir / "run-20200101_000000-older1"
    (older / "files").mkdir(parents=True)
    for item in RUN09.iterdir():
        shutil.copy(item, older / "files" / item.name)
    shutil.copytree(RUN09, wandb_dir / RUN09.name)
    (run,) = read_runs(str(wandb_dir))
    assert run.name == RUN09.name.rsplit("-", 1)[1]  # the latest by the time in its name
    runs = read_runs(str(wandb_dir), ReadOptions(all_runs=True))
    assert [r.name for r in runs] == ["older1", run.name]
    check_formula(runs[0], "training_loss")


def test_hf_integration_rows_are_placed_at_global_step(tmp_path: Path) -> None:
    # written in the history format above (one object per wandb.log call, _step counting calls); the HF
    # WandbCallback adds train/global_step to every row, eval rows included
    rows = [
        {"train/loss": 2.0 - s / 100, "train/global_step": s, "_step": i, "_runtime": i, "_timestamp": 1.6e9 + i}
        for i, s in enumerate(range(10, 60, 10))
    ]
    rows.insert(3, {"eval/loss": 2.5, "train/global_step": 30, "_step": 99, "_timestamp": 1.6e9})
    path = tmp_path / "wandb-history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run,) = read_runs(str(path))
    assert run.provenance.step_source == "train/global_step"
    assert run.series("train/loss").to_dict() == {s: 2.0 - s / 100 for s in range(10, 60, 10)}
    assert run.series("eval/loss").to_dict() == {30: 2.5}


def test_wandb_010_transaction_log_reads_every_point() -> None:
    source, confidence = detect(make_target(str(RUN10)))
    assert source.kind == "wandb-offline"
    (run,) = read_runs(str(RUN10))
    check_formula(run, "epoch_loss")
    assert run.state == "finished"
    assert registry()["wandb-history"].sniff(make_target(str(RUN10))) == 0.0


def test_bad_history_is_one_clear_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "wandb" / "run-20200101_000000-broken1"
    run_dir.mkdir(parents=True)
    (run_dir / "wandb-history.jsonl").write_text("not json\nstill not json\n")
    with pytest.raises(SourceError) as err:
        read_runs(str(run_dir))
    assert str(err.value).startswith(str(run_dir / "wandb-history.jsonl")) and "no history rows" in str(err.value)
    (run_dir / "wandb-history.jsonl").write_text('{"_step": 0, "_runtime": 1}\n{"_step": 1, "_runtime": 2}\n')
    with pytest.raises(SourceError, match="no numeric metrics"):
        read_runs(str(run_dir))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SourceError, match="no wandb-history.jsonl here"):
        read_runs(str(plain), ReadOptions(source_kind="wandb-history"))
