"""Window statistics in pure numpy: medians over arbitrary windows and an exponential moving average.

The checks used pandas' ``rolling().median()`` and ``ewm()``; these give the same numbers (medians exactly;
the EMA up to rounding) without importing pandas, in O(n log n) array passes with no per-point Python loop:

- :func:`window_medians` takes the median of the finite values in ``values[lo[i]:hi[i]]`` for every i at once.
  Short windows sort a sliding view (n x w); long ones answer k-th-smallest queries on a *wavelet matrix* of
  the values' ranks among the distinct values: one level per bit of the rank, each level a stable partition
  by that bit plus a prefix count of zeros, and every query descends all levels together (the levels are
  built and used one at a time, so memory stays O(n)). Non-finite values rank after every finite one and the
  k asked for is below the window's finite count, so they are never picked: they are skipped, as pandas
  skips NaN.
- :func:`sliding_medians` (every fixed-width window: trailing, centred, stretch) goes to the compiled
  ``lossdoctor/_cmedian.c`` where it is built (setup.py; the same medians, ~3-20x faster: a sorted window for
  short widths, a bitset over the points' ranks for long ones); the numpy code is its fallback and
  reference.
- :func:`ema` is the recurrence y = (1 - a) y + a x, with y carried over non-finite x, solved as a parallel
  prefix scan of affine maps (log2 n passes).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

#: windows up to this many points are sorted directly (n x w); longer ones use the wavelet matrix
SORT_WINDOW = 24
#: ... and up to this many by a sorting network over the columns (no per-row sort call)
SORT_NETWORK = 8
#: with the compiled medians (lossdoctor/_cmedian.c), windows up to this many points are kept sorted
#: (memmove), longer ones as a bitset over the points' ranks
C_SORT_WINDOW = 64

_cmedian: ModuleType | None
try:  # optional (setup.py); the numpy code below gives the same medians
    from lossdoctor import _cmedian
except ImportError:  # pragma: no cover - built wherever a C compiler was found
    _cmedian = None


def _finite_counts(finite: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    csum = np.zeros(len(finite) + 1, dtype=np.int64)
    np.cumsum(finite, out=csum[1:])
    return csum[hi] - csum[lo]


def _kth_smallest(ranks: np.ndarray, lo: np.ndarray, hi: np.ndarray, k: np.ndarray, bits: int) -> np.ndarray:
    """For each query, the k-th smallest (0-based) of ``ranks[lo:hi]`` (non-negative ints < 2**bits).
    ``lo``, ``hi`` and ``k`` are overwritten when they already have the index type (int32 below 2**31 ranks)."""
    idx_t = np.int32 if len(ranks) < 2**31 - 1 else np.int64
    cur = ranks.astype(idx_t, copy=False)  # replaced, never written, level by level
    # the queries are updated in place: the caller's arrays when they have the index type (the caller's own
    # throwaway arrays), else copies in that type
    lo, hi, k = lo.astype(idx_t, copy=False), hi.astype(idx_t, copy=False), k.astype(idx_t, copy=False)
    out = np.zeros(len(lo), dtype=idx_t)
    zeros_before = np.zeros(len(cur) + 1, dtype=idx_t)
    for b in range(bits - 1, -1, -1):
        bit = (cur >> b) & 1
        is_zero = bit == 0
        np.cumsum(is_zero, out=zeros_before[1:])
        n_zero = zeros_before[-1]
        zl, zh = zeros_before[lo], zeros_before[hi]
        zeros_in = zh - zl
        right = k >= zeros_in
        k -= zeros_in * right
        # right: n_zero + (lo - zl) (the ones before lo, shifted past the zeros); left: zl
        lo += n_zero - 2 * zl
        lo *= right
        lo += zl
        hi += n_zero - 2 * zh
        hi *= right
        hi += zh
        out[right] |= 1 << b
        cur = np.concatenate((cur[is_zero], cur[~is_zero]))
    return out


def _middle(lower: np.ndarray, upper: np.ndarray, count: np.ndarray) -> np.ndarray:
    """A median from its two middle values: the middle one itself for an odd count (so a value near the largest
    double stays finite, as in the compiled medians), the mean of the two for an even one."""
    with np.errstate(over="ignore"):
        return np.where(count % 2 == 1, lower, (lower + upper) / 2.0)


def _sorted_rows(cols: list[np.ndarray]) -> np.ndarray:
    """The ``width`` equal-length columns (one value of every window each) sorted across: row k holds each
    window's k-th smallest value. An odd-even transposition network for narrow windows, np.sort otherwise."""
    width = len(cols)
    if width <= SORT_NETWORK:
        cols = list(cols)
        for rnd in range(width):  # odd-even transposition sort, column-wise; swaps only what is out of order,
            for j in range(rnd % 2, width - 1, 2):  # so equal values (-0.0 and 0.0) keep their order: stable
                swap = cols[j + 1] < cols[j]
                cols[j], cols[j + 1] = np.where(swap, cols[j + 1], cols[j]), np.where(swap, cols[j], cols[j + 1])
        return np.stack(cols)
    return np.sort(np.stack(cols, axis=1), axis=1, kind="stable").T


def _dense_ranks(v: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ranks, distinct): each point's rank among the distinct finite values (int32 where they fit), non-finite
    points ranked len(distinct), after them all.

    Equal values share a rank, so a log printed to 4 significant digits has a few thousand ranks, not a
    million; -0.0 and 0.0 rank apart, where they meet in the stable order, so each rank stands for one exact
    value and ties keep their positions' order. (Memory: every array here is one per point, so each is dropped
    as soon as it is used.)"""
    idx_t = np.int32 if len(v) < 2**31 - 1 else np.int64
    order = np.argsort(np.where(finite, v, np.inf), kind="stable")
    n_fin = int(finite.sum())
    sorted_vals = v[order[:n_fin]]
    new = np.ones(n_fin, dtype=bool)
    np.not_equal(sorted_vals[1:], sorted_vals[:-1], out=new[1:])
    sign = np.signbit(sorted_vals)
    new[1:] |= sign[1:] != sign[:-1]
    del sign
    dense = np.cumsum(new, dtype=idx_t)
    dense -= 1
    distinct = sorted_vals[new]
    del sorted_vals, new
    ranks = np.empty(len(v), dtype=idx_t)
    ranks[order[:n_fin]] = dense
    ranks[order[n_fin:]] = len(distinct)
    return ranks, distinct


def window_medians(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Median of the finite values of ``values[lo[i]:hi[i]]`` for each i (the middle one itself for an odd
    count, the mean of the two middle ones for an even count; equal values in position order, so -0.0 and
    0.0 come out as a stable sort of the window gives them); NaN where a window holds no finite value."""
    v = np.asarray(values, dtype=np.float64)
    lo = np.clip(np.asarray(lo, dtype=np.int64), 0, len(v))
    hi = np.clip(np.asarray(hi, dtype=np.int64), 0, len(v))
    hi = np.maximum(hi, lo)
    out = np.full(len(lo), np.nan)
    if not len(v) or not len(lo):
        return out
    finite = np.isfinite(v)
    m = _finite_counts(finite, lo, hi)
    has = m > 0
    if not has.any():
        return out
    width = int((hi - lo).max())
    if width <= SORT_WINDOW:
        q_lo, q_len, mh = lo[has], (hi - lo)[has], m[has]
        # the window's values as `width` columns, absent or non-finite ones +inf (sorted last)
        pad = np.concatenate((np.where(finite, v, np.inf), np.full(width, np.inf)))
        rows = _sorted_rows([np.where(j < q_len, pad[q_lo + j], np.inf) for j in range(width)])
        at = np.arange(len(q_lo))
        out[has] = _middle(rows[(mh - 1) // 2, at], rows[mh // 2, at], mh)
        return out
    ranks, distinct = _dense_ranks(v, finite)
    idx_t = ranks.dtype
    bits = max(1, len(distinct).bit_length())
    if not has.all():
        lo, hi, m = lo[has], hi[has], m[has]
    # the lower middle for every window, the upper one only where the count is even (odd: the same point)
    even = np.flatnonzero(m % 2 == 0)
    nq = len(lo)
    q_lo = np.concatenate((lo, lo[even])).astype(idx_t, copy=False)
    q_hi = np.concatenate((hi, hi[even])).astype(idx_t, copy=False)
    del lo, hi
    q_k = np.concatenate(((m - 1) // 2, m[even] // 2)).astype(idx_t, copy=False)
    del m
    both = _kth_smallest(ranks, q_lo, q_hi, q_k, bits)
    del ranks, q_lo, q_hi, q_k
    lower = distinct[both[:nq]]
    upper = lower.copy()
    upper[even] = distinct[both[nq:]]
    with np.errstate(over="ignore"):
        upper[even] = (lower[even] + upper[even]) / 2.0  # an odd count's median is its middle value itself
    out[has] = upper
    return out


def sliding_medians(values: np.ndarray, width: int, pad_before: int = 0, pad_after: int = 0) -> np.ndarray:
    """Median of the finite values of every run of ``width`` consecutive points, the values padded with
    ``pad_before`` / ``pad_after`` empty slots: ``out[i]`` covers padded positions ``i .. i + width - 1``
    (NaN where a window holds no finite value). The fixed-width windows of trailing, centred and stretch
    medians; short widths sort views of the padded values (no index arrays), long ones go to
    :func:`window_medians`."""
    v = np.asarray(values, dtype=np.float64)
    n, width = len(v), int(width)
    q = n + pad_before + pad_after - width + 1
    if q <= 0 or n == 0:
        return np.full(max(q, 0), np.nan)
    if _cmedian is not None and n < 2**31 - 1:  # compiled: the same medians (tests/test_numeric_helpers.py)
        v = np.require(v, np.float64, ["C", "A"])  # contiguous and aligned, as the C code reads doubles
        if width <= C_SORT_WINDOW:
            return np.frombuffer(_cmedian.small(v, width, pad_before, pad_after), np.float64)
        return np.frombuffer(_cmedian.large(v, width, pad_before, pad_after), np.float64)
    if width > SORT_WINDOW:
        lo = np.arange(q, dtype=np.int64) - pad_before
        return window_medians(v, lo, lo + width)
    finite = np.isfinite(v)
    pad = np.concatenate((np.full(pad_before, np.inf), np.where(finite, v, np.inf), np.full(pad_after, np.inf)))
    count = np.zeros(len(pad) + 1, dtype=np.int64)
    np.cumsum(np.isfinite(pad), out=count[1:])
    m = count[width:] - count[:-width]
    del count
    rows = _sorted_rows([pad[j : j + q] for j in range(width)])  # views; +inf (empty or non-finite) sorts last
    at = np.arange(q)
    has = m > 0
    lo_k, hi_k = np.where(has, (m - 1) // 2, 0), np.where(has, m // 2, 0)
    out = _middle(rows[lo_k, at], rows[hi_k, at], m)
    out[~has] = np.nan
    return out


def trailing_medians(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the finite values among the last ``window`` points at each point (pandas'
    ``rolling(window, min_periods=1).median()`` on the values with non-finite ones as NaN)."""
    return sliding_medians(values, int(window), int(window) - 1, 0)


def median(values: np.ndarray) -> float:
    """``np.median`` of the values (flattened): NaN when any is NaN or there are none; the mean of the two
    middle values for an even count. Without numpy's NaN check, which imports ``numpy.ma`` (~10 ms)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = len(v)
    if n == 0 or bool(np.isnan(v).any()):
        return float("nan")
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    part = np.partition(v, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2.0)


def row_medians(matrix: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row (NaN for a row with none): ``np.nanmedian(axis=1)``."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = np.sort(np.where(np.isfinite(m), m, np.inf), axis=1, kind="stable")
    count = np.isfinite(m).sum(axis=1)
    at = np.arange(len(m))
    has = count > 0
    lo, hi = np.where(has, (count - 1) // 2, 0), np.where(has, count // 2, 0)
    out = _middle(rows[at, lo], rows[at, hi], count)
    out[~has] = np.nan
    return out


def ffill(values: np.ndarray) -> np.ndarray:
    """NaN replaced by the last non-NaN value before it (leading NaN kept)."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    if ok.all() or not ok.any():
        return v
    idx = np.where(ok, np.arange(len(v)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = v[idx]
    out[: int(np.argmax(ok))] = np.nan
    return out


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(span+1), adjust=False: y0 = the first finite value, then
    y = (1 - alpha) y + alpha x; a non-finite x neither counts nor breaks it (y carried over). NaN before the
    first finite value. (pandas' ``ewm(span, adjust=False, ignore_na=True).mean()`` on the same values.)"""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if span <= 1 or n == 0:
        return x.copy()
    alpha = 2.0 / (span + 1.0)
    finite = np.isfinite(x)
    if not finite.any():
        return np.full(n, np.nan)
    first = int(np.argmax(finite))
    # y_t = c_t * y_{t-1} + d_t: (c, d) = (1 - alpha, alpha x) for finite x, (1, 0) otherwise, (0, x) at the first
    c = np.where(finite, 1.0 - alpha, 1.0)
    d = np.where(finite, alpha * np.where(finite, x, 0.0), 0.0)
    c[first], d[first] = 0.0, x[first]
    c, d = c[first:], d[first:]
    shift = 1
    m = len(c)
    while shift < m:
        # compose every map with the one `shift` before it: (c1, d1) then (c2, d2) = (c1 c2, c2 d1 + d2)
        d_new = d.copy()
        d_new[shift:] = c[shift:] * d[:-shift] + d[shift:]
        c_new = c.copy()
        c_new[shift:] = c[shift:] * c[:-shift]
        c, d = c_new, d_new
        shift *= 2
    out = np.full(n, np.nan)
    out[first:] = d
    return out
