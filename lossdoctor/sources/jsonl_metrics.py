"""JSON Lines metric logs: one JSON object per line with a step key.

Step key, first found: step, global_step, train/global_step, trainer/global_step, iter, iteration, _step
(W&B's own counter last: the HF integration's train/global_step is the meaningful one when both exist).
Nested objects are flattened with "/" ({"train": {"loss": 1}} → train/loss). Numbers and numeric strings
are values (JSON's NaN/Infinity literals too); booleans, other strings, lists are skipped; keys starting
with "_" (W&B's _runtime, _timestamp) are not metrics.
A line that is not a JSON object is skipped and counted, wherever it is (a run still writing leaves a cut
last line; a warning printed into the file leaves a stray line): one stray line never decides the format.
A file with no JSON object line at all is not JSONL, and that is an error naming its first line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import Collector, decode_with_notes, json_number, load_json, make_run, read_bytes
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


def _step_of(obj: dict[str, Any]) -> tuple[str, Any] | None:
    """(the step key, its value) when the object has a numeric step; whether the step is a usable integer
    (finite, whole, within int64) the tidy table decides, dropping and counting the points that are not."""
    for key in STEP_KEYS:
        if key in obj:
            value = obj[key]
            if isinstance(value, int) and not isinstance(value, bool):
                return key, value  # exact, however many digits
            number = json_number(value)
            if number is not None:
                return key, number
    return None


#: How many non-empty head lines detection looks at, and the share of them that must be JSON objects.
SAMPLE_LINES = 20
MIN_OBJECT_SHARE = 0.75


def sample_objects(text: str, limit: int = SAMPLE_LINES) -> tuple[list[dict[str, Any]], int]:
    """(the JSON objects among the first `limit` non-empty lines, how many of those lines were not JSON
    objects). A last line that does not parse is left out: the head may cut it. Used by every JSON Lines
    sniffer, so a stray line is judged the same way for each format."""
    lines: list[str] = []
    for line in text.lstrip("\ufeff").split("\n"):
        if line.strip():
            lines.append(line)
            if len(lines) > limit:
                break
    objects: list[dict[str, Any]] = []
    strays = 0
    for i, (_, obj) in enumerate(iter_json_lines("\n".join(lines[:limit]))):
        if obj is not None:
            objects.append(obj)
        elif i < len(lines) - 1:
            strays += 1
    return objects, strays


def iter_json_lines(text: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(1-based line number, the line's JSON object or None when it is not one) for each non-empty line."""
    for lineno, line in enumerate(text.lstrip("\ufeff").split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = load_json(line)  # bounded: deep nesting and huge literals are a ValueError
        except ValueError:
            obj = None
        yield lineno, obj if isinstance(obj, dict) else None


def looks_like_json_lines(objects: list[dict[str, Any]], strays: int) -> bool:
    """Mostly JSON objects: at least one, and at least MIN_OBJECT_SHARE of the sampled lines."""
    return bool(objects) and len(objects) >= MIN_OBJECT_SHARE * (len(objects) + strays)


def record_points(obj: dict[str, Any]) -> tuple[int, list[tuple[str, float]]] | None:
    """One logged object → (its step, [(name, number)]): nested keys flattened, the step key, private
    (``_x``) and other step keys left out, non-numbers skipped; None when the object has no step."""
    found = _step_of(obj)
    if found is None:
        return None
    step_key, step = found
    out: list[tuple[str, float]] = []
    for name, value in _flatten(obj):
        if name == step_key or name.startswith("_") or name in STEP_KEYS:
            continue
        number = json_number(value)
        if number is not None:
            out.append((name, number))
    return step, out


class JsonlMetricsSource:
    kind = "jsonl"
    description = "JSON Lines: one object per log call with a step / global_step / _step / iter key"
    example = '{"step": 10, "loss": 2.31, "learning_rate": 0.0002}'
    specificity = 20
    max_confidence = 0.8  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        if target.is_dir and target.path is not None:
            return 0.5 if (target.path / PRIMARY_FILE).is_file() else 0.0
        if not target.is_file or not target.head:
            return 0.0
        objs, strays = sample_objects(target.head_text())
        if not looks_like_json_lines(objs, strays) or not any(_step_of(o) for o in objs):
            return 0.0
        return 0.8 if not strays else 0.7

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected a JSONL file", target.location)
        path = target.path / PRIMARY_FILE if target.is_dir else target.path
        location = str(path)
        text, notes = decode_with_notes(read_bytes(path, location))
        points = Collector()
        bad: list[int] = []
        no_step = 0
        objects = 0
        for lineno, obj in iter_json_lines(text):
            if obj is None:
                bad.append(lineno)
                continue
            objects += 1
            record = record_points(obj)
            if record is None:
                no_step += 1
                continue
            step, values = record
            for name, number in values:
                points.add(step, name, number)
        if bad and objects == 0:
            raise SourceError(
                'not a JSON object; expected one JSON object per line (e.g. {"step": 10, "loss": 2.3})',
                location,
                line=bad[0],
            )
        frame, more = points.frame()
        if bad:
            more.append(
                f"{len(bad)} line(s) that are not JSON objects skipped (line "
                f"{', '.join(str(n) for n in bad[:5])}{', ...' if len(bad) > 5 else ''})"
            )
        if no_step:
            more.append(f"{no_step} object(s) without a step key skipped (expected one of {', '.join(STEP_KEYS)})")
        if frame.empty:
            raise SourceError(
                f"no metric points; expected objects with a step key ({', '.join(STEP_KEYS)}) and numeric values",
                location,
            )
        return [make_run(target, self.kind, frame, notes + more, location=location, summary=points.summary)]


SOURCE = JsonlMetricsSource()
