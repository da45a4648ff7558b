"""HF Trainer / trl console logs: the printed log dicts, between tqdm bars, warnings and tracebacks.

What the Trainer prints (transformers ``ProgressCallback.on_log`` → ``tqdm.write(str(logs))``):

- transformers ≤ 4.x: python dicts with numbers, ``{'loss': 2.7509, 'grad_norm': 1.77, 'epoch': 4.21}``;
- transformers 5: every float formatted ``.4g`` as a string, ``{'loss': '5.351', 'grad_norm': '1.125e+04'}``;
- evaluation dicts (``eval_*`` keys) and one end-of-training summary (``train_runtime``, ``train_loss``, ...),
  which is metadata (→ ``Run.summary``), not a training point (its ``train_loss`` is an average).

The dicts carry no step. The reader is three steps, each its own module:

- :mod:`lossdoctor.sources._hf_scan`: one streamed pass finds the dicts, their values (float columns per key
  set) and the bar counter printed after each (no eval of log content; memory grows with the points);
- :mod:`lossdoctor.sources._hf_steps`: each dict's step, from the tqdm counters, else epoch × steps per epoch
  on the logging cadence, else the dicts' order (``Provenance.step_source`` and a note say which);
- :mod:`lossdoctor.sources._hf_table`: the values as columns for the one tidy-table constructor.

This module composes them into a Run (summary, state, notes) and is the registered reader.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from lossdoctor.errors import SourceError
from lossdoctor.memory import release
from lossdoctor.model import Provenance, Run
from lossdoctor.sources._hf_scan import SUMMARY, ScanResult, auto_workers, scan_file
from lossdoctor.sources._hf_steps import infer_steps
from lossdoctor.sources._hf_table import points_table
from lossdoctor.sources._readkit import tail_text
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.text import looks_binary

PRIMARY_FILE = "console.log"

_HF_DICT_HEAD = re.compile(r"\{'(?:loss|eval_loss|learning_rate|train_runtime|grad_norm)'\s*:")


def build_run(scan: ScanResult, target: Target, location: str, name_default: str) -> Run:
    summary: dict[str, Any] = {}
    n_summary = 0
    for group in scan.groups.values():
        if group.kind != SUMMARY:
            continue
        idx, vals, ok = group.table()
        if idx.size:
            n_summary += int(idx.size)
            last = int(np.argmax(idx))
            for k, key in enumerate(group.keys):
                if ok[last, k]:
                    summary[key] = float(vals[last, k])
    plan = infer_steps(scan, summary)
    release()  # the step inference's per-dict scratch arrays go back to the system before the table is built
    if plan.max_steps is not None:
        summary["max_steps"] = plan.max_steps
    metrics, tidy_notes = points_table(scan, plan.steps)
    if metrics is None:
        raise SourceError("no HF Trainer log dicts found (expected lines like {'loss': 2.75, 'epoch': 0.5})", location)
    notes = list(plan.notes) + tidy_notes
    if scan.replacement_chars:
        notes.append(
            f"{scan.replacement_chars} U+FFFD replacement character(s) in the text "
            "(bytes lost before or while decoding); numbers are unaffected"
        )
    if n_summary:
        state = "finished"
        if n_summary > 1:
            notes.append(f"{n_summary} end-of-training summaries (several train() calls?); the last kept")
    else:
        state = "unknown"
        notes.append("no end-of-training summary: run may be incomplete")
    return Run(
        name=scan.run_name or name_default,
        provenance=Provenance(
            kind=SOURCE.kind, location=location, step_source=plan.step_source, notes=tuple(notes), confidence=1.0
        ),
        metrics=metrics,
        config={},
        summary=summary,
        state=state,
    )


def read_console(path: Path, location: str, name_default: str | None = None, workers: int = 1) -> Run:
    """Read one console log file (the public entry point for other modules, e.g. `lossdoctor train`); a big
    one is scanned by up to ``workers`` processes (:func:`lossdoctor.sources._hf_scan.scan_file`)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
    if not head:
        raise SourceError("empty file; expected an HF Trainer console log", location)
    if looks_binary(head):
        raise SourceError("binary file; expected an HF Trainer console log (text)", location)
    try:
        scan = scan_file(path, workers=workers)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
    if not scan.kind.size:
        raise SourceError("no HF Trainer log dicts found (expected lines like {'loss': 2.75, 'epoch': 0.5})", location)
    return build_run(scan, Target(location=location, path=path), location, name_default or path.stem or path.name)


class HFConsoleSource:
    kind = "hf-console"
    description = "HF Trainer / trl console logs: the printed {'loss': ...} dicts (tqdm, ANSI, CRLF tolerated)"
    example = "{'loss': 2.7509, 'grad_norm': 1.77, 'learning_rate': 0.000198, 'epoch': 4.21}"
    specificity = 50
    max_confidence = 0.7  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if target.is_dir and target.path is not None:
                return 0.5 if (target.path / PRIMARY_FILE).is_file() else 0.0
            if not target.is_file or not target.head:
                return 0.0
            if _HF_DICT_HEAD.search(target.head_text()):
                return 0.7
            if b"\x00" not in target.head[:4096] and _HF_DICT_HEAD.search(tail_text(target)):
                return 0.7
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected an HF console log file or a directory with console.log", target.location)
        workers = options.workers(auto_workers())
        if target.is_dir:
            path = target.path / PRIMARY_FILE
            if not path.is_file():
                raise SourceError(f"no {PRIMARY_FILE} in this directory; expected an HF console log", target.location)
            return [read_console(path, str(path), target.path.name, workers)]
        return [read_console(target.path, target.location, workers=workers)]


SOURCE = HFConsoleSource()
