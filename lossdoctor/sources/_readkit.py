"""Shared plumbing for the log and table readers (generic text-log, user-format, torchtune, nanoGPT, W&B console,
TensorBoard, CSV, JSONL): decoding with a count of undecodable bytes, line splitting (tqdm ``\\r``, ANSI),
DDP rank prefixes, number parsing, and a point collector that resolves duplicate (step, metric) points.

Why one collector: every text reader meets the same DDP problems (two ranks printing the same step,
``[rank1]:`` prefixes, records glued on one line). Resolving them in one place keeps the rule the same
everywhere: prefer rank 0, then the reader's preferred line kind, then the last written; a glued line
is dropped whole and counted, never split into a mixed point.
The leading underscore keeps this module out of the reader registry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossdoctor import textfile
from lossdoctor.errors import SourceError
from lossdoctor.metrics.names import bounded_name, canonicalise
from lossdoctor.model import Provenance, Run, empty_metrics
from lossdoctor.sources.base import Target
from lossdoctor.sources.text import decode_bytes
from lossdoctor.table import MetricTable
from lossdoctor.tidy import tidy_points

#: Lines longer than this are skipped (and counted): bounds regex work per line, see _logformat.py.
MAX_LINE_CHARS = 4000

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:[Nn][Aa][Nn]|[Ii]nf(?:inity)?)"
_NUMBER_FULL = re.compile(rf"^\s*(?:{NUMBER})\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]")
#: torchrun/`--tee` style rank prefixes at the start of a line: "[rank0]:", "[rank 1]:", "[default0]:".
RANK_PREFIX = re.compile(r"^\s*\[(?:rank|default)\s*(\d+)\]\s*:\s?")
#: The same prefix anywhere else in a line means two ranks' output was glued together.
RANK_ANYWHERE = re.compile(r"\[(?:rank|default)\s*\d+\]\s*:")


def parse_number(text: str) -> float | None:
    """A float from a printed number ("2e-05", "nan", "-inf"); None for anything else. Never evals."""
    if not _NUMBER_FULL.match(text):
        return None
    try:
        return float(text.strip().lower().replace("infinity", "inf"))
    except ValueError:
        return None


def json_number(value: Any) -> float | None:
    """A JSON value as a number: int/float as is, numeric strings (transformers 5 logs '5.351') parsed,
    booleans and everything else None. An integer too large for a float (a 400-digit literal) is ±inf:
    it is a number, just beyond any float."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        return parse_number(value)
    return None


#: Steps are int64 (the tidy table's dtype); anything outside is not a step.
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1


def to_step(value: Any) -> int | None:
    """A step counter from a parsed number (int, float or numeric string): None when it is not one —
    non-finite, fractional, boolean, or outside int64 (a 20-digit counter, 1e20). Never raises."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        digits = value.strip()
        if _INT_TEXT.match(digits):  # exact, without a detour through float (and never 4300+ digits)
            return _in_int64(int(digits)) if len(digits) <= 21 else None
        value = parse_number(value)
        if value is None:
            return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != math.floor(value):
            return None
        value = int(value)
    try:
        step = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return _in_int64(step)


_INT_TEXT = re.compile(r"^[-+]?\d+$")


def _in_int64(step: int) -> int | None:
    return step if STEP_MIN <= step <= STEP_MAX else None


def load_json(text: str | bytes) -> Any:
    """``json.loads`` (NaN/Infinity tokens accepted) whose every failure is a ValueError: nesting deeper
    than the interpreter's recursion limit or an integer literal past Python's digit limit included."""
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...`` through nested JSON objects; None where a step is missing or no object."""
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def count_undecodable(data: bytes, encoding: str, text: str) -> int:
    """How many input bytes could not be decoded (surrogateescape maps each to one lone surrogate)."""
    try:
        escaped = data.decode(encoding, errors="surrogateescape")
        return sum(1 for ch in escaped if "\udc80" <= ch <= "\udcff")
    except (UnicodeDecodeError, LookupError):
        return text.count("\ufffd")


def decode_with_notes(data: bytes) -> tuple[str, list[str]]:
    text, encoding, lossy = decode_bytes(data)
    notes: list[str] = []
    if lossy:
        count = count_undecodable(data, encoding, text)
        notes.append(f"{count} undecodable bytes replaced (decoded as {encoding})")
    return text, notes


def read_bytes(path: Path, location: str) -> bytes:
    """The whole log file (``textfile.read_bytes``: a missing or unreadable file is a located SourceError)."""
    return textfile.read_bytes(path, location)


def read_text(target: Target) -> tuple[str, list[str]]:
    """The whole file decoded (BOM / UTF-16 / cp949 / GBK guessed); notes say what was lossy."""
    if target.path is None or target.is_dir:
        raise SourceError("expected a log file", target.location)
    return decode_with_notes(read_bytes(target.path, target.location))


def tail_text(target: Target, size: int = 64 * 1024) -> str:
    """The last `size` bytes decoded leniently (for sniffers that look for end-of-run blocks). Never raises."""
    if target.path is None or target.is_dir:
        return ""
    try:
        with target.path.open("rb") as fh:
            fh.seek(0, 2)
            end = fh.tell()
            if end <= len(target.head):
                return ""
            fh.seek(max(0, end - size))
            data = fh.read(size)
    except OSError:
        return ""
    encoding_probe = decode_bytes(target.head[:4096])[1]
    if encoding_probe.startswith("utf-16") and len(data) % 2:
        data = data[1:]
    try:
        return data.decode(encoding_probe.replace("-sig", ""), errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


_SEGMENT = re.compile(r"[^\r]+")


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, segment): each ``\\r``-separated tqdm refresh is its own segment; ANSI removed."""
    has_ansi = "\x1b" in text
    for lineno, line in enumerate(text.split("\n"), 1):
        if has_ansi:
            line = _ANSI.sub("", line)
        if "\r" in line:
            # lazily: a line of millions of bare \r (tqdm redraws) must not become a list of millions
            for seg in _SEGMENT.finditer(line):
                yield lineno, seg.group()
        elif line:
            yield lineno, line


#: W&B's "Syncing run NAME" / "View run NAME at: URL" line. The name is captured greedily and at most 300
#: characters, then cut at " at" in Python: a lazy ``.*?\S`` followed by an optional tail and ``$`` was
#: quadratic on a line of 100,000 blanks (90 s).
WANDB_RUN_LINE = re.compile(r"wandb:[ \t]+(?:Syncing run|View run)[ \t]+(\S[^\r\n]{0,300})")
_AT_URL = re.compile(r"[ \t]+at:?[ \t]")


def wandb_run_name(match: re.Match[str]) -> str:
    """The run name from a WANDB_RUN_LINE match (without the " at: URL" tail)."""
    return _AT_URL.split(match.group(1), 1)[0].strip()


def split_rank(line: str) -> tuple[int | None, str]:
    """(rank or None, line without the rank prefix)."""
    m = RANK_PREFIX.match(line)
    if m:
        return to_step(m.group(1)), line[m.end() :]
    return None, line


def ranked_lines(text: str, points: Collector) -> Iterator[tuple[int, int | None, str]]:
    """(line number, DDP rank or None, line without its rank prefix) for every line a text-log reader should
    parse; over-long lines are counted in ``points.long_lines`` and skipped."""
    for lineno, raw_line in iter_lines(text):
        if len(raw_line) > MAX_LINE_CHARS:
            points.long_lines += 1
            continue
        rank, line = split_rank(raw_line)
        yield lineno, rank, line


@dataclass
class Collector:
    """Points as read, resolved by the one tidy-table constructor (:func:`lossdoctor.tidy.tidy_points`):
    one value per (step, canonical metric), the lowest rank first (unlabelled lines count as rank 0), then
    the lowest `priority` (a reader's preferred line kind), then the last written. Steps are validated
    there (a NaN or out-of-range step drops its point with a note)."""

    steps: list[Any] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    metrics: list[str | None] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    priorities: list[int] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # source line per point; 0 = unknown
    glued_lines: list[int] = field(default_factory=list)
    long_lines: int = 0
    #: HF end-of-run summary entries found among the points by the last ``frame()`` call
    summary: dict[str, float] = field(default_factory=dict)

    def add(
        self,
        step: Any,
        raw: str,
        value: float,
        *,
        rank: int | None = None,
        priority: int = 0,
        metric: str | None = None,
        wall_time: float | None = None,
        line: int | None = None,
    ) -> None:
        self.steps.append(step)
        self.raws.append(raw)
        self.values.append(float(value))
        self.metrics.append(metric)
        self.ranks.append(0 if rank is None else (to_step(rank) or 0))
        self.priorities.append(priority)
        self.wall_times.append(math.nan if wall_time is None else float(wall_time))
        self.lines.append(0 if line is None else int(line))

    def __len__(self) -> int:
        return len(self.steps)

    def frame(self) -> tuple[MetricTable, list[str]]:
        """The tidy table (+ ``line``, the 1-based source line, when the reader recorded it) and notes on what
        was dropped (glued or long lines, repeats, bad steps, the HF end-of-run summary, whose entries are left
        in ``self.summary``)."""

        notes = skipped_line_notes(self.glued_lines, self.long_lines)
        if not self.steps:
            return empty_metrics(), notes
        n = len(self.steps)
        has_wall = self.wall_times.count(math.nan) != n and any(w == w for w in self.wall_times)
        result = tidy_points(
            self.steps,
            self.raws,
            self.values,
            canonical=self.metrics if self.metrics.count(None) != n else None,
            rank=self.ranks if any(self.ranks) else None,
            priority=self.priorities if any(self.priorities) else None,
            wall_time=self.wall_times if has_wall else None,
            line=self.lines if any(self.lines) else None,
        )
        self.summary = dict(result.summary)
        return result.frame, notes + list(result.notes)


def skipped_line_notes(glued_lines: list[int], long_lines: int) -> list[str]:
    """Notes on the lines a text reader dropped whole: glued records, over-long lines."""
    notes: list[str] = []
    if glued_lines:
        first = ", ".join(str(n) for n in glued_lines[:5])
        more = "" if len(glued_lines) <= 5 else ", ..."
        notes.append(
            f"{len(glued_lines)} line(s) with two records glued together dropped "
            f"(DDP ranks writing at once; line {first}{more})"
        )
    if long_lines:
        notes.append(f"{long_lines} line(s) longer than {MAX_LINE_CHARS} characters skipped")
    return notes


def run_name(target: Target) -> str:
    if target.path is None:
        return target.location
    path = target.path
    return path.name if target.is_dir else (path.stem or path.name)


def make_run(
    target: Target,
    kind: str,
    frame: MetricTable,
    notes: list[str] | tuple[str, ...],
    *,
    step_source: str = "logged",
    confidence: float = 1.0,
    name: str | None = None,
    summary: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    state: str = "unknown",
    location: str | None = None,
) -> Run:
    return Run(
        name=bounded_name(name or run_name(target)),
        provenance=Provenance(
            kind=kind,
            location=location or target.location,
            step_source=step_source,
            notes=tuple(notes),
            confidence=confidence,
        ),
        metrics=frame,
        config=dict(config or {}),
        summary=dict(summary or {}),
        state=state,
    )


def split_step_epoch_names(raw_names: list[str]) -> dict[str, str]:
    """Lightning logs ``x_step`` and ``x_epoch`` for the same metric; the alias table maps both to one
    canonical name (train_loss_step and train_loss_epoch → train/loss), which would mix per-step values with
    epoch means. When both exist, the ``_epoch`` one gets ``<canonical>_epoch``. Returns overrides only."""

    names = set(raw_names)
    out: dict[str, str] = {}
    for raw in names:
        if raw.endswith("_epoch") and raw[: -len("_epoch")] + "_step" in names:
            out[raw] = canonicalise(raw[: -len("_epoch")] + "_step") + "_epoch"
    return out


def require_points(frame: MetricTable, target: Target, what: str) -> None:
    if frame.empty:
        raise SourceError(f"no metric points found; expected {what}", target.location)
