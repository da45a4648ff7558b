"""A Run's metric table and series as numpy arrays: :class:`MetricTable` and :class:`Series`.

Why not pandas: the analysis core reads a table of (step, metric, value) points, takes one series per metric
and runs vectorised numpy over them; pandas added ~0.4 s of imports to every command (before a byte was read)
and a DataFrame's object columns cost one Python object per point. Here the table is parallel numpy columns,
``step:int64``, ``value:float64``, and the name columns categorical: small integer codes per point into a
short tuple of names (``metric`` canonical, ``raw_name`` as logged), plus optional ``wall_time`` (float64,
NaN = unknown) and ``line`` (int64, the 1-based source line of text logs).

pandas is the public API's frame view, imported only when asked for: :meth:`MetricTable.to_pandas` (the tidy
long DataFrame, the name columns ``category``) and :meth:`Series.to_pandas`.

Built by the one tidy-table constructor, :func:`lossdoctor.tidy.tidy_points` (sorted by metric then step, one
point per (metric, step): each metric a contiguous stretch, so series are views); :meth:`MetricTable.from_frame` takes a DataFrame someone built by hand (tests,
notebooks) as it is, in any order: :class:`lossdoctor.model.Run` resolves order and repeats when it cuts the
table into series.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the columns every table has, in order; ``wall_time`` and ``line`` are optional
BASE_COLUMNS: tuple[str, ...] = ("step", "metric", "value", "raw_name")
_EMPTY_I64 = np.zeros(0, dtype=np.int64)


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _code_counts(codes: np.ndarray, n_names: int) -> np.ndarray:
    """``np.bincount`` of name codes, a million at a time (bincount copies its input to int64 first: 8 bytes a
    point at once for a whole table)."""
    counts = np.zeros(n_names, dtype=np.int64)
    for start in range(0, len(codes), 1 << 20):
        counts += np.bincount(codes[start : start + (1 << 20)], minlength=n_names)
    return counts


def code_dtype(n_names: int) -> Any:
    """The smallest signed integer type for codes into ``n_names`` names (2 bytes per point for the usual few)."""
    return np.int16 if n_names < 2**15 else np.int32 if n_names < 2**31 else np.int64


def factorize(items: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """(codes, uniques in first-seen order) of a sequence of hashable items: one dict look-up per item, no
    sorting (numpy's unique on strings sorts them)."""
    memo: dict[Any, int] = {}
    codes = np.fromiter((memo.setdefault(x, len(memo)) for x in items), dtype=np.int64, count=len(items))
    return codes, list(memo)


@dataclass(frozen=True, eq=False)
class MetricTable:
    """The tidy long table of a run (see the module doc). Arrays are read-only: build a new table instead."""

    step: np.ndarray
    metric_codes: np.ndarray
    metric_names: tuple[str, ...]
    value: np.ndarray
    raw_codes: np.ndarray
    raw_names: tuple[str, ...]
    wall_time: np.ndarray | None = None
    line: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        step: Any,
        metric_codes: Any,
        metric_names: Sequence[str],
        value: Any,
        raw_codes: Any,
        raw_names: Sequence[str],
        wall_time: Any = None,
        line: Any = None,
    ) -> MetricTable:
        """From parallel columns (copied only where the dtype differs)."""
        mn, rn = tuple(str(x) for x in metric_names), tuple(str(x) for x in raw_names)
        return cls(
            step=_readonly(np.asarray(step, dtype=np.int64)),
            metric_codes=_readonly(np.asarray(metric_codes, dtype=code_dtype(len(mn)))),
            metric_names=mn,
            value=_readonly(np.asarray(value, dtype=np.float64)),
            raw_codes=_readonly(np.asarray(raw_codes, dtype=code_dtype(len(rn)))),
            raw_names=rn,
            wall_time=None if wall_time is None else _readonly(np.asarray(wall_time, dtype=np.float64)),
            line=None if line is None else _readonly(np.asarray(line, dtype=np.int64)),
        )

    @classmethod
    def blank(cls) -> MetricTable:
        """A table with no points."""
        return cls.build(_EMPTY_I64, _EMPTY_I64, (), np.zeros(0), _EMPTY_I64, ())

    # -- shape -----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.step.shape[0])

    @property
    def empty(self) -> bool:
        return len(self) == 0

    @property
    def columns(self) -> tuple[str, ...]:
        return BASE_COLUMNS + tuple(c for c in ("wall_time", "line") if getattr(self, c) is not None)

    @property
    def nbytes(self) -> int:
        arrays = (self.step, self.metric_codes, self.value, self.raw_codes, self.wall_time, self.line)
        return int(sum(a.nbytes for a in arrays if a is not None))

    # -- columns ---------------------------------------------------------------------------------------------

    def __getitem__(self, column: str) -> np.ndarray:
        """A column as a numpy array; the name columns as object arrays of the (shared) name strings."""
        if column == "metric":
            return np.asarray(self.metric_names + ("",), dtype=object)[self.metric_codes]
        if column == "raw_name":
            return np.asarray(self.raw_names + ("",), dtype=object)[self.raw_codes]
        if column in ("step", "value", "wall_time", "line"):
            arr = getattr(self, column)
            if arr is None:
                raise KeyError(column)
            return arr
        raise KeyError(column)

    def code_of(self, metric: str) -> int | None:
        try:
            return self.metric_names.index(metric)
        except ValueError:
            return None

    def metric_mask(self, metrics: Sequence[str]) -> np.ndarray:
        """Per row: whether its metric is one of ``metrics``."""
        codes = [i for i, n in enumerate(self.metric_names) if n in set(metrics)]
        return np.isin(self.metric_codes, codes)

    def has_any(self, metrics: Sequence[str]) -> bool:
        return bool(self.metric_mask(metrics).any())

    def pairs(self) -> list[tuple[str, str, int]]:
        """(raw_name, metric, points) for every pair present, sorted by raw name then metric."""
        if not len(self):
            return []
        n_m = max(len(self.metric_names), 1)
        pair = self.raw_codes.astype(np.int64) * n_m + self.metric_codes
        counts = np.bincount(pair, minlength=len(self.raw_names) * n_m)
        hit = np.flatnonzero(counts)
        rows = [(self.raw_names[int(p) // n_m], self.metric_names[int(p) % n_m], int(counts[p])) for p in hit]
        return sorted(rows, key=lambda r: (r[0], r[1]))

    def sorted(self) -> MetricTable:
        """Rows sorted by metric, then step (stable: equal rows keep their order)."""
        order = np.lexsort((self.step, self.metric_codes))
        return self if bool((order[1:] > order[:-1]).all()) else self.take(order)

    def take(self, index: Any) -> MetricTable:
        """The rows at ``index`` (integer positions or a boolean mask), names kept."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return MetricTable.build(
            self.step[idx],
            self.metric_codes[idx],
            self.metric_names,
            self.value[idx],
            self.raw_codes[idx],
            self.raw_names,
            None if self.wall_time is None else self.wall_time[idx],
            None if self.line is None else self.line[idx],
        )

    def compact(self) -> MetricTable:
        """The same table without names no row uses (metric names stay sorted)."""

        def squeeze(codes: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
            used = np.flatnonzero(_code_counts(codes, len(names)))
            if len(used) == len(names):
                return codes, names
            # in the codes' own (narrow) dtype: an int64 remap of a million-point table is 8 bytes a point
            remap = np.zeros(len(names), dtype=codes.dtype)
            remap[used] = np.arange(len(used))
            return remap[codes], tuple(names[i] for i in used)

        mc, mn = squeeze(self.metric_codes, self.metric_names)
        rc, rn = squeeze(self.raw_codes, self.raw_names)
        if mn is self.metric_names and rn is self.raw_names:
            return self
        return MetricTable.build(self.step, mc, mn, self.value, rc, rn, self.wall_time, self.line)

    @staticmethod
    def concat(tables: Sequence[MetricTable]) -> MetricTable:
        """Rows of every table in turn (names merged; metric names sorted)."""
        tables = [t for t in tables if len(t)]
        if not tables:
            return MetricTable.blank()
        if len(tables) == 1:
            return tables[0]
        metric_names = sorted({n for t in tables for n in t.metric_names})
        m_index = {n: i for i, n in enumerate(metric_names)}
        raw_names: list[str] = []
        r_index: dict[str, int] = {}
        for t in tables:
            for n in t.raw_names:
                r_index.setdefault(n, len(r_index))
                if len(raw_names) < len(r_index):
                    raw_names.append(n)
        mcs, rcs = [], []
        for t in tables:
            mcs.append(
                np.asarray([m_index[n] for n in t.metric_names], dtype=np.int64)[t.metric_codes]
                if t.metric_names
                else _EMPTY_I64
            )
            rcs.append(
                np.asarray([r_index[n] for n in t.raw_names], dtype=np.int64)[t.raw_codes]
                if t.raw_names
                else _EMPTY_I64
            )

        def optional(col: str, fill: float) -> np.ndarray | None:
            if all(getattr(t, col) is None for t in tables):
                return None
            return np.concatenate(
                [getattr(t, col) if getattr(t, col) is not None else np.full(len(t), fill) for t in tables]
            )

        wall = optional("wall_time", np.nan)
        line = optional("line", 0)
        return MetricTable.build(
            np.concatenate([t.step for t in tables]),
            np.concatenate(mcs),
            metric_names,
            np.concatenate([t.value for t in tables]),
            np.concatenate(rcs),
            raw_names,
            wall,
            None if line is None else line.astype(np.int64),
        )

    # -- pandas (the public frame view; pandas imported only here) --------------------------------------------

    def to_pandas(self) -> Any:
        """The tidy long DataFrame: ``step`` int64, ``metric`` and ``raw_name`` category, ``value`` float64
        (+ ``wall_time``, ``line``)."""
        import pandas as pd

        data: dict[str, Any] = {
            "step": self.step.copy(),
            "metric": pd.Categorical.from_codes(self.metric_codes, categories=list(self.metric_names)),
            "value": self.value.copy(),
            "raw_name": pd.Categorical.from_codes(self.raw_codes, categories=list(self.raw_names)),
        }
        if self.wall_time is not None:
            data["wall_time"] = self.wall_time.copy()
        if self.line is not None:
            data["line"] = self.line.copy()
        return pd.DataFrame(data)

    @classmethod
    def from_frame(cls, frame: Any) -> MetricTable:
        """From a tidy DataFrame (or a mapping of columns) with at least step / metric / value; ``raw_name``
        defaults to the metric. Rows are kept as given (order and repeats)."""
        cols = {c: frame[c] for c in frame.columns} if hasattr(frame, "columns") else dict(frame)
        if not cols or len(cols.get("step", ())) == 0:
            return cls.blank()
        metric = [str(x) for x in _as_list(cols["metric"])]
        raw = [str(x) for x in _as_list(cols["raw_name"])] if "raw_name" in cols else metric
        m_codes, m_names = factorize(metric)
        order = sorted(range(len(m_names)), key=lambda i: m_names[i])
        remap = np.empty(len(m_names), dtype=np.int64)
        remap[order] = np.arange(len(order))
        r_codes, r_names = factorize(raw)
        step = np.asarray(
            _as_list(cols["step"]) if not hasattr(cols["step"], "to_numpy") else cols["step"].to_numpy(), dtype=np.int64
        )
        value = np.asarray(cols["value"], dtype=np.float64)
        wall = np.asarray(cols["wall_time"], dtype=np.float64) if "wall_time" in cols else None
        line = (
            np.asarray(np.nan_to_num(np.asarray(cols["line"], dtype=np.float64)), dtype=np.int64)
            if "line" in cols
            else None
        )
        return cls.build(step, remap[m_codes], [m_names[i] for i in order], value, r_codes, r_names, wall, line)


def _as_list(col: Any) -> list[Any]:
    return col.tolist() if hasattr(col, "tolist") else list(col)


class _ILoc:
    __slots__ = ("_s",)

    def __init__(self, s: Series) -> None:
        self._s = s

    def __getitem__(self, key: Any) -> Any:
        s = self._s
        scalar = np.isscalar(key)  # kept out of the if: as a TypeGuard it would narrow key to numpy's scalar types
        if isinstance(key, slice) or not scalar:
            return Series(s.index[key], s.values[key], s.name)
        return float(s.values[key])


class _Loc:
    __slots__ = ("_s",)

    def __init__(self, s: Series) -> None:
        self._s = s

    def __getitem__(self, key: Any) -> Any:
        s = self._s
        if isinstance(key, slice):
            lo = 0 if key.start is None else int(np.searchsorted(s.index, key.start, side="left"))
            hi = len(s) if key.stop is None else int(np.searchsorted(s.index, key.stop, side="right"))
            return Series(s.index[lo:hi], s.values[lo:hi], s.name)
        if not np.isscalar(key):  # a list of steps
            steps = np.asarray(key, dtype=np.int64)
            pos = np.searchsorted(s.index, steps)
            if (pos >= len(s)).any() or (s.index[np.minimum(pos, max(len(s) - 1, 0))] != steps).any():
                raise KeyError(key)
            return Series(steps, s.values[pos], s.name)
        return s[key]


class Series:
    """One metric: ``index`` (int64 steps, sorted, unique) and ``values`` (float64, NaN/inf kept), read-only
    numpy arrays. What :meth:`lossdoctor.model.Run.series` returns; a small subset of a pandas Series'
    interface (``to_numpy``, ``to_dict``, ``tolist``, ``iloc``, ``loc``, label look-up ``s[step]``) so that
    reading one feels familiar; :meth:`to_pandas` gives the real thing."""

    __slots__ = ("index", "values", "name")

    def __init__(self, index: Any, values: Any, name: str = "") -> None:
        self.index = np.asarray(index, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float64)
        self.name = name
        if self.index.shape != self.values.shape:
            raise ValueError("index and values must have the same length")

    @classmethod
    def empty_of(cls, name: str) -> Series:
        return cls(_EMPTY_I64, np.zeros(0), name)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def size(self) -> int:
        return len(self)

    @property
    def empty(self) -> bool:
        return len(self) == 0

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def to_numpy(self, dtype: Any = None, copy: bool = False) -> np.ndarray:
        arr = self.values if dtype is None else self.values.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def tolist(self) -> list[float]:
        return self.values.tolist()

    def to_dict(self) -> dict[int, float]:
        return dict(zip(self.index.tolist(), self.values.tolist()))

    def items(self) -> Iterator[tuple[int, float]]:
        return zip(self.index.tolist(), self.values.tolist())

    def __iter__(self) -> Iterator[float]:
        return iter(self.values.tolist())

    def __getitem__(self, step: Any) -> Any:
        """The value at ``step`` (a label, as for a step-indexed pandas Series), or with a boolean mask the
        Series of the points where it is True."""
        if isinstance(step, (np.ndarray, list)) and np.asarray(step).dtype == bool:
            mask = np.asarray(step)
            return Series(self.index[mask], self.values[mask], self.name)
        if isinstance(step, slice):
            raise TypeError("slice a Series by position with .iloc or by step with .loc")
        i = int(np.searchsorted(self.index, step))
        if i >= len(self) or self.index[i] != step:
            raise KeyError(step)
        return float(self.values[i])

    def __contains__(self, step: Any) -> bool:
        i = int(np.searchsorted(self.index, step))
        return i < len(self) and self.index[i] == step

    @property
    def iloc(self) -> _ILoc:
        return _ILoc(self)

    @property
    def loc(self) -> _Loc:
        return _Loc(self)

    def notna(self) -> np.ndarray:
        return ~np.isnan(self.values)

    def isna(self) -> np.ndarray:
        return np.isnan(self.values)

    def dropna(self) -> Series:
        ok = ~np.isnan(self.values)
        return self if ok.all() else Series(self.index[ok], self.values[ok], self.name)

    # reductions skip NaN, as pandas' do
    def min(self) -> float:
        return float(np.nanmin(self.values)) if len(self) and self.notna().any() else float("nan")

    def max(self) -> float:
        return float(np.nanmax(self.values)) if len(self) and self.notna().any() else float("nan")

    def sum(self) -> float:
        return float(np.nansum(self.values))

    def mean(self) -> float:
        return float(np.nanmean(self.values)) if len(self) and self.notna().any() else float("nan")

    def idxmin(self) -> int:
        return int(self.index[int(np.nanargmin(self.values))])

    def idxmax(self) -> int:
        return int(self.index[int(np.nanargmax(self.values))])

    def diff(self) -> Series:
        """Each value minus the one before it (NaN at the first point)."""
        return Series(self.index, np.r_[np.nan, np.diff(self.values)] if len(self) else self.values, self.name)

    def round(self, decimals: int = 0) -> Series:
        return Series(self.index, np.round(self.values, decimals), self.name)

    def equals(self, other: Series) -> bool:
        """Same steps and values (NaN equal to NaN), as pandas' ``equals``."""
        return bool(
            np.array_equal(self.index, other.index) and np.array_equal(self.values, other.values, equal_nan=True)
        )

    # comparisons give boolean arrays over the points
    def __lt__(self, other: Any) -> np.ndarray:
        return self.values < other

    def __le__(self, other: Any) -> np.ndarray:
        return self.values <= other

    def __gt__(self, other: Any) -> np.ndarray:
        return self.values > other

    def __ge__(self, other: Any) -> np.ndarray:
        return self.values >= other

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.Series(self.values.copy(), index=pd.Index(self.index.copy(), name="step"), name=self.name)

    def __repr__(self) -> str:
        head = ", ".join(f"{s}: {v:g}" for s, v in zip(self.index[:5].tolist(), self.values[:5].tolist()))
        more = ", ..." if len(self) > 5 else ""
        return f"Series({self.name!r}, {len(self)} points: {{{head}{more}}})"


#: a plotted line keeps at most this many points (a plot is ~1000 px wide); see decimate(). Here, not in
#: the report floor, because watch's store thins its older history with the same decimation.
MAX_PLOT_POINTS = 2000


def decimate(
    steps: np.ndarray, values: np.ndarray, limit: int = MAX_PLOT_POINTS, keep_steps: np.ndarray | None = None
) -> np.ndarray:
    """Indices to plot: all of them up to ``limit``; beyond, per bucket of consecutive points the first,
    the lowest, the highest and the last (so spikes, minima and the shape survive), plus every non-finite
    point (NaN/inf markers must not vanish) and every point at one of ``keep_steps`` (a finding's evidence).
    Deterministic, in step order."""
    n = len(values)
    if n <= limit:
        return np.arange(n)
    buckets = max(1, limit // 4)
    edges = np.linspace(0, n, buckets + 1).astype("int64")
    finite = np.isfinite(values)
    keep = ~finite
    keep[edges[:-1]] = True
    keep[np.maximum(edges[1:] - 1, 0)] = True
    hi = np.where(finite, values, -np.inf)
    lo = np.where(finite, values, np.inf)
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if b > a:
            keep[a + int(np.argmax(hi[a:b]))] = True
            keep[a + int(np.argmin(lo[a:b]))] = True
    if keep_steps is not None and len(keep_steps):
        keep |= np.isin(steps, keep_steps)
    return np.flatnonzero(keep)
