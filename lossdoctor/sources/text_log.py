"""The generic text-log reader: the reader of last resort for any text log (console output, SLURM ``.out``,
W&B ``output.log``, Markdown, notebooks' stream text via :func:`read_log_text`).

Per line it finds ``name <sep> number [unit]`` pairs and the step, whatever the trainer:

- separators ``:``, ``=``, whitespace, ``|`` / ``,`` / ``;`` between pairs, Python dicts (``{'loss': 2.3}``,
  transformers-5 quoted numbers too) and JSON objects printed one per line among other text (nested keys
  flattened with ``/``); a unit after the number (``%``, ``ms``, ``s``, ``min``, ``h``, ``GB``, ``BPC`` ...)
  is tolerated; times in ms/min/h become seconds; a ``(running mean)`` after a value is ignored;
- the step: ``step``, ``iter``, ``Iter``, ``it``, ``iteration N/M``, ``s:N`` (llm.c), ``global_step``,
  ``current_steps``, ``[N/M]``; a step key inside a dict/JSON line; ``GLOBAL_STEP`` wins over a
  per-epoch ``STEP``; without any step in the whole file, ``Epoch e[/E]``; without even that, the records
  are numbered in order (an eval-only record shares the step of the record before it);
- block layouts (Coqui TTS: a ``--> STEP: 0/406 -- GLOBAL_STEP: 0`` header, its metrics on the indented
  lines after it): lines with pairs and no step take the step of the header above them;
- evaluation context: a line (or, in a block layout, a section) marked by an eval word (``validation loss at
  iteration 50 | lm loss value: ...``, ``--> EVAL PERFORMANCE``) gives its pairs as ``eval/<name>``;
- tqdm ``\\r`` redraws (only a line's last redraw is read for bars), ANSI codes, CRLF, BOM/UTF-16/cp949,
  ``[rankN]:`` prefixes (rank 0 preferred); a line holding two records glued together (a second step counter,
  rank prefix or timestamp) is dropped whole and counted.

Lines that carry pairs but no step in a file whose records have steps are ignored (argument dumps, banners).
The layout found is said in a provenance note (which line grammars, which step form, how many lines) and the
roles in another (which names were taken as train loss, eval loss, lr ...: see lossdoctor/metrics/roles.py).
Detection: it claims a text file with a few recognisable record lines, with a low confidence, so every
specific reader that claims the file wins.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.metrics.names import alias_table, canonicalise, normalise_key
from lossdoctor.metrics.roles import apply_roles, role_table, roles_note
from lossdoctor.model import Run
from lossdoctor.sources._readkit import (
    _ANSI,
    MAX_LINE_CHARS,
    NUMBER,
    RANK_ANYWHERE,
    decode_with_notes,
    json_number,
    make_run,
    parse_number,
    read_bytes,
    skipped_line_notes,
    split_rank,
)
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.sources.jsonl_metrics import _flatten
from lossdoctor.sources.text import guess_encoding, iter_text_chunks, looks_binary
from lossdoctor.tidy import Coded, tidy_points

#: files up to this size are decoded whole (exact undecodable-byte notes); larger ones are streamed
WHOLE_FILE_BYTES = 64 * 1024 * 1024
SNIFF_MIN_RECORDS = 2
LOOKED_FOR = (
    "lines with a step (step/iter/Iter/s:/global_step/iteration N/M ...) and name: value pairs, "
    "or dict/JSON lines with numbers"
)

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T_]\d\d:\d\d:\d\d")
_STAMP_START = frozenset("0123456789[ \t")
_LEAD_STAMP = re.compile(
    r"^\s*\[?\d{4}[-/]\d\d[-/]\d\d[ T_]\d\d:?\d\d:?\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?"
    r"|^\s*\[?\d\d:\d\d:\d\d(?:[.,]\d+)?\]?"
)
_STEP = re.compile(
    r"(?<![\w/.\-])(?P<kw>global[_ ]step|current_steps|num_updates|steps?|iteration|iter|it)(?![\w])"
    r"\s*(?:[:=#]\s*|\s+)(?P<n>\d+)(?:\s*/\s*(?P<tot>\d+))?(?![\w.])"
    r"|(?<![\w/.\-])(?P<skw>s):(?P<sn>\d+)(?![\w.])",
    re.IGNORECASE,
)
_BRACKET_STEP = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*\]")
#: a line a training script prints when it is done ("Training finished.", "training complete", ...)
_FINISHED = re.compile(
    r"\b(?:training\s+(?:is\s+)?(?:finished|complete[d]?|done|ended)|finished\s+training|"
    r"done\s+training)\b",
    re.IGNORECASE,
)
#: a batch counter within an epoch ("200/ 2983 batches", Keras' "469/469 [====]"): with the epoch, a step
_COUNTER = re.compile(r"(?<![\w./:])(\d+)\s*/\s*(\d+)(?=\s*(?:batches|batch|steps|iters|it\b|\[|\||$))")
_EPOCH = re.compile(
    r"(?<![\w/.\-])epoch(?![\w])\s*(?:[:=#]\s*|\s+)(?P<n>\d+)(?:\s*/\s*(?P<tot>\d+))?(?![\w.])", re.IGNORECASE
)
_UNIT = r"%|ms|s|sec|secs|min|h|hr|GB|GiB|MB|MiB|KB|TB|TiB|BPC|bpc|bpb|BPB|it/s|s/it|tok/s"
_WORD = r"[A-Za-z_(][\w./\-()\[\]]*"
_NUM_END = r"(?![\w.])(?![-:/]\d)"
_PAIR_SEP = re.compile(
    rf"(?<![\w./\-()])(?P<name>{_WORD}(?: {_WORD}){{0,5}}?)\s*[:=]\s*(?P<num>{NUMBER})(?:\s?(?P<unit>{_UNIT}))?{_NUM_END}"
)
_PAIR_WS = re.compile(
    rf"(?<![\w./\-()])(?P<name>{_WORD}(?: {_WORD}){{0,4}}?)\s+(?P<num>{NUMBER})(?:\s?(?P<unit>{_UNIT}))?{_NUM_END}"
)
_SEGMENTS = re.compile(r"\s*[|,;\t]\s*|\s+-{2,}>?\s+|\s+[-–]\s+")
_PYDICT_PAIR = re.compile(r"'([^'\n]{1,200})'\s*:\s*(?:'([^'\n]*)'|([^,'}\s]+))")
_JSONISH_PAIR = re.compile(rf"\"([^\"\n]{{1,200}})\"\s*:\s*\"?({NUMBER})\"?(?=\s*[,}}])")
_SECONDS = {"ms": 1e-3, "min": 60.0, "h": 3600.0, "hr": 3600.0}
_STEP_KEYS = (
    "global_step",
    "train/global_step",
    "trainer/global_step",
    "step",
    "current_steps",
    "num_updates",
    "iteration",
    "iter",
    "_step",
)
_KW_RANK = {
    "global_step": 0,
    "global step": 0,
    "current_steps": 1,
    "num updates": 1,
    "step": 2,
    "steps": 2,
    "iteration": 3,
    "iter": 3,
    "it": 4,
    "s": 5,
}


@lru_cache(maxsize=1)
def _vocab() -> tuple[frozenset[str], frozenset[str], re.Pattern[str]]:
    table = role_table()
    words = "|".join(sorted(table.eval_words, key=len, reverse=True))
    return table.not_metrics, table.eval_words, re.compile(rf"(?<![\w])(?:{words})(?![\w])", re.IGNORECASE)


_LOG_WORDS = frozenset(
    {
        "info",
        "debug",
        "warning",
        "warn",
        "error",
        "trace",
        "log",
        "logger",
        "trainer",
        "training",
        "train.py",
        "main",
        "root",
        "stdout",
        "stderr",
    }
)


@lru_cache(maxsize=8192)
def _key(phrase: str) -> str:
    """A multi-word name cut to its longest trailing phrase the alias table knows when the words cut off are
    log noise (a level, a logger name, ``name:``) or the phrase is long; else the phrase itself (so that
    ``aux loss`` stays a component loss and never becomes ``loss``)."""

    words = phrase.split(" ")
    if len(words) > 1:
        table = alias_table()
        for i in range(1, len(words)):
            if normalise_key(" ".join(words[i:])) in table:
                head = words[:i]
                if len(words) > 3 or all(w.isupper() or w.endswith(":") or w.lower() in _LOG_WORDS for w in head):
                    return " ".join(words[i:])
                break
    return phrase


@lru_cache(maxsize=8192)
def _is_eval_name(name: str) -> bool:
    return bool(_vocab()[2].search(name.replace("_", " ").replace("/", " ")))


@lru_cache(maxsize=8192)
def _not_metric(name: str) -> bool:
    return name.strip().lower().replace(" ", "_") in _vocab()[0]


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


@dataclass(slots=True)
class _Rec:
    """One record line: its step (None when the line has none), pairs, and how it was read."""

    lineno: int
    rank: int | None
    step: int | None
    step_kw: str | None
    epoch: int | None
    names: tuple[str, ...]
    values: list[float]
    grammar: str
    is_eval: bool
    glued: bool = False
    sub: tuple[int, int] | None = None  # (N, M): a batch counter within the epoch
    total: int | None = None  # M of "step N / M": the run's planned length


#: compiled templates of dict layouts seen (key set + quoting); None -> the last one used
_DICT_TEMPLATES: dict[Any, tuple[re.Pattern[str], tuple[str, ...]]] = {}


def _remember_layout(names: tuple[str, ...], quoted: bool) -> None:
    key = (names, quoted)
    found = _DICT_TEMPLATES.get(key)
    if found is None:
        if len(_DICT_TEMPLATES) > 64:
            _DICT_TEMPLATES.clear()
        value = "'([^'\\n]*)'" if quoted else "([^,'}\\s]+)"
        body = ", ".join("'" + re.escape(n) + "': " + value for n in names)
        found = _DICT_TEMPLATES[key] = (re.compile(r"\{" + body + r"\}"), names)
    _DICT_TEMPLATES[None] = found


def _dict_pairs(segment: str) -> tuple[tuple[str, ...], list[float], str] | None:
    """(names, values, grammar) of a JSON object or Python dict printed in the segment (numbers only)."""
    i = segment.find("{")
    j = segment.rfind("}")
    if i < 0 or j < i:
        return None
    body = segment[i : j + 1]
    out: list[tuple[str, float]] = []
    grammar = "json"
    if body.startswith('{"'):
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            for name, value in _flatten(obj):
                number = json_number(value)
                if number is not None:
                    out.append((name, number))
        else:
            for name, num in _JSONISH_PAIR.findall(body):
                value = _float(num)
                if value is not None:
                    out.append((name, value))
    elif body.startswith("{'"):
        grammar = "python-dict"
        last = _DICT_TEMPLATES.get(None)
        if last is not None:  # the layout of the previous dict line, matched in one go
            m = last[0].fullmatch(body)
            if m is not None:
                try:
                    return last[1], list(map(float, m.groups())), grammar
                except ValueError:
                    pass
        found = _PYDICT_PAIR.findall(body)
        if not found:
            return None
        names, quoted, bare = zip(*found)
        try:  # the common case: every value a number, all quoted (transformers 5: '5.351') or none
            if not any(bare):
                values = list(map(float, quoted))
                _remember_layout(names, True)
                return names, values, grammar
            if not any(quoted):
                values = list(map(float, bare))
                _remember_layout(names, False)
                return names, values, grammar
        except ValueError:
            pass
        for name, q, b in found:
            text = q or b
            if not text or text[:1] not in "-+.0123456789nNiI":
                continue
            value = _float(text)
            if value is not None:
                out.append((name, value))
    else:
        return None
    if not out:
        return None
    return tuple(n for n, _ in out), [v for _, v in out], grammar


def _text_pairs(text: str) -> tuple[list[tuple[str, float]], str, str]:
    """(pairs, grammar, leftover text) of a line's text with its step/epoch tokens blanked out."""
    pairs: list[tuple[str, float]] = []
    styles: Counter[str] = Counter()
    leftover: list[str] = []
    for seg in _SEGMENTS.split(text):
        seg = seg.strip(" '\"()[]{}:>")
        if not seg:
            continue
        found = list(_PAIR_SEP.finditer(seg))
        style = "name: value" if found and ":" in seg else "name=value"
        if not found:
            found = list(_PAIR_WS.finditer(seg))
            style = "name value"
        pos = 0
        for m in found:
            leftover.append(seg[pos : m.start()])
            pos = m.end()
            value = _float(m.group("num"))
            if value is None:
                continue
            unit = m.group("unit")
            if unit in _SECONDS:
                value *= _SECONDS[unit]
            pairs.append((_key(m.group("name").strip()), value))
            styles[style] += 1
        leftover.append(seg[pos:])
    grammar = styles.most_common(1)[0][0] if styles else ""
    return pairs, grammar, " ".join(leftover)


def _find_step(text: str) -> tuple[int | None, str | None, bool, list[tuple[int, int]], int | None]:
    """(step, how it was written, two counters of one kind (glued), spans to blank out, the total of
    'step N / M') of a line's text."""
    spans: list[tuple[int, int]] = []
    best: tuple[int, int, str, int | None] | None = None
    kws: set[str] = set()
    glued = False
    for s in _STEP.finditer(text):
        raw_kw = s.group("kw") or s.group("skw") or ""
        kw = raw_kw.lower().replace("_", " ")
        if kw in kws:
            glued = True
        kws.add(kw)
        n = int(s.group("n") or s.group("sn"))
        rank_kw = _KW_RANK.get("global_step" if kw == "global step" else kw, 9)
        if best is None or rank_kw < best[0]:
            tot = s.group("tot")
            best = (rank_kw, n, raw_kw + (" N/M" if tot else ""), int(tot) if tot else None)
        spans.append(s.span())
    if best is not None:
        return best[1], best[2], glued, spans, best[3]
    b = _BRACKET_STEP.search(text)
    if b:
        return int(b.group(1)), "[N/M]", False, [b.span()], int(b.group(2))
    return None, None, False, spans, None


_NAME_INFO: dict[str, tuple[bool, bool, str]] = {}


def _name_info(name: str) -> tuple[bool, bool, str]:
    """(not a metric, is the epoch, lower-case form), cached per name."""
    info = _NAME_INFO.get(name)
    if info is None:
        low = name.lower()
        info = _NAME_INFO[name] = (_not_metric(name), low == "epoch", low)
    return info


def parse_line(line: str, lineno: int = 0, rank: int | None = None) -> _Rec | None:
    """One line (rank prefix already removed) → a record or None. A record with ``glued`` set holds two
    records run together (a second step counter, rank prefix, timestamp or name): never split into points."""
    if len(line) > MAX_LINE_CHARS:
        return None
    if line[:1] in _STAMP_START:
        m = _LEAD_STAMP.match(line)
        if m:
            line = line[m.end() :]
    brace = line.find("{")
    if brace >= 0 and line[brace + 1 : brace + 2] in ("'", '"'):
        found = _dict_pairs(line[brace:])
        if found is not None:
            return _dict_record(line, brace, found, lineno, rank)
    step, step_kw, glued, spans, total = _find_step(line)
    if RANK_ANYWHERE.search(line) or len(_TIMESTAMP.findall(line)) > 1:
        glued = True
    epoch: int | None = None
    sub: tuple[int, int] | None = None
    e = _EPOCH.search(line)
    if e:
        epoch = int(e.group("n"))
        spans.append(e.span())
    if step is None:
        c = _COUNTER.search(line, e.end() if e else 0)
        if c is not None and (e is None or c.start() >= e.end()):
            sub = (int(c.group(1)), int(c.group(2)))
            spans.append(c.span())
    if spans:
        chars = list(line)
        for a, b in spans:
            chars[a:b] = "|" * (b - a)
        text = "".join(chars)
    else:
        text = line
    pairs, grammar, leftover = _text_pairs(text)
    clean: list[tuple[str, float]] = []
    seen: set[str] = set()
    has_metric = False
    for name, value in pairs:
        skip, is_epoch, low = _name_info(name)
        if skip:
            continue
        if low in seen:
            glued = True
            continue
        seen.add(low)
        if is_epoch:
            clean.append(("epoch", value))
        else:
            has_metric = True
            clean.append((name, value))
    if epoch is not None and "epoch" not in seen:
        clean.append(("epoch", float(epoch)))
    if not has_metric and step is None:
        if epoch is not None:  # an epoch header ("Epoch 3/10"): the lines below belong to it
            return _Rec(lineno, rank, None, None, epoch, (), [], "epoch header", False, glued)
        return None
    is_eval = bool(leftover.strip()) and bool(_vocab()[2].search(leftover))
    return _Rec(
        lineno,
        rank,
        step,
        step_kw,
        epoch,
        tuple(n for n, _ in clean),
        [v for _, v in clean],
        grammar,
        is_eval,
        glued,
        sub,
        total,
    )


_DICT_LAYOUTS: dict[tuple[str, ...], tuple[tuple[int, ...], tuple[str, ...], bool, int | None, str]] = {}


def _dict_layout(names: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[str, ...], bool, int | None, str]:
    """(indices of the pairs kept, their names, has a metric, index of the step key, its name), per key set."""
    found = _DICT_LAYOUTS.get(names)
    if found is None:
        keep = tuple(i for i, n in enumerate(names) if not _name_info(n)[0])
        kept = tuple("epoch" if _name_info(names[i])[1] else names[i] for i in keep)
        step_at: int | None = None
        step_key = ""
        for key in _STEP_KEYS:
            if key in names:
                step_at, step_key = names.index(key), key
                break
        found = _DICT_LAYOUTS[names] = (keep, kept, any(n != "epoch" for n in kept), step_at, step_key)
    return found


def _dict_record(
    line: str, brace: int, found: tuple[tuple[str, ...], list[float], str], lineno: int, rank: int | None
) -> _Rec | None:
    names, values, grammar = found
    prefix = line[:brace].strip() if brace else ""
    step, step_kw, glued = None, None, False
    if prefix:
        step, step_kw, glued, _, _ = _find_step(prefix)
    keep, kept, has_metric, step_at, step_key = _dict_layout(names)
    if step is None and step_at is not None:
        hit = values[step_at]
        if math.isfinite(hit) and hit == int(hit):
            step, step_kw = int(hit), f"'{step_key}' key"
    if not has_metric and step is None:
        return None
    if len(keep) != len(values):
        values = [values[i] for i in keep]
    is_eval = bool(prefix) and bool(_vocab()[2].search(prefix))
    return _Rec(lineno, rank, step, step_kw, None, kept, values, grammar, is_eval, glued)


_TABLE_STEP_NAMES = frozenset(
    {"step", "steps", "iter", "iteration", "iterations", "it", "global_step", "epoch", "epochs", "iters"}
)
_HEADER_CELL = re.compile(r"[A-Za-z_][\w ./\-()%]*")
_RULE_CELL = re.compile(r":?-{3,}:?|={3,}|")
_RULE_LINE = re.compile(r"[\s|:=+-]{3,}")
_NA_CELLS = frozenset({"", "-", "n/a", "N/A", "NA", "nan?", "—", "–"})


def _table_cells(line: str) -> list[str] | None:
    """Cells of a Markdown table row (``| a | b |``) or of space-aligned columns (two or more spaces or a tab
    between cells; a row of numbers may use single spaces). None when the line is not tabular."""
    stripped = line.strip()
    if not stripped:
        return None
    if "|" in stripped:
        if not (stripped.startswith("|") or stripped.count("|") >= 2):
            return None
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        return cells if len(cells) >= 2 else None
    cells = [c for c in re.split(r"\s{2,}|\t", stripped) if c]
    if len(cells) >= 2:
        return cells
    tokens = stripped.split()
    if len(tokens) >= 2 and all(parse_number(t.rstrip("%")) is not None for t in tokens):
        return tokens
    return None


def _is_header_or_section(line: str) -> tuple[bool, bool]:
    """(is a section line with an eval word, is any non-empty line)."""
    stripped = line.strip()
    if not stripped:
        return False, False
    return bool(_vocab()[2].search(stripped)), True


@dataclass
class Extraction:
    """What the generic reader found in one text (pure; no file access)."""

    notes: list[str] = field(default_factory=list)
    step_source: str = "logged"
    records: int = 0
    state: str = "unknown"
    # the points, column-wise: a name code per point into (raw name, canonical override) pairs
    steps: list[int] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    names: list[tuple[str, str | None]] = field(default_factory=list)
    glued_lines: list[int] = field(default_factory=list)
    long_lines: int = 0

    def table(self) -> Any:
        """The tidy table (one constructor: lossdoctor.tidy) and its notes."""
        import numpy as np

        try:
            steps = np.asarray(self.steps, dtype=np.int64)
        except OverflowError:  # a step beyond int64: the constructor drops it with a note
            steps = np.asarray(self.steps, dtype=object)
        return tidy_points(
            steps,
            Coded(np.asarray(self.codes, dtype=np.int64), [n for n, _ in self.names]),
            np.asarray(self.values, dtype=np.float64),
            canonical_codes=[c for _, c in self.names],
            rank=self.ranks if any(self.ranks) else None,
            line=np.asarray(self.lines, dtype=np.int64),
        )


def _segments(text: str) -> Iterator[tuple[int, str]]:
    """(line number, segment): for a line with tqdm ``\\r`` redraws, every segment that is not a progress
    bar, plus the last segment (a bar's final state may carry ``key=value`` postfixes)."""
    has_ansi = "\x1b" in text
    for lineno, line in enumerate(text.split("\n"), 1):
        if has_ansi and "\x1b" in line:
            line = _ANSI.sub("", line)
        if "\r" in line:
            segs = [s for s in line.split("\r") if s.strip()]
            last = len(segs) - 1
            for k, seg in enumerate(segs):
                if "%|" in seg and (k < last or "=" not in seg):  # a tqdm bar redraw
                    continue
                yield lineno, seg
        elif line:
            if "%|" in line and "=" not in line:
                continue
            yield lineno, line


class _Scanner:
    """Line-by-line extraction with the file-level decisions (step axis, blocks) left for the end."""

    def __init__(self, line_offset: int = 0) -> None:
        self.recs: list[_Rec] = []
        self.long_lines = 0
        self.offset = line_offset
        # block layouts: the last header (a line with a step and no pairs) and the current section
        self.header_step: int | None = None
        self.header_kw: str | None = None
        self.section_eval = False
        self.headers = 0
        self.items = 0
        self.table: tuple[tuple[str, ...], int] | None = None
        self.epoch: int | None = None
        self.finished_line = 0

    def feed(self, text: str) -> None:
        for lineno, raw_line in _segments(text):
            lineno += self.offset
            if len(raw_line) > MAX_LINE_CHARS:
                self.long_lines += 1
                continue
            rank, line = split_rank(raw_line)
            if self.table is not None or "  " in line or "|" in line or "\t" in line:
                row = self._table_row(line, lineno, rank)
                if row is not None:
                    if isinstance(row, _Rec):
                        self.recs.append(row)
                    continue
            rec = parse_line(line, lineno, rank)
            if rec is None:
                if _FINISHED.search(line):
                    self.finished_line = lineno
                is_eval, _ = _is_header_or_section(line)
                if is_eval and self.header_step is not None:
                    self.section_eval = True
                continue
            rec.rank = rank
            if rec.grammar == "epoch header":
                self.epoch = rec.epoch
                continue
            if rec.epoch is not None:
                self.epoch = rec.epoch
            elif self.epoch is not None and rec.step is None:
                rec.epoch = self.epoch  # under an epoch header (Keras: 'Epoch 2/10' then its metrics)
            if rec.step is not None and not rec.glued and not any(n != "epoch" for n in rec.names):
                self.header_step, self.header_kw = rec.step, rec.step_kw
                self.section_eval = rec.is_eval
                self.headers += 1
                continue
            if rec.step is None and self.header_step is not None and rec.grammar not in ("json", "python-dict"):
                rec.step_kw = "block"
                rec.step = self.header_step
                rec.is_eval = rec.is_eval or self.section_eval
                rec.grammar = f"{rec.grammar} (lines under a step header)"
                self.items += 1
            self.recs.append(rec)
        self.offset += text.count("\n")

    def _table_row(self, line: str, lineno: int, rank: int | None) -> _Rec | bool | None:
        """Tables (Markdown ``| Step | Loss |``, or columns aligned with spaces): a header of names with a
        step-like column, then rows of numbers. Returns a record for a row, True for a header or rule line
        (consumed), None for anything else (which also ends a table)."""
        if self.table is not None and _RULE_LINE.fullmatch(line):
            return True
        cells = _table_cells(line)
        if cells is None:
            self.table = None
            return None
        if all(_RULE_CELL.fullmatch(c) for c in cells):
            return True if self.table is not None or "|" in line else None
        if len(cells) >= 2 and all(_HEADER_CELL.fullmatch(c) for c in cells):
            step_at = next((i for i, c in enumerate(cells) if normalise_key(c) in _TABLE_STEP_NAMES), None)
            if step_at is not None:
                self.table = (tuple(cells), step_at)
                return True
            self.table = None
            return None
        if self.table is None:
            return None
        names, step_at = self.table
        if len(cells) != len(names):
            self.table = None
            return None
        values: list[float | None] = []
        for c in cells:
            if c in _NA_CELLS:
                values.append(None)
                continue
            v = parse_number(c.rstrip("%"))
            if v is None:
                self.table = None
                return None
            values.append(v)
        step = values[step_at]
        if step is None or not math.isfinite(step) or step != int(step):
            return True
        kept = [(n, v) for i, (n, v) in enumerate(zip(names, values)) if i != step_at and v is not None]
        kept = [(("epoch" if _name_info(n)[1] else n), v) for n, v in kept if not _name_info(n)[0]]
        if not kept:
            return True
        return _Rec(
            lineno,
            rank,
            int(step),
            f"{names[step_at]} column",
            None,
            tuple(n for n, _ in kept),
            [v for _, v in kept],
            "table",
            False,
            False,
        )

    def finish(self, out: Extraction) -> None:
        recs = self.recs
        block = self.headers >= 2 and self.items >= self.headers
        if not block:
            # a few pair lines after a stray header are not a block layout: they have no step of their own
            for rec in recs:
                if rec.step_kw == "block":
                    rec.step = None
                    rec.step_kw = None
        stepped = [r for r in recs if r.step is not None]
        if stepped:
            out.step_source = "logged"
            ignored = len(recs) - len(stepped)
            use = stepped
            if ignored:
                out.notes.append(
                    f"{ignored} line(s) with name/value pairs but no step ignored (the file's records carry a step)"
                )
        elif any(r.epoch is not None for r in recs):
            use = [r for r in recs if r.epoch is not None]
            totals = Counter(r.sub[1] for r in use if r.sub is not None and r.sub[1] > 0)
            per_epoch = totals.most_common(1)[0][0] if totals else None
            if per_epoch:
                # epoch + batch counter: step = (epoch - first epoch) x batches per epoch + batch; a record of the
                # epoch without a counter (its end-of-epoch evaluation) sits at the epoch's last batch
                first = min(r.epoch for r in use if r.epoch is not None)
                for r in use:
                    assert r.epoch is not None  # use holds the records with an epoch
                    e = int(r.epoch) - first
                    if r.sub is not None:
                        r.step, r.step_kw = e * r.sub[1] + r.sub[0], "epoch + batch N/M"
                    else:
                        r.step, r.step_kw = (e + 1) * per_epoch, "epoch end"
                out.step_source = "logged"
                out.notes.append(
                    f"no step counter in the file: steps are (epoch - {first}) x {per_epoch} "
                    "batches + the batch counter N/M printed with the epoch"
                )
            else:
                for r in use:
                    r.step, r.step_kw = r.epoch, "epoch"
                out.step_source = "epoch"
                out.notes.append("no step counter in the file: the epoch number is the step axis")
        else:
            # only the records of the file's main grammar (a warning 'file.py:1525: ...' is no record)
            main = Counter(r.grammar for r in recs if not r.glued).most_common(1)
            use = [r for r in recs if main and r.grammar == main[0][0]]
            if len(use) < len(recs):
                out.notes.append(
                    f"{len(recs) - len(use)} line(s) with name/value pairs in another layout than "
                    f"the file's {main[0][0] if main else ''} records ignored"
                )
            n = 0
            for r in use:
                names = [k for k in r.names if k != "epoch"]
                eval_only = bool(names) and all(_is_eval_name(k) for k in names)
                end_summary = "train_runtime" in names  # HF's end-of-run summary: no step of its own
                if not ((eval_only or end_summary) and n):
                    n += 1
                r.step, r.step_kw = n, "ordinal"
            out.step_source = "ordinal"
            if use:
                out.notes.append(
                    "no step in the records: numbered in order (an eval-only or end-of-run "
                    "summary record shares the step of the one before it)"
                )
        glued = [r.lineno for r in use if r.glued]
        use = [r for r in use if not r.glued]
        grammars: Counter[str] = Counter()
        step_forms: Counter[str] = Counter()
        eval_lines = 0
        layouts: dict[tuple[tuple[str, ...], bool], tuple[list[bool], tuple[int, ...]]] = {}
        code_of: dict[tuple[str, str | None], int] = {}
        steps, codes, values, ranks, lines = out.steps, out.codes, out.values, out.ranks, out.lines
        for r in use:
            grammars[r.grammar] += 1
            step_forms[r.step_kw or "?"] += 1
            if r.is_eval:
                eval_lines += 1
            key = (r.names, r.is_eval)
            plan = layouts.get(key)
            if plan is None:
                keep, names, metrics = _plan_names(r.names, r.is_eval)
                plan = layouts[key] = (
                    keep,
                    tuple(code_of.setdefault(pair, len(code_of)) for pair in zip(names, metrics)),
                )
            keep, plan_codes = plan
            k = len(plan_codes)
            assert r.step is not None  # every record used has a step by now: logged, from the epoch, or ordinal
            steps.extend([r.step] * k)
            codes.extend(plan_codes)
            values.extend([v for v, ok in zip(r.values, keep) if ok] if k != len(r.values) else r.values)
            ranks.extend([r.rank or 0] * k)
            lines.extend([r.lineno] * k)
        out.names = list(code_of)
        out.glued_lines.extend(glued)
        out.long_lines += self.long_lines
        out.records = len(use)
        # finished: the last record reached its total ('step 50 / 50'), or the script said so after it
        last = max(use, key=lambda r: r.lineno, default=None)
        if last is not None and (
            (last.total is not None and last.step is not None and last.step >= last.total > 0)
            or self.finished_line > last.lineno
        ):
            out.state = "finished"
        if use:
            layout = "; ".join(f"{n} line(s) of {g or 'step only'}" for g, n in grammars.most_common())
            step_text = ", ".join(f"{_describe_kw(k)} ({n})" for k, n in step_forms.most_common())
            note = f"layout inferred by the generic text reader: {layout}; step from {step_text}"
            if block:
                note += "; block layout: metric lines take the step of the header line above them"
            if eval_lines:
                note += f"; {eval_lines} line(s) marked as evaluation: their pairs read as eval/<name>"
            out.notes.insert(0, note)


def _plan_names(names: tuple[str, ...], is_eval: bool) -> tuple[list[bool], list[str], list[str | None]]:
    """For one line layout (its names in order): which pairs give points, under which raw names, and the
    canonical-name overrides. On an evaluation line a name without an eval word becomes ``eval/<name>`` (and
    its epoch is left out: the train lines carry it). Two names on one line that alias to one metric (seed
    004: 'step time' and 'dt'): the first takes the canonical name, the next keeps its own."""
    keep: list[bool] = []
    out_names: list[str] = []
    metrics: list[str | None] = []
    claimed: dict[str, str] = {}
    for name in names:
        if name == "epoch" and is_eval:
            keep.append(False)
            continue
        if is_eval and name != "epoch" and not _is_eval_name(name):
            name = f"eval/{name}"
        canon = canonicalise(name)
        first = claimed.setdefault(canon, name)
        keep.append(True)
        out_names.append(name)
        metrics.append(None if first == name else normalise_key(name))
    return keep, out_names, metrics


def _describe_kw(kw: str) -> str:
    if kw in ("ordinal", "epoch", "block", "[N/M]", "epoch + batch N/M", "epoch end"):
        return {
            "ordinal": "record order",
            "epoch": "the epoch number",
            "block": "the header line above",
            "[N/M]": "'[N/M]' counters",
            "epoch + batch N/M": "epoch and batch counter",
            "epoch end": "the end of its epoch",
        }[kw]
    return kw if kw.endswith("key") else f"'{kw}'"


def extract(chunks: Iterable[str], line_offset: int = 0) -> Extraction:
    """Run the extractor over text pieces that each end at a line break (pure). The cyclic garbage collector
    is paused meanwhile: the records are acyclic, and its full passes over a growing heap of them would make
    a long log cost more than linear time."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        scanner = _Scanner(line_offset)
        for chunk in chunks:
            scanner.feed(chunk)
        out = Extraction()
        scanner.finish(out)
    finally:
        if enabled:
            gc.enable()
    return out


def _head_records(text: str, limit: int) -> list[_Rec]:
    lines = text.split("\n", limit)[:limit]
    scanner = _Scanner()
    scanner.feed("\n".join(lines))
    return scanner.recs


def count_records(text: str, limit: int = 400) -> int:
    """How many of the first `limit` lines are records with a step and a metric (for sniffers)."""
    return sum(
        1
        for r in _head_records(text, limit)
        if r.step is not None and not r.glued and any(k != "epoch" for k in r.names)
    )


def count_any_records(text: str, limit: int = 400) -> int:
    """Records of any kind (with or without a step, under a step header too) among the first `limit` lines."""
    return sum(1 for r in _head_records(text, limit) if any(k != "epoch" for k in r.names))


def _to_run(found: Extraction, location: str, name: str, notes: list[str]) -> Run:
    """The Run, with the roles inferred here already (so the note says what was finally taken as what)."""
    from dataclasses import replace

    table = found.table()
    frame = table.frame
    more = skipped_line_notes(found.glued_lines, found.long_lines) + list(table.notes)
    if frame.empty:
        raise SourceError(f"no training metrics found; looked for {LOOKED_FOR}", location)
    summary = dict(table.summary)
    target = Target(location=location, path=None)
    run = apply_roles(
        make_run(
            target,
            SOURCE.kind,
            frame,
            [],
            step_source=found.step_source,
            name=name,
            summary=summary,
            location=location,
            state=found.state,
        )
    )
    all_notes = found.notes + [roles_note(run.metrics)] + list(run.provenance.notes) + notes + more
    return replace(run, provenance=replace(run.provenance, notes=tuple(all_notes)))


def read_log_text(text: str, location: str, name: str | None = None, line_offset: int = 0) -> Run:
    """Entry point for text that is not a file of its own (a notebook cell's stream output, a Markdown code
    block): ``location`` labels it in notes and errors. Raises SourceError when nothing is recognised."""
    found = extract([text], line_offset)
    return _to_run(found, location, name or location, [])


def _iter_file_text(path: Path, location: str, notes: list[str]) -> Iterator[str]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
    if size <= WHOLE_FILE_BYTES:
        text, more = decode_with_notes(read_bytes(path, location))
        notes.extend(more)
        yield text.lstrip("\ufeff")
        return

    replaced = 0
    try:
        with path.open("rb") as fh:
            encoding = guess_encoding(fh.read(8192))
            fh.seek(0)
            for text, _, _ in iter_text_chunks(fh, encoding):
                replaced += text.count("\ufffd")
                yield text
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
    if replaced:
        notes.append(f"{replaced} U+FFFD replacement character(s) in the text (bytes lost before or while decoding)")


class TextLogSource:
    kind = "text-log"
    description = (
        "any text log, read generically: name: value / name=value / name value pairs, dict and JSON "
        "lines, with the step on the line (step, iter, s:, iteration N/M, global_step ...)"
    )
    example = "Iter 10: Train loss 2.100, Learning Rate 1.000e-05, It/sec 3.1, Tokens/sec 800.0"
    specificity = 5
    max_confidence = 0.3  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        try:
            if not target.is_file or not target.head or looks_binary(target.head):
                return 0.0
            text = target.head_text()
            if count_records(text) >= SNIFF_MIN_RECORDS:
                return 0.3
            if count_any_records(text) >= 3:
                return 0.2
        except Exception:  # noqa: BLE001 - a sniffer never raises
            return 0.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None or target.is_dir:
            raise SourceError("expected a text log file", target.location)
        if target.head and looks_binary(target.head):
            raise SourceError(f"binary file; expected a text log ({LOOKED_FOR})", target.location)
        notes: list[str] = []
        found = extract(_iter_file_text(target.path, target.location, notes))
        name = target.path.stem or target.path.name
        return [_to_run(found, target.location, name, notes)]


SOURCE = TextLogSource()
