"""LLaMA-Factory trainer_log.jsonl and output dirs.

The real file (tests/data/logs/llamafactory_medical/, MIT, source in its SOURCE.md) is the main fixture; the
expected values are parsed from its lines here with json, not copied from lossdoctor's output. Variants that
no public licensed file shows (DPO keys, a resumed run, an eval-only progress log) are written from
LLaMA-Factory's LogCallback.on_log (src/llamafactory/train/callbacks.py) and say so where they are made.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs
from lossdoctor.sources.llamafactory import parse_elapsed

REAL_DIR = Path(__file__).parent / "data" / "logs" / "llamafactory_medical"
REAL_LOG = REAL_DIR / "trainer_log.jsonl"


def real_records() -> list[dict]:
    return [json.loads(line) for line in REAL_LOG.read_text().splitlines() if line.strip()]


def test_real_trainer_log_is_detected_and_read() -> None:
    source, confidence = detect(make_target(str(REAL_LOG)))
    assert (source.kind, confidence) == ("llamafactory", 0.95)
    (run,) = read_runs(str(REAL_LOG))
    records = real_records()
    train = {r["current_steps"]: r["loss"] for r in records if "loss" in r}
    evals = {r["current_steps"]: r["eval_loss"] for r in records if "eval_loss" in r}
    lrs = {r["current_steps"]: r["lr"] for r in records if "lr" in r}
    assert run.series("train/loss").to_dict() == train
    assert run.series("eval/loss").to_dict() == evals
    assert run.series("train/learning_rate").to_dict() == lrs
    assert run.name == "llamafactory_medical"  # the output dir, not "trainer_log"
    assert run.state == "finished"
    assert run.summary["max_steps"] == records[-1]["total_steps"] == run.summary["global_step"]
    # progress keys are not metrics
    assert not {"percentage", "current_steps", "total_steps", "elapsed_time"} & set(run.metrics["raw_name"])
    # wall time: elapsed_time in seconds since the start
    first = records[0]
    frame = run.frame()
    at_first = frame[(frame["step"] == first["current_steps"]) & (frame["raw_name"] == "loss")]
    assert at_first["wall_time"].tolist() == [parse_elapsed(first["elapsed_time"])]


def test_output_dir_adds_results_summary() -> None:
    source, confidence = detect(make_target(str(REAL_DIR)))
    assert source.kind == "llamafactory"
    (run,) = read_runs(str(REAL_DIR))
    results = json.loads((REAL_DIR / "all_results.json").read_text())
    assert run.summary["train_loss"] == results["train_loss"]
    assert run.summary["eval_loss"] == results["eval_loss"]
    assert run.series("train/loss").to_dict() == {r["current_steps"]: r["loss"] for r in real_records() if "loss" in r}


def test_run_that_stops_short_is_incomplete(tmp_path: Path) -> None:
    lines = REAL_LOG.read_text().splitlines()[:120]
    cut = tmp_path / "out" / "trainer_log.jsonl"
    cut.parent.mkdir()
    cut.write_text("\n".join(lines) + "\n")
    last = json.loads(lines[-1])
    (run,) = read_runs(str(cut))
    assert run.state == "interrupted"
    assert any(
        n.startswith("incomplete:") and f"{last['current_steps']} of total_steps {last['total_steps']}" in n
        for n in run.provenance.notes
    ), run.provenance.notes


def test_stray_second_line_does_not_decide_the_format(tmp_path: Path) -> None:
    lines = REAL_LOG.read_text().splitlines()[:30]
    path = tmp_path / "trainer_log.jsonl"
    path.write_text("\n".join([lines[0], "Warning: something printed into the log", *lines[1:]]) + "\n")
    assert detect(make_target(str(path)))[0].kind == "llamafactory"
    (run,) = read_runs(str(path))
    assert len(run.series("train/loss")) == 30
    assert any("1 line(s) that are not LLaMA-Factory log records skipped (line 2)" in n for n in run.provenance.notes)


def _write_lines(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_dpo_keys_resumed_run_and_end_line(tmp_path: Path) -> None:
    # Written from LogCallback.on_log: a DPO run logs loss, reward, accuracy (trl's rewards/accuracies), lr,
    # epoch; None values are dropped, so the end-of-training call leaves progress keys only. The run was
    # resumed from step 20 into the same file, so steps 30-40 appear twice; the later values are the run's.
    def rec(step: int, loss: float, acc: float) -> dict:
        return {
            "current_steps": step,
            "total_steps": 40,
            "loss": loss,
            "reward": 0.1 * step,
            "accuracy": acc,
            "lr": 1e-6,
            "epoch": step / 40,
            "percentage": step / 40 * 100,
            "elapsed_time": f"0:00:{step:02d}",
            "remaining_time": "0:00:10",
        }

    records = [
        rec(10, 0.6931, 0.5),
        rec(20, 0.65, 0.6),
        rec(30, 0.9, 0.4),
        rec(40, 0.95, 0.4),
        rec(30, 0.6, 0.7),
        rec(40, 0.55, 0.8),
        {
            "current_steps": 40,
            "total_steps": 40,
            "epoch": 1.0,
            "percentage": 100.0,
            "elapsed_time": "0:00:45",
            "remaining_time": "0:00:00",
        },
    ]
    (run,) = read_runs(str(_write_lines(tmp_path / "dpo" / "trainer_log.jsonl", records)))
    assert run.series("train/loss").to_dict() == {10: 0.6931, 20: 0.65, 30: 0.6, 40: 0.55}
    assert run.series("train/rewards/accuracies").to_dict() == {10: 0.5, 20: 0.6, 30: 0.7, 40: 0.8}
    assert run.state == "finished"
    notes = " | ".join(run.provenance.notes)
    assert "resumed" in notes and "rewards/accuracies" in notes


def test_trainer_state_beside_the_log_is_preferred_when_it_reaches_as_far(tmp_path: Path) -> None:
    out = tmp_path / "sft"
    shutil.copytree(REAL_DIR, out)
    records = [r for r in real_records() if "loss" in r or "eval_loss" in r]
    last = records[-1]["current_steps"]
    history = [
        {"step": r["current_steps"], "loss": r["loss"], "grad_norm": 1.0, "epoch": r["epoch"]}
        for r in records
        if "loss" in r
    ]
    state = {"global_step": last, "max_steps": last, "log_history": history}
    (out / "trainer_state.json").write_text(json.dumps(state))
    (run,) = read_runs(str(out))
    assert run.provenance.kind == "trainer-state"
    assert run.has("train/grad_norm")
    assert "trainer_state.json read" in run.provenance.notes[0]
    assert run.summary["eval_loss"] == json.loads((out / "all_results.json").read_text())["eval_loss"]
    # a stale checkpoint (a crashed run) loses to the log
    (out / "trainer_state.json").unlink()
    (out / "checkpoint-500").mkdir()
    stale = {"global_step": 500, "max_steps": last, "log_history": [h for h in history if h["step"] <= 500]}
    (out / "checkpoint-500" / "trainer_state.json").write_text(json.dumps(stale))
    (run,) = read_runs(str(out))
    assert run.provenance.kind == "llamafactory"
    assert max(run.series("train/loss").index) == last
    assert "trainer_log.jsonl read" in run.provenance.notes[0]


def test_elapsed_time_forms() -> None:
    assert parse_elapsed("0:01:02") == 62
    assert parse_elapsed("1 day, 2:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4
    assert parse_elapsed("3 days, 0:00:00") == 3 * 86400
    assert parse_elapsed("soon") is None and parse_elapsed(5) is None


def test_progress_only_log_is_a_clear_error(tmp_path: Path) -> None:
    # an eval-only run: LogCallback.on_prediction_step writes progress every 5 prediction steps, no metrics
    path = _write_lines(
        tmp_path / "trainer_log.jsonl",
        [
            {
                "current_steps": s,
                "total_steps": 20,
                "percentage": s * 5.0,
                "elapsed_time": "0:00:01",
                "remaining_time": "0:00:01",
            }
            for s in (5, 10, 15, 20)
        ],
    )
    with pytest.raises(SourceError) as err:
        read_runs(str(path))
    assert str(err.value).startswith(str(path)) and "no metric values" in str(err.value)


def test_forced_kind_on_other_json_lines_names_what_was_expected(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "metrics.jsonl", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    assert detect(make_target(str(path)))[0].kind == "jsonl"
    with pytest.raises(SourceError) as err:
        read_runs(str(path), ReadOptions(source_kind="llamafactory"))
    assert "current_steps" in str(err.value) and "line 1" in str(err.value)
