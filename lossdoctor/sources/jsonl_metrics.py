"""JSON Lines metric logs: one JSON object per line with a step key.

Step key, first found: step, global_step, train/global_step, trainer/global_step, iter, iteration, _step
(W&B's own counter last: the HF integration's train/global_step is the meaningful one when both exist).
Nested objects are flattened with "/" ({"train": {"loss": 1}} → train/loss). Numbers and numeric strings
are values (JSON's NaN/Infinity literals too); booleans, other strings, lists are skipped; keys starting
with "_" (W&B's _runtime, _timestamp) are not metrics.
A line that is not a JSON object is skipped and counted (a run still writing leaves a cut last line);
when the first record line is not JSON at all the file is not JSONL and that is an error with its line.
"""
from __future__ import annotations

from typing import Any, Iterator

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import (Collector, decode_with_notes, json_number, load_json, make_run, read_bytes,
                                         to_step)
from lossdoctor.sources.base import ReadOptions, Target

STEP_KEYS = ("step", "global_step", "train/global_step", "trainer/global_step", "iter", "iteration", "_step")
PRIMARY_FILE = "metrics.jsonl"


#: Nested objects deeper than this are not metrics (and must not cost a recursion per level).
MAX_DEPTH = 16


def _flatten(obj: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if depth < MAX_DEPTH:
                yield from _flatten(value, name + "/", depth + 1)
        else:
            yield name, value


def _step_of(obj: dict[str, Any]) -> tuple[str, int] | None:
    for key in STEP_KEYS:
        if key in obj:
            step = to_step(obj[key])
            if step is not None:
                return key, step
    return None


def _first_objects(text: str, limit: int = 5) -> list[Any]:
    out: list[Any] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(load_json(line))
        except ValueError:
            out.append(None)
        if len(out) >= limit:
            break
    return out


class JsonlMetricsSource:
    kind = "jsonl"
    description = "JSON Lines: one object per log call with a step / global_step / _step / iter key"
    example = '{"step": 10, "loss": 2.31, "learning_rate": 0.0002}'
    specificity = 20

    def sniff(self, target: Target) -> float:
        if target.is_dir and target.path is not None:
            return 0.5 if (target.path / PRIMARY_FILE).is_file() else 0.0
        if not target.is_file or not target.head:
            return 0.0
        objs = _first_objects(target.head_text())
        if len(objs) > 1 and objs[-1] is None:
            objs = objs[:-1]           # the head may cut the last line
        if not objs or not all(isinstance(o, dict) for o in objs):
            return 0.0
        return 0.8 if any(_step_of(o) for o in objs) else 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected a JSONL file", target.location)
        path = target.path / PRIMARY_FILE if target.is_dir else target.path
        location = str(path)
        text, notes = decode_with_notes(read_bytes(path, location))
        points = Collector()
        bad: list[int] = []
        no_step = 0
        seen_record = False
        for lineno, line in enumerate(text.lstrip("\ufeff").split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = load_json(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                if not seen_record:
                    raise SourceError("not a JSON object; expected one JSON object per line "
                                      '(e.g. {"step": 10, "loss": 2.3})', location, line=lineno)
                bad.append(lineno)
                continue
            seen_record = True
            found = _step_of(obj)
            if found is None:
                no_step += 1
                continue
            step_key, step = found
            for name, value in _flatten(obj):
                if name == step_key or name.startswith("_") or name in STEP_KEYS:
                    continue
                number = json_number(value)
                if number is not None:
                    points.add(step, name, number)
        frame, more = points.frame()
        if bad:
            more.append(f"{len(bad)} line(s) that are not JSON objects skipped (line {bad[0]}"
                        f"{', ...' if len(bad) > 1 else ''})")
        if no_step:
            more.append(f"{no_step} object(s) without a step key skipped (expected one of {', '.join(STEP_KEYS)})")
        if frame.empty:
            raise SourceError(f"no metric points; expected objects with a step key ({', '.join(STEP_KEYS)}) "
                              "and numeric values", location)
        return [make_run(target, self.kind, frame, notes + more, location=location)]


SOURCE = JsonlMetricsSource()
