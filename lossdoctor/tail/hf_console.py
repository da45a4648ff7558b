"""Follow an HF Trainer / trl console log (``python train.py 2>&1 | tee train.log``).

Per poll only the appended text is scanned: every complete line for printed log dicts (the hf-console
reader's own dict tokeniser: nothing is evaluated) and for the main progress bar's ``N/TOTAL [`` counter.
``tqdm.write`` prints a dict and redraws the bar right after it, so the first main-bar counter after a dict
is its step; it usually sits on the still-unfinished last line, which is looked at without consuming it.
A dict waits at most ``HOLD`` seconds for its counter; then its step comes from its epoch and the
steps-per-epoch seen so far, else from the previous step plus the logging cadence, else the count of
train dicts (the report says which). The end-of-training summary dict (``train_runtime``) ends the run.
The final report re-reads the whole file with the hf-console reader, whose step inference sees all of it.
"""

from __future__ import annotations

import re
import statistics
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossdoctor.sources._hf_scan import EVAL, SUMMARY, kind_of, split_dict
from lossdoctor.sources._readkit import parse_number
from lossdoctor.tail import TextFollower, Update

HOLD = 0.3
RATIOS = 63
_EVENT = re.compile(r"(\{'[^{}\n\r]*\})|(\d+)/(\d+) \[")


@dataclass
class _Pending:
    kind: int
    keys: tuple[str, ...]
    values: list[float | None]
    epoch: float | None
    since: float
    epoch_half_ulp: float = 0.005  # half the last digit the epoch was printed with ('100.5': 0.05)


def half_ulp(text: str) -> float:
    """Half the value of the last digit a number was printed with: ``'0.01'`` 0.005, ``'100.5'`` 0.05,
    ``'3'`` 0.5, ``'2.5e-05'`` 5e-07 (0.0 when it does not read as a number)."""
    mantissa, _, exponent = text.strip().strip("'\"").lower().partition("e")
    decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    try:
        shift = int(exponent) if exponent else 0
    except ValueError:
        return 0.0
    return 0.5 * 10.0 ** (shift - decimals)


@dataclass
class ConsoleTail:
    path: Path
    kind: str = "hf-console"
    step_source: str = "tqdm"
    config: dict[str, Any] = field(default_factory=dict)
    follower: TextFollower = field(init=False)
    pending: list[_Pending] = field(default_factory=list)
    totals: dict[int, int] = field(default_factory=dict)  # bar total → times seen right after a dict
    main_total: int | None = None
    kinds: dict[tuple[str, ...], int | None] = field(default_factory=dict)
    last_step: int | None = None
    cadence: int | None = None
    steps_per_epoch: float | None = None
    ratios: deque = field(default_factory=lambda: deque(maxlen=RATIOS))
    train_dicts: int = 0
    guessed: int = 0

    def __post_init__(self) -> None:
        self.follower = TextFollower(self.path)

    def _from_counter(self, p: _Pending, counter: int) -> int:
        """The counter, unless it disagrees with the dict's epoch: a counter redrawn after a dict can lag or lead
        it by a few steps (tqdm's mininterval), so steps per epoch is the median counter/epoch ratio of the
        last RATIOS dicts, and a counter far from epoch x that is replaced by it. "Far" is beyond what the
        epoch's printed precision allows (transformers 5 prints 4 significant digits: past epoch 100 that is
        0.1 epoch, hundreds of steps) plus a margin for the ratio's own error: a coarse epoch never overrules
        an exact counter."""
        if not p.epoch or p.epoch <= 0 or counter <= 0:
            return counter
        self.ratios.append(counter / p.epoch)
        if self.steps_per_epoch is None or len(self.ratios) < RATIOS or self.train_dicts % 8 == 0:
            self.steps_per_epoch = float(statistics.median(self.ratios))
        expected = p.epoch * self.steps_per_epoch
        tolerance = self.steps_per_epoch * (2.0 * max(p.epoch_half_ulp, 0.005) + p.epoch * 1e-3) + 1.0
        if abs(counter - expected) <= tolerance:
            return counter
        self.guessed += 1
        step = int(round(expected))
        if self.cadence and self.cadence > 1:
            step = self.cadence * int(round(step / self.cadence))
        return step

    def _resolve(self, p: _Pending, step: int, out: Update) -> None:
        if self.last_step is not None and step > self.last_step:
            gap = step - self.last_step
            self.cadence = gap if self.cadence is None else min(self.cadence, gap)
        self.last_step = step if self.last_step is None else max(self.last_step, step)
        for key, value in zip(p.keys, p.values):
            if value is not None and key != "step":
                out.points.append((step, key, value))

    def _guess(self, p: _Pending) -> int:
        self.guessed += 1
        if p.epoch is not None and self.steps_per_epoch:
            return int(round(p.epoch * self.steps_per_epoch))
        if p.kind == EVAL and self.last_step is not None:
            return self.last_step
        if self.last_step is not None:
            return self.last_step + (self.cadence or 1)
        return self.train_dicts

    def _counter(self, n: int, total: int, out: Update) -> None:
        if not self.pending:
            return
        seen = self.totals[total] = self.totals.get(total, 0) + 1
        main = self.main_total
        if main is None or seen > self.totals[main]:
            self.main_total = main = total
        if total != main:
            return  # another bar (evaluation) closing: not the step
        for p in self.pending:
            self._resolve(p, self._from_counter(p, n), out)
        self.pending.clear()

    def _dict(self, text: str, now: float, out: Update) -> None:
        keys, raw = split_dict(text)
        kind = self.kinds.get(keys, -1)
        if kind == -1:
            kind = self.kinds[keys] = kind_of(keys)
        if kind is None or len(keys) != len(raw):
            return
        if kind == SUMMARY:
            out.ended = "end-of-training summary (train_runtime) printed"
            return
        try:
            values: list[float | None] = list(map(float, raw))
        except ValueError:
            values = [parse_number(v) for v in raw]
        at = keys.index("epoch") if "epoch" in keys else -1
        epoch = values[at] if at >= 0 else None
        if kind != EVAL:
            self.train_dicts += 1
        pending = _Pending(kind, keys, values, epoch, now)
        if at >= 0:
            pending.epoch_half_ulp = half_ulp(raw[at])
        self.pending.append(pending)

    def poll(self, now: float) -> Update:
        out = Update()
        done, partial = self.follower.lines()
        if self.follower.restarted:
            out.notes.append(f"{self.path}: the file was truncated or replaced; following it from its start")
            self.pending.clear()
        if done:
            for m in _EVENT.finditer(done):
                if m.group(1):
                    self._dict(m.group(1), now, out)
                else:
                    self._counter(int(m.group(2)), int(m.group(3)), out)
        if self.pending and partial:
            for m in _EVENT.finditer(partial):
                if m.group(2):
                    self._counter(int(m.group(2)), int(m.group(3)), out)
                    if not self.pending:
                        break
        while self.pending and (now - self.pending[0].since >= HOLD or out.ended):
            p = self.pending.pop(0)
            self._resolve(p, self._guess(p), out)
        out.backlog = self.follower.backlog
        return out

    def close(self) -> None:
        self.follower.close()


class ConsoleTailer:
    kinds = ("hf-console",)

    def open(self, path: Path, location: str) -> ConsoleTail:
        return ConsoleTail(path)


TAILER = ConsoleTailer()
