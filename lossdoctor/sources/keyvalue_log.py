"""Custom trainer logs: ``key: value`` / ``key=value`` pairs on lines that carry a step counter.

Covers the hand-written loops people actually run, e.g. (seed 004, a DDP run under torchrun)::

    [2025-12-02 11:11:42] ('epoch 1 step 10 / 50 ', 'lr: 0.000033 ', 'train loss: 10.9411 ', 'val loss: ...')

and the plain styles ``step 10 | loss: 2.3 | lr: 1e-4``, ``step=10 loss=2.3``, ``iter 10 loss: 2.3``,
``[10/100] loss: 2.3``. Only lines with a step counter *and* at least one numeric pair give points, so
banner lines (``total files: 1``) and argument dumps never become metrics. Values with a unit
(``dt: 1.98s``, ``eta: 0.00h``) and non-numbers (``amp: True``) are skipped; ``%`` is allowed.

Multi-word keys ("train loss", "toks/s (per rank)") are cut to the longest trailing phrase the alias table
knows, so a leading log-level or logger word does not become part of the name.

DDP: a ``[rankN]:`` prefix sets the rank; duplicates (same step and metric) keep rank 0, then the first.
A line holding two records (a second step counter, a second rank prefix or timestamp, a key twice) is
dropped and counted in a note: splitting it could pair one rank's step with the other's values.
"""
from __future__ import annotations

import re

from lossdoctor.metrics.names import alias_table, normalise_key
from lossdoctor.model import Run
from lossdoctor.sources._readkit import (MAX_LINE_CHARS, NUMBER, RANK_ANYWHERE, Collector, iter_lines, make_run,
                                        parse_number, ranked_lines, read_text, require_points, split_rank, to_step)
from lossdoctor.sources.base import ReadOptions, Target

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
_STEP = re.compile(r"(?<![\w/])(?:global[_ ]step|step|iter(?:ation)?)\s*[:=#]?\s*(\d+)(?:\s*/\s*\d+)?(?![\w.])",
                   re.IGNORECASE)
_BRACKET_STEP = re.compile(r"\[\s*(\d+)\s*/\s*\d+\s*\]")
_EPOCH = re.compile(r"(?<![\w/])epoch\s+(\d+)(?:\s*/\s*\d+)?(?![\w.])", re.IGNORECASE)
_WORD = r"[A-Za-z(][\w./\-()]*"
_KV = re.compile(rf"(?P<key>{_WORD}(?: {_WORD}){{0,3}})\s*[:=]\s*(?P<val>{NUMBER})(?P<pct>%?)(?![\w.:/])")
#: seed-004 style: a printed tuple of 'key: value ' strings whose first item holds the step.
_TUPLE_STYLE = re.compile(r"\('(?:epoch \d+ )?(?:step|iter) \d+[^']*', '[^']+:")
_NOT_METRICS = {"step", "global_step", "iter", "iteration", "rank", "local_rank", "world_size", "pid"}


def _choose_key(phrase: str) -> str:
    """The longest trailing phrase the alias table knows; else the phrase (≤ 2 words) or its last 2 words."""
    words = phrase.split(" ")
    if len(words) > 1:
        table = alias_table()
        for i in range(len(words)):
            cand = " ".join(words[i:])
            if normalise_key(cand) in table:
                return cand
    return phrase if len(words) <= 2 else " ".join(words[-2:])


class LineResult:
    __slots__ = ("step", "pairs", "glued")

    def __init__(self, step: int | None, pairs: list[tuple[str, float]], glued: bool) -> None:
        self.step, self.pairs, self.glued = step, pairs, glued


def parse_line(line: str) -> LineResult | None:
    """Step and (key, value) pairs of one line (rank prefix already removed); None when it is no record."""
    steps = _STEP.findall(line)
    if not steps:
        steps = _BRACKET_STEP.findall(line)
    if not steps:
        return None
    pairs: list[tuple[str, float]] = []
    seen: set[str] = set()
    glued = len(steps) > 1 or len(_TIMESTAMP.findall(line)) > 1 or bool(RANK_ANYWHERE.search(line))
    epoch = _EPOCH.search(line)
    if epoch:
        pairs.append(("epoch", float(epoch.group(1))))
        seen.add("epoch")
    for m in _KV.finditer(line):
        key = _choose_key(m.group("key").strip())
        norm = normalise_key(key)
        if norm in _NOT_METRICS:
            continue
        value = parse_number(m.group("val"))
        if value is None:
            continue
        if norm in seen:
            if norm != "epoch":
                glued = True
            continue
        seen.add(norm)
        pairs.append((key, value))
    if len(pairs) == (1 if epoch else 0):
        return None
    return LineResult(to_step(steps[0]), pairs, glued)


def count_records(text: str, limit: int = 400) -> int:
    """How many of the first `limit` lines are step-carrying key/value records (for sniffers)."""
    n = 0
    for i, (_, line) in enumerate(iter_lines(text)):
        if i >= limit:
            break
        if len(line) <= MAX_LINE_CHARS and parse_line(split_rank(line)[1]) is not None:
            n += 1
    return n


class KeyValueLogSource:
    kind = "keyvalue-log"
    description = "custom trainer logs: key: value / key=value pairs on lines with a step counter"
    example = "[2025-12-02 11:11:42] ('epoch 1 step 10 / 50 ', 'lr: 0.000033 ', 'train loss: 10.9411 ')"
    specificity = 20

    def sniff(self, target: Target) -> float:
        if not target.is_file or not target.head:
            return 0.0
        text = target.head_text()
        if _TUPLE_STYLE.search(text):
            return 0.8
        return 0.3 if count_records(text) >= 2 else 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        text, notes = read_text(target)
        points = Collector()
        for lineno, rank, line in ranked_lines(text, points):
            rec = parse_line(line)
            if rec is None:
                continue
            if rec.glued:
                points.glued_lines.append(lineno)
                continue
            for key, value in rec.pairs:
                points.add(rec.step, key, value, rank=rank)
        frame, more = points.frame()
        require_points(frame, target, "lines with a step counter and key: value pairs (e.g. 'step 10 loss: 2.3')")
        return [make_run(target, self.kind, frame, notes + more)]


SOURCE = KeyValueLogSource()
