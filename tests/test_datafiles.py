"""The package's own YAML data files are read through a snapshot of their parsed content, keyed by a checksum of
their text (lossdoctor/datafiles.py): never wrong when stale, and kept fresh by this test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lossdoctor import datafiles, yamlpos


def _shape(value):
    """The data with every position it carries (PosDict/PosList equality ignores positions)."""
    if isinstance(value, yamlpos.PosDict):
        return ("map", value.line, value.column, tuple((k, value.key_pos[k], _shape(v)) for k, v in value.items()))
    if isinstance(value, yamlpos.PosList):
        return ("seq", value.line, value.column, tuple(value.item_pos), tuple(_shape(v) for v in value))
    return (type(value).__name__, value)


def test_the_snapshot_is_fresh() -> None:
    assert datafiles.SNAPSHOT.read_text(encoding="utf-8") == datafiles.snapshot_text(), (
        "lossdoctor/datafiles.json is stale: run `python -m lossdoctor.datafiles` and commit it"
    )


def test_it_covers_every_data_file() -> None:
    files = datafiles.data_files()
    assert {"rules/packs/default.yaml", "metrics/aliases.yaml", "metrics/objectives.yaml"} <= set(files)
    assert set(datafiles._snapshot()) == set(files)


@pytest.mark.parametrize("relpath", datafiles.data_files())
def test_reading_through_the_snapshot_gives_what_parsing_gives(relpath: str) -> None:
    text, data = datafiles.read(relpath)
    assert text == (datafiles.ROOT / relpath).read_text(encoding="utf-8")
    assert _shape(data) == _shape(yamlpos.load(text))


def test_an_edited_file_is_parsed_not_taken_from_the_stale_snapshot(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "lossdoctor"
    shutil.copytree(datafiles.ROOT / "metrics", root / "metrics")
    aliases = root / "metrics" / "aliases.yaml"
    aliases.write_text(aliases.read_text(encoding="utf-8").replace("version: 1", "version: 1\nedited: yes", 1))
    monkeypatch.setattr(datafiles, "ROOT", root)  # the snapshot stays the package's own
    _, data = datafiles.read("metrics/aliases.yaml")
    assert data["edited"] is True and data.pos("edited")[0] == data.pos("version")[0] + 1
    _, untouched = datafiles.read("metrics/objectives.yaml")
    assert _shape(untouched) == _shape(yamlpos.load((root / "metrics" / "objectives.yaml").read_text()))


def test_a_missing_or_broken_snapshot_only_costs_the_parse(tmp_path: Path, monkeypatch) -> None:
    for content in (None, "{not json", "[1, 2]"):
        snapshot = tmp_path / "datafiles.json"
        if content is None:
            snapshot.unlink(missing_ok=True)
        else:
            snapshot.write_text(content)
        monkeypatch.setattr(datafiles, "SNAPSHOT", snapshot)
        datafiles._snapshot.cache_clear()
        text, data = datafiles.read("metrics/objectives.yaml")
        assert _shape(data) == _shape(yamlpos.load(text))
    datafiles._snapshot.cache_clear()


def test_values_json_cannot_keep_are_refused_when_writing() -> None:
    import datetime

    with pytest.raises(TypeError, match="date"):
        datafiles._encode(datetime.date(2026, 1, 1))
