"""HF Trainer / trl console logs: the printed log dicts, between tqdm bars, warnings and tracebacks.

What the Trainer prints (transformers ``ProgressCallback.on_log`` → ``tqdm.write(str(logs))``):

- transformers ≤ 4.x: python dicts with numbers, ``{'loss': 2.7509, 'grad_norm': 1.77, 'epoch': 4.21}``;
- transformers 5: every float formatted ``.4g`` as a string, ``{'loss': '5.351', 'grad_norm': '1.125e+04'}``;
- evaluation dicts (``eval_*`` keys) and one end-of-training summary (``train_runtime``, ``train_loss``, ...),
  which is metadata (→ ``Run.summary``), not a training point (its ``train_loss`` is an average).

The dicts carry no step. tqdm.write clears the bar, writes the dict, and redraws the bar, so the main bar's
counter drawn right *after* a dict (``| 20/100 [``) is the step it was logged at. Pasted consoles lose most
redraws, so steps are inferred as follows (``Provenance.step_source`` and a note say which was used):

1. ``tqdm``: the counter of the main bar (the bar whose total is the most common one after a dict = max_steps)
   redrawn on the line right after each dict, kept only when monotone and consistent with the dict's
   ``epoch`` (step ∝ epoch). (Bars drawn *before* a dict are not used: in pasted consoles they are stale.)
2. ``epoch*cadence`` for dicts left without one: steps per epoch *s* from the tqdm anchors (or from the
   summary's runtime × steps/s, or the bar total, against the final epoch), the logging cadence *L* from the
   anchors (else median epoch gap × s); a train dict's step is L · round(epoch · s / L) (HF logs only at
   multiples of logging_steps); an eval dict takes the step of the train dict with the same epoch, else
   round(epoch · s).
3. ``ordinal`` when neither exists: train dicts are numbered 1, 2, 3 ...

Fast path (benchmarked in bench/bench_console_reader.py): the file is streamed in 4 MiB chunks through an
incremental decoder; the most common dict layout gets a template regex, so one ``findall`` per chunk returns
its values and the bar counter after it in file order; values become float arrays column-wise; only other
dicts (eval, summary) are tokenised one by one (``str.split("'")`` or a small ``'key': value`` regex).
No eval / ast.literal_eval of log content. Memory grows with the number of points, not the file size.
"""
from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from itertools import chain
from typing import Any, BinaryIO, Iterable

import numpy as np

from lossdoctor.table import MetricTable
from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run
from lossdoctor.sources._readkit import WANDB_RUN_LINE, parse_number, tail_text, wandb_run_name
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.text import guess_encoding, looks_binary

PRIMARY_FILE = "console.log"
CHUNK_BYTES = 4 * 1024 * 1024

_PAIR = re.compile(r"'([^'\\]+)': ('?)([^',}]*)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]")
_HF_DICT_HEAD = re.compile(r"\{'(?:loss|eval_loss|learning_rate|train_runtime|grad_norm)'\s*:")
_LOG_KEYS = frozenset({"loss", "eval_loss", "learning_rate", "grad_norm", "epoch", "train_runtime", "train_loss"})

TRAIN, EVAL, SUMMARY = 0, 1, 2
#: Longest key of a log dict (HF keys are short; a damaged log can glue megabytes into one).
MAX_KEY_CHARS = 200


def _kind_of(keys: tuple[str, ...]) -> int | None:
    """TRAIN / EVAL / SUMMARY for an HF log dict's key set; None for a dict that is not a log dict (a key
    longer than MAX_KEY_CHARS included: its layout would become a regex as long as the key)."""
    if any(len(k) > MAX_KEY_CHARS for k in keys):
        return None
    if "train_runtime" in keys:
        return SUMMARY
    if any(k.startswith("eval_") for k in keys):
        return EVAL
    if any(k in _LOG_KEYS for k in keys):
        return TRAIN
    return None


def _split_dict(text: str) -> tuple[tuple[str, ...], list[str]]:
    """(keys, value strings) of one printed dict. Never evaluates it."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    parts = text.split("'")
    # transformers-5 form: every value quoted → '{', k, ': ', v, ', ', k, ': ', v, '}'
    if len(parts) & 3 == 1 and parts[-1] == "}":
        seps = parts[2::4]
        if seps.count(": ") == len(seps):
            return tuple(parts[1::4]), parts[3::4]
    pairs = _PAIR.findall(text)
    return tuple(p[0] for p in pairs), [p[2] for p in pairs]


def _to_floats(values: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Float array of printed values and a mask of the parsable ones (None = all parsed)."""
    try:
        return np.fromiter(map(float, values), dtype=np.float64, count=len(values)), None
    except ValueError:
        out = np.empty(len(values), dtype=np.float64)
        ok = np.ones(len(values), dtype=bool)
        for i, v in enumerate(values):
            x = parse_number(v)
            if x is None:
                ok[i] = False
                out[i] = math.nan
            else:
                out[i] = x
        return out, ok


@dataclass
class _Group:
    """All dicts with one key set: their ordinals and a (n × k) value table, built chunk by chunk."""

    keys: tuple[str, ...]
    kind: int
    idx: list[int] = field(default_factory=list)
    flat: list[str] = field(default_factory=list)
    idx_parts: list[np.ndarray] = field(default_factory=list)
    val_parts: list[np.ndarray] = field(default_factory=list)
    ok_parts: list[np.ndarray | None] = field(default_factory=list)

    def flush(self) -> None:
        if not self.idx:
            return
        vals, ok = _to_floats(self.flat)
        k = len(self.keys)
        self.idx_parts.append(np.asarray(self.idx, dtype=np.int64))
        self.val_parts.append(vals.reshape(-1, k))
        self.ok_parts.append(None if ok is None else ok.reshape(-1, k))
        self.idx, self.flat = [], []

    def add_block(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Rows of printed values (an object array n × k) for dicts with ordinals `idx`."""
        self.flush()
        vals, ok = _to_floats(values.ravel())
        k = len(self.keys)
        self.idx_parts.append(np.asarray(idx, dtype=np.int64))
        self.val_parts.append(vals.reshape(-1, k))
        self.ok_parts.append(None if ok is None else ok.reshape(-1, k))

    def parts(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(ordinals, n × k values, n × k parsed mask) per block, in file order (no joined copy)."""
        self.flush()
        return [(i, v, np.ones(v.shape, bool) if o is None else o)
                for i, v, o in zip(self.idx_parts, self.val_parts, self.ok_parts)]

    def column(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ordinals, values, parsed mask) of one key: only that column joined."""
        parts = self.parts()
        if not parts:
            return np.empty(0, np.int64), np.empty(0), np.empty(0, bool)
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1][:, k] for p in parts]),
                np.concatenate([p[2][:, k] for p in parts]))

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ordinals, n × k values, n × k parsed mask); the parts are joined once and kept joined."""
        self.flush()
        k = len(self.keys)
        if len(self.idx_parts) == 1 and self.ok_parts[0] is not None:
            return self.idx_parts[0], self.val_parts[0], self.ok_parts[0]
        idx = np.concatenate(self.idx_parts) if self.idx_parts else np.empty(0, np.int64)
        vals = np.concatenate(self.val_parts) if self.val_parts else np.empty((0, k))
        ok = np.concatenate([np.ones(v.shape, bool) if o is None else o
                             for v, o in zip(self.val_parts, self.ok_parts)]) if self.val_parts else \
            np.empty((0, k), bool)
        self.idx_parts, self.val_parts, self.ok_parts = [idx], [vals], [ok]
        return idx, vals, ok


@dataclass
class ScanResult:
    """What one pass over the console text found (arrays are per log dict, in file order)."""

    groups: dict[tuple[str, ...], _Group]
    kind: np.ndarray
    after_n: np.ndarray
    after_total: np.ndarray
    before_n: np.ndarray
    before_total: np.ndarray
    run_name: str | None
    replacement_chars: int
    bytes_read: int


#: the main bar redrawn on the line right after a dict (tqdm.write redraws it after printing)
# counters of at most 18 digits: anything longer is no tqdm bar (and would not fit the int64 step column).
# At most 64 cursor-up/CR redraws before the bar: an unbounded (?:a|b)* keeps one backtracking entry per
# character in Python's re, ~200 bytes each (10 MB of bare \r took 1.6 GB); a bar follows within a few.
_AFTER = r"(?:\r?\n(?:\x1b\[A|\r){0,64}[ \t]*\d{1,3}%\|[^|\r\n]*\| ?(\d{1,18})/(\d{1,18}) \[)?"
_OTHER = r"([^{}\n\r]*\})" + _AFTER


def _template(keys: tuple[str, ...], quoted: tuple[bool, ...]) -> str:
    """Regex body (after the leading ``{'``) matching exactly this key set and quoting, values captured."""
    parts = []
    for i, (key, q) in enumerate(zip(keys, quoted)):
        parts.append(("" if i == 0 else ", '") + re.escape(key) + "': " + ("'([^'\\n]*)'" if q else "([^,}'\\n]*)"))
    return "".join(parts) + r"\}" + _AFTER


def _quoting(text: str, keys: tuple[str, ...]) -> tuple[bool, ...]:
    return tuple(f"'{k}': '" in text for k in keys)


class _Scanner:
    """Chunked scan with one regex pass per chunk.

    The most common dict layout (key set + quoting; the train dict) gets its own template regex, combined
    with a catch-all branch: ``\\{'(?:TEMPLATE|OTHER)``. ``findall`` then returns, in file order and at C
    speed, the template's values (or the other dict's text) plus the counter of the bar redrawn after it.
    Template rows are converted column-wise with numpy; only the other rows (eval dicts, summaries,
    unknown dicts) are handled one by one.
    """

    def __init__(self) -> None:
        self.groups: dict[tuple[str, ...], _Group] = {}
        self.ignored: set[tuple[str, ...]] = set()
        self.kind_parts: list[np.ndarray] = []
        self.after_n_parts: list[np.ndarray] = []
        self.after_t_parts: list[np.ndarray] = []
        self.before_n_parts: list[np.ndarray] = []
        self.before_t_parts: list[np.ndarray] = []
        self.count = 0
        self.dom: _Group | None = None
        self.dom_quoted: tuple[bool, ...] = ()
        self.regex = re.compile(r"\{'" + _OTHER)
        self.run_name: str | None = None
        self.replacements = 0
        self.seen: dict[tuple[tuple[str, ...], tuple[bool, ...]], int] = {}

    def feed(self, text: str, lookahead: str = "") -> None:
        if not text:
            return
        if self.dom is None and len(text) > 256 * 1024:
            # learn the common layout on a small first piece, then scan the rest with its template
            cut = text.find("\n", 128 * 1024) + 1
            if 0 < cut < len(text):
                nxt = text[cut:text.find("\n", cut) + 1]
                self.feed(text[:cut], "" if "{'" in nxt else nxt)
                self.feed(text[cut:], lookahead)
                return
        self.replacements += text.count("\ufffd")
        if "wandb:" in text:
            for m in WANDB_RUN_LINE.finditer(text):
                self.run_name = wandb_run_name(m)
        rows = self.regex.findall(text + lookahead if lookahead else text)
        if not rows:
            return
        k = len(self.dom.keys) if self.dom is not None else 0
        width = k + 5
        if k == 0:
            width = 3
        block = np.empty(len(rows) * width, dtype=object)
        block[:] = list(chain.from_iterable(rows))
        block = block.reshape(len(rows), width)
        other_col = k + 2 if k else 0
        is_other = block[:, other_col] != ""
        n = len(rows)
        kind = np.full(n, -1, dtype=np.int8)
        after_n = np.full(n, -1, dtype=np.int64)
        after_t = np.full(n, -1, dtype=np.int64)
        before = np.full(n, -1, dtype=np.int64)
        pending: list[tuple[_Group, int, list[str]]] = []
        for r in np.flatnonzero(is_other):
            body = "{'" + block[r, other_col]
            keys, values = _split_dict(body)
            group = self.groups.get(keys)
            if group is None:
                if keys in self.ignored:
                    continue
                kind_of = _kind_of(keys)
                if kind_of is None or not keys:
                    self.ignored.add(keys)
                    continue
                group = self.groups[keys] = _Group(keys, kind_of)
            if len(values) != len(keys):
                continue
            sig = (keys, _quoting(body, keys))
            self.seen[sig] = self.seen.get(sig, 0) + 1
            pending.append((group, int(r), values))
            kind[r] = group.kind
            if block[r, other_col + 1]:
                after_n[r], after_t[r] = int(block[r, other_col + 1]), int(block[r, other_col + 2])
        dom_rows = np.flatnonzero(~is_other) if k else np.empty(0, np.int64)
        if dom_rows.size:
            kind[dom_rows] = self.dom.kind  # type: ignore[union-attr]
        keep = kind >= 0
        # ordinals count log dicts only (dicts that are not log dicts are dropped)
        ordinal = np.cumsum(keep) - 1 + self.count
        if dom_rows.size:
            self.dom.add_block(ordinal[dom_rows], block[dom_rows, :k])  # type: ignore[union-attr]
            an = block[dom_rows, k]
            has = an != ""
            if has.any():
                sel = dom_rows[has]
                after_n[sel] = np.fromiter(map(int, an[has]), np.int64)
                after_t[sel] = np.fromiter(map(int, block[sel, k + 1]), np.int64)
        for group, r, values in pending:
            group.idx.append(int(ordinal[r]))
            group.flat.extend(values)
        for group in self.groups.values():
            group.flush()
        self.kind_parts.append(kind[keep])
        self.after_n_parts.append(after_n[keep])
        self.after_t_parts.append(after_t[keep])
        self.before_n_parts.append(before[keep])
        self.before_t_parts.append(before[keep])
        self.count += int(keep.sum())
        self._maybe_switch_template(n)

    def _maybe_switch_template(self, rows: int) -> None:
        """Give the most common layout among the one-by-one rows its own template when it dominates."""
        if not self.seen:
            return
        sig, hits = max(self.seen.items(), key=lambda kv: kv[1])
        self.seen.clear()
        if hits * 2 < rows:
            return
        keys, quoted = sig
        self.dom = self.groups[keys]
        self.dom_quoted = quoted
        self.regex = re.compile(r"\{'(?:" + _template(keys, quoted) + "|" + _OTHER + ")")

    def result(self, bytes_read: int) -> ScanResult:
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)

        return ScanResult(self.groups, cat(self.kind_parts, np.int8), cat(self.after_n_parts, np.int64),
                          cat(self.after_t_parts, np.int64), cat(self.before_n_parts, np.int64),
                          cat(self.before_t_parts, np.int64), self.run_name, self.replacements, bytes_read)


def iter_text_chunks(fh: BinaryIO, encoding: str, chunk_bytes: int = CHUNK_BYTES) -> Iterable[tuple[str, str, int]]:
    """(text, lookahead, bytes read so far): decoded text in chunks that end at a line break, and the next
    complete line when it holds no dict (so a dict on a chunk's last line still sees the bar redrawn after
    it; the lookahead is scanned again, as the start of the next chunk)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    rest = ""
    total = 0
    while True:
        data = fh.read(chunk_bytes)
        total += len(data)
        if not data:
            text = rest + decoder.decode(b"", final=True)
            if text:
                yield text, "", total
            return
        text = rest + decoder.decode(data)
        last = text.rfind("\n")
        cut = text.rfind("\n", 0, last) + 1 if last > 0 else 0
        if cut == 0:
            rest = text if len(text) < 64 * chunk_bytes else ""   # no line breaks at all: give up on it
            continue
        extra = text[cut:last + 1]
        rest = text[cut:]
        yield text[:cut], ("" if "{'" in extra else extra), total


def scan_file(path: Path, chunk_bytes: int = CHUNK_BYTES) -> ScanResult:
    with path.open("rb") as fh:
        head = fh.read(8192)
        encoding = guess_encoding(head)
        fh.seek(0)
        if encoding == "utf-16":       # let the BOM pick the byte order
            encoding = "utf-16"
        scanner = _Scanner()
        read = 0
        for text, extra, read in iter_text_chunks(fh, encoding, chunk_bytes):
            scanner.feed(text, extra)
    return scanner.result(read)


def scan_text(text: str) -> ScanResult:
    scanner = _Scanner()
    scanner.feed(text)
    return scanner.result(len(text))


# ---------------------------------------------------------------- step inference

@dataclass(frozen=True)
class StepPlan:
    steps: np.ndarray           # per dict; -1 for summary dicts
    step_source: str
    notes: tuple[str, ...]
    max_steps: int | None


def _main_total(after_t: np.ndarray, before_t: np.ndarray) -> int | None:
    """The training bar's total: the most common total right after a dict (eval bars close before it)."""
    totals = after_t[after_t > 0]
    if totals.size == 0:
        totals = before_t[before_t > 0]
    if totals.size == 0:
        return None
    values, counts = np.unique(totals, return_counts=True)
    return int(values[np.argmax(counts)])


def _tolerance(epoch: np.ndarray, s: float) -> np.ndarray:
    """Steps of slack when comparing a counter with epoch × s: epochs are printed rounded (2 decimals in
    transformers 4, 4 significant digits in 5)."""
    return s * np.maximum(0.005, np.abs(epoch) * 5e-4) + 1.0


#: Inferred steps (epoch × steps per epoch, previous + cadence) at or beyond this are not steps.
_STEP_CAP = 2 ** 62


def _as_steps(x: np.ndarray) -> np.ndarray:
    """Float step estimates → int64; non-finite, negative or beyond _STEP_CAP → -1 (no step)."""
    ok = np.isfinite(x) & (x >= 0) & (x < _STEP_CAP)
    return np.where(ok, x, -1).astype(np.int64)


def _cadence(x: float) -> int | None:
    """A logging cadence in steps (≥ 1) from a float estimate; None when it is no usable number."""
    return max(1, int(round(x))) if math.isfinite(x) and abs(x) < _STEP_CAP else None


def infer_steps(scan: ScanResult, summary: dict[str, Any]) -> StepPlan:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _infer_steps(scan, summary)


def _infer_steps(scan: ScanResult, summary: dict[str, Any]) -> StepPlan:
    kind = scan.kind
    n = kind.size
    epoch = np.full(n, np.nan)
    for group in scan.groups.values():
        if "epoch" in group.keys:
            idx, vals, ok = group.column(group.keys.index("epoch"))
            epoch[idx] = np.where(ok, vals, np.nan)
    total = _main_total(scan.after_total, scan.before_total)
    points = kind != SUMMARY
    is_train = kind == TRAIN
    have_epoch = np.isfinite(epoch) & (epoch > 0)

    def candidates(cn: np.ndarray, ct: np.ndarray) -> np.ndarray:
        c = np.where((ct == total) & (cn >= 0) & points, cn, -1) if total else np.full(n, -1)
        # a counter must not run backwards: drop those below the running maximum of earlier ones
        run_max = np.maximum.accumulate(np.where(c >= 0, c, 0))
        prev_max = np.concatenate([[0], run_max[:-1]])
        return np.where(c >= prev_max, c, -1)

    after = candidates(scan.after_n, scan.after_total)
    before = candidates(scan.before_n, scan.before_total)
    # steps per epoch from the after-counters (the reliable ones), then keep only consistent counters
    s: float | None = None
    anchor = (after > 0) & have_epoch
    if anchor.any():
        s = float(np.median(after[anchor] / epoch[anchor]))
    notes: list[str] = []
    if s is None:
        s = _steps_per_epoch_from_summary(summary, total, epoch, have_epoch, notes)
    if s is not None and not (math.isfinite(s) and s < _STEP_CAP):
        s = None
    if s is not None and s > 0:
        tol = _tolerance(epoch, s)
        after = np.where(~have_epoch | (np.abs(after - epoch * s) <= tol), after, -1)
        before = np.where(have_epoch & (np.abs(before - epoch * s) <= tol), before, -1)
    else:
        before = np.full(n, -1)
    steps = np.where(after >= 0, after, before).astype(np.int64)
    from_tqdm = steps >= 0
    n_points = int(points.sum())
    n_tqdm = int(from_tqdm[points].sum())
    n_epoch = n_ordinal = 0
    need = points & ~from_tqdm
    L: int | None = None
    if need.any() and s:
        train_idx = np.flatnonzero(is_train)
        # logging cadence L: from the train dicts that have a counter, else from the median epoch gap
        t_anchor = train_idx[from_tqdm[train_idx]]
        if t_anchor.size >= 2:
            pos = np.searchsorted(train_idx, t_anchor)
            d_step, d_pos = np.diff(steps[t_anchor]), np.diff(pos)
            good = d_pos > 0
            if good.any():
                L = _cadence(float(np.median(d_step[good] / d_pos[good])))
        if L is None:
            te = epoch[train_idx]
            te = te[np.isfinite(te)]
            if te.size >= 2:
                L = _cadence(float(np.median(np.diff(te))) * s)
        cadence = L or 1
        exact = np.round(epoch * s)
        grid = cadence * np.round(epoch * s / cadence)
        grid = np.where(grid > 0, grid, np.maximum(exact, 1))
        fill_train = need & is_train & have_epoch
        steps[fill_train] = _as_steps(grid[fill_train])
        # eval dicts: the step of the dict before with the same printed epoch, else round(epoch × s)
        for i in np.flatnonzero(need & ~is_train & have_epoch):
            j = i - 1
            while j >= 0 and kind[j] == SUMMARY:
                j -= 1
            same = j >= 0 and steps[j] >= 0 and epoch[j] == epoch[i]
            steps[i] = steps[j] if same else (max(int(exact[i]), 1) if 0 <= exact[i] < _STEP_CAP else -1)
        n_epoch = int((need & have_epoch).sum())
        notes.append(f"steps inferred as epoch x {s:.6g} steps/epoch on a logging cadence of {cadence} steps "
                     f"for {n_epoch} of {n_points} log dicts (the rest from tqdm counters)")
    need = points & (steps < 0)
    if need.any():
        # no counter and no epoch: train dicts numbered after the previous one, eval dicts share it
        last = 0
        for i in range(n):
            if kind[i] == SUMMARY:
                continue
            if steps[i] < 0:
                steps[i] = min(last + (L or 1), _STEP_CAP) if kind[i] == TRAIN else max(last, 1)
            last = int(steps[i])
        n_ordinal = int(need.sum())
        notes.append(f"{n_ordinal} log dict(s) without a tqdm counter or epoch: numbered after the previous one")
    if n_epoch:
        source = "epoch*cadence"
    elif n_ordinal and not n_tqdm:
        source = "ordinal"
    else:
        source = "tqdm"
        if not n_ordinal:
            notes.insert(0, "steps from the tqdm counter printed with each log dict")
    steps = np.where(points, steps, -1).astype(np.int64)
    return StepPlan(steps, source, tuple(notes), total)


def _steps_per_epoch_from_summary(summary: dict[str, Any], total: int | None, epoch: np.ndarray,
                                  have_epoch: np.ndarray, notes: list[str]) -> float | None:
    """Without any usable counter: the run's length (runtime × steps/s, or the bar total when the run
    finished) over its final epoch."""
    final_epoch = summary.get("epoch")
    if not isinstance(final_epoch, float) or not final_epoch > 0:
        final_epoch = float(np.nanmax(epoch[have_epoch])) if have_epoch.any() else None
    if not final_epoch:
        return None
    runtime, sps = summary.get("train_runtime"), summary.get("train_steps_per_second")
    length: float | None = None
    if isinstance(runtime, float) and isinstance(sps, float) and runtime > 0 and sps > 0:
        length = runtime * sps
        if total and abs(length - total) <= 0.01 * total + 1:
            length = float(total)
        notes.append(f"run length {length:.0f} steps from the summary (train_runtime x train_steps_per_second)")
    elif total and summary:
        length = float(total)
    if not length:
        return None
    return length / final_epoch


# ---------------------------------------------------------------- the reader

def _tidy(scan: ScanResult, steps: np.ndarray) -> tuple[MetricTable | None, list[str]]:
    """The tidy table, through the one constructor (:func:`lossdoctor.tidy.tidy_points`, given the values
    column-wise with coded names). A repeated (step, metric) keeps the last dict's value.

    Memory (a million dicts are ~7 million points): the columns are allocated once and filled key by key, the
    keys in the order of their canonical names and each key's points in printed order, which is the table's
    own (metric, step) order when the steps rise; each group's value table is dropped once copied. Only a key
    printed in dicts of several layouts is put back in printed order (an argsort over its own points)."""
    from lossdoctor.metrics.names import canonicalise
    from lossdoctor.tidy import Coded, tidy_points

    groups = [g for _, g in sorted(scan.groups.items(), key=lambda kv: kv[0]) if g.kind != SUMMARY]
    raw_names: list[str] = []
    # (group, column, raw code, count) of every key's points
    pieces: list[tuple[_Group, int, int, int]] = []
    for group in groups:
        parts = group.parts()
        if not parts:
            continue
        counts = sum(p[2].sum(axis=0) for p in parts)
        for k, key in enumerate(group.keys):
            if key == "epoch" and group.kind != TRAIN:
                continue          # an eval dict's epoch repeats the train dict's
            if not counts[k]:
                continue
            if key not in raw_names:
                raw_names.append(key)
            pieces.append((group, k, raw_names.index(key), int(counts[k])))
    if not pieces:
        return None, []
    canonical = [canonicalise(r) for r in raw_names]
    rank = sorted(range(len(raw_names)), key=lambda c: (canonical[c], c))
    # codes renumbered in canonical order (the tidy constructor then takes them as the metric codes as they are)
    new_code = {old: new for new, old in enumerate(rank)}
    raw_names = [raw_names[c] for c in rank]
    canonical = [canonical[c] for c in rank]
    pieces = sorted(((g, k, new_code[c], n) for g, k, c, n in pieces), key=lambda p: p[2])   # stable per key
    total = sum(p[3] for p in pieces)
    out_steps = np.empty(total, dtype=np.int64)
    out_vals = np.empty(total, dtype=np.float64)
    out_codes = np.empty(total, dtype=np.int16 if len(raw_names) < 2 ** 15 else np.int32)
    slices: dict[int, list[tuple[int, int]]] = {}
    pos = 0
    where: dict[tuple[int, int], int] = {}
    for group, k, code, count in pieces:
        where[(id(group), k)] = pos
        slices.setdefault(code, []).append((pos, pos + count))
        pos += count
    mixed = {code for code, s in slices.items() if len(s) > 1}
    shared = len(set(canonical)) < len(canonical)          # two keys for one metric: ties follow print order
    ordinals = np.empty(total, dtype=np.int64) if mixed or shared else None
    for group in groups:
        fill = {k: where[(id(group), k)] for k in range(len(group.keys)) if (id(group), k) in where}
        group.flush()
        while group.idx_parts:                                # block by block, each dropped once copied
            idx, vals, ok = group.idx_parts.pop(0), group.val_parts.pop(0), group.ok_parts.pop(0)
            st = steps[idx]
            for k, start in fill.items():
                sel = slice(None) if ok is None else ok[:, k]
                part_st = st[sel]
                count = len(part_st)
                out_steps[start:start + count] = part_st
                out_vals[start:start + count] = vals[:, k][sel]
                out_codes[start:start + count] = raw_names.index(group.keys[k])
                if ordinals is not None:
                    ordinals[start:start + count] = idx[sel]
                fill[k] = start + count
            del idx, vals, ok, st
    for code in mixed:                       # a key printed by dicts of several layouts: back in printed order
        a, b = slices[code][0][0], slices[code][-1][1]
        order = np.argsort(ordinals[a:b], kind="stable")     # type: ignore[index]
        out_steps[a:b] = out_steps[a:b][order]
        out_vals[a:b] = out_vals[a:b][order]
        ordinals[a:b] = ordinals[a:b][order]                 # type: ignore[index]
    table = tidy_points(out_steps, Coded(out_codes, raw_names), out_vals, written=ordinals if shared else None)
    return table.frame, list(table.notes)


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
    if plan.max_steps is not None:
        summary["max_steps"] = plan.max_steps
    metrics, tidy_notes = _tidy(scan, plan.steps)
    if metrics is None:
        raise SourceError("no HF Trainer log dicts found (expected lines like {'loss': 2.75, 'epoch': 0.5})",
                          location)
    notes = list(plan.notes) + tidy_notes
    if scan.replacement_chars:
        notes.append(f"{scan.replacement_chars} U+FFFD replacement character(s) in the text "
                     "(bytes lost before or while decoding); numbers are unaffected")
    if n_summary:
        state = "finished"
        if n_summary > 1:
            notes.append(f"{n_summary} end-of-training summaries (several train() calls?); the last kept")
    else:
        state = "unknown"
        notes.append("no end-of-training summary: run may be incomplete")
    return Run(
        name=scan.run_name or name_default,
        provenance=Provenance(kind=SOURCE.kind, location=location, step_source=plan.step_source,
                              notes=tuple(notes), confidence=1.0),
        metrics=metrics,
        config={},
        summary=summary,
        state=state,
    )


def read_console(path: Path, location: str, name_default: str | None = None) -> Run:
    """Read one console log file (the public entry point for other modules, e.g. `lossdoctor train`)."""
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
        scan = scan_file(path)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
    if not scan.kind.size:
        raise SourceError("no HF Trainer log dicts found (expected lines like {'loss': 2.75, 'epoch': 0.5})",
                          location)
    return build_run(scan, Target(location=location, path=path), location, name_default or path.stem or path.name)


class HFConsoleSource:
    kind = "hf-console"
    description = "HF Trainer / trl console logs: the printed {'loss': ...} dicts (tqdm, ANSI, CRLF tolerated)"
    example = "{'loss': 2.7509, 'grad_norm': 1.77, 'learning_rate': 0.000198, 'epoch': 4.21}"
    specificity = 50

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
        if target.is_dir:
            path = target.path / PRIMARY_FILE
            if not path.is_file():
                raise SourceError(f"no {PRIMARY_FILE} in this directory; expected an HF console log",
                                  target.location)
            return [read_console(path, str(path), target.path.name)]
        return [read_console(target.path, target.location)]


SOURCE = HFConsoleSource()
