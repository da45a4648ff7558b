"""The one constructor of a Run's tidy metric table: every reader hands its points here.

Why one place: the readers used to resolve repeated points each their own way (the CSV reader kept the first
repeat, the TensorBoard reader the last), and HF's end-of-run summary (``train_loss``, a run average) became
a fake loss spike at the last step wherever it reached a table. Here, for every format:

- **steps** are validated once: a step that is not a finite integer inside int64 drops its point (counted in
  a note, never a crash); steps end up ``int64``;
- **names** are canonicalised from the alias table (``lossdoctor/metrics/aliases.yaml``) unless the reader
  gives the canonical name; the raw name is kept;
- **HF end-of-run summary entries** (``train_runtime``, ``train_samples_per_second``,
  ``train_steps_per_second``, ``total_flos``, and ``train_loss`` at a step where ``train_runtime`` was logged,
  with or without a ``train/`` prefix) are never points: they are returned as ``summary`` and said in a note;
- **repeated (step, metric) points** resolve one way: the lowest rank (unlabelled = rank 0), then the lowest
  reader priority (a reader's preferred line kind), then the *last* written (a resumed run re-logs the steps
  after its checkpoint; the later values are the run that went on). Identical repeats (tqdm redraws, an
  epoch written in every row) merge silently; the others are counted in a note.

The table is a :class:`lossdoctor.table.MetricTable` (numpy columns: ``step`` int64, ``metric`` canonical and
``raw_name`` as codes into a few names, ``value`` float64 with NaN/inf kept, + ``wall_time`` when any point has
one, + ``line``, the source line, when the reader gives it), sorted by (metric, step): each metric's points are
one contiguous, step-sorted stretch, so a Run's series are views of the table, never copies. Readers that have many
points hand their names as :class:`Coded` (integer codes into a short list), never one string per point.

Nothing else resolves repeats: a table put together from other tables (concatenated, renamed, a DataFrame built
by hand) goes through :func:`retidy`, one series' points through :func:`tidy_series` (the live store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossdoctor.metrics.names import bounded_name, canonicalise
from lossdoctor.table import MetricTable, code_dtype, factorize

#: HF Trainer's end-of-training summary keys: never points of a curve.
SUMMARY_ONLY = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos"})
#: ... and ``train_loss``, which is a summary entry only where ``train_runtime`` sits at the same step.
SUMMARY_LOSS = "train_loss"
_SUMMARY_PREFIXES = ("", "train/")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Coded:
    """Per-point names given as integer codes into a short list of names (what fast readers have)."""

    codes: np.ndarray
    names: Sequence[str]


@dataclass(frozen=True)
class Tidy:
    """A reader's points made tidy: the table, notes about it, and the end-of-run summary entries."""

    frame: MetricTable  # the table (named ``frame`` for the readers that unpack it)
    notes: tuple[str, ...] = ()
    #: HF end-of-run summary entries taken out of the points (raw name without prefix -> value)
    summary: Mapping[str, float] = field(default_factory=dict)


def empty_frame() -> MetricTable:
    return MetricTable.blank()


def valid_steps(steps: Any) -> tuple[np.ndarray, np.ndarray]:
    """(int64 steps, mask of the valid ones): finite, integral, inside int64. Never raises."""
    arr = np.asarray(steps)
    n = arr.shape[0] if arr.ndim else 0
    if arr.ndim != 1:
        arr = arr.reshape(-1)
        n = arr.shape[0]
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8:
            ok = arr <= np.uint64(_INT64_MAX)
            return np.where(ok, arr, 0).astype(np.int64), ok
        return arr.astype(np.int64, copy=False), np.ones(n, dtype=bool)
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(arr) & (arr == np.floor(arr)) & (arr >= -(2.0**63)) & (arr < 2.0**63)
        return np.where(ok, arr, 0).astype(np.int64), ok
    if arr.dtype.kind == "b":
        return arr.astype(np.int64), np.zeros(n, dtype=bool)  # a boolean is no step
    # object / strings: one by one (Python ints beyond int64, numeric strings, None ...)
    out = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    for i, s in enumerate(arr.tolist()):
        if isinstance(s, bool) or s is None:
            continue
        if isinstance(s, (int, np.integer)):
            v = int(s)
        else:
            try:
                f = float(s)
            except (TypeError, ValueError, OverflowError):
                continue
            if not np.isfinite(f) or f != int(f):
                continue
            v = int(f)
        if _INT64_MIN <= v <= _INT64_MAX:
            out[i], ok[i] = v, True
    return out, ok


def _codes_of(raw: Any) -> tuple[np.ndarray, list[str]]:
    if isinstance(raw, Coded):
        codes = np.asarray(raw.codes)
        return codes if codes.dtype.kind == "i" else codes.astype(np.int64), [str(x) for x in raw.names]
    items = raw.tolist() if isinstance(raw, np.ndarray) else list(raw)
    codes, uniques = factorize(items)
    return codes, [str(x) for x in uniques]


def _summary_mask(
    raw_codes: np.ndarray, raw_names: list[str], steps: np.ndarray, values: np.ndarray, written: Any = None
) -> tuple[np.ndarray, dict[str, float]]:
    """Points that are HF end-of-run summary entries, and those entries (last value per key)."""
    drop = np.zeros(len(raw_codes), dtype=bool)
    summary: dict[str, float] = {}
    index = {name: i for i, name in enumerate(raw_names)}
    for prefix in _SUMMARY_PREFIXES:
        runtime = index.get(prefix + "train_runtime")
        for key in SUMMARY_ONLY | {SUMMARY_LOSS}:
            code = index.get(prefix + key)
            if code is None:
                continue
            sel = raw_codes == code
            if key == SUMMARY_LOSS:
                if runtime is None:
                    continue
                sel &= np.isin(steps, steps[raw_codes == runtime])
            if sel.any():
                drop |= sel
                at = np.flatnonzero(sel)
                last = at[-1] if written is None else at[int(np.argmax(np.asarray(written)[at]))]
                summary[key] = float(values[last])
    return drop, summary


def _repeats(st: np.ndarray, mc: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Per point: whether the next point has the same (metric, step); computed in chunks."""
    n = len(st)
    dup = np.zeros(n, dtype=bool)
    for a in range(0, n - 1, chunk):
        b = min(n - 1, a + chunk)
        np.logical_and(st[a + 1 : b + 1] == st[a:b], mc[a + 1 : b + 1] == mc[a:b], out=dup[a:b])
    return dup


def _pairs_sorted(mc: np.ndarray, st: np.ndarray, chunk: int = 1 << 20) -> bool:
    """Whether (metric, step) never decreases, checked in chunks (no temporaries the size of the table)."""
    n = len(st)
    for a in range(0, n - 1, chunk):
        b = min(n, a + chunk + 1)
        m0, m1, s0, s1 = mc[a : b - 1], mc[a + 1 : b], st[a : b - 1], st[a + 1 : b]
        if not bool(((m1 > m0) | ((m1 == m0) & (s1 >= s0))).all()):
            return False
    return True


def _order(
    st: np.ndarray, mc: np.ndarray, rk: np.ndarray | None, pr: np.ndarray | None, written: np.ndarray | None
) -> np.ndarray | None:
    """Point order by (metric, step, rank descending, priority descending, write order), so that the *last*
    point of each (metric, step) group is the one kept; None when the points already come in that order.

    Write order is the given order unless ``written`` says otherwise. The usual cases cost O(n): points
    written in step order (most logs) need only a stable sort by metric code (a radix sort on 16-bit codes);
    a table already in (metric, step) order needs none. Otherwise one stable sort on a combined int64 key, and
    lexsort where rank or priority vary or the key does not fit."""
    n = len(st)
    varying = [k for k in (rk, pr) if k is not None and k.min() != k.max()]
    if not varying:
        step_sorted = bool((st[1:] >= st[:-1]).all())
        if step_sorted:
            if bool((mc[1:] >= mc[:-1]).all()):  # one metric, or already grouped
                order = None
            else:
                order = np.argsort(mc.astype(np.uint16) if int(mc.max()) < 2**16 else mc, kind="stable")
        elif _pairs_sorted(mc, st):
            order = None
        else:
            lo, hi = int(st.min()), int(st.max())
            span = hi - lo + 1
            if span * (int(mc.max()) + 1) < 2**62:
                key = mc.astype(np.int64) * span + (st - lo)
                order = None if bool((key[1:] >= key[:-1]).all()) else np.argsort(key, kind="stable")
                del key
            else:
                order = np.lexsort((st, mc))
        if written is None:
            return order
        # ties (a repeated (metric, step)) must follow ``written``, not the given order
        m2, s2 = (mc, st) if order is None else (mc[order], st[order])
        if not bool(((m2[1:] == m2[:-1]) & (s2[1:] == s2[:-1])).any()):
            return order
        return np.lexsort((written, st, mc))
    keys = ([np.arange(n)] if written is None else [written]) + [-k for k in reversed(varying)] + [st, mc]
    return np.lexsort(keys)


def tidy_points(
    steps: Any,
    raw: Any,
    values: Any,
    *,
    canonical: Any = None,
    rank: Any = None,
    priority: Any = None,
    wall_time: Any = None,
    line: Any = None,
    canonical_codes: Sequence[str | None] | None = None,
    written: Any = None,
    hf_summary: bool = True,
) -> Tidy:
    """The tidy table from parallel per-point columns.

    ``raw``: the raw names (a sequence of str, or :class:`Coded`). ``canonical``: per-point canonical names
    where the reader knows better than the alias table (None entries: from the alias table). ``rank``: DDP
    rank (int; unlabelled lines are rank 0). ``priority``: lower wins among repeats. ``wall_time``: seconds, NaN = unknown.
    ``line``: the 1-based line of the source file each point was read from (text logs; reports point at it).
    ``canonical_codes``: with :class:`Coded` names, the canonical override per name code (None: alias table).
    ``written``: the order the points were written in (integers, later = larger), for readers that collect
    points column-wise rather than in that order; None: the order given.
    ``hf_summary``: False for points that are already points (a table being resolved again, :func:`retidy`):
    no HF end-of-run summary entries are taken out.
    """

    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    n = vals.shape[0]
    step_arr, ok = valid_steps(steps) if n else (np.empty(0, np.int64), np.empty(0, bool))
    raw_codes, raw_names = _codes_of(raw)
    raw_names = [bounded_name(r) for r in raw_names]  # a 3 MB key glued into a log stays a name
    notes: list[str] = []
    if len(raw_codes) != n or len(step_arr) != n:
        raise ValueError("steps, names and values must have the same length")
    bad_steps = int(n - ok.sum())
    if bad_steps:
        notes.append(f"{bad_steps} point(s) dropped: step not a finite integer within int64")

    # canonical name per point: per (raw, override) pair, resolved once per pair
    if canonical_codes is not None:
        canon_names_list = [c if c is not None else canonicalise(r) for r, c in zip(raw_names, canonical_codes)]
        canon_codes = raw_codes
    elif canonical is not None:
        if isinstance(canonical, Coded):  # code -1: from the alias table
            over_codes = np.asarray(canonical.codes, dtype=np.int64)
            over_names = [str(x) for x in canonical.names]
        else:
            items = canonical.tolist() if isinstance(canonical, np.ndarray) else list(canonical)
            over_codes, uniques = factorize(items)
            if None in uniques:  # None: from the alias table
                none = uniques.index(None)
                remap = np.arange(len(uniques)) - (np.arange(len(uniques)) > none)
                remap[none] = -1
                over_codes = remap[over_codes]
            over_names = [str(x) for x in uniques if x is not None]
        if len(over_codes) != len(raw_codes):
            raise ValueError("steps, names and values must have the same length")
        pair = raw_codes.astype(np.int64) * (len(over_names) + 1) + (over_codes + 1)
        if len(pair) and int(pair.max()) < 1 << 24:  # few names: a bincount, no sort
            pair_uniques = np.flatnonzero(np.bincount(pair))
            remap_pair = np.zeros(int(pair.max()) + 1, dtype=np.int64)
            remap_pair[pair_uniques] = np.arange(len(pair_uniques))
            pair_codes = remap_pair[pair]
        else:
            pair_uniques, pair_codes = np.unique(pair, return_inverse=True)
        canon_of_pair = []
        for p in pair_uniques.tolist():
            r, o = divmod(int(p), len(over_names) + 1)
            canon_of_pair.append(str(over_names[o - 1]) if o else canonicalise(raw_names[r]))
        canon_names_list, canon_codes = canon_of_pair, pair_codes.astype(np.int64).reshape(-1)
    else:
        canon_names_list = [canonicalise(r) for r in raw_names]
        canon_codes = raw_codes
    # collapse equal canonical names onto one code, sorted (the table's order is by canonical name)
    canon_sorted = sorted(set(canon_names_list))
    remap = np.asarray([canon_sorted.index(c) for c in canon_names_list], dtype=code_dtype(len(canon_sorted)))
    if len(canon_codes) and bool((remap == np.arange(len(remap))).all()) and canon_codes.dtype.kind == "i":
        metric_codes = canon_codes  # the names are already in canonical order: the codes as given
    else:
        metric_codes = remap[canon_codes] if len(canon_codes) else np.empty(0, remap.dtype)

    keep = ok
    summary: dict[str, float] = {}
    summary_names = {p + k for p in _SUMMARY_PREFIXES for k in SUMMARY_ONLY | {SUMMARY_LOSS}}
    if n and hf_summary and summary_names & set(raw_names):
        drop, summary = _summary_mask(raw_codes, raw_names, step_arr, vals, written)
        drop &= ok
        if drop.any():
            keep = ok & ~drop
            notes.append(
                f"{int(drop.sum())} HF end-of-training summary entr(y/ies) "
                f"({', '.join(sorted(summary))}) kept out of the curves: run totals, not points"
            )

    # columns of the kept points (views when every point is kept: tables of millions of points are copied
    # as few times as possible, and codes are int32)
    code_t = code_dtype(max(len(canon_sorted), len(raw_names)))
    idx = None if keep.all() else np.flatnonzero(keep)

    def kept(arr: Any, dtype: Any) -> np.ndarray:
        arr = np.asarray(arr, dtype=dtype)
        return arr if idx is None else arr[idx]

    def kept_optional(arr: Any, dtype: Any) -> np.ndarray | None:
        return None if arr is None else kept(arr, dtype)

    st, va = kept(step_arr, np.int64), kept(vals, np.float64)
    mc, rc = kept(metric_codes, code_t), kept(raw_codes, code_t)
    del step_arr, vals, metric_codes, raw_codes
    rk, pr = kept_optional(rank, np.int64), kept_optional(priority, np.int64)
    wt, ln = kept_optional(wall_time, np.float64), kept_optional(line, np.int64)
    wr = kept_optional(written, np.int64)

    if len(st) > 1:
        # order: metric, step, rank and priority descending, then write order: the last point of each
        # (metric, step) group is the one kept; constant keys are left out (millions of points)
        order = _order(st, mc, rk, pr, wr)
        del wr
        if order is not None:
            st, mc, va, rc = st[order], mc[order], va[order], rc[order]
            rk = None if rk is None else rk[order]
            pr = None if pr is None else pr[order]
            wt = None if wt is None else wt[order]
            ln = None if ln is None else ln[order]
            del order
        dup = _repeats(st, mc)  # a point followed by one of its (metric, step)
        if dup.any():
            last = np.flatnonzero(~dup)
            d = np.flatnonzero(dup)
            kept_of = last[np.searchsorted(last, d)]  # the kept point of each dropped one's group
            a, b = va[d], va[kept_of]
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            other_rank = rk[d] != rk[kept_of] if rk is not None else np.zeros(len(d), dtype=bool)
            n_rank = int(other_rank.sum())
            n_rep = int((~other_rank & ~same).sum())
            if n_rank:
                notes.append(
                    f"{n_rank} point(s) from ranks other than the lowest-numbered dropped "
                    f"(same step and metric; rank 0 kept)"
                )
            if n_rep:
                notes.append(f"{n_rep} repeated (step, metric) point(s) dropped; the last kept")
            keep_rows = ~dup
            st, mc, va, rc = st[keep_rows], mc[keep_rows], va[keep_rows], rc[keep_rows]
            if wt is not None:
                wt = wt[keep_rows]
            if ln is not None:
                ln = ln[keep_rows]
    if not len(st):
        return Tidy(empty_frame(), tuple(notes), summary)
    table = MetricTable.build(
        st, mc, canon_sorted, va, rc, raw_names, wt if wt is not None and np.isfinite(wt).any() else None, ln
    )
    return Tidy(table.compact(), tuple(notes), summary)


def retidy(
    table: MetricTable,
    *,
    metric_codes: Any = None,
    metric_names: Sequence[str] | None = None,
    value: Any = None,
    priority: Any = None,
) -> Tidy:
    """A table put together from other tables (concatenated, series renamed or rescaled, a DataFrame built by
    hand) resolved again by the constructor's policy: one point per (metric, step), the lowest ``priority``
    first, then the last row. Raw names, wall times and lines kept; ``metric_codes`` / ``metric_names`` (per
    row, into the names) and ``value`` replace the table's own."""
    codes = table.metric_codes if metric_codes is None else metric_codes
    names = table.metric_names if metric_names is None else metric_names
    return tidy_points(
        table.step,
        Coded(table.raw_codes, table.raw_names),
        table.value if value is None else value,
        canonical=Coded(np.asarray(codes, dtype=np.int64), names),
        priority=priority,
        wall_time=table.wall_time,
        line=table.line,
        hf_summary=False,
    )


def tidy_series(steps: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """One metric's points (steps, values) resolved by the constructor's policy: sorted by step, one per step,
    the last written kept (the live store's columns when points arrived out of order)."""
    one = Coded(np.zeros(len(values), dtype=np.int64), ("series",))
    frame = tidy_points(steps, one, values, canonical=one, hf_summary=False).frame
    return frame.step, frame.value
