"""CSV metric tables: wide (Lightning ``metrics.csv``, pandas exports) or long (``step,metric,value``).

Wide: one column names the step (step, global_step, train/global_step, _step, iter, iteration); every
other column with numbers is a metric; empty cells are "not logged here" (Lightning's CSVLogger writes one
row per log call with the sorted union of keys as header, so rows are sparse and a step can span rows).
Long (tbparse's layout): columns step + metric|tag|name|key + value.

Lightning logs ``x_step`` and ``x_epoch`` for one metric; both alias to the same canonical name, so when
both exist the ``_epoch`` one is kept apart as ``<canonical>_epoch`` (see _readkit.split_step_epoch_names).
A row whose cell count differs from the header, or whose step is not an integer, is skipped and counted.

The delimiter is the one of comma, semicolon and tab that splits the header into the most cells (a
spreadsheet saves semicolons where the decimal mark is a comma; then ``1,25`` is read as 1.25). A W&B chart
export (``Step``, then ``<run> - <metric>`` with ``__MIN`` / ``__MAX`` band columns) is read as the metrics of
its first run: the run prefix is dropped, the band columns and other runs' columns are left out (a note says so).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import (
    Collector,
    decode_with_notes,
    make_run,
    parse_number,
    read_bytes,
    split_step_epoch_names,
)
from lossdoctor.sources.base import ReadOptions, Target

STEP_COLUMNS = ("step", "global_step", "train/global_step", "trainer/global_step", "_step", "iter", "iteration")
NAME_COLUMNS = ("metric", "tag", "name", "key")
PRIMARY_FILE = "metrics.csv"
csv.field_size_limit(1 << 24)


DELIMITERS = (",", ";", "\t")
_WANDB_EXPORT = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<band>__MIN|__MAX)?$")


def _delimiter(first_line: str) -> str | None:
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else None


def _header(text: str) -> list[str] | None:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip("\r")
    delimiter = _delimiter(first)
    if delimiter is None:
        return None
    try:
        row = next(csv.reader([first], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return None
    return [c.strip() for c in row]


def _wandb_export_columns(header: list[str], step_col: str) -> tuple[dict[str, str], str | None]:
    """{column: metric name} for a W&B chart export's first run (band and other runs' columns left out), and a
    note; ({}, None) when the header is not such an export."""
    others = [c for c in header if c != step_col]
    matches = [_WANDB_EXPORT.match(c) for c in others]
    if not others or not all(matches):
        return {}, None
    runs = list(dict.fromkeys(m.group("run") for m in matches if m))
    keep = {
        c: m.group("metric") for c, m in zip(others, matches) if m and m.group("run") == runs[0] and not m.group("band")
    }
    note = f"a W&B chart export: run {runs[0]!r} read (its __MIN/__MAX band columns left out)"
    if len(runs) > 1:
        note += f"; {len(runs) - 1} other run(s) in the file left out"
    return keep, note


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
    return sorted(p for p in root.glob(f"*/{PRIMARY_FILE}") if p.is_file()) + sorted(
        p for p in root.glob(f"*/*/{PRIMARY_FILE}") if p.is_file()
    )


def read_csv_text(text: str, location: str, points: Collector, notes: list[str] | None = None) -> int:
    """Add the points of one CSV text; returns the number of skipped rows. Raises SourceError if no step column."""
    body = text.lstrip("\ufeff")
    delimiter = _delimiter(body.split("\n", 1)[0].strip("\r")) or ","
    decimal_comma = delimiter != ","
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    try:
        header = [c.strip() for c in next(reader)]
    except StopIteration:
        raise SourceError("empty CSV file; expected a header row with a step column", location, line=1) from None
    except csv.Error as exc:
        raise SourceError(f"CSV error: {exc}", location, line=1) from None
    step_col = _step_column(header)
    if step_col is None:
        raise SourceError(
            f"no step column in the CSV header; expected one of {', '.join(STEP_COLUMNS)}", location, line=1
        )
    index = {c: i for i, c in enumerate(header)}
    long = _is_long(header)
    rename, note = _wandb_export_columns(header, step_col) if not long else ({}, None)
    if note and notes is not None:
        notes.append(note)
    if decimal_comma and notes is not None:
        notes.append(f"delimiter {delimiter!r}: a decimal comma in a cell is read as a decimal point")

    def number(cell: str) -> float | None:
        value = parse_number(cell)
        if value is None and decimal_comma and "," in cell:
            value = parse_number(cell.replace(",", "."))
        return value

    skipped = 0
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                skipped += 1
                continue
            step = number(row[index[step_col]])
            if step is None:  # a NaN, fractional or huge step is dropped (and counted) by the tidy table
                skipped += 1
                continue
            if long:
                value = number(row[index[long[1]]])
                name = row[index[long[0]]].strip()
                if value is not None and name:
                    points.add(step, name, value)
                continue
            for col, cell in zip(header, row):
                if col == step_col or not cell.strip() or (rename and col not in rename):
                    continue
                value = number(cell)
                if value is not None:
                    points.add(step, rename.get(col, col), value)
    except csv.Error as exc:
        raise SourceError(f"CSV error: {exc}", location, line=reader.line_num) from None
    return skipped


class CsvMetricsSource:
    kind = "csv"
    description = (
        "CSV metrics: wide (Lightning metrics.csv: step column + one column per metric) or long (step,metric,value)"
    )
    example = "epoch,lr-AdamW,step,train_loss_step,val_loss"
    specificity = 20
    max_confidence = 0.8  # the most sniff() returns (detection skips what cannot win)

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
            skipped = read_csv_text(text, location, points, notes)
            overrides = split_step_epoch_names(sorted(set(points.raws)))
            if overrides:
                points.metrics = [overrides.get(r, m) for r, m in zip(points.raws, points.metrics)]
            frame, more = points.frame()
            if skipped:
                more.append(f"{skipped} row(s) skipped (wrong number of cells or no number in the step column)")
            if frame.empty:
                raise SourceError("no numeric metric cells in the CSV", location)
            name = None
            if target.is_dir:
                rel = path.parent.relative_to(target.path).as_posix()
                name = target.path.name if rel == "." else f"{target.path.name}/{rel}"
            runs.append(
                make_run(target, self.kind, frame, notes + more, name=name, location=location, summary=points.summary)
            )
        return runs


SOURCE = CsvMetricsSource()
