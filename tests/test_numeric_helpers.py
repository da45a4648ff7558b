"""The vectorised helpers the checks and plots rest on, against plain reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lossdoctor.rules.checks import EXACT_MEDIAN_WINDOW, ema, rolling_median, sorted_unique
from lossdoctor.table import decimate


def _ema_loop(values: np.ndarray, span: int) -> np.ndarray:
    alpha, acc, out = 2.0 / (span + 1.0), math.nan, []
    for v in values:
        if math.isfinite(v):
            acc = v if not math.isfinite(acc) else acc + alpha * (v - acc)
        out.append(acc)
    return np.array(out)


@pytest.mark.parametrize("seed", range(5))
def test_ema_equals_the_loop_and_skips_nonfinite(seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=200)
    v[rng.random(200) < 0.15] = np.nan
    v[rng.random(200) < 0.05] = np.inf
    for span in (1, 3, 7):
        # the EMA is a parallel prefix scan: equal to the loop up to float rounding (a value that cancels to
        # ~1e-5 from O(1) inputs may differ in its last digits, hence the absolute floor of 1e-15)
        np.testing.assert_allclose(ema(v, span), _ema_loop(v, span) if span > 1 else v, rtol=1e-12, atol=1e-15)


def test_rolling_median_exact_below_the_threshold() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=5000)
    v[::97] = np.nan
    want = pd.Series(v).rolling(500, min_periods=1).median().ffill().to_numpy()
    np.testing.assert_allclose(rolling_median(v, 500), want)


def test_rolling_median_long_window_is_causal_and_close() -> None:
    rng = np.random.default_rng(1)
    n, window = 400_000, 20_000
    assert window > EXACT_MEDIAN_WINDOW
    v = np.linspace(3.0, 1.0, n) + rng.normal(0, 0.3, n)
    approx = rolling_median(v, window)
    exact = pd.Series(v).rolling(window, min_periods=1).median().to_numpy()
    # the trend moves 0.1 per window; one block (window/32) of lag plus sampling noise stays well under that
    assert np.abs(approx[window:] - exact[window:]).max() < 0.02
    changed = v.copy()
    changed[300_100:] += 50.0  # the future must not leak into the past (mid-block)
    np.testing.assert_array_equal(rolling_median(changed, window)[:300_100], approx[:300_100])


def test_sorted_unique_is_the_union() -> None:
    rng = np.random.default_rng(2)
    a, b = np.sort(rng.integers(0, 1000, 300)), np.sort(rng.integers(0, 1000, 200))
    np.testing.assert_array_equal(sorted_unique(a, b), np.unique(np.concatenate([a, b])))
    assert sorted_unique().size == 0


def test_decimate_keeps_extremes_and_nonfinite_points() -> None:
    rng = np.random.default_rng(3)
    n = 100_000
    steps = np.arange(n)
    values = rng.normal(size=n)
    values[12_345] = 50.0  # a spike
    values[54_321] = -50.0  # a dip
    values[77_777] = np.nan
    values[88_888] = np.inf
    idx = decimate(steps, values, limit=2000)
    assert len(idx) <= 2000 + 2 and np.all(np.diff(idx) > 0)
    assert {0, n - 1, 12_345, 54_321, 77_777, 88_888} <= set(idx.tolist())
    assert decimate(steps[:500], values[:500], limit=2000).tolist() == list(range(500))


def _median_of_windows(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[str]:
    """The reference: per window, its finite values sorted (stable), the middle one or the mean of the two."""
    out = []
    for a, b in zip(lo.tolist(), hi.tolist()):
        s = sorted(x for x in values[max(a, 0) : max(b, 0)].tolist() if math.isfinite(x))
        m = len(s)
        out.append("nan" if not m else repr(s[m // 2]) if m % 2 else repr((s[m // 2 - 1] + s[m // 2]) / 2.0))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_long_window_medians_are_exact_on_ties_signed_zeros_and_nonfinite(seed: int) -> None:
    """The wavelet-matrix medians (windows over SORT_WINDOW points) rank the distinct values, not the points:
    the same exact values as sorting each window, with many ties (a log printed to 2-4 digits), -0.0 next to
    0.0, NaN and infinities skipped, ragged and empty windows."""
    from lossdoctor.rules.rolling import SORT_WINDOW, sliding_medians, window_medians

    rng = np.random.default_rng(seed)
    n = 3000
    digits = (1, 2, 4, 12)[seed]
    v = np.round(rng.normal(0, 1, n), digits)
    v[rng.random(n) < 0.05] = 0.0
    v[rng.random(n) < 0.05] = -0.0
    v[rng.random(n) < 0.05] = np.nan
    v[rng.random(n) < 0.02] = np.inf
    v[rng.random(n) < 0.02] = -np.inf
    v[1000:1100] = np.nan  # windows with no finite value
    lo = rng.integers(-50, n, 800)
    hi = lo + rng.integers(SORT_WINDOW + 1, 400, 800)
    got = [repr(x) for x in window_medians(v, lo, hi).tolist()]
    assert got == _median_of_windows(v, lo, hi)
    width = 101
    starts = np.arange(n - width + 1)
    assert [repr(x) for x in sliding_medians(v, width).tolist()] == _median_of_windows(v, starts, starts + width)


def _both_paths(v: np.ndarray, width: int, before: int = 0, after: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(sliding medians as computed, the same by rolling.py's numpy code with the compiled medians off)."""
    from lossdoctor.rules import rolling

    got = rolling.sliding_medians(v, width, before, after)
    compiled = rolling._cmedian
    try:
        rolling._cmedian = None
        return got, rolling.sliding_medians(v, width, before, after)
    finally:
        rolling._cmedian = compiled


@pytest.mark.parametrize("seed", range(3))
def test_compiled_sliding_medians_equal_the_reference_and_the_numpy_code(seed: int) -> None:
    """lossdoctor/_cmedian.c (sorted windows up to C_SORT_WINDOW points, a bitset over the points' ranks
    beyond) against sorting each window, and against rolling.py's numpy code, bit for bit: ties, -0.0 next to
    0.0 (a stable sort's order), NaN and infinities skipped, padded and empty windows, widths either side of
    the switch."""
    from lossdoctor.rules import rolling

    if rolling._cmedian is None:
        pytest.skip("the compiled medians are not built here")
    rng = np.random.default_rng(100 + seed)
    n = 1500
    v = np.round(rng.normal(0, 1, n), (1, 3, 12)[seed])
    v[rng.random(n) < 0.06] = 0.0
    v[rng.random(n) < 0.06] = -0.0
    v[rng.random(n) < 0.05] = np.nan
    v[rng.random(n) < 0.02] = np.inf
    v[rng.random(n) < 0.02] = -np.inf
    v[500:700] = np.nan
    widths = [1, 2, 3, 8, 9, 24, 25, rolling.C_SORT_WINDOW, rolling.C_SORT_WINDOW + 1, 301]
    for width in widths:
        for before, after in ((0, 0), (width - 1, 0), (width // 2, width // 2), (3, 7)):
            got, numpy_path = _both_paths(v, width, before, after)
            starts = np.arange(len(got)) - before
            assert [repr(x) for x in got.tolist()] == _median_of_windows(v, starts, starts + width), (width, before)
            assert [repr(x) for x in numpy_path.tolist()] == [repr(x) for x in got.tolist()], (width, before)
    assert rolling.sliding_medians(v[:0], 5).size == 0
    assert rolling.sliding_medians(v[:3], 5).size == 0


def test_compiled_long_windows_on_drifting_and_repetitive_series_equal_the_numpy_code() -> None:
    """The long-window method walks each window's middle from the last one: a drifting series (the middle
    moves through the ranks), a sorted one, one of few distinct values with both zeros, a million-distinct-like
    one, and jumps between two levels, all as rolling.py's numpy code gives them."""
    from lossdoctor.rules import rolling

    if rolling._cmedian is None:
        pytest.skip("the compiled medians are not built here")
    rng = np.random.default_rng(9)
    n = 60_000
    series = {
        "drift": np.linspace(5, 0, n) + rng.normal(0, 0.3, n),
        "sorted": np.sort(rng.normal(size=n)),
        "few": np.where(rng.random(n) < 0.5, -0.0, 0.0) + np.round(rng.normal(size=n), 1) * (rng.random(n) < 0.5),
        "levels": np.where((np.arange(n) // 5000) % 2 == 0, 1.0, 1000.0) + rng.normal(0, 1e-3, n),
    }
    series["drift"][rng.random(n) < 0.02] = np.nan
    for name, v in series.items():
        for width, before, after in ((2001, 1000, 1000), (20_001, 20_000, 0), (999, 0, 0), (65, 64, 64)):
            got, want = _both_paths(v, width, before, after)
            assert [repr(x) for x in got[::97].tolist()] == [repr(x) for x in want[::97].tolist()], (name, width)
            np.testing.assert_array_equal(got, want)


def test_sliding_medians_on_hostile_shapes() -> None:
    """Pads too large to allocate are an error (they overflowed a size in C and wrote past a buffer), a window
    far wider than the series costs nothing, an odd count's median is its middle value (1e308 stays 1e308, not
    the mean that overflows), -0.0 next to 0.0 keeps its place in short windows too, and an unaligned array is
    read (copied aligned) instead of refused."""
    from lossdoctor.rules import rolling

    for pads in ((2**61 - 1, 0), (2**62, 2**62)):
        with pytest.raises((OverflowError, ValueError, MemoryError)):
            rolling.sliding_medians(np.zeros(1), 1, *pads)
    got, want = _both_paths(np.arange(10.0), 10**9, 10**9, 0)
    assert [repr(x) for x in got.tolist()] == [repr(x) for x in want.tolist()] and len(got) == 11
    if rolling._cmedian is not None:
        assert len(rolling._cmedian.small(np.arange(3.0), 2**62, 0, 0)) == 0
        assert len(rolling._cmedian.large(np.arange(3.0), 2**62, 0, 0)) == 0
    for width in (1, 3, 101):
        got, want = _both_paths(np.full(200, 1e308), width)
        assert got.tolist() == want.tolist() == [1e308] * (201 - width)
    zeros = np.array([0.0, -0.0, 0.0, -0.0, -0.0, 0.0, 5.0, -0.0, 0.0] * 20)
    for width in (2, 3, 8, 9, 12, 30):
        got, want = _both_paths(zeros, width, width - 1, 0)
        starts = np.arange(len(got)) - (width - 1)
        assert [repr(x) for x in got.tolist()] == _median_of_windows(zeros, starts, starts + width), width
        assert [repr(x) for x in want.tolist()] == [repr(x) for x in got.tolist()], width
    unaligned = np.frombuffer(bytearray(8 * 100 + 1), np.float64, offset=1)
    got, want = _both_paths(unaligned, 5)
    assert got.tolist() == want.tolist() == [0.0] * 96
