"""HF console logs, scanning: the printed log dicts found in the text and their values as float columns.

The fast path of the hf-console reader (benchmarked in bench/bench_console_reader.py): the file is streamed in
4 MiB chunks that end at line breaks (:mod:`lossdoctor.sources.text`); the most common dict layout gets a
template regex, so one ``findall`` per chunk returns its values and the counter of the bar redrawn after it,
in file order; values become float arrays column-wise; only other dicts (eval, summary) are tokenised one by
one (``str.split("'")`` or a small ``'key': value`` regex). No eval / ast.literal_eval of log content. Memory
grows with the number of points, not the file size.

Where the compiled matcher is built (``lossdoctor/_cscan.c``, optional), it replaces that ``findall`` once
the layout is learned: the same matches, values converted in C, and a UTF-8 file is not decoded at all (the
matcher reads the bytes as their decoded text would read). The regex stays the reference and the fallback
(tests/test_hf_compiled.py compares the two).

What a scan gives (:class:`ScanResult`): per log dict its kind (TRAIN / EVAL / SUMMARY) and the main-bar
counter printed right after it; per key set a :class:`Group` of the dicts' values. Step inference
(:mod:`lossdoctor.sources._hf_steps`) and the reader (:mod:`lossdoctor.sources.hf_console`) read it.
The dict tokeniser (:func:`split_dict`, :func:`kind_of`) is shared with the live tail (``lossdoctor/tail``).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from lossdoctor.sources._readkit import WANDB_RUN_LINE, wandb_run_name
from lossdoctor.sources.text import CHUNK_BYTES, before_dict, guess_encoding, iter_text_chunks, iter_utf8_chunks

_cscan: ModuleType | None
try:  # the compiled matcher (setup.py); optional, the regex gives the same matches
    from lossdoctor import _cscan
except ImportError:  # pragma: no cover - built wherever a C compiler was found
    _cscan = None

_PAIR = re.compile(r"'([^'\\]+)': ('?)([^',}]*)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]")
_LOG_KEYS = frozenset({"loss", "eval_loss", "learning_rate", "grad_norm", "epoch", "train_runtime", "train_loss"})

TRAIN, EVAL, SUMMARY = 0, 1, 2
#: Longest key of a log dict (HF keys are short; a damaged log can glue megabytes into one).
MAX_KEY_CHARS = 200


def kind_of(keys: tuple[str, ...]) -> int | None:
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


def split_dict(text: str) -> tuple[tuple[str, ...], list[str]]:
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
    """Float array of printed values and a mask of the parsable ones (None = all parsed). A value is what
    ``float()`` reads in it, each on its own (whatever its neighbours hold)."""
    try:
        return np.fromiter(map(float, values), dtype=np.float64, count=len(values)), None
    except ValueError:
        out = np.empty(len(values), dtype=np.float64)
        ok = np.ones(len(values), dtype=bool)
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except ValueError:
                ok[i] = False
                out[i] = math.nan
        return out, ok


def _float_rows(values: Any, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_to_floats` of ``values`` (row after row, ``k`` a row) as n x k values and mask (None = all
    parsed)."""
    vals, ok = _to_floats(values)
    return vals.reshape(-1, k), None if ok is None else ok.reshape(-1, k)


def _parsed(vals: np.ndarray, ok: np.ndarray | None) -> np.ndarray:
    """The parsed mask of a block of values (``ok`` None: all parsed)."""
    return np.ones(vals.shape, bool) if ok is None else ok


def _float_columns(cols: list[tuple[str, ...]], rows: int) -> np.ndarray | None:
    """(rows x k) values of the template's value columns (each column: the rows' strings, the empty ones being
    rows of another layout); None when a string does not parse or one is empty (then the block goes value by
    value, as before). One ``float()`` per value straight into the column, no object array."""
    out = np.empty((rows, len(cols)), dtype=np.float64)
    try:
        for j, col in enumerate(cols):
            out[:, j] = np.fromiter(map(float, filter(None, col)), np.float64, count=rows)
    except ValueError:
        return None
    return out


def _int_column(col: tuple[str, ...], rows: int) -> np.ndarray | None:
    """A bar counter column as int64 when each of the layout's ``rows`` has one (else None)."""
    try:
        return np.fromiter(map(int, filter(None, col)), np.int64, count=rows)
    except ValueError:
        return None


@dataclass
class Group:
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
        self.append(np.asarray(self.idx, dtype=np.int64), *_float_rows(self.flat, len(self.keys)))
        self.idx, self.flat = [], []

    def append(self, idx: np.ndarray, vals: np.ndarray, ok: np.ndarray | None) -> None:
        """A block of rows (ordinals rising). Parts stay in printed order: a chunk can give this key set two
        blocks, the template's rows and the rows of another quoting read one by one, and when the second starts
        before the first ends the two are merged back into ordinal order (a repeated step keeps the dict
        printed last)."""
        if idx.size and self.idx_parts and self.idx_parts[-1].size and idx[0] < self.idx_parts[-1][-1]:
            prev_idx, prev_vals, prev_ok = self.idx_parts.pop(), self.val_parts.pop(), self.ok_parts.pop()
            both = np.concatenate((prev_idx, idx))
            order = np.argsort(both, kind="stable")
            if prev_ok is not None or ok is not None:
                ok = np.concatenate((_parsed(prev_vals, prev_ok), _parsed(vals, ok)))[order]
            vals = np.concatenate((prev_vals, vals))[order]
            idx = both[order]
        self.idx_parts.append(idx)
        self.val_parts.append(vals)
        self.ok_parts.append(ok)

    def parts(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(ordinals, n × k values, n × k parsed mask) per block, in file order (no joined copy)."""
        self.flush()
        return [(i, v, _parsed(v, o)) for i, v, o in zip(self.idx_parts, self.val_parts, self.ok_parts)]

    def column(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ordinals, values, parsed mask) of one key: only that column joined."""
        parts = self.parts()
        if not parts:
            return np.empty(0, np.int64), np.empty(0), np.empty(0, bool)
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1][:, k] for p in parts]),
            np.concatenate([p[2][:, k] for p in parts]),
        )

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ordinals, n × k values, n × k parsed mask); the parts are joined once and kept joined."""
        self.flush()
        k = len(self.keys)
        if len(self.idx_parts) == 1 and self.ok_parts[0] is not None:
            return self.idx_parts[0], self.val_parts[0], self.ok_parts[0]
        idx = np.concatenate(self.idx_parts) if self.idx_parts else np.empty(0, np.int64)
        vals = np.concatenate(self.val_parts) if self.val_parts else np.empty((0, k))
        ok = (
            np.concatenate([_parsed(v, o) for v, o in zip(self.val_parts, self.ok_parts)])
            if self.val_parts
            else np.empty((0, k), bool)
        )
        self.idx_parts, self.val_parts, self.ok_parts = [idx], [vals], [ok]
        return idx, vals, ok


@dataclass
class ScanResult:
    """What one pass over the console text found (arrays are per log dict, in file order): ``after_n`` /
    ``after_total`` are the counter and total of the bar redrawn right after the dict (-1: none)."""

    groups: dict[tuple[str, ...], Group]
    kind: np.ndarray
    after_n: np.ndarray
    after_total: np.ndarray
    run_name: str | None
    replacement_chars: int
    bytes_read: int


#: the main bar redrawn on the line right after a dict (tqdm.write redraws it after printing)
# counters of at most 18 digits: anything longer is no tqdm bar (and would not fit the int64 step column).
# At most 64 cursor-up/CR redraws before the bar: an unbounded (?:a|b)* keeps one backtracking entry per
# character in Python's re, ~200 bytes each (10 MB of bare \r took 1.6 GB); a bar follows within a few.
# Possessive quantifiers (Python >= 3.11: `+` after a quantifier) match the same text here, as what follows
# each one cannot be matched by what it repeats, and spare the regex engine its backtracking state (~10 %).
_P = "+" if sys.version_info >= (3, 11) else ""
_AFTER = r"(?:\r?\n(?:\x1b\[A|\r){0,64}~[ \t]*~\d{1,3}~%\|[^|\r\n]*~\| ?~(\d{1,18}~)/(\d{1,18}~) \[)?".replace("~", _P)
_OTHER = r"([^{}\n\r]*" + _P + r"\})" + _AFTER


def _template(keys: tuple[str, ...], quoted: tuple[bool, ...]) -> str:
    """Regex body (after the leading ``{'``) matching exactly this key set and quoting, values captured. A value
    holds none of the characters the catch-all branch stops at (``{}``, CR, LF): the template matches only
    dicts the catch-all would match too, so which of the two reads a dict never decides whether it is read
    (a bar redraw that lands inside a printed value, stderr cutting into buffered stdout, drops the dict on
    both)."""
    parts = []
    for i, (key, q) in enumerate(zip(keys, quoted)):
        parts.append(
            ("" if i == 0 else ", '")
            + re.escape(key)
            + "': "
            + ("'([^'\\n\\r{}]*" + _P + ")'" if q else "([^,}'\\n\\r{]*" + _P + ")")
        )
    return "".join(parts) + r"\}" + _AFTER


def _template_regex(keys: tuple[str, ...], quoted: tuple[bool, ...]) -> re.Pattern[str]:
    """The scanner's regex once a layout is known: its template, else the catch-all branch."""
    return re.compile(r"\{'(?:" + _template(keys, quoted) + "|" + _OTHER + ")")


def _quoting(text: str, keys: tuple[str, ...]) -> tuple[bool, ...]:
    return tuple(f"'{k}': '" in text for k in keys)


@dataclass(frozen=True)
class _Matches:
    """What one chunk's matcher found, per match in file order: ``rows`` matches; the template's rows
    (``dom_rows``) with their values (rows x k, and a parsed mask, None when all parsed); every match's bar
    counters (-1: no bar after it); and the other dicts' text after ``{'`` with their match number."""

    rows: int
    dom_rows: np.ndarray
    dom_values: np.ndarray
    dom_ok: np.ndarray | None
    after_n: np.ndarray
    after_total: np.ndarray
    others: list[tuple[int, str]]


def _match_regex(regex: re.Pattern[str], text: str, k: int) -> _Matches | None:
    """The matches of the scanner's regex (``k``: the template's value count, 0 when there is none yet): one
    ``findall``, its groups taken column-wise."""
    rows = regex.findall(text)
    if not rows:
        return None
    n = len(rows)
    cols = list(zip(*rows))  # per group of the regex, its n strings (no object array, no per-row loop)
    other_col = k + 2 if k else 0
    bodies, bodies_n, bodies_t = cols[other_col], cols[other_col + 1], cols[other_col + 2]
    others = [(r, body) for r, body in enumerate(bodies) if body]
    after_n = np.full(n, -1, dtype=np.int64)
    after_t = np.full(n, -1, dtype=np.int64)
    for r, _ in others:
        if bodies_n[r]:
            after_n[r], after_t[r] = int(bodies_n[r]), int(bodies_t[r])
    if not k or len(others) == n:  # rows of the template exist only when it does (k > 0)
        return _Matches(n, np.empty(0, np.int64), np.empty((0, k)), None, after_n, after_t, others)
    is_dom = np.ones(n, dtype=bool)
    is_dom[[r for r, _ in others]] = False
    dom_rows = np.flatnonzero(is_dom)
    ok = None
    vals = _float_columns(cols[:k], len(dom_rows))
    if vals is None:  # not all plain numbers: value by value
        vals, ok = _float_rows([v for r in dom_rows.tolist() for v in rows[r][:k]], k)
    bar_n, bar_t = _int_column(cols[k], len(dom_rows)), _int_column(cols[k + 1], len(dom_rows))
    if bar_n is not None and bar_t is not None:  # every dict of the layout has its bar
        after_n[dom_rows], after_t[dom_rows] = bar_n, bar_t
    else:
        has = [r for r in dom_rows.tolist() if cols[k][r]]
        if has:
            after_n[has] = [int(cols[k][r]) for r in has]
            after_t[has] = [int(cols[k + 1][r]) for r in has]
    return _Matches(n, dom_rows, vals, ok, after_n, after_t, others)


def _match_compiled(text: str | bytes, keys: tuple[str, ...], quoted: tuple[bool, ...]) -> _Matches | None:
    """The same matches as :func:`_match_regex` with the template of ``keys`` / ``quoted``, by the compiled
    matcher (``lossdoctor/_cscan.c``), on the text or on UTF-8 bytes (then as on their text decoded with
    ``errors="replace"``, for keys without U+FFFD). The values it leaves to Python (anything but a plainly
    written number) are converted by ``float()``, as in :func:`_to_floats`."""
    assert _cscan is not None
    template, values, bar_n, bar_t, deferred, others = _cscan.match(text, keys, quoted)
    n = len(template)
    if not n:
        return None
    dom_rows = np.flatnonzero(np.frombuffer(template, np.uint8))
    vals = np.frombuffer(values, np.float64).reshape(-1, len(keys))
    ok = None
    if deferred:
        rows, cols, texts = zip(*deferred)
        vals[rows, cols], parsed = _to_floats(texts)
        if parsed is not None:
            ok = np.ones(vals.shape, bool)
            ok[rows, cols] = parsed
    return _Matches(n, dom_rows, vals, ok, np.frombuffer(bar_n, np.int64), np.frombuffer(bar_t, np.int64), others)


class _Scanner:
    """Chunked scan with one regex pass per chunk.

    The most common dict layout (key set + quoting; the train dict) gets its own template regex, combined
    with a catch-all branch: ``\\{'(?:TEMPLATE|OTHER)``. ``findall`` then returns, in file order and at C
    speed, the template's values (or the other dict's text) plus the counter of the bar redrawn after it.
    Template rows are converted column-wise with numpy; only the other rows (eval dicts, summaries,
    unknown dicts) are handled one by one.
    """

    def __init__(self) -> None:
        self.groups: dict[tuple[str, ...], Group] = {}
        self.ignored: set[tuple[str, ...]] = set()
        self.kind_parts: list[np.ndarray] = []
        self.after_n_parts: list[np.ndarray] = []
        self.after_t_parts: list[np.ndarray] = []
        self.count = 0
        self.dom: Group | None = None
        self.dom_quoted: tuple[bool, ...] = ()
        self.dom_bytes = False  # whether the template can be matched on UTF-8 bytes (no key holds U+FFFD)
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
                end = text.find("\n", cut)
                nxt = text[cut:] if end < 0 else text[cut : end + 1]  # the last line may have no line break
                self.feed(text[:cut], before_dict(nxt))
                self.feed(text[cut:], lookahead)
                return
        self.replacements += text.count("\ufffd")
        if "wandb:" in text:
            self._run_names(text)
        self._take(self._match(text + lookahead if lookahead else text))

    def feed_bytes(self, data: bytes, lookahead: bytes = b"") -> None:
        """:meth:`feed` for a UTF-8 chunk left undecoded (:func:`~lossdoctor.sources.text.iter_utf8_chunks`):
        once a template is known, the compiled matcher reads the bytes themselves; before (and where a key
        holds U+FFFD, which stands for bytes that do not decode) the chunk is decoded and fed."""
        if not data:
            return
        if self.dom is None or _cscan is None or not self.dom_bytes:
            self.feed(data.decode("utf-8", errors="replace"), lookahead.decode("utf-8", errors="replace"))
            return
        replacements, wandb = _cscan.text_facts(data)
        self.replacements += replacements
        if wandb:
            self._run_names(data.decode("utf-8", errors="replace"))
        self._take(_match_compiled(data + lookahead if lookahead else data, self.dom.keys, self.dom_quoted))

    def _run_names(self, text: str) -> None:
        for m in WANDB_RUN_LINE.finditer(text):
            self.run_name = wandb_run_name(m)

    def _take(self, found: _Matches | None) -> None:
        """The matches of one chunk into the groups, in file order."""
        if found is None:
            return
        dom = self.dom
        n = found.rows
        kind = np.full(n, -1, dtype=np.int8)
        pending: list[tuple[Group, int, list[str]]] = []
        for r, body_text in found.others:
            body = "{'" + body_text
            keys, values = split_dict(body)
            group = self.groups.get(keys)
            if group is None:
                if keys in self.ignored:
                    continue
                group_kind = kind_of(keys)
                if group_kind is None or not keys:
                    self.ignored.add(keys)
                    continue
                group = self.groups[keys] = Group(keys, group_kind)
            if len(values) != len(keys):
                continue
            sig = (keys, _quoting(body, keys))
            self.seen[sig] = self.seen.get(sig, 0) + 1
            pending.append((group, r, values))
            kind[r] = group.kind
        if dom is not None and found.dom_rows.size:
            kind[found.dom_rows] = dom.kind
        keep = kind >= 0
        # ordinals count log dicts only (dicts that are not log dicts are dropped)
        ordinal = np.cumsum(keep) - 1 + self.count
        if dom is not None and found.dom_rows.size:
            dom.flush()
            dom.append(ordinal[found.dom_rows], found.dom_values, found.dom_ok)
        after_n, after_t = found.after_n, found.after_total
        for group, row, values in pending:
            group.idx.append(int(ordinal[row]))
            group.flat.extend(values)
        for group in self.groups.values():
            group.flush()
        self.kind_parts.append(kind[keep])
        self.after_n_parts.append(after_n[keep])
        self.after_t_parts.append(after_t[keep])
        self.count += int(keep.sum())
        self._maybe_switch_template(n)

    def _match(self, text: str) -> _Matches | None:
        """The dicts in ``text`` (None: none), by the compiled matcher once a template is known and the
        extension is built, else by the regex; both give the same matches."""
        if self.dom is not None and _cscan is not None:
            return _match_compiled(text, self.dom.keys, self.dom_quoted)
        return _match_regex(self.regex, text, len(self.dom.keys) if self.dom is not None else 0)

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
        self.dom_bytes = not any("\ufffd" in key for key in keys)
        self.regex = _template_regex(keys, quoted)

    def result(self, bytes_read: int) -> ScanResult:
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)

        return ScanResult(
            self.groups,
            cat(self.kind_parts, np.int8),
            cat(self.after_n_parts, np.int64),
            cat(self.after_t_parts, np.int64),
            self.run_name,
            self.replacements,
            bytes_read,
        )


#: a file is split into pieces of about this many bytes for worker processes (several per worker, so a
#: worker slowed by other load does not hold up the end); a file under two pieces is scanned here
TASK_BYTES = 16 * 1024 * 1024
#: at most this many worker processes scan one file (beyond them, joining the pieces and the rules dominate)
MAX_WORKERS = 4
#: at a piece boundary, the line break is looked for, and the line after it read (the piece's lookahead: a bar
#: redrawn after a dict sits at its start), within this many bytes
_AFTER_BYTES = 1024 * 1024


def auto_workers() -> int | None:
    """The worker processes for one big log when ``--jobs`` is not given: one (None: the usable cores) where the
    compiled matcher reads it, as splitting it then costs more than it gains on two cores (a 419 MB log: 2.2 s
    end to end in one process, 2.5 s in three, bench/README.md)."""
    return 1 if _cscan is not None else None


def scan_file(
    path: Path, chunk_bytes: int = CHUNK_BYTES, workers: int = 1, task_bytes: int | None = None
) -> ScanResult:
    """One pass over the file, chunk by chunk (``utf-16`` lets the BOM pick the byte order). With ``workers``
    > 1, a UTF-8 file of at least two ``task_bytes`` pieces (default TASK_BYTES) is split at line starts and
    the pieces are scanned in forked worker processes (:mod:`lossdoctor.workers`, where that is possible),
    then joined in file order: the same result as one pass, as each piece ends at a line break and sees the
    next piece's first line as its lookahead, just as a chunk does."""
    task = task_bytes or TASK_BYTES
    n = 1
    if workers > 1 and path.stat().st_size >= 2 * task:
        from lossdoctor.workers import fork_workers

        n = fork_workers(min(workers, MAX_WORKERS))
    with path.open("rb") as fh:
        encoding = guess_encoding(fh.read(8192))
        calls = _piece_calls(path, fh, encoding, chunk_bytes, task) if n > 1 else []
        if not calls:
            fh.seek(0)
            return _scan(fh, encoding, chunk_bytes, None, b"")
    from lossdoctor.workers import map_forked

    try:
        parts = list(map_forked(_scan_piece, calls, min(n, len(calls))))
    except Exception:  # noqa: BLE001 - a pool that cannot start or a worker that died: scan here instead
        return scan_file(path, chunk_bytes)
    return _join(parts)


def _scan(fh: Any, encoding: str, chunk_bytes: int, limit: int | None, after: bytes) -> ScanResult:
    """Scan from the file's position (at most ``limit`` bytes, ``after`` the line that follows them): UTF-8
    stays undecoded for the compiled matcher where it is built; other encodings are decoded."""
    scanner = _Scanner()
    read = 0
    if _cscan is not None and encoding in ("utf-8", "utf-8-sig"):
        chunks = iter_utf8_chunks(fh, chunk_bytes, limit, after, bom=encoding == "utf-8-sig")
        for data, extra_bytes, read in chunks:  # noqa: B007 - used after
            scanner.feed_bytes(data, extra_bytes)
        return scanner.result(read)
    after_text = after.decode("utf-8", errors="replace")
    for text, extra, read in iter_text_chunks(fh, encoding, chunk_bytes, limit, after_text):  # noqa: B007
        scanner.feed(text, extra)
    return scanner.result(read)


def _pieces(fh: Any, encoding: str, task_bytes: int) -> list[tuple[int, int | None]]:
    """(start, end) byte ranges of about ``task_bytes`` that each start a line (the last one: end None, to the
    end of the file as it is when read); [] for a file under two pieces, with no line break to split at, or
    not in UTF-8 (where a line break byte may be part of a character)."""
    if encoding not in ("utf-8", "utf-8-sig"):
        return []
    size = fh.seek(0, 2)
    if size < 2 * task_bytes:
        return []
    starts = [0]
    for k in range(1, size // task_bytes):
        fh.seek(k * task_bytes)
        if not fh.readline(_AFTER_BYTES).endswith(b"\n"):
            continue  # no line break near here: no split
        at = fh.tell()
        if starts[-1] < at < size:
            starts.append(at)
    ends: list[int | None] = [*starts[1:], None]
    return list(zip(starts, ends)) if len(starts) > 1 else []


def _piece_calls(
    path: Path, fh: Any, encoding: str, chunk_bytes: int, task_bytes: int
) -> list[tuple[str, str, int, int, int | None]]:
    """The arguments of :func:`_scan_piece` for each piece of the file (:func:`_pieces`; [] when it is not
    split). The first piece is decoded with the file's encoding (its BOM), the others as plain UTF-8."""
    return [
        (str(path), encoding if start == 0 else "utf-8", chunk_bytes, start, end)
        for start, end in _pieces(fh, encoding, task_bytes)
    ]


def _scan_piece(path: str, encoding: str, chunk_bytes: int, start: int, end: int | None) -> ScanResult:
    """In a worker: scan ``[start, end)`` of the file, its lookahead being the line at ``end``."""
    with open(path, "rb") as fh:
        after = b""
        if end is not None:
            fh.seek(end)
            after = fh.readline(_AFTER_BYTES)
        fh.seek(start)
        return _scan(fh, encoding, chunk_bytes, None if end is None else end - start, after)


def _join(parts: list[ScanResult]) -> ScanResult:
    """The pieces' scans as one: dicts numbered on in file order, groups merged by key set in the order they
    first appear, the last W&B run name, the counts summed."""
    groups: dict[tuple[str, ...], Group] = {}
    offset = 0
    for part in parts:
        for keys, group in part.groups.items():
            into = groups.get(keys)
            if into is None:
                into = groups[keys] = Group(keys, group.kind)
            group.flush()
            into.idx_parts.extend(idx + offset for idx in group.idx_parts)
            into.val_parts.extend(group.val_parts)
            into.ok_parts.extend(group.ok_parts)
        offset += len(part.kind)
    names = [p.run_name for p in parts if p.run_name is not None]
    return ScanResult(
        groups,
        np.concatenate([p.kind for p in parts]),
        np.concatenate([p.after_n for p in parts]),
        np.concatenate([p.after_total for p in parts]),
        names[-1] if names else None,
        sum(p.replacement_chars for p in parts),
        sum(p.bytes_read for p in parts),
    )
