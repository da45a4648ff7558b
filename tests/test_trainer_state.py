"""trainer-state reader: hand-sized JSON made here by formula, malformed input, and the real tiny trl run."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs
from lossdoctor.sources.trainer_state import SOURCE

sys.path.insert(0, str(Path(__file__).parent))
from tinytrain import tiny_run_once  # noqa: E402


def state(global_step: int = 40, max_steps: int = 40, summary: bool = True) -> dict:
    hist: list[dict] = []
    for step in range(10, global_step + 1, 10):
        hist.append(
            {
                "loss": 3.0 - step / 100,
                "grad_norm": float("nan") if step == 20 else 1.0,
                "learning_rate": 1e-4,
                "epoch": step / 20,
                "step": step,
            }
        )
        if step % 20 == 0:
            hist.append(
                {"eval_loss": 2.0 + abs(step - 20) / 100, "eval_runtime": 0.4, "epoch": step / 20, "step": step}
            )
    if summary:
        hist.append(
            {
                "train_runtime": 9.5,
                "train_loss": 2.75,
                "total_flos": 1e9,
                "epoch": global_step / 20,
                "step": global_step,
            }
        )
    return {
        "global_step": global_step,
        "max_steps": max_steps,
        "logging_steps": 10,
        "eval_steps": 20,
        "num_train_epochs": 2,
        "best_metric": 2.0,
        "best_model_checkpoint": "out/checkpoint-20",
        "log_history": hist,
    }


def dump(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))  # json writes NaN as the Trainer does
    return path


def read(location: Path):
    runs = read_runs(str(location), ReadOptions())
    assert len(runs) == 1
    return runs[0]


def test_file_points_summary_config(tmp_path: Path) -> None:
    path = dump(tmp_path / "out" / "trainer_state.json", state())
    assert detect(make_target(str(path))) == (SOURCE, 0.9)
    run = read(path)
    assert run.provenance.kind == "trainer-state" and run.provenance.step_source == "logged"
    assert run.series("train/loss").to_dict() == {s: 3.0 - s / 100 for s in (10, 20, 30, 40)}
    assert run.series("eval/loss").to_dict() == {20: 2.0, 40: 2.2}
    assert math.isnan(run.series("train/grad_norm")[20])
    assert run.series("train/epoch").to_dict() == {10: 0.5, 20: 1.0, 30: 1.5, 40: 2.0}
    assert run.summary["train_loss"] == 2.75 and run.summary["train_runtime"] == 9.5
    assert 2.75 not in run.series("train/loss").tolist()  # the average is not a point
    assert run.config["trainer.best_metric"] == 2.0
    assert run.config["trainer.best_model_checkpoint"] == "out/checkpoint-20"
    assert run.config["trainer.logging_steps"] == 10 and run.config["trainer.eval_steps"] == 20
    assert run.summary["max_steps"] == 40 and run.state == "finished"
    assert run.name == "out"


def test_interrupted_run(tmp_path: Path) -> None:
    run = read(dump(tmp_path / "trainer_state.json", state(global_step=20, max_steps=100, summary=False)))
    assert run.state == "interrupted"
    assert any("20 < max_steps 100" in n for n in run.provenance.notes)


def test_output_dir_prefers_top_level_then_highest_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "myrun"
    dump(out / "checkpoint-20" / "trainer_state.json", state(global_step=20, summary=False))
    dump(out / "checkpoint-100" / "trainer_state.json", state(global_step=40, summary=False))
    dump(out / "checkpoint-9" / "trainer_state.json", state(global_step=10, summary=False))
    assert detect(make_target(str(out))) == (SOURCE, 0.85)
    run = read(out)
    assert run.provenance.location.endswith("checkpoint-100/trainer_state.json")
    assert run.series("train/loss").index.max() == 40 and run.name == "myrun"
    dump(out / "trainer_state.json", state(global_step=30, max_steps=30))
    assert read(out).series("train/loss").index.max() == 30
    assert read(out / "checkpoint-20").name == "myrun"


@pytest.mark.parametrize(
    "text, message, line",
    [
        (
            '{\n  "log_history": [\n    {"loss": 1.0, "step": 1},\n    {"loss": 2.0 "step": 2}\n  ]\n}\n',
            "malformed JSON",
            4,
        ),
        ('{"global_step": 3}', "no 'log_history'", None),
        ('{"log_history": [{"train_runtime": 1.0}]}', "no logged metrics", None),
    ],
)
def test_bad_json_is_a_located_error(tmp_path: Path, text: str, message: str, line: int | None) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text(text)
    with pytest.raises(SourceError) as err:
        read_runs(str(path), ReadOptions(source_kind="trainer-state"))
    assert message in str(err.value) and err.value.line == line
    assert str(err.value).startswith(str(path) + (f":{line}:" if line else ":"))


def test_dir_without_state_is_an_error(tmp_path: Path) -> None:
    assert SOURCE.sniff(make_target(str(tmp_path))) == 0.0
    with pytest.raises(SourceError, match="no trainer_state.json"):
        read_runs(str(tmp_path), ReadOptions(source_kind="trainer-state"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    return tiny_run_once(tmp_path_factory.mktemp("tinytrain"))


@pytest.mark.slow
def test_real_trl_output_dir(tiny_run) -> None:
    import tinytrain

    run = read(tiny_run.output_dir)
    hist = json.loads(tiny_run.trainer_state.read_text())["log_history"]
    evals = {e["step"]: e["eval_loss"] for e in hist if "eval_loss" in e}
    assert run.series("eval/loss").to_dict() == evals
    assert run.state == "finished" and run.summary["global_step"] == tinytrain.MAX_STEPS
    ckpt = read(tiny_run.output_dir / f"checkpoint-{tinytrain.SAVE_STEPS}")
    assert ckpt.state == "interrupted" and ckpt.series("train/loss").index.max() == tinytrain.SAVE_STEPS
