"""Follow a ``trainer_state.json`` (or an output dir whose newest ``checkpoint-N/trainer_state.json`` grows).

The Trainer rewrites this file whole at every save, so there is nothing to append: a poll stats the file and,
only when its size or mtime changed, parses it and takes the ``log_history`` rows after the ones already
seen (a half-written file is simply tried again at the next poll). The summary row (``train_runtime``) ends
the run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossdoctor.sources._readkit import json_number
from lossdoctor.sources.trainer_state import find_state_file
from lossdoctor.tail import Update

_NOT_POINTS = frozenset({"step", "total_flos"})


@dataclass
class TrainerStateTail:
    path: Path
    kind: str = "trainer-state"
    step_source: str = "logged"
    config: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    signature: tuple[str, int, int] | None = None

    def _current(self) -> Path | None:
        if self.path.is_dir():
            return find_state_file(self.path)
        return self.path

    def poll(self, now: float) -> Update:
        out = Update()
        path = self._current()
        if path is None:
            return out
        try:
            st = os.stat(path)
        except OSError:
            return out
        sig = (str(path), st.st_mtime_ns, st.st_size)
        if sig == self.signature:
            return out
        try:
            state = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return out  # being rewritten: next poll
        self.signature = sig
        history = state.get("log_history") if isinstance(state, dict) else None
        if not isinstance(history, list):
            return out
        if len(history) < self.seen:
            out.notes.append(f"{path}: log_history got shorter (resumed from a checkpoint?); reading it again")
            self.seen = 0
        for row in history[self.seen :]:
            if not isinstance(row, dict):
                continue
            if "train_runtime" in row:
                out.ended = "end-of-training summary (train_runtime) in log_history"
                continue
            step = json_number(row.get("step"))
            if step is None or step != int(step):
                continue
            for key, value in row.items():
                number = json_number(value)
                if key not in _NOT_POINTS and number is not None:
                    out.points.append((int(step), key, number))
        self.seen = len(history)
        return out

    def close(self) -> None:
        return None


class TrainerStateTailer:
    kinds = ("trainer-state",)

    def open(self, path: Path, location: str) -> TrainerStateTail:
        return TrainerStateTail(path)


TAILER = TrainerStateTailer()
