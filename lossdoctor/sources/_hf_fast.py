"""HF console logs, the vectorised template path: the dominant dict layout read from the bytes with numpy.

The regex scan (:mod:`lossdoctor.sources._hf_scan`) costs ~7 ns per character of every dict it matches and a
Python ``str`` per value; on a million-dict log that is most of the read. Here a chunk of ASCII bytes is an
``np.uint8`` array and every dict of the dominant layout (known keys and quoting, values printed numbers) is
checked and cut out column by column, for all dicts of the chunk at once:

- the ``{'`` positions are the candidates (the only places a match of the scan's regex can start);
- the layout's literal pieces (``{'loss': '``, ``', 'grad_norm': '``, ..., ``'}``) are compared at their
  offsets, each value being the run of number characters (``0-9 . e E + - n a i f``) before the next piece;
- the tqdm bar redrawn after the dict (``\\n\\r  5%|#  | 10/200 [``) is read the same way from a fixed window;
- the values and bar counters of the whole chunk are written into one space-separated byte string and parsed by
  one ``np.fromstring`` (NumPy's text parser calls Python's own correctly rounded string-to-double, so each
  value is what ``float()`` gives).

Any candidate that the vectorised checks cannot decide (another layout, a value that is not a plain number, an
escape sequence or a very long redraw before the bar, a window running out) is matched by the scan's own regex
at its position, one by one; a chunk where that is common, where a match would swallow a later candidate, or
where the parse count disagrees goes to the regex scan whole. So the result is the regex scan's, exactly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: bytes a printed value may consist of on this path (the float grammar's characters plus nan / inf)
_NUMBER = np.zeros(256, dtype=bool)
_NUMBER[np.frombuffer(b"0123456789.eE+-naif", np.uint8)] = True
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[np.frombuffer(b"0123456789", np.uint8)] = True
#: longest value read here (longer ones go to the regex)
VALUE_WINDOW = 32
#: bytes after a dict in which its bar is read (longer redraws go to the regex)
BAR_WINDOW = 120
#: longest bar counter read here: up to 15 digits a float64 holds it exactly (the regex takes 18)
COUNTER_DIGITS = 15
#: the share of candidates the regex may take one by one before the chunk goes to the regex scan whole
SLOW_SHARE = 0.25


@dataclass(frozen=True)
class Layout:
    """The literal pieces between the values of one key set and quoting."""

    pieces: tuple[np.ndarray, ...]  # k + 1 pieces as uint8 arrays

    @staticmethod
    def of(keys: tuple[str, ...], quoted: tuple[bool, ...]) -> Layout | None:
        if not keys or not all(k.isascii() for k in keys):
            return None
        q = ["'" if x else "" for x in quoted]
        texts = ["{'" + keys[0] + "': " + q[0]]
        texts += [q[j - 1] + ", '" + keys[j] + "': " + q[j] for j in range(1, len(keys))]
        texts.append(q[-1] + "}")
        return Layout(tuple(np.frombuffer(t.encode("ascii"), np.uint8) for t in texts))


@dataclass
class FastRows:
    """The chunk's candidates (``{'`` positions, in order) and what the vectorised path decided for them."""

    starts: np.ndarray  # candidate positions
    fast: np.ndarray  # bool: read here
    values: np.ndarray  # (fast rows x k) float64
    after_n: np.ndarray  # per fast row, -1 without a bar
    after_t: np.ndarray
    ends: np.ndarray  # per fast row: end of the match (after the bar when there is one)


def _gather(a: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    return a[pos[:, None] + np.arange(width)]


def _first(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column of the first True per row, and whether there is one."""
    at = np.argmax(mask, axis=1)
    return at, mask[np.arange(len(mask)), at]


def scan_bytes(data: bytes, layout: Layout) -> FastRows | None:
    """The vectorised read of one chunk (``data``: the chunk and its lookahead, ASCII). None: no candidate."""
    k = len(layout.pieces) - 1
    pad = sum(len(p) for p in layout.pieces) + k * VALUE_WINDOW + BAR_WINDOW + 8  # every window stays inside
    a = np.frombuffer(data + b"\x00" * pad, np.uint8)
    n_data = len(data)
    braces = np.flatnonzero(a[: max(n_data - 1, 0)] == 123)
    starts = braces[a[braces + 1] == 39]
    if not starts.size:
        return None
    nc = len(starts)
    ok = np.ones(nc, dtype=bool)
    pos = starts.copy()
    val_pos = np.empty((nc, k), dtype=np.int64)
    val_len = np.empty((nc, k), dtype=np.int64)
    for j, piece in enumerate(layout.pieces):
        ok &= (_gather(a, pos, len(piece)) == piece).all(axis=1)
        pos = pos + len(piece)
        if j == k:
            break
        window = _NUMBER[_gather(a, pos, VALUE_WINDOW)]
        length, ends = _first(~window)
        ok &= ends & (length > 0)
        val_pos[:, j] = pos
        val_len[:, j] = length
        pos = pos + length
    idx = np.flatnonzero(ok)
    n_fast = len(idx)
    dict_end = pos[idx]
    match_end = dict_end.copy()
    bar_n_pos = np.zeros(n_fast, dtype=np.int64)
    bar_n_len = np.zeros(n_fast, dtype=np.int64)
    bar_t_pos = np.zeros(n_fast, dtype=np.int64)
    bar_t_len = np.zeros(n_fast, dtype=np.int64)
    has_bar = np.zeros(n_fast, dtype=bool)
    undecided = np.zeros(n_fast, dtype=bool)
    if n_fast:
        g = _gather(a, dict_end, BAR_WINDOW)
        col = np.arange(BAR_WINDOW)[None, :]
        rows = np.arange(n_fast)
        nl = g[:, 0] == 10
        crnl = (g[:, 0] == 13) & (g[:, 1] == 10)
        newline = nl | crnl
        begin = np.where(crnl, 2, 1)[:, None]
        pipe = (g == 124) & (col >= begin)
        p1, has_p1 = _first(pipe)
        is_digit = _DIGIT[g]
        is_cr, is_sp, is_esc = g == 13, (g == 32) | (g == 9), g == 27
        is_lf = g == 10
        # up to the first pipe: \r* [ \t]* \d{1,3} % (no escape sequence: those are left to the regex)
        pct = g[rows, np.maximum(p1 - 1, 0)] == 37
        d1 = is_digit[rows, np.maximum(p1 - 2, 0)] & (p1 - 2 >= begin[:, 0])
        d2 = d1 & is_digit[rows, np.maximum(p1 - 3, 0)] & (p1 - 3 >= begin[:, 0])
        d3 = d2 & is_digit[rows, np.maximum(p1 - 4, 0)] & (p1 - 4 >= begin[:, 0])
        d4 = d3 & is_digit[rows, np.maximum(p1 - 5, 0)] & (p1 - 5 >= begin[:, 0])
        n_digits = d1.astype(np.int64) + d2 + d3
        region_end = (p1 - 1 - n_digits)[:, None]
        in_region = (col >= begin) & (col < region_end)
        esc = (is_esc & (col >= begin) & (col < p1[:, None])).any(axis=1)
        first_sp, any_sp = _first(in_region & is_sp)
        first_sp = np.where(any_sp, first_sp, BAR_WINDOW)
        region_ok = (
            ~(in_region & ~(is_cr | is_sp)).any(axis=1)
            & ~(in_region & is_cr & (col > first_sp[:, None])).any(axis=1)
            & ((in_region & is_cr).sum(axis=1) <= 64)
        )
        head_ok = newline & has_p1 & pct & d1 & ~d4 & region_ok
        # then [^|\r\n]* \| ' '? digits / digits ' ['
        p2, has_p2 = _first((g == 124) & (col > p1[:, None]))
        between = (col > p1[:, None]) & (col < p2[:, None])
        broken = (between & (is_cr | is_lf)).any(axis=1)
        q = p2 + 1
        q = q + (g[rows, np.minimum(q, BAR_WINDOW - 1)] == 32)
        non_digit = ~is_digit
        n_end, has_n_end = _first(non_digit & (col >= q[:, None]))
        slash = g[rows, n_end] == 47
        t_start = n_end + 1
        t_end, has_t_end = _first(non_digit & (col >= t_start[:, None]))
        tail = (g[rows, t_end] == 32) & (g[rows, np.minimum(t_end + 1, BAR_WINDOW - 1)] == 91)
        len_n, len_t = n_end - q, t_end - t_start
        counters = slash & (len_n >= 1) & (len_n <= 18) & (len_t >= 1) & (len_t <= 18) & tail
        in_window = has_n_end & has_t_end & (t_end + 1 < BAR_WINDOW)
        # decided here: no newline (the regex needs one), or a head that cannot match; else read or undecided
        maybe = newline & ~esc & has_p1
        head_undecided = newline & (esc | ~has_p1)
        bar_form = maybe & head_ok
        tail_undecided = bar_form & ~broken & (~has_p2 | ~in_window)
        has_bar = bar_form & ~broken & has_p2 & in_window & counters
        long_counter = has_bar & ((len_n > COUNTER_DIGITS) | (len_t > COUNTER_DIGITS))
        undecided = head_undecided | tail_undecided | long_counter
        has_bar &= ~undecided
        bar_n_pos, bar_n_len = dict_end + q, np.where(has_bar, len_n, 0)
        bar_t_pos, bar_t_len = dict_end + t_start, np.where(has_bar, len_t, 0)
        match_end = np.where(has_bar, dict_end + t_end + 2, dict_end)
    if undecided.any():
        ok[idx[undecided]] = False
        keep = ~undecided
        idx, val_pos, val_len = idx[keep], val_pos[ok], val_len[ok]
        has_bar, match_end = has_bar[keep], match_end[keep]
        bar_n_pos, bar_n_len, bar_t_pos, bar_t_len = (
            bar_n_pos[keep],
            bar_n_len[keep],
            bar_t_pos[keep],
            bar_t_len[keep],
        )
    else:
        val_pos, val_len = val_pos[ok], val_len[ok]
    n_fast = len(idx)
    if not n_fast:
        return FastRows(starts, ok, np.empty((0, k)), np.empty(0, np.int64), np.empty(0, np.int64), match_end)
    # every token (k values, the two counters or "-1 -1") into one space-separated string, parsed at once
    tok_pos = np.concatenate((val_pos, bar_n_pos[:, None], bar_t_pos[:, None]), axis=1)
    tok_len = np.concatenate((val_len, bar_n_len[:, None], bar_t_len[:, None]), axis=1)
    width = int(tok_len.max()) + 1
    text = _gather(a, tok_pos.ravel(), width)
    text[np.arange(width)[None, :] >= tok_len.reshape(-1, 1)] = 32
    text = text.reshape(n_fast, k + 2, width)
    absent = np.flatnonzero(~has_bar)
    if absent.size:
        text[absent, k:, 0] = 45  # "-1"
        text[absent, k:, 1] = 49
    blob = text.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = np.fromstring(blob, dtype=np.float64, sep=" ")  # noqa: NPY201 - text mode (sep) is not deprecated
    if parsed.size != n_fast * (k + 2):
        return None
    parsed = parsed.reshape(n_fast, k + 2)
    counters_f = parsed[:, k:]
    return FastRows(
        starts,
        ok,
        parsed[:, :k],
        counters_f[:, 0].astype(np.int64),
        counters_f[:, 1].astype(np.int64),
        match_end,
    )


def valid_utf8(data: bytes) -> bool:
    """Whether ``data`` decodes as UTF-8 without a replacement (so byte and character matches agree)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
