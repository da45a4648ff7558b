"""HF Trainer ``trainer_state.json``: the Trainer's own record of every logged dict, with its step.

Accepted targets: the JSON file itself; a checkpoint dir (``checkpoint-40/``) holding one; an output dir
holding one (``output_dir/trainer_state.json``, written by ``trainer.save_state()``, wins) or checkpoints
(the highest ``checkpoint-N`` wins: it has the longest history).

Mapping (documented choice):
- ``log_history`` entries → points at their ``step`` (step_source "logged"); train and eval entries alike.
  The entry holding ``train_runtime`` is the end-of-training summary → ``Run.summary`` (its ``train_loss``
  is an average over the run, not a point). ``epoch`` is kept as train/epoch from train entries only.
- top-level scalars (global_step, max_steps, best_metric, best_model_checkpoint, best_global_step,
  logging_steps, eval_steps, save_steps, num_train_epochs, train_batch_size, epoch, total_flos ...) →
  ``Run.config`` under ``trainer.<key>`` (flat dotted keys); ``max_steps`` and ``global_step`` are
  also copied to ``Run.summary`` so every reader reports the run length the same way.
- a ``run.json`` manifest of ``lossdoctor train`` beside it (or above a checkpoint dir) adds the flags the run
  was trained with to ``Run.config`` (plain keys: lr, lr_scheduler, warmup_steps, max_grad_norm ...) and
  its status to ``Run.state`` (completed -> finished, failed -> crashed, interrupted/stopped-by-rule ->
  interrupted), so the config-aware rules (clipping, schedule) have what they need.
- state: "finished" when global_step >= max_steps or the summary entry is present; else "interrupted"
  (with a note) when a max_steps is known; else "unknown".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run
from lossdoctor.sources._readkit import json_number, read_bytes, to_step
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.text import decode_bytes, guess_encoding
from lossdoctor.tidy import Coded, tidy_points

PRIMARY_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_SUMMARY_KEYS = ("train_runtime",)
_NOT_POINTS = {"step", "total_flos"}


def find_state_file(directory: Path) -> Path | None:
    """output_dir/trainer_state.json, else the one in the highest checkpoint-N/."""
    direct = directory / PRIMARY_FILE
    if direct.is_file():
        return direct
    best: tuple[int, Path] | None = None
    try:
        entries = list(directory.iterdir())
    except OSError:
        return None
    for entry in entries:
        m = _CHECKPOINT.match(entry.name)
        if m and (entry / PRIMARY_FILE).is_file():
            n = int(m.group(1))
            if best is None or n > best[0]:
                best = (n, entry / PRIMARY_FILE)
    return best[1] if best else None


def load_state(path: Path, location: str) -> dict[str, Any]:
    """The parsed JSON; malformed input → SourceError with the line of the problem."""
    data = read_bytes(path, location)
    text = decode_bytes(data)[0]
    try:
        state = json.loads(text)  # Python's json accepts the NaN/Infinity the Trainer writes
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"malformed JSON ({exc.msg}); expected a trainer_state.json", location, line=exc.lineno
        ) from None
    except RecursionError:
        raise SourceError("JSON nested too deeply; expected a trainer_state.json", location) from None
    except ValueError as exc:  # e.g. an integer literal past Python's digit limit
        raise SourceError(
            f"malformed JSON ({' '.join(str(exc).split())[:120]}); expected a trainer_state.json", location
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise SourceError("no 'log_history' list; expected an HF trainer_state.json", location)
    return state


#: log_history is parsed in pieces of about this many bytes (see :func:`_stream_state`)
PIECE_BYTES = 1 << 20
#: files smaller than this are parsed whole (one json.loads is faster than the piecewise set-up)
STREAM_MIN_BYTES = 2 << 20
_HISTORY_KEY = re.compile(rb'"log_history"\s*:\s*\[')
_ENTRY_GAP = re.compile(rb"\}\s*,\s*(?=\{)")
#: points of one entry are ordered by (entry ordinal, key position): keys per entry stay below this
_KEY_SLOTS = 1 << 12


class _History:
    """The points of ``log_history`` entries, collected column-wise: entries are grouped by their key layout
    (a Trainer writes a handful: train logs, eval logs, the end-of-run summary), and each value column of a
    layout becomes one numpy array in a single conversion when all its values are plain numbers. Anything
    else (a summary entry, a non-dict, a column holding strings, None or booleans) goes through
    :meth:`_entry`, the one per-entry rule, so the result is the same either way; only the cost differs."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.steps: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self._piece: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.summary: dict[str, float] = {}
        self.skipped = 0
        self.entries = 0
        self._layouts: dict[tuple[Any, ...], tuple[int | None, tuple[tuple[int, int], ...], bool]] = {}

    def __len__(self) -> int:
        return int(sum(len(v) for v in self.values))

    def _code(self, key: str) -> int:
        code = self.names.get(key)
        if code is None:
            code = self.names[key] = len(self.names)
        return code

    def add(self, entries: list[Any]) -> None:
        groups: dict[tuple[Any, ...], tuple[list[int], list[tuple[Any, ...]]]] = {}
        first = self.entries
        for i, entry in enumerate(entries, first):
            if type(entry) is not dict:
                self.skipped += 1
                continue
            keys = tuple(entry)
            group = groups.get(keys)
            if group is None:
                group = groups[keys] = ([], [])
            group[0].append(i)
            group[1].append(tuple(entry.values()))
        self.entries = first + len(entries)
        for keys, (ordinals, rows) in groups.items():
            self._add_group(keys, ordinals, rows)
        del groups
        # this batch's points back in the order they were written (batches come in file order, so the
        # concatenation of all batches is in write order: no sort over the whole history)
        if self._piece:
            steps_p, codes_p, values_p, order_p = zip(*self._piece)
            self._piece = []
            steps = _concat_steps(steps_p)
            codes, values, order = np.concatenate(codes_p), np.concatenate(values_p), np.concatenate(order_p)
            if len(order) > 1 and not bool((order[1:] > order[:-1]).all()):
                by = np.argsort(order, kind="stable")
                steps, codes, values = steps[by], codes[by], values[by]
            self.steps.append(steps)
            self.codes.append(codes)
            self.values.append(values)

    def _layout(self, keys: tuple[Any, ...]) -> tuple[int | None, tuple[tuple[int, int], ...], bool]:
        """(column of the step or None, (column, key position) of each point column, whether the generic
        per-entry rule must read it)."""
        found = self._layouts.get(keys)
        if found is None:
            generic = (
                any(k in _SUMMARY_KEYS for k in keys)
                or len(keys) >= _KEY_SLOTS
                or not all(type(k) is str for k in keys)
            )
            step = keys.index("step") if "step" in keys else None
            is_eval = any(str(k).startswith("eval_") for k in keys)
            points = tuple(
                (j, j) for j, k in enumerate(keys) if k not in _NOT_POINTS and not (k == "epoch" and is_eval)
            )
            found = self._layouts[keys] = (step, points, generic or step is None)
        return found

    def _add_group(self, keys: tuple[Any, ...], ordinals: list[int], rows: list[tuple[Any, ...]]) -> None:
        step_col, points, generic = self._layout(keys)
        steps: np.ndarray
        if not generic:
            assert step_col is not None  # a layout without a step column is generic (see _layout)
            columns = list(zip(*rows))
            step_types = set(map(type, columns[step_col]))
            if step_types == {int}:
                try:
                    steps = np.array(columns[step_col], dtype=np.int64)
                except OverflowError:
                    generic = True
            elif step_types == {float}:
                steps = np.array(columns[step_col], dtype=np.float64)
            else:
                generic = True
        if generic:
            for ordinal, row in zip(ordinals, rows):
                self._entry(dict(zip(keys, row)), ordinal)
            return
        base = np.asarray(ordinals, dtype=np.int64) * _KEY_SLOTS
        for j, pos in points:
            column = columns[j]
            types = set(map(type, column))
            values: np.ndarray | None = None
            if types <= {int, float}:
                try:
                    values = np.array(column, dtype=np.float64)
                    keep = None
                except OverflowError:
                    values = None
            if values is None:  # strings, None, booleans ...: one by one, as an entry would
                nums = [json_number(v) for v in column]
                keep = np.asarray([n is not None for n in nums], dtype=bool)
                values = np.asarray([n for n in nums if n is not None], dtype=np.float64)
            self._piece.append(
                (
                    steps if keep is None else steps[keep],
                    np.full(len(values), self._code(keys[j]), dtype=np.int32),
                    values,
                    (base if keep is None else base[keep]) + pos,
                )
            )

    def _entry(self, entry: dict[str, Any], ordinal: int) -> None:
        """The per-entry rule (see the module doc)."""
        if any(k in entry for k in _SUMMARY_KEYS):
            for key, value in entry.items():
                num = json_number(value)
                if num is not None and key != "step":
                    self.summary[key] = num
            return
        step = entry.get("step")
        if json_number(step) is None:  # NaN / fractional / huge steps: dropped and counted by the tidy table
            self.skipped += 1
            return
        is_eval = any(str(k).startswith("eval_") for k in entry)
        steps, codes, values, order = [], [], [], []
        for pos, (key, value) in enumerate(entry.items()):
            if key in _NOT_POINTS or (key == "epoch" and is_eval):
                continue
            num = json_number(value)
            if num is None:
                continue
            steps.append(step)
            codes.append(self._code(str(key)))
            values.append(num)
            order.append(ordinal * _KEY_SLOTS + min(pos, _KEY_SLOTS - 1))
        if steps:
            self._piece.append(
                (
                    np.asarray(steps, dtype=object),
                    np.asarray(codes, dtype=np.int32),
                    np.asarray(values, dtype=np.float64),
                    np.asarray(order, dtype=np.int64),
                )
            )

    def tidy(self) -> Any:
        """The points in the order they were written, through the one tidy-table constructor."""

        steps = _concat_steps(self.steps)
        self.steps = []
        codes, values = np.concatenate(self.codes), np.concatenate(self.values)
        self.codes, self.values = [], []
        return tidy_points(steps, Coded(codes, list(self.names)), values)


def _concat_steps(parts: Any) -> np.ndarray:
    """int64 when every part is (the usual case), else Python objects for the tidy table to validate."""
    if all(p.dtype == np.int64 for p in parts):
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return np.concatenate([p.astype(object) for p in parts])


def state_to_run(state: dict[str, Any], location: str, name: str) -> Run:
    history = _History()
    history.add(state["log_history"])
    return _history_run(state, history, location, name)


def _history_run(state: dict[str, Any], history: _History, location: str, name: str) -> Run:
    """The Run from the top-level keys of a trainer_state and its collected log_history points."""
    summary: dict[str, Any] = dict(history.summary)
    skipped = history.skipped
    if not len(history):
        raise SourceError("log_history holds no logged metrics (train or eval entries with a 'step')", location)
    config: dict[str, Any] = {}
    for key, value in sorted(state.items()):
        if key == "log_history":
            continue
        if isinstance(value, (int, float, str)) or value is None:
            config[f"trainer.{key}"] = value
    global_step = to_step(state.get("global_step"))  # None when absent, non-finite or not a counter
    max_steps = to_step(state.get("max_steps"))
    for key, num in (("global_step", global_step), ("max_steps", max_steps)):
        if num is not None:
            summary[key] = num
    notes: list[str] = []
    if skipped:
        notes.append(f"{skipped} log_history entr(y/ies) without an integer step skipped")
    if (
        global_step is not None and max_steps is not None and max_steps > 0 and global_step >= max_steps
    ) or "train_runtime" in summary:
        run_state = "finished"
    elif max_steps is not None and max_steps > 0 and global_step is not None:
        run_state = "interrupted"
        notes.append(
            f"global_step {global_step} < max_steps {max_steps}: training stopped early "
            "(interrupted, or this is an intermediate checkpoint)"
        )
    else:
        run_state = "unknown"
    table = history.tidy()
    notes.extend(table.notes)
    metrics = table.frame
    if metrics.empty:
        raise SourceError("log_history holds no logged metrics with a valid step", location)
    return Run(
        name=name,
        provenance=Provenance(kind=SOURCE.kind, location=location, step_source="logged", notes=tuple(notes)),
        metrics=metrics,
        config=config,
        summary=summary,
        state=run_state,
    )


def _stream_state(path: Path) -> tuple[dict[str, Any], _History] | None:
    """(top-level keys, log_history points) of a UTF-8 trainer_state.json, read in ~1 MB pieces without
    building the whole parsed tree or holding the whole file: log_history is cut at entry boundaries
    (``},{``) and each piece parsed by json.loads as an array and folded into columns before the next is
    read; the rest of the document (with an empty log_history) is parsed on its own. None whenever anything
    is unusual (another encoding, a cut that does not parse, a second log_history key): the caller then
    parses the whole file, as before, and words any error."""
    history = _History()
    with path.open("rb") as fh:
        buf = fh.read(PIECE_BYTES)
        if buf.startswith(b"\xef\xbb\xbf"):
            buf = buf[3:]
        if guess_encoding(buf) != "utf-8":
            return None
        while (found := _HISTORY_KEY.search(buf)) is None:
            more = fh.read(PIECE_BYTES)
            if not more:
                return None
            buf += more
        head, buf = buf[: found.start()], buf[found.end() :]
        try:
            while True:
                gap = _ENTRY_GAP.search(buf, PIECE_BYTES) if len(buf) >= 2 * PIECE_BYTES else None
                if gap is None:
                    more = fh.read(PIECE_BYTES)
                    if not more:
                        break
                    buf += more
                    continue
                history.add(json.loads(b"[" + buf[: gap.start() + 1] + b"]"))
                buf = buf[gap.end() :]
            rest_text = buf.decode("utf-8")
            del buf
            rest, end = json.JSONDecoder().raw_decode("[" + rest_text)
            history.add(rest)
            tail = rest_text[end - 1 :].encode("utf-8")
            if b'"log_history"' in head or b'"log_history"' in tail:
                return None
            top = json.loads(head + b'"log_history": []' + tail)
        except (ValueError, RecursionError):
            return None
    if not isinstance(top, dict) or top.get("log_history") != []:
        return None
    return top, history


def _run_name(path: Path) -> str:
    """The output dir's name (a checkpoint dir is named after its parent)."""
    parent = path.parent
    if _CHECKPOINT.match(parent.name) and parent.parent.name:
        return parent.parent.name
    return parent.name or path.stem


#: run.json status (lossdoctor train's manifest) -> Run.state
_MANIFEST_STATES = {
    "completed": "finished",
    "running": "running",
    "interrupted": "interrupted",
    "failed": "crashed",
    "stopped-by-rule": "interrupted",
}


def _manifest(path: Path) -> dict[str, Any] | None:
    """The run.json that `lossdoctor train` leaves beside trainer_state.json (or above a checkpoint dir)."""
    for directory in (path.parent, path.parent.parent):
        candidate = directory / "run.json"
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) and data.get("tool") == "lossdoctor train" else None
    return None


def read_state_file(path: Path, location: str) -> Run:
    streamed = None
    try:
        if path.stat().st_size >= STREAM_MIN_BYTES:
            streamed = _stream_state(path)
    except OSError:
        streamed = None  # load_state words the error
    if streamed is not None:
        run = _history_run(streamed[0], streamed[1], location, _run_name(path.resolve()))
    else:
        run = state_to_run(load_state(path, location), location, _run_name(path.resolve()))
    manifest = _manifest(path)
    if manifest is None:
        return run
    # the flags the run was trained with (lr, lr_scheduler, warmup_steps, max_grad_norm ...) and how it ended
    config = {
        str(k): v
        for k, v in (manifest.get("config") or {}).items()
        if isinstance(v, (int, float, str, bool)) or v is None
    }
    config.update(run.config)
    status = str(manifest.get("status") or "")
    state = _MANIFEST_STATES.get(status, run.state)
    notes = run.provenance.notes
    if status and status != "completed":
        notes = notes + (f"run.json: the run ended with status {status!r}",)
    from dataclasses import replace

    return replace(run, config=config, state=state, provenance=replace(run.provenance, notes=notes))


class TrainerStateSource:
    kind = "trainer-state"
    description = "HF Trainer trainer_state.json (log_history), a checkpoint dir or an output dir holding one"
    example = "outputs/checkpoint-40/trainer_state.json"
    specificity = 60
    max_confidence = 0.9  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if target.is_dir and target.path is not None:
                return 0.85 if find_state_file(target.path) is not None else 0.0
            if not target.is_file or not target.head:
                return 0.0
            head = target.head_text().lstrip()
            if head.startswith("{") and '"log_history"' in head:
                return 0.9
            if head.startswith("{") and target.path is not None and target.path.name == PRIMARY_FILE:
                return 0.9  # log_history may sit after a long preamble
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected a trainer_state.json, a checkpoint dir or an output dir", target.location)
        if target.is_dir:
            path = find_state_file(target.path)
            if path is None:
                raise SourceError(f"no {PRIMARY_FILE} here or in a checkpoint-N/ subdirectory", target.location)
            return [read_state_file(path, str(path))]
        return [read_state_file(target.path, target.location)]


SOURCE = TrainerStateSource()
