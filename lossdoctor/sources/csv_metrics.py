"""CSV metric tables: wide (Lightning ``metrics.csv``, pandas exports) or long (``step,metric,value``).

Wide: one column names the step (step, global_step, train/global_step, _step, iter, iteration); every
other column with numbers is a metric; empty cells are "not logged here" (Lightning's CSVLogger writes one
row per log call with the sorted union of keys as header, so rows are sparse and a step can span rows).
Long (tbparse's layout): columns step + metric|tag|name|key + value.

Lightning logs ``x_step`` and ``x_epoch`` for one metric; both alias to the same canonical name, so when
both exist the ``_epoch`` one is kept apart as ``<canonical>_epoch`` (see _readkit.split_step_epoch_names).
A row whose cell count differs from the header, or whose step is not an integer, is skipped and counted.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import (Collector, decode_with_notes, make_run, parse_number, read_bytes,
                                         split_step_epoch_names, to_step)
from lossdoctor.sources.base import ReadOptions, Target

STEP_COLUMNS = ("step", "global_step", "train/global_step", "trainer/global_step", "_step", "iter", "iteration")
NAME_COLUMNS = ("metric", "tag", "name", "key")
PRIMARY_FILE = "metrics.csv"
csv.field_size_limit(1 << 24)


def _header(text: str) -> list[str] | None:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip("\r")
    if "," not in first:
        return None
    try:
        row = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return None
    return [c.strip() for c in row]


def _step_column(header: list[str]) -> str | None:
    lowered = {c.lower(): c for c in header}
    return next((lowered[s] for s in STEP_COLUMNS if s in lowered), None)


def _is_long(header: list[str]) -> tuple[str, str] | None:
    lowered = {c.lower(): c for c in header}
    name = next((lowered[n] for n in NAME_COLUMNS if n in lowered), None)
    if name and "value" in lowered:
        return name, lowered["value"]
    return None


def _find_csvs(root: Path) -> list[Path]:
    direct = root / PRIMARY_FILE
    if direct.is_file():
        return [direct]
    return sorted(p for p in root.glob(f"*/{PRIMARY_FILE}") if p.is_file()) + \
        sorted(p for p in root.glob(f"*/*/{PRIMARY_FILE}") if p.is_file())


def read_csv_text(text: str, location: str, points: Collector) -> int:
    """Add the points of one CSV text; returns the number of skipped rows. Raises SourceError if no step column."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [c.strip() for c in next(reader)]
    except StopIteration:
        raise SourceError("empty CSV file; expected a header row with a step column", location, line=1) from None
    except csv.Error as exc:
        raise SourceError(f"CSV error: {exc}", location, line=1) from None
    step_col = _step_column(header)
    if step_col is None:
        raise SourceError(f"no step column in the CSV header; expected one of {', '.join(STEP_COLUMNS)}",
                          location, line=1)
    index = {c: i for i, c in enumerate(header)}
    long = _is_long(header)
    skipped = 0
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                skipped += 1
                continue
            step = to_step(parse_number(row[index[step_col]]))
            if step is None:
                skipped += 1
                continue
            if long:
                value = parse_number(row[index[long[1]]])
                name = row[index[long[0]]].strip()
                if value is not None and name:
                    points.add(step, name, value)
                continue
            for col, cell in zip(header, row):
                if col == step_col or not cell.strip():
                    continue
                value = parse_number(cell)
                if value is not None:
                    points.add(step, col, value)
    except csv.Error as exc:
        raise SourceError(f"CSV error: {exc}", location, line=reader.line_num) from None
    return skipped


class CsvMetricsSource:
    kind = "csv"
    description = "CSV metrics: wide (Lightning metrics.csv: step column + one column per metric) or long (step,metric,value)"
    example = "epoch,lr-AdamW,step,train_loss_step,val_loss"
    specificity = 20

    def sniff(self, target: Target) -> float:
        if target.is_dir and target.path is not None:
            return 0.5 if _find_csvs(target.path) else 0.0
        if not target.is_file or not target.head:
            return 0.0
        header = _header(target.head_text())
        if not header or _step_column(header) is None:
            return 0.0
        if target.path is not None and target.path.name == PRIMARY_FILE or _is_long(header):
            return 0.8
        return 0.6

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected a CSV file or a directory with metrics.csv", target.location)
        files = _find_csvs(target.path) if target.is_dir else [target.path]
        if not files:
            raise SourceError(f"no {PRIMARY_FILE} in this directory", target.location)
        runs: list[Run] = []
        for path in files:
            location = str(path) if target.is_dir else target.location
            text, notes = decode_with_notes(read_bytes(path, location))
            points = Collector()
            skipped = read_csv_text(text, location, points)
            overrides = split_step_epoch_names(sorted(set(points.raws)))
            if overrides:
                points.metrics = [overrides.get(r, m) for r, m in zip(points.raws, points.metrics)]
            frame, more = points.frame()
            if skipped:
                more.append(f"{skipped} row(s) skipped (wrong number of cells or no integer step)")
            if frame.empty:
                raise SourceError("no numeric metric cells in the CSV", location)
            name = None
            if target.is_dir:
                rel = path.parent.relative_to(target.path).as_posix()
                name = target.path.name if rel == "." else f"{target.path.name}/{rel}"
            runs.append(make_run(target, self.kind, frame, notes + more, name=name, location=location))
        return runs


SOURCE = CsvMetricsSource()
