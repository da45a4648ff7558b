"""TensorBoard events, CSV (Lightning wide + long) and JSONL: the same formula run gives the same tidy table."""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs

LOGS = Path(__file__).parent / "data" / "logs"
_spec = importlib.util.spec_from_file_location("make_logs", LOGS / "make_logs.py")
make_logs = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(make_logs)


def expected_table() -> pd.DataFrame:
    rows = make_logs.formula()
    return pd.DataFrame(rows, columns=["step", "metric", "value"]).astype({"step": "int64", "value": "float64"})


def core(run) -> pd.DataFrame:
    return (
        run.frame()
        .astype({"metric": "str"})[["step", "metric", "value"]]
        .sort_values(["step", "metric"])
        .reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def tb_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("tb") / "hf_output" / "runs" / "Dec02_host"
    make_logs.write_tensorboard(root)
    return root


def test_tensorboard_event_file_matches_formula(tb_dir: Path) -> None:
    (event_file,) = sorted(tb_dir.glob("events.out.tfevents.*"))
    source, confidence = detect(make_target(str(event_file)))
    assert (source.kind, confidence) == ("tensorboard", 1.0)
    (run,) = read_runs(str(event_file))
    pd.testing.assert_frame_equal(core(run), expected_table())
    assert np.isfinite(run.metrics["wall_time"]).all()
    assert run.provenance.kind == "tensorboard" and run.provenance.step_source == "logged"


def test_tensorboard_directory_is_found_below_output_dir(tb_dir: Path) -> None:
    output_dir = tb_dir.parent.parent
    source, confidence = detect(make_target(str(output_dir)))
    assert (source.kind, confidence) == ("tensorboard", 0.6)
    (run,) = read_runs(str(output_dir))
    assert run.name == "hf_output/runs/Dec02_host"
    pd.testing.assert_frame_equal(core(run), expected_table())


def test_tensorboard_truncated_tail_reads_what_is_complete(tb_dir: Path, tmp_path: Path) -> None:
    (event_file,) = sorted(tb_dir.glob("events.out.tfevents.*"))
    data = event_file.read_bytes()
    cut = tmp_path / event_file.name
    cut.write_bytes(data[: len(data) // 2 + 3])  # a run still writing: a record cut mid-way
    (run,) = read_runs(str(cut))
    assert 0 < run.n_points < len(expected_table())
    assert any("truncated record" in n for n in run.provenance.notes)


def test_tensorboard_corrupt_file_is_a_source_error(tmp_path: Path) -> None:
    bad = tmp_path / "events.out.tfevents.123.host"
    bad.write_bytes(struct.pack("<Q", 10) + b"\x00\x00\x00\x00" + b"x" * 14)
    with pytest.raises(SourceError, match="not a TensorBoard event file"):
        read_runs(str(bad), ReadOptions(source_kind="tensorboard"))


def test_lightning_wide_csv_matches_formula(tmp_path: Path) -> None:
    version_dir = tmp_path / "lightning_logs" / "version_0"
    version_dir.mkdir(parents=True)
    make_logs.write_lightning_csv(version_dir / "metrics.csv")
    source, confidence = detect(make_target(str(version_dir / "metrics.csv")))
    assert (source.kind, confidence) == ("csv", 0.8)
    (run,) = read_runs(str(version_dir / "metrics.csv"))
    pd.testing.assert_frame_equal(core(run), expected_table())
    assert set(run.frame().loc[lambda f: f.metric == "train/loss", "raw_name"]) == {"train_loss_step"}
    # a lightning_logs directory: one run per version dir
    (run_dir,) = read_runs(str(tmp_path / "lightning_logs"))
    assert run_dir.name == "lightning_logs/version_0"
    pd.testing.assert_frame_equal(core(run_dir), expected_table())


def test_long_csv_and_jsonl_match_formula() -> None:
    for name, kind in (("long_metrics.csv", "csv"), ("metrics.jsonl", "jsonl"), ("lightning_metrics.csv", "csv")):
        source, _ = detect(make_target(str(LOGS / name)))
        assert source.kind == kind, name
        (run,) = read_runs(str(LOGS / name))
        pd.testing.assert_frame_equal(core(run), expected_table(), obj=name)


def test_lightning_step_and_epoch_variants_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train_loss_epoch,train_loss_step\n0,9,,2.5\n0,9,2.75,\n1,19,,2.0\n")
    (run,) = read_runs(str(path))
    assert run.series("train/loss").to_dict() == {9: 2.5, 19: 2.0}
    assert run.series("train/loss_epoch").to_dict() == {9: 2.75}


def test_csv_without_step_column_names_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("loss,acc\n1,2\n")
    with pytest.raises(SourceError) as err:
        read_runs(str(path), ReadOptions(source_kind="csv"))
    assert "no step column" in str(err.value) and str(err.value).startswith(f"{path}:1:")


def test_jsonl_bad_first_line_and_cut_last_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("hello\nworld\n")
    with pytest.raises(SourceError) as err:
        read_runs(str(bad), ReadOptions(source_kind="jsonl"))
    assert str(err.value).startswith(f"{bad}:1:")
    # issue 21 (5): one stray line, even the first, never decides the format; it is skipped and counted
    stray = tmp_path / "stray.jsonl"
    stray.write_text('hello\n{"step": 1, "loss": 2}\n')
    (run,) = read_runs(str(stray), ReadOptions(source_kind="jsonl"))
    assert run.series("train/loss").to_dict() == {1: 2.0}
    assert any("1 line(s) that are not JSON objects skipped (line 1)" in n for n in run.provenance.notes)
    cut = tmp_path / "cut.jsonl"
    cut.write_text('{"step": 1, "loss": 2.0, "_runtime": 3}\n{"step": 2, "train": {"loss": 1.5}}\n{"step": 3, "lo')
    (run,) = read_runs(str(cut))
    assert run.series("train/loss").to_dict() == {1: 2.0, 2: 1.5}
    assert any("not JSON objects skipped" in n for n in run.provenance.notes)


def test_jsonl_with_a_stray_second_line_is_detected_and_read(tmp_path: Path) -> None:
    rows = [f'{{"step": {s}, "loss": {3.0 - 0.1 * s}}}' for s in range(1, 9)]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([rows[0], "Traceback: printed into the log", *rows[1:]]) + "\n")
    source, confidence = detect(make_target(str(path)))
    assert source.kind == "jsonl" and confidence > 0.5
    (run,) = read_runs(str(path))
    assert sorted(run.series("train/loss").index) == list(range(1, 9))
    assert any("1 line(s) that are not JSON objects skipped (line 2)" in n for n in run.provenance.notes)
    # mostly text with a few JSON lines is not JSON Lines
    text = tmp_path / "console.log"
    text.write_text("\n".join(["some text"] * 6 + rows[:2]) + "\n")
    from lossdoctor.sources import registry

    assert registry()["jsonl"].sniff(make_target(str(text))) == 0.0


def test_jsonl_prefers_train_global_step_over_wandb_step(tmp_path: Path) -> None:
    path = tmp_path / "wandb-history.jsonl"
    path.write_text(
        '{"_step": 0, "train/global_step": 10, "train/loss": 2.0}\n'
        '{"_step": 1, "train/global_step": 20, "eval/loss": 2.5}\n'
    )
    (run,) = read_runs(str(path))
    assert run.series("train/loss").to_dict() == {10: 2.0}
    assert run.series("eval/loss").to_dict() == {20: 2.5}


def test_tensorboard_without_package_gives_install_hint(tb_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import sys

    (event_file,) = sorted(tb_dir.glob("events.out.tfevents.*"))
    copy = tmp_path / event_file.name
    shutil.copy(event_file, copy)
    monkeypatch.setitem(sys.modules, "tensorboard.compat.proto.event_pb2", None)
    monkeypatch.setitem(sys.modules, "tensorboard.compat.proto", None)
    with pytest.raises(SourceError, match=r"pip install 'lossdoctor\[tensorboard\]'"):
        read_runs(str(copy))
