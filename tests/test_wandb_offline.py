"""The .wandb reader against real offline runs written by the real wandb package (tests/make_wandb_runs.py).

Expected values come from the generator's formulas (make_wandb_runs.expected_points), never from output.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import make_wandb_runs as mk  # noqa: E402

from lossdoctor.errors import SourceError  # noqa: E402
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs  # noqa: E402
from lossdoctor.sources._wandb_records import BLOCK, FILE_HEADER, chunk_crc, has_magic, scan_log  # noqa: E402
from lossdoctor.sources.wandb_offline import read_wandb_file  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("wandb-runs")
    out = {}
    out["hf"] = (mk.RunSpec(), mk.make_offline_run(root / "a", mk.RunSpec()))
    spec_plain = mk.RunSpec(step_metric=False, exit_code=3, name="plain", nan_at=(), inf_at=(7,))
    out["plain"] = (spec_plain, mk.make_offline_run(root / "a", spec_plain))  # same wandb/ dir: two runs
    spec_big = mk.RunSpec(steps=60, big_text=True, name="big")
    out["big"] = (spec_big, mk.make_offline_run(root / "b", spec_big))
    return out


def wandb_file(run_dir: Path) -> Path:
    return next(run_dir.glob("*.wandb"))


def assert_points(run, expected: dict[str, dict[int, float]]) -> None:
    for metric, points in expected.items():
        series = run.series(metric)
        assert sorted(series.index.tolist()) == sorted(points), metric
        for step, value in points.items():
            got = series.loc[step]
            if math.isnan(value):
                assert math.isnan(got), (metric, step)
            else:
                assert got == pytest.approx(value, rel=1e-12), (metric, step)


def test_crc_is_zlib_crc32_of_type_and_payload_not_crc32c(runs: dict) -> None:
    data = wandb_file(runs["hf"][1]).read_bytes()
    assert data[:7] == FILE_HEADER and has_magic(data)
    crc, length, ctype = struct.unpack_from("<IHB", data, 7)
    payload = data[14 : 14 + length]
    assert crc == zlib.crc32(bytes([ctype]) + payload) == chunk_crc(ctype, payload)
    scan = scan_log(data)
    assert scan.damage == [] and len(scan.records) > 200


def test_values_steps_and_metadata_follow_the_formula(runs: dict) -> None:
    spec, run_dir = runs["hf"]
    (run,) = read_runs(str(run_dir))
    assert run.provenance.kind == "wandb-offline"
    assert run.provenance.step_source == "train/global_step"
    assert_points(run, mk.expected_points(spec))
    assert run.state == "finished" and run.name == spec.name and run.tags == spec.tags
    assert run.config["learning_rate"] == 0.001 and run.config["model.layers"] == 2
    assert run.created and run.created.endswith("Z")
    assert "weights" not in run.metric_names() and "note" not in run.metric_names()
    assert any("non-numeric" in n for n in run.provenance.notes)
    assert run.summary["train/loss"] == pytest.approx(mk.train_loss(spec.steps - 1))
    log = read_wandb_file(wandb_file(run_dir))
    assert (log.entity, log.project) == (spec.entity, spec.project)


def test_without_step_metric_uses__step_and_nonzero_exit_is_crashed(runs: dict) -> None:
    spec, run_dir = runs["plain"]
    (run,) = read_runs(str(wandb_file(run_dir)))
    assert run.provenance.step_source == "_step"
    assert run.state == "crashed"
    # without a step metric each log() call advances _step: eval rows are their own calls
    train = run.series("train/loss")
    assert len(train) == spec.steps and train.iloc[0] == pytest.approx(3.0)
    assert math.isinf(run.series("train/grad_norm").iloc[7])
    assert len(run.series("eval/loss")) == len(range(0, spec.steps, mk.EVAL_EVERY))


def test_directory_forms_pick_the_latest_or_all(runs: dict) -> None:
    run_dir = runs["plain"][1]  # made second under the same root: the latest
    wandb_dir = run_dir.parent
    names = {read_runs(str(p))[0].name for p in (run_dir, wandb_dir / "latest-run", wandb_dir, wandb_dir.parent)}
    assert names == {"plain"}
    every = read_runs(str(wandb_dir), ReadOptions(all_runs=True))
    assert [r.name for r in every] == ["formula-run", "plain"]
    for target, score in (
        (str(wandb_file(run_dir)), 1.0),
        (str(run_dir), 0.8),
        (str(wandb_dir), 0.8),
        (str(wandb_dir.parent), 0.8),
    ):
        source, confidence = detect(make_target(target))
        assert (source.kind, confidence) == ("wandb-offline", score)


def test_not_a_wandb_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"hello")
    with pytest.raises(SourceError, match="not a W&B transaction log"):
        read_runs(str(bad), ReadOptions(source_kind="wandb-offline"))


def _cut_points(data: bytes) -> dict[str, int]:
    scan = scan_log(data)
    header_inside = next(off for off, _ in scan.records if off > len(data) // 3) + 3
    return {
        "half": len(data) // 2,
        "block boundary": BLOCK * 2,
        "inside chunk header": header_inside,
        "one byte short": len(data) - 1,
    }


@pytest.mark.parametrize("cut", ["half", "block boundary", "inside chunk header", "one byte short"])
def test_truncated_copies_recover_every_record_before_the_cut(runs: dict, tmp_path: Path, cut: str) -> None:
    spec, run_dir = runs["big"]
    data = wandb_file(run_dir).read_bytes()
    full = scan_log(data)
    at = _cut_points(data)[cut]
    assert at < len(data)
    target = tmp_path / "run-cut.wandb"
    target.write_bytes(data[:at])
    scan = scan_log(target.read_bytes())
    expected = [rec for rec, end in zip(full.records, full.ends) if end <= at]
    assert scan.records == expected
    (run,) = read_runs(str(target))
    # every history row before the cut, with the formula's values
    rows_kept = len(run.series("train/loss"))
    exp = mk.expected_points(spec)
    kept = {m: {s: v for s, v in pts.items() if s < rows_kept * mk.STEP_FACTOR} for m, pts in exp.items()}
    assert rows_kept > 0
    assert_points(run, {"train/loss": kept["train/loss"]})
    assert run.state == "unknown"
    notes = " | ".join(run.provenance.notes)
    damage = [d for d in scan.damage if d.reason == "truncated"]
    if damage:
        assert f"truncated at byte {damage[0].offset}" in notes
        assert full.ends[len(expected) - 1] <= damage[0].offset <= at
    assert "no exit record" in notes


def test_flipped_byte_loses_only_the_rest_of_its_block(runs: dict, tmp_path: Path) -> None:
    spec, run_dir = runs["big"]
    data = bytearray(wandb_file(run_dir).read_bytes())
    full = scan_log(bytes(data))
    flip = BLOCK + BLOCK // 2
    data[flip] ^= 0xFF
    target = tmp_path / "run-flip.wandb"
    target.write_bytes(bytes(data))
    scan = scan_log(bytes(data))
    assert scan.damage and scan.damage[0].reason == "bad checksum"
    # records wholly before the damaged chunk or wholly after the next block start survive
    lost_from = scan.damage[0].offset
    resume = scan.damage[0].resumed_at
    survivors = [r for r, end in zip(full.records, full.ends) if end <= lost_from or r[0] >= resume]
    assert all(r in scan.records for r in survivors)
    (run,) = read_runs(str(target))
    assert run.state == "finished"  # the exit record, after the damage, was found
    notes = " | ".join(run.provenance.notes)
    assert f"damaged at byte {lost_from} (bad checksum)" in notes
    assert "history rows _step" in notes
    exp = mk.expected_points(spec)["train/loss"]
    got = run.series("train/loss")
    assert 0 < len(got) < len(exp)
    for step, value in got.items():
        assert value == pytest.approx(exp[step], nan_ok=True)


def test_hf_trl_training_matches_trainer_state(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A real tiny trl SFT run with report_to=wandb (offline): W&B points == trainer_state.json log_history."""
    root = tmp_path_factory.mktemp("hf-wandb")
    run_dir, state_path = mk.make_hf_wandb_run(root)
    (run,) = read_runs(str(run_dir))
    history = json.loads(state_path.read_text())["log_history"]
    expected: dict[str, dict[int, float]] = {"train/loss": {}, "eval/loss": {}}
    for entry in history:
        if "loss" in entry:
            expected["train/loss"][entry["step"]] = entry["loss"]
        if "eval_loss" in entry:
            expected["eval/loss"][entry["step"]] = entry["eval_loss"]
    assert len(expected["train/loss"]) >= 5 and len(expected["eval/loss"]) >= 3
    assert run.provenance.step_source == "train/global_step"
    assert run.state == "finished"
    for metric, points in expected.items():
        series = run.series(metric)
        assert sorted(series.index) == sorted(points)
        for step, value in points.items():
            assert series.loc[step] == pytest.approx(value, rel=1e-6)
    shutil.rmtree(root, ignore_errors=True)
