"""Jupyter / Colab / Kaggle notebooks (``.ipynb``, nbformat 4 and 3): the training logs in the saved outputs.

What a notebook holds, and what becomes of it:

- the HF Trainer's ``NotebookProgressCallback`` output (a ``text/html`` display): a ``<progress>`` bar with the
  header ``[335/340 1:19:28 < 01:11, 0.07 it/s, Epoch 18.58/20]`` and a table whose first column is ``Step`` or
  ``Epoch``, then ``Training Loss``, ``Validation Loss`` and one column per eval metric (six decimals; ``No log``
  where nothing was logged yet). Parsed with the standard library's ``html.parser``; columns are mapped through
  ``notebook_table`` in ``metrics/aliases.yaml``. A row's ``Training Loss`` is the last train loss logged at or
  before that row's step, so a value equal to the row above is the same log entry shown again and is dropped.
  The header gives the steps reached and the total: a table short of its total is a run that stopped early.
  ``Epoch`` tables get steps = epoch x (total steps / epochs) from the header (``epoch*cadence``).
  A table whose step column is not first is ``trainer.evaluate()`` run on its own: its eval points join the
  run above it;
- stream outputs (stdout and stderr, in arrival order, joined per cell) are handed to the text readers through
  :func:`lossdoctor.sources.read_text_runs`, as a console log;
- ``text/plain`` and ``application/json`` outputs holding log dicts with a ``step`` (``trainer.state.log_history``
  displayed) are read as a ``log_history`` (never evaluated: the dicts are tokenised).

Runs: every training table starts a run, named after its cell (``nb.ipynb#cell-12``, cells counted from 1 over
all cells; ``#cell-12.2`` for a second table in one cell). A stream or log_history in the same cell, or in a
later cell whose train/eval losses agree with the run at every shared step, is the same run and is merged
(per metric, the source with the most points wins); anything else starts a new run. By default the last run is
read and a note lists the others; ``nb.ipynb#cell-12`` picks one, ``--all`` reads every one.

Bounded: image and PDF payloads are cut out of the raw bytes before ``json.loads`` (never decoded), HTML
outputs over ``MAX_HTML_CHARS`` are skipped, and only text that passes a cheap substring test is parsed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lossdoctor.errors import SourceError
from lossdoctor.metrics.names import canonicalise, normalise_key, notebook_table
from lossdoctor.model import Provenance, Run, empty_metrics
from lossdoctor.sources._readkit import Collector, json_number, parse_number, read_bytes
from lossdoctor.sources._registry import read_text_runs
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.trainer_state import state_to_run
from lossdoctor.table import MetricTable
from lossdoctor.tidy import retidy

if TYPE_CHECKING:
    from lossdoctor.sources._nb_html import HtmlScan, HtmlTable

#: text/html outputs longer than this are not parsed (a displayed dataset, not a training table)
MAX_HTML_CHARS = 8 * 1024 * 1024
#: text/plain outputs longer than this are not searched for log dicts
MAX_PLAIN_CHARS = 32 * 1024 * 1024
#: relative tolerance when deciding that two outputs show the same run (tables print 6 decimals, tf5 4 digits)
SAME_RUN_RTOL = 6e-4

_SELECTOR = re.compile(r"^cell-(\d+)(?:\.(\d+))?$")
#: an image/PDF payload: a mime key (nbformat 4, or nbformat 3's short keys) whose value is a JSON string
_PAYLOAD_KEY = re.compile(rb'"(?:image/[A-Za-z0-9.+-]+|application/pdf|png|jpeg|gif|svg|pdf)"[ \t\r\n]*:[ \t\r\n]*"')
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_HEADER = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)([^\]]*)\]")
_EPOCH = re.compile(r"Epoch\s+([0-9]+(?:\.[0-9]+)?)\s*/\s*([0-9]+(?:\.[0-9]+)?)")
_DICT = re.compile(r"\{[^{}]*\}")
_PAIR = re.compile(r"""['"]([^'"\\]{1,200})['"]\s*:\s*(?:'([^'\\]*)'|"([^"\\]*)"|([^,\s}]+))""")
_STEP_NAMES = frozenset({"step", "steps", "global_step", "train/global_step"})
_EPOCH_NAMES = frozenset({"epoch", "epochs", "train/epoch"})
_LOSSES = ("train/loss", "eval/loss")
_NOTE_TEXT = 40


# --------------------------------------------------------------------------- loading


def strip_payloads(data: bytes) -> tuple[bytes, int]:
    """The notebook's bytes with every image/PDF payload string emptied (``"image/png": ""``), and how many.
    Line numbers are unchanged (a JSON string holds no raw newline)."""
    pieces: list[bytes] = []
    pos = n = 0
    search = _PAYLOAD_KEY.search
    while True:
        m = search(data, pos)
        if m is None:
            break
        start = m.end()
        k, slashes = m.start(), 0
        while k - slashes > 0 and data[k - slashes - 1] == 0x5C:
            slashes += 1
        if slashes % 2:  # an escaped quote: inside a string, not a key
            pos = start
            continue
        end = data.find(b'"', start)
        if end < 0:
            break  # truncated: json.loads reports it
        if data.find(b"\\", start, end) >= 0:
            rest = _STRING_REST.match(data, start)
            if rest is None:
                break
            end = rest.end() - 1
        pieces.append(data[pos:start])
        pos = end
        n += 1
    if not n:
        return data, 0
    pieces.append(data[pos:])
    return b"".join(pieces), n


def load_notebook(data: bytes, location: str) -> tuple[dict[str, Any], int]:
    """The parsed notebook (payloads emptied) and the number of payloads skipped; SourceError on bad input."""
    stripped, skipped = strip_payloads(data)
    del data
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:]
    text = stripped.decode("utf-8", errors="replace")
    del stripped
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Unterminated string") or exc.pos >= len(text.rstrip()) - 1:
            raise SourceError(
                f"truncated: the JSON ends before the notebook does ({exc.msg}); expected a complete "
                "Jupyter notebook (.ipynb)",
                location,
                line=exc.lineno,
            ) from None
        raise SourceError(
            f"not JSON ({exc.msg}, column {exc.colno}); expected a Jupyter notebook (.ipynb)", location, line=exc.lineno
        ) from None
    except RecursionError:
        raise SourceError("JSON nested too deeply; expected a Jupyter notebook (.ipynb)", location) from None
    if not isinstance(nb, dict) or not (isinstance(nb.get("cells"), list) or isinstance(nb.get("worksheets"), list)):
        raise SourceError("JSON, but not a Jupyter notebook (no 'cells' list); expected an .ipynb file", location)
    return nb, skipped


#: a trainer built in a code cell ("trainer = GRPOTrainer(model=..."): which trainer ran tells the objective
#: (lossdoctor/metrics/objectives.yaml, config ``trainer_class``) when the saved table shows only the loss
_TRAINER_CALL = re.compile(r"\b([A-Z][A-Za-z0-9]*Trainer)\s*\(")
#: the checkpoint-selection arguments written as literals in a code cell (``metric_for_best_model="f1"``,
#: ``greater_is_better=True``): the metric the run selected on is the one overfitting is judged by. Read as
#: text, never executed; a value that is not a literal string or boolean is not taken.
_SELECTION_ARG = re.compile(
    r"\b(metric_for_best_model|greater_is_better)\s*=\s*"
    r"(?:\"([^\"\n]{1,100})\"|'([^'\n]{1,100})'|(True|False)\b)"
)
#: code looked at per cell (a trainer call sits in a cell's first lines, not after 20,000 characters)
MAX_SOURCE = 20_000


@dataclass(frozen=True)
class Cell:
    """One notebook cell as the reader sees it: its outputs and the settings its code states."""

    number: int  # 1-based, over every cell of the notebook
    execution_count: int | None
    outputs: tuple[dict[str, Any], ...]
    #: config the cell's code sets as literals: trainer_class (the last `XxxTrainer(` it builds),
    #: trainer.metric_for_best_model, trainer.greater_is_better
    settings: tuple[tuple[str, Any], ...] = ()

    def label(self) -> str:
        if self.execution_count is None:
            return f"cell {self.number}"
        return f"cell {self.number} (In [{self.execution_count}])"


def _text(value: Any) -> str:
    """nbformat multiline strings: a string or a list of strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return ""


_V3_MIME = {
    "html": "text/html",
    "text": "text/plain",
    "json": "application/json",
    "latex": "text/latex",
    "javascript": "application/javascript",
    "markdown": "text/markdown",
}


def _v3_output(out: dict[str, Any]) -> dict[str, Any]:
    """An nbformat 3 output in the nbformat 4 shape (stream name, mime-keyed data, pyout/pyerr renamed)."""
    kind = out.get("output_type")
    if kind == "stream":
        return {"output_type": "stream", "name": out.get("stream", "stdout"), "text": out.get("text", "")}
    if kind == "pyerr":
        return {"output_type": "error", "ename": out.get("ename", ""), "evalue": out.get("evalue", "")}
    data = {mime: out[key] for key, mime in _V3_MIME.items() if key in out}
    return {"output_type": "execute_result" if kind == "pyout" else "display_data", "data": data}


def iter_cells(nb: dict[str, Any]) -> Iterator[Cell]:
    if isinstance(nb.get("cells"), list):
        cells, v3 = nb["cells"], False
    else:
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in (ws.get("cells") or [])]
        v3 = True
    for i, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            continue
        outputs = cell.get("outputs") or []
        if not isinstance(outputs, list):
            outputs = []
        outs = tuple(_v3_output(o) if v3 else o for o in outputs if isinstance(o, dict))
        count = cell.get("prompt_number" if v3 else "execution_count")
        code = _text(cell.get("input" if v3 else "source"))[:MAX_SOURCE] if cell.get("cell_type") == "code" else ""
        found = _TRAINER_CALL.findall(code)
        settings: dict[str, Any] = {"trainer_class": found[-1]} if found else {}
        for m in _SELECTION_ARG.finditer(code):
            value = m.group(2) if m.group(2) is not None else m.group(3)
            settings[f"trainer.{m.group(1)}"] = value if value is not None else m.group(4) == "True"
        yield Cell(
            number=i,
            execution_count=count if isinstance(count, int) else None,
            outputs=outs,
            settings=tuple(settings.items()),
        )


# --------------------------------------------------------------------------- HTML tables


@dataclass(frozen=True)
class Progress:
    """The progress header of a training table: ``[reached/total ..., Epoch e/E]``."""

    reached: int
    total: int
    epoch: float | None = None
    epochs: float | None = None
    text: str = ""


def _progress(scan: HtmlScan) -> Progress | None:
    if scan.progress is None:
        return None
    label = " ".join("".join(scan.label).split())
    m = _HEADER.search(label)
    if m:
        reached, total, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        text = m.group(0)
    else:
        value, top = (parse_number(v or "") for v in scan.progress)
        if value is None or top is None:
            return None
        reached, total, rest, text = int(value), int(top), "", label[:80]
    e = _EPOCH.search(rest)
    return Progress(
        reached=reached,
        total=total,
        epoch=float(e.group(1)) if e else None,
        epochs=float(e.group(2)) if e else None,
        text=text,
    )


def _short(text: str) -> str:
    return text if len(text) <= _NOTE_TEXT else text[: _NOTE_TEXT - 3] + "..."


@dataclass
class _Segment:
    """What one output (or one cell's streams) contributed: a tidy frame and how it was read."""

    cell: Cell
    kind: str  # "table" | "eval-table" | "history" | "stream"
    what: str  # for the notes: "HF Trainer progress table", ...
    frame: MetricTable
    notes: list[str] = field(default_factory=list)
    step_source: str = "logged"
    progress: Progress | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def _columns(head: list[list[str]], width: int) -> list[str]:
    """Column names from a table's header rows (pandas puts the index name in a second header row)."""
    names = list(head[0]) if head else []
    if len(head) > 1 and names and not names[0] and head[1] and head[1][0]:
        names[0] = head[1][0]
    if len(names) < width:
        names = [""] * (width - len(names)) + names
    return names


def _table_segment(cell: Cell, table: HtmlTable, progress: Progress | None) -> _Segment | None:
    """A training table as a segment, or None when the table is not one (no step/epoch column or no loss)."""

    width = max((len(r) for r in table.rows), default=0)
    names = _columns(table.head, width)
    known, other, missing = notebook_table()
    hf = any(n in known and known[n].endswith("loss") for n in names)
    keys: list[str | None] = []
    for n in names:
        if not n:
            keys.append(None)
        elif not hf or n in known:
            keys.append(known.get(n, n))
        elif n[:1].islower():
            # not HF's own column: HF title-cases the eval metrics it adds ("Mean Token Accuracy" <-
            # eval_mean_token_accuracy); trl/unsloth tables show logged train metrics under their log keys,
            # with spaced slashes ("reward", "rewards / margins")
            keys.append("/".join(part.strip() for part in n.split("/")))
        else:
            keys.append(other.replace("{words}", "_".join(n.lower().split())))
    # rows are written at each evaluation when the table has eval columns; then a 'Training Loss' equal to the row
    # above is the last logged train loss shown again. Without evaluation every row is its own log.
    eval_rows = hf and any(k is not None and k.startswith("eval_") for k in keys)
    canon = [canonicalise(k) if k else None for k in keys]
    norm = [normalise_key(k) if k else "" for k in keys]
    axis = next((i for i, k in enumerate(norm) if k in _STEP_NAMES or canon[i] == "train/global_step"), None)
    epoch_axis = False
    if axis is None:
        axis = next((i for i, k in enumerate(norm) if k in _EPOCH_NAMES), None)
        epoch_axis = axis is not None
    if axis is None or not any(c in _LOSSES for c in canon):
        return None
    standalone_eval = hf and axis != next(i for i, n in enumerate(names) if n)
    kind = "eval-table" if standalone_eval else "table"
    what = (
        "trainer.evaluate() table"
        if standalone_eval
        else "HF Trainer progress table"
        if hf
        else "table with a step column"
    )
    notes: list[str] = []
    epochs_per_step: float | None = None
    step_source = "logged"
    if epoch_axis:
        if progress is not None and progress.epochs:
            epochs_per_step = progress.epochs / progress.total if progress.total else None
        if progress is not None and epochs_per_step:
            step_source = "epoch*cadence"
            notes.append(
                f"{cell.label()}: Epoch table; step = epoch x {1 / epochs_per_step:g} steps per epoch "
                f"({progress.total} steps / {progress.epochs:g} epochs in the progress header)"
            )
        else:
            step_source = "ordinal"
            notes.append(f"{cell.label()}: Epoch table without a progress header: rows numbered 1, 2, 3 ...")
    points = Collector()
    last_train: float | None = None
    stale = 0
    for r, row in enumerate(table.rows, 1):
        if row and all(c in ("...", "…") for c in row):
            notes.append(f"{cell.label()}: rows elided by the display ('...') skipped")
            continue
        if len(row) != width or len(row) != len(names):
            notes.append(
                f"{cell.label()}: table row {r} has {len(row)} cells, expected {len(names)}; read up to row {r - 1}"
            )
            break
        axis_value = parse_number(row[axis])
        if (
            axis_value is None
            or not math.isfinite(axis_value)
            or axis_value < 0
            or (not epoch_axis and axis_value != int(axis_value))
        ):
            notes.append(
                f"{cell.label()}: table row {r}, column {names[axis]!r}: {_short(row[axis])!r} is not a "
                f"{'epoch' if epoch_axis else 'step'}; read up to row {r - 1}"
            )
            break
        values: list[tuple[int, float]] = []
        bad = None
        for i, text in enumerate(row):
            if i == axis or canon[i] is None or text in missing:
                continue
            num = parse_number(text)
            if num is None:
                bad = (i, text)
                break
            values.append((i, num))
        if bad is not None:
            notes.append(
                f"{cell.label()}: table row {r}, column {names[bad[0]]!r}: {_short(bad[1])!r} is not a "
                f"number; read up to row {r - 1}"
            )
            break
        if epoch_axis:
            step = round(axis_value / epochs_per_step) if epochs_per_step else r
        else:
            step = int(axis_value)
        if epoch_axis:
            points.add(step, names[axis], axis_value, metric="train/epoch")
        for i, num in values:
            if standalone_eval and canon[i] == "train/loss":
                continue  # the last train loss shown again, not a new point
            if eval_rows and canon[i] == "train/loss":
                if last_train is not None and num == last_train:
                    stale += 1
                    continue
                last_train = num
            points.add(step, names[i], num, metric=canon[i])
    if stale:
        notes.append(
            f"{cell.label()}: {stale} 'Training Loss' value(s) equal to the row above dropped (the "
            "table repeats the last logged train loss at each evaluation)"
        )
    if progress is not None and not standalone_eval and progress.epoch is not None:
        points.add(progress.reached, "Epoch (progress header)", progress.epoch, metric="train/epoch")
    frame, more = points.frame()
    if not frame.has_any(_LOSSES):
        if progress is not None and not standalone_eval and not notes:
            notes.append(
                f"{cell.label()}: a training table with no logged loss ({progress.text}): the run logged "
                "nothing (logging_steps larger than the run, or stopped before its first log)"
            )
        if not notes:
            return None
        return _Segment(cell=cell, kind="empty", what=what, frame=empty_metrics(), notes=notes + more)
    return _Segment(
        cell=cell,
        kind=kind,
        what=what,
        frame=frame,
        notes=notes + more,
        step_source=step_source,
        progress=None if standalone_eval else progress,
    )


def _html_segments(cell: Cell, html: str, notes: list[str]) -> list[_Segment]:
    if "<table" not in html:
        return []
    if len(html) > MAX_HTML_CHARS:
        notes.append(f"{cell.label()}: an HTML output of {len(html) // 1024} KiB skipped (over the size limit)")
        return []
    from lossdoctor.sources._nb_html import HtmlScan

    scan = HtmlScan()
    try:
        scan.feed(html)
        scan.close()
    except (AssertionError, ValueError):
        pass  # keep what was parsed before the markup broke
    progress = _progress(scan)
    out = []
    for table in scan.tables:
        seg = _table_segment(cell, table, progress)
        if seg is not None:
            out.append(seg)
            progress = None  # the header belongs to the first training table
    return out


# --------------------------------------------------------------------------- log dicts (log_history)


def _repr_rows(text: str) -> list[dict[str, Any]]:
    """Log dicts printed as Python or JSON (``[{'loss': 2.3, 'step': 5}, ...]``): tokenised, never evaluated."""
    rows = []
    for m in _DICT.finditer(text):
        row: dict[str, Any] = {}
        for pair in _PAIR.finditer(m.group(0)):
            row[pair.group(1)] = next((g for g in pair.group(2, 3, 4) if g is not None), None)
        if "step" in row:
            rows.append(row)
    return rows


def _history_segment(cell: Cell, rows: list[Any], what: str) -> _Segment | None:
    rows = [r for r in rows if isinstance(r, dict) and "step" in r]
    if not rows or not any(json_number(v) is not None for r in rows for k, v in r.items() if k != "step"):
        return None
    try:
        run = state_to_run({"log_history": rows}, cell.label(), cell.label())
    except SourceError:
        return None
    if not run.metrics.has_any(_LOSSES):
        return None  # dicts with a step but no loss (a repr of something else)
    return _Segment(
        cell=cell,
        kind="history",
        what=what,
        frame=run.metrics,
        notes=[f"{cell.label()}: {n}" for n in run.provenance.notes if "max_steps" not in n],
        summary=dict(run.summary),
    )


def _json_rows(value: Any) -> list[Any]:
    if isinstance(value, dict) and isinstance(value.get("log_history"), list):
        return value["log_history"]
    if isinstance(value, list):
        return value
    return []


# --------------------------------------------------------------------------- one cell


def _cell_segments(cell: Cell, location: str, options: ReadOptions, notes: list[str]) -> list[_Segment]:
    tables: list[_Segment] = []
    others: list[_Segment] = []
    stream: list[str] = []
    for out in cell.outputs:
        kind = out.get("output_type")
        if kind == "stream":
            stream.append(_text(out.get("text")))
            continue
        data = out.get("data")
        if not isinstance(data, dict):
            continue
        html = _text(data.get("text/html"))
        if 'class="lossdoctor-inline' in html:
            continue  # lossdoctor's own inline diagnosis, not a training log
        if html:
            tables.extend(_html_segments(cell, html, notes))
        value = data.get("application/json")
        if value is not None:
            seg = _history_segment(cell, _json_rows(value), "log dicts (application/json)")
            if seg is not None:
                others.append(seg)
                continue
        plain = _text(data.get("text/plain"))
        if ("'step'" in plain or '"step"' in plain) and len(plain) <= MAX_PLAIN_CHARS:
            seg = _history_segment(cell, _repr_rows(plain), "log dicts (text/plain, e.g. trainer.state.log_history)")
            if seg is not None:
                others.append(seg)
    text = "".join(stream)
    if text.strip():
        try:
            runs = read_text_runs(text, f"{location}#cell-{cell.number}", options, skip_kinds=frozenset({KIND}))
        except SourceError as exc:
            notes.append(f"{cell.label()}: stream output not read: {exc.message}")
            runs = []
        for run in runs:
            if not run.metrics.has_any(_LOSSES):
                notes.append(
                    f"{cell.label()}: stream output read by the {run.provenance.kind} reader holds no "
                    "loss; not taken as a training run"
                )
                continue
            others.append(
                _Segment(
                    cell=cell,
                    kind="stream",
                    what=f"stream output ({run.provenance.kind} reader)",
                    frame=run.metrics,
                    step_source=run.provenance.step_source,
                    notes=[f"{cell.label()}: {n}" for n in run.provenance.notes],
                    summary=dict(run.summary),
                )
            )
    return tables + others


def _cell_error(cell: Cell) -> tuple[str, str] | None:
    for out in cell.outputs:
        if out.get("output_type") == "error":
            return str(out.get("ename") or "error"), str(out.get("evalue") or "")
    return None


# --------------------------------------------------------------------------- runs


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= SAME_RUN_RTOL * max(abs(a), abs(b)) + 1e-9


def _loss_points(frame: MetricTable) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for metric in _LOSSES:
        sel = frame.metric_mask([metric])
        out[metric] = dict(zip(frame.step[sel].tolist(), frame.value[sel].tolist()))
    return out


def same_run(a: MetricTable, b: MetricTable) -> bool:
    """True when the train/eval losses of the two frames agree at every step they share (and they share one)."""
    pa, pb = _loss_points(a), _loss_points(b)
    shared = 0
    for metric in _LOSSES:
        for step in pa[metric].keys() & pb[metric].keys():
            if not _close(pa[metric][step], pb[metric][step]):
                return False
            shared += 1
    return shared > 0


@dataclass
class _Build:
    """The segments of one training table being assembled from a cell's outputs."""

    segments: list[_Segment]
    suffix: str = ""  # ".2" for a second training table in one cell

    @property
    def cell(self) -> Cell:
        return self.segments[0].cell

    @property
    def run_id(self) -> str:
        return f"cell-{self.cell.number}{self.suffix}"

    def frame(self) -> tuple[MetricTable, str]:
        """Per metric the segment with the most points (ties: exact values over the 6-decimal table); eval-only
        tables add points at steps the run lacks. Returns (frame, step_source)."""
        main = [s for s in self.segments if s.kind != "eval-table"]
        rank = {"history": 0, "stream": 1, "table": 2}
        parts: list[MetricTable] = []
        source_of: dict[str, str] = {}
        metrics = sorted({m for s in main for m, n in zip(s.frame.metric_names, _counts(s.frame)) if n})
        for metric in metrics:
            best = max(
                main, key=lambda s: (int(s.frame.metric_mask([metric]).sum()), -rank[s.kind], -self.segments.index(s))
            )
            parts.append(best.frame.take(best.frame.metric_mask([metric])))
            source_of[metric] = best.step_source
        frame = MetricTable.concat(parts) if parts else empty_metrics()
        extras = [s.frame for s in self.segments if s.kind == "eval-table" and len(s.frame)]
        if extras:
            # the constructor resolves repeats: the run's own points first, then the eval tables in cell order
            tables = [frame] + extras
            priority = np.concatenate([np.full(len(t), i, dtype=np.int64) for i, t in enumerate(tables)])
            frame = retidy(MetricTable.concat(tables), priority=priority).frame
        frame = frame.sorted().compact()
        step_source = next((source_of[m] for m in _LOSSES if m in source_of), main[0].step_source if main else "logged")
        return frame, step_source

    def progress(self) -> Progress | None:
        return next((s.progress for s in self.segments if s.progress is not None), None)


def _assemble(segments: list[_Segment]) -> list[_Build]:
    builds: list[_Build] = []
    for seg in segments:
        if seg.kind == "empty":
            continue
        if seg.kind == "eval-table":
            if builds:
                builds[-1].segments.append(seg)
            continue
        if seg.kind == "table":
            same_cell = sum(1 for b in builds if b.cell.number == seg.cell.number)
            builds.append(_Build([seg], suffix=f".{same_cell + 1}" if same_cell else ""))
            continue
        last = builds[-1] if builds else None
        if last is not None and (last.cell.number == seg.cell.number or same_run(last.frame()[0], seg.frame)):
            last.segments.append(seg)
        else:
            builds.append(_Build([seg]))
    return [b for b in builds if any(s.kind != "eval-table" for s in b.segments)]


def _counts(table: MetricTable) -> list[int]:
    return (
        np.bincount(table.metric_codes, minlength=len(table.metric_names)).tolist()
        if len(table)
        else [0] * len(table.metric_names)
    )


def _describe(build: _Build, frame: MetricTable) -> str:
    prog = build.progress()
    steps = frame.step[frame.metric_mask(_LOSSES)]
    span = f"steps {int(steps.min())}-{int(steps.max())}" if len(steps) else "no points"
    total = f", {prog.reached}/{prog.total} steps" if prog is not None else ""
    return f"{build.cell.label()}: {build.segments[0].what}, {span}{total}"


def _to_run(
    build: _Build,
    base: str,
    name_base: str,
    errors: dict[int, tuple[str, str]],
    code_settings: dict[int, dict[str, Any]],
) -> Run:
    frame, step_source = build.frame()
    notes: list[str] = []
    for i, seg in enumerate(build.segments):
        if i == 0:
            notes.append(f"read from {_describe(build, frame)}")
        else:
            how = (
                "same cell"
                if seg.cell.number == build.cell.number
                else "its eval points join the run above"
                if seg.kind == "eval-table"
                else "train/eval losses agree"
            )
            notes.append(f"merged: {seg.cell.label()}, {seg.what} ({how})")
        notes.extend(seg.notes)
    summary: dict[str, Any] = {}
    for seg in build.segments:
        summary.update(seg.summary)
    config: dict[str, Any] = {"notebook.cell": build.cell.number}
    if build.cell.execution_count is not None:
        config["notebook.execution_count"] = build.cell.execution_count
    for number, settings in sorted(code_settings.items()):  # what the code set last at or before training
        if number <= build.cell.number:
            config.update(settings)
    state = "finished" if "train_runtime" in summary else "unknown"
    prog = build.progress()
    if prog is not None:
        summary["global_step"], summary["max_steps"] = prog.reached, prog.total
        config["trainer.max_steps"] = prog.total
        if prog.epochs is not None:
            config["trainer.num_train_epochs"] = prog.epochs
        if prog.reached >= prog.total > 0:
            state = "finished"
        else:
            state = "interrupted"
            notes.append(
                f"the progress header {prog.text!r} shows step {prog.reached} of {prog.total}: the run "
                "stopped short of its total (interrupted, crashed or stopped early)"
            )
    error = errors.get(build.cell.number)
    if error is not None:
        ename, evalue = error
        state = "interrupted" if ename == "KeyboardInterrupt" else "crashed"
        notes.append(f"{build.cell.label()} stopped with {ename}" + (f": {_short(evalue)}" if evalue else ""))
    location = f"{base}#{build.run_id}"
    return Run(
        name=f"{name_base}#{build.run_id}",
        provenance=Provenance(kind=KIND, location=location, step_source=step_source, notes=tuple(notes)),
        metrics=frame,
        config=config,
        summary=summary,
        state=state,
    )


def split_location(location: str) -> tuple[str, str | None]:
    """``nb.ipynb#cell-12`` → (``nb.ipynb``, ``cell-12``); no selector → (location, None)."""
    if "#" not in location or Path(location).exists():
        return location, None
    base, _, selector = location.rpartition("#")
    return base, selector


def read_notebook(path: Path, location: str, selector: str | None, options: ReadOptions) -> list[Run]:
    data = read_bytes(path, location)
    nb, skipped = load_notebook(data, location)
    del data
    notes: list[str] = []
    segments: list[_Segment] = []
    errors: dict[int, tuple[str, str]] = {}
    n_cells = n_outputs = 0
    code_settings: dict[int, dict[str, Any]] = {}
    for cell in iter_cells(nb):
        n_cells += 1
        if cell.settings:
            code_settings[cell.number] = dict(cell.settings)
        if not cell.outputs:
            continue
        n_outputs += 1
        error = _cell_error(cell)
        if error is not None:
            errors[cell.number] = error
        segments.extend(_cell_segments(cell, location, options, notes))
    del nb
    builds = _assemble(segments)
    notes.extend(n for seg in segments if seg.kind == "empty" for n in seg.notes)
    if not builds:
        if notes:
            raise SourceError(f"no training log read from this notebook's saved outputs: {notes[0]}", location)
        if not n_outputs:
            raise SourceError(
                f"no saved outputs in this notebook ({n_cells} cells): it was saved before running "
                "or with its outputs cleared, so it holds no training log",
                location,
            )
        raise SourceError(
            f"no training log in this notebook's saved outputs ({n_cells} cells, {n_outputs} with "
            "output); expected the HF Trainer progress table, printed log dicts or a training "
            "console",
            location,
        )
    name_base = Path(location).name
    runs = [_to_run(b, location, name_base, errors, code_settings) for b in builds]
    ids = [b.run_id for b in builds]
    if selector is not None:
        m = _SELECTOR.match(selector)
        wanted = [
            r
            for b, r in zip(builds, runs)
            if m and (b.run_id == selector or (m.group(2) is None and b.cell.number == int(m.group(1))))
        ]
        if not wanted:
            raise SourceError(
                f"no training run in #{selector}; this notebook's runs: {', '.join('#' + i for i in ids)}", location
            )
        chosen = wanted[:1]
    elif options.all_runs:
        chosen = runs
    else:
        chosen = [runs[_default_run(runs)]]
    extra = list(notes)
    if skipped:
        extra.append(f"{skipped} image/PDF output(s) skipped without decoding")
    if len(runs) > 1 and selector is None and not options.all_runs:
        listing = "; ".join(f"#{b.run_id} ({_describe(b, b.frame()[0])})" for b in builds)
        pick = _default_run(runs)
        which = "The last one" if pick == len(runs) - 1 else f"#{ids[pick]}, the last with a train loss curve,"
        extra.append(
            f"this notebook holds {len(runs)} training runs: {listing}. {which} was analysed; "
            f"pick another with '{location}#{ids[0]}', or analyse each with --all"
        )
    return [replace(r, provenance=replace(r.provenance, notes=r.provenance.notes + tuple(extra))) for r in chosen]


def _default_run(runs: list[Run]) -> int:
    """The run analysed when none is picked: the last training curve, i.e. the last run with a train loss
    logged at more than one step. A later ``evaluate()`` summary or a final metrics dict printed after
    training is listed but is no curve to judge; when no run has one, the last run."""

    def is_curve(run: Run) -> bool:
        train = run.series("train/loss") if "train/loss" in run.metric_names() else None
        return train is not None and len(train) > 1

    curves = [i for i, r in enumerate(runs) if is_curve(r)]
    return curves[-1] if curves else len(runs) - 1


# --------------------------------------------------------------------------- the reader

KIND = "notebook"


def _notebook_file(target: Target) -> tuple[Path, str | None] | None:
    """The .ipynb file a target names (with its ``#cell-N`` selector), or None."""
    if target.is_file and target.path is not None:
        return target.path, None
    if target.path is None and "#" in target.location:
        base, selector = split_location(target.location)
        path = Path(base)
        if selector is not None and path.is_file():
            return path, selector
    return None


class NotebookSource:
    kind = KIND
    description = (
        "Jupyter / Colab / Kaggle notebook (.ipynb): HF Trainer progress tables, printed logs and "
        "log_history in the saved outputs; 'nb.ipynb#cell-12' picks one run"
    )
    example = "finetune.ipynb"
    specificity = 70
    max_confidence = 0.95  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        found = _notebook_file(target)
        if found is None:
            return 0.0
        path, selector = found
        if selector is not None:
            return 0.95 if path.suffix.lower() == ".ipynb" else 0.6
        if path.suffix.lower() == ".ipynb":
            return 0.95 if target.head else 0.0  # named a notebook: its own errors say what is wrong
        head = target.head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith(b"{"):
            return 0.0
        sample = head[:HEAD_SNIFF]
        return 0.9 if b'"nbformat"' in target.head and (b'"cells"' in sample or b'"worksheets"' in sample) else 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        found = _notebook_file(target)
        if found is None:
            raise SourceError("expected a Jupyter notebook (.ipynb) file", target.location)
        path, selector = found
        base = target.location if selector is None else split_location(target.location)[0]
        return read_notebook(path, base, selector, options)


HEAD_SNIFF = 4096
SOURCE = NotebookSource()
