"""The piecewise trainer_state.json reader (large files: log_history parsed in ~1 MB pieces, column-wise)
gives exactly what parsing the whole file gives, and falls back to the whole-file parse (and its errors)
whenever the file is unusual. Pieces are made tiny here so that small files cross many piece boundaries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lossdoctor.errors import SourceError
from lossdoctor.sources import trainer_state as ts


@pytest.fixture(autouse=True)
def tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ts, "PIECE_BYTES", 256)
    monkeypatch.setattr(ts, "STREAM_MIN_BYTES", 0)


def _history(steps: int = 120) -> list:
    out: list = []
    for s in range(1, steps + 1):
        entry = {
            "epoch": s / 40,
            "grad_norm": 1.0 + (s % 7) / 10,
            "learning_rate": 2e-4 * (1 - s / steps),
            "loss": 2.0 / (1 + s / 30) + 0.3,
            "step": s,
        }
        if s == 17:
            entry["loss"] = math.nan  # NaN kept as a point
        if s == 23:
            entry["grad_norm"] = None  # skipped value
        if s == 29:
            entry["learning_rate"] = "1.5e-4"  # numeric string (transformers 5)
        if s == 31:
            entry["extra"] = True  # booleans are no values
        out.append(entry)
        if s % 10 == 0:
            out.append({"epoch": s / 40, "eval_loss": 1.0 + abs(s - 60) / 100, "eval_runtime": 1.5, "step": s})
    out.insert(50, "not a dict")
    out.insert(60, {"loss": 9.9})  # no step: skipped and counted
    out.insert(70, {"loss": 1.0, "nested": {"a": 1}, "step": 65})  # a nested value is no point
    out.extend({"loss": 5.0 + s, "step": s} for s in range(100, 106))  # resumed: the later values win
    out.append(
        {
            "epoch": 3.0,
            "step": 120,
            "total_flos": 1e15,
            "train_loss": 0.9,
            "train_runtime": 12.0,
            "train_samples_per_second": 3.0,
        }
    )
    return out


def _write(path: Path, history: list, **top) -> Path:
    state = {"best_metric": None, "global_step": 120, "log_history": history, "max_steps": 120, **top}
    text = json.dumps(state, indent=2, sort_keys=True)
    path.write_text(text.replace('"NaN"', "NaN"), encoding="utf-8")
    return path


def _same(a, b) -> None:
    assert a.metric_names() == b.metric_names()
    for m in a.metric_names():
        sa, sb = a.series(m), b.series(m)
        assert sa.index.tolist() == sb.index.tolist(), m
        assert np.array_equal(sa.values, sb.values, equal_nan=True), m
    assert a.metrics.raw_names == b.metrics.raw_names or sorted(a.metrics.raw_names) == sorted(b.metrics.raw_names)
    assert a.summary == b.summary and a.config == b.config and a.state == b.state
    assert a.provenance.notes == b.provenance.notes


def test_pieces_give_what_the_whole_file_gives(tmp_path: Path) -> None:
    path = _write(tmp_path / "trainer_state.json", _history())
    assert ts._stream_state(path) is not None  # the piecewise path is the one taken
    streamed = ts.read_state_file(path, str(path))
    whole = ts.state_to_run(json.loads(path.read_text()), str(path), streamed.name)
    _same(streamed, whole)
    loss = streamed.series("train/loss")
    assert math.isnan(loss[17])
    assert [loss[s] for s in range(100, 106)] == [5.0 + s for s in range(100, 106)]
    assert streamed.series("train/learning_rate")[29] == 1.5e-4
    assert 23 not in streamed.series("train/grad_norm")
    assert streamed.summary["train_runtime"] == 12.0 and "extra" not in streamed.metrics.raw_names
    assert any("without an integer step skipped" in n for n in streamed.provenance.notes)
    assert any("repeated (step, metric)" in n for n in streamed.provenance.notes)


def test_utf8_bom_and_unicode_keys(tmp_path: Path) -> None:
    history = [{"loss": 1.0 / s, "step": s, "verlust_ä": float(s)} for s in range(1, 80)]
    path = _write(tmp_path / "trainer_state.json", history)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    streamed = ts.read_state_file(path, str(path))
    assert streamed.series("train/loss").size == 79 and "verlust_ä" in streamed.metrics.raw_names


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace('"log_history": [', '"note": {"log_history": []}, "log_history": [', 1),  # two keys
        lambda t: t.replace('"eval_runtime": 1.5', '"eval_runtime": "},{ },{ },{"'),  # cuts inside strings
        lambda t: t.encode("utf-16"),  # another encoding
    ],
)
def test_unusual_files_fall_back_to_the_whole_parse(tmp_path: Path, mangle) -> None:
    path = _write(tmp_path / "trainer_state.json", _history())
    text = mangle(path.read_text(encoding="utf-8"))
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    expected = ts.state_to_run(ts.load_state(path, str(path)), str(path), "x")
    got = ts.read_state_file(path, str(path))
    _same(got, ts.state_to_run(ts.load_state(path, str(path)), str(path), got.name))
    assert got.n_points == expected.n_points


def test_malformed_json_is_one_error_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "trainer_state.json", _history())
    lines = path.read_text().splitlines()
    lines[300] = lines[300].rstrip(",") + " oops,"
    path.write_text("\n".join(lines))
    with pytest.raises(SourceError) as err:
        ts.read_state_file(path, str(path))
    assert "malformed JSON" in err.value.message and err.value.line == 301
