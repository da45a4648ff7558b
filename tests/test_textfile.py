"""The one located-error file reader (lossdoctor/textfile.py) and every caller that reads a whole file with it:
a missing file, a directory, undecodable bytes and a file over the bound each give one line naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lossdoctor import textfile
from lossdoctor.errors import LossdoctorError, RuleFileError, SourceError, TrainError
from lossdoctor.rules import packs
from lossdoctor.sources import _logformat as logformat
from lossdoctor.train import config as train_config
from lossdoctor.train import data as train_data


def _one_line(exc: LossdoctorError, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text
    assert text.startswith(str(path) + ":"), text
    return text


def test_read_text_ok_drops_bom(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_bytes(b"\xef\xbb\xbfkey: caf\xc3\xa9\n")
    assert textfile.read_text(p) == "key: café\n"


def test_missing(tmp_path: Path) -> None:
    p = tmp_path / "nope.yaml"
    with pytest.raises(SourceError) as info:
        textfile.read_text(p, what="format file", expected="a YAML file")
    assert _one_line(info.value, p) == f"{p}: format file not found; expected a YAML file"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        textfile.read_text(tmp_path, expected="a YAML file")
    assert "is a directory; expected a YAML file" in _one_line(info.value, tmp_path)


def test_undecodable_names_line_and_byte(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"one: 1\ntwo: \xff\n")
    with pytest.raises(SourceError) as info:
        textfile.read_text(p, expected="a YAML file")
    assert "not UTF-8 text (line 2, byte 12); expected a YAML file" in _one_line(info.value, p)


def test_too_large_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "big.yaml"
    p.write_bytes(b"x" * 2049)
    assert textfile.read_bytes(p, max_bytes=2049) == b"x" * 2049
    with pytest.raises(SourceError) as info:
        textfile.read_bytes(p, max_bytes=2048)
    assert "larger than 2 KB" in _one_line(info.value, p)


def test_error_class_and_location_are_the_callers(tmp_path: Path) -> None:
    with pytest.raises(TrainError) as info:
        textfile.read_text(tmp_path / "x", "shown-name", error=TrainError)
    assert str(info.value) == "shown-name: not found"


def _write_cases(tmp_path: Path) -> dict[str, Path]:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xfe\xfe\n")
    big = tmp_path / "big.txt"
    big.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    return {"missing": tmp_path / "missing.txt", "directory": tmp_path, "undecodable": bad, "too large": big}


CALLERS: dict[str, tuple[Callable[[str], Any], type[LossdoctorError]]] = {
    "rule file": (packs.read_rule_file, RuleFileError),
    "log format": (logformat.load_log_format, SourceError),
    "train data": (train_data.read_jsonl, SourceError),
    "train config": (train_config.load_yaml_config, TrainError),
}
EXPECTED = {
    "missing": "not found",
    "directory": "is a directory",
    "undecodable": "not UTF-8 text (line 2, byte 3)",
    "too large": "larger than",
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_every_caller_reports_one_located_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller: str, case: str
) -> None:
    monkeypatch.setattr(train_data, "MAX_DATA_BYTES", 1 << 19)  # the real bound is 1 GiB
    read, error = CALLERS[caller]
    path = _write_cases(tmp_path)[case]
    with pytest.raises(error) as info:
        read(str(path))
    assert EXPECTED[case] in _one_line(info.value, path)


def test_a_side_file_is_none_when_missing_a_directory_or_too_large(tmp_path: Path) -> None:
    small = tmp_path / "config.yaml"
    small.write_bytes(b"lr: 0.001\n")
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 2048)
    assert textfile.read_side_file(small) == b"lr: 0.001\n"
    assert textfile.read_side_file(tmp_path / "absent.json") is None
    assert textfile.read_side_file(tmp_path) is None
    assert textfile.read_side_file(big, max_bytes=1024) is None
    assert textfile.read_side_file(big, max_bytes=None) == b"x" * 2048
