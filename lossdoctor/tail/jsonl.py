"""Follow a JSON Lines metrics file: each appended complete line is one object with a step key (the jsonl
reader's step keys and flattening). A cut last line waits for the rest. A row carrying HF's end-of-training
summary (``train_runtime``) ends the run; otherwise the run ends by ``--stall-timeout`` or Ctrl-C."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossdoctor.sources.jsonl_metrics import PRIMARY_FILE, record_points
from lossdoctor.tail import TextFollower, Update


@dataclass
class JsonlTail:
    path: Path
    kind: str = "jsonl"
    step_source: str = "logged"
    config: dict[str, Any] = field(default_factory=dict)
    follower: TextFollower = field(init=False)
    bad_lines: int = 0

    def __post_init__(self) -> None:
        self.follower = TextFollower(self.path)

    def poll(self, now: float) -> Update:
        out = Update()
        done, _ = self.follower.lines()
        if self.follower.restarted:
            out.notes.append(f"{self.path}: the file was truncated or replaced; following it from its start")
        for line in done.split("\n"):
            line = line.strip().lstrip("\ufeff")
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                self.bad_lines += 1
                continue
            if "train_runtime" in obj:
                out.ended = "end-of-training summary (train_runtime) logged"
                continue
            record = record_points(obj)
            if record is not None:
                step, values = record
                out.points.extend((step, name, number) for name, number in values)
        out.backlog = self.follower.backlog
        return out

    def close(self) -> None:
        self.follower.close()


class JsonlTailer:
    kinds = ("jsonl",)

    def open(self, path: Path, location: str) -> JsonlTail:
        if path.is_dir():
            path = path / PRIMARY_FILE
        return JsonlTail(path)


TAILER = JsonlTailer()
