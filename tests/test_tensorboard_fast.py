"""The column-wise TensorBoard decoding (records laid out as add_scalar writes them, decoded from the raw bytes)
gives exactly what the protobuf module gives, record for record, and leaves every other record to it; the
framing checks (length CRCs checked all at once, block by block) find the same broken byte as before."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")
torch_tb = pytest.importorskip("torch.utils.tensorboard")

from lossdoctor.sources import read_runs  # noqa: E402
from lossdoctor.sources import tensorboard as tb  # noqa: E402


def _write(logdir: Path) -> Path:
    writer = torch_tb.SummaryWriter(log_dir=str(logdir))
    for step in range(0, 300):  # step 0: proto3 leaves the step field out
        writer.add_scalar("train/loss", 2.0 / (1 + step / 30), step)
        writer.add_scalar("train/learning_rate", 1e-4 * (1 - step / 300), step)
        if step % 25 == 0:
            writer.add_scalar("eval/loss", 1.5 - step / 1000, step, new_style=True)  # a tensor scalar
            writer.add_text("notes", f"step {step}", step)
            writer.add_histogram("weights", np.arange(10) * step, step)
    writer.add_scalar("train/grad_norm", float("nan"), 2**40)  # a long varint step, NaN value
    writer.add_scalar("train/grad_norm", float("inf"), 2**40 + 1)
    writer.add_scalar("train/epoch", 0.0, 2**40 + 2)  # 0.0 is still written (a oneof)
    writer.close()
    (path,) = sorted(logdir.glob("events.out.tfevents.*"))
    return path


def _series(run) -> dict:
    return {m: (run.series(m).index.tolist(), run.series(m).values.tolist()) for m in run.metric_names()}


@pytest.fixture()
def event_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "tb")


def _protobuf_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = tb._fast_scalars

    def none_fast(data, offsets, lengths):
        out = real(data, offsets, lengths)
        out["ok"] = np.zeros(len(offsets), dtype=bool)
        return out

    monkeypatch.setattr(tb, "_fast_scalars", none_fast)


def test_fast_decoding_equals_the_protobuf_module(event_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tb, "BLOCK_BYTES", 4096)  # many blocks, records cut between them
    data = event_file.read_bytes()
    offsets, lengths, _, problem = tb.record_offsets(data, eof=True)
    assert problem is None and tb._fast_scalars(data, offsets, lengths)["ok"].sum() >= 600
    (fast,) = read_runs(str(event_file))
    _protobuf_only(monkeypatch)
    (slow,) = read_runs(str(event_file))
    got, want = _series(fast), _series(slow)
    assert got.keys() == want.keys() and "eval/loss" in got
    for m in want:
        assert got[m][0] == want[m][0], m
        assert np.array_equal(np.asarray(got[m][1]), np.asarray(want[m][1]), equal_nan=True), m
    assert np.array_equal(fast.metrics.wall_time, slow.metrics.wall_time)
    assert fast.series("train/loss").index.tolist() == list(range(300))
    assert fast.series("train/grad_norm").index.tolist() == [2**40, 2**40 + 1]
    assert fast.provenance.notes == slow.provenance.notes


@pytest.mark.parametrize("damage", ["truncate", "header"])
def test_broken_framing_is_found_at_the_same_byte(
    event_file: Path, tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tb, "BLOCK_BYTES", 4096)
    data = bytearray(event_file.read_bytes())
    offsets, lengths, _, _ = tb.record_offsets(bytes(data), eof=True)
    victim = int(offsets[len(offsets) // 2]) - 12  # the header of a record in the middle
    if damage == "truncate":
        data = data[: victim + 20]
    else:
        struct.pack_into("<I", data, victim + 8, struct.unpack_from("<I", data, victim + 8)[0] ^ 1)
    broken = tmp_path / "broken" / event_file.name
    broken.parent.mkdir()
    broken.write_bytes(bytes(data))
    (run,) = read_runs(str(broken))
    expected = "truncated record" if damage == "truncate" else "bad record framing"
    assert any(f"{expected} at byte {victim}" in n for n in run.provenance.notes), run.provenance.notes
    # what was before the break is read, as the record-by-record reader would
    _protobuf_only(monkeypatch)
    (slow,) = read_runs(str(broken))
    assert _series(run).keys() == _series(slow).keys() and run.n_points == slow.n_points > 0
    shutil.rmtree(broken.parent)
