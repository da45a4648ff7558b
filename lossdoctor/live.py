"""Live rule evaluation over a run that is still growing (``lossdoctor watch``). Pure: no disk, no clock of its
own (the caller passes ``now``).

Cost per new point, not per whole history, where it can be:

* **Points are appended, never re-read.** ``LiveStore`` keeps one (steps, values) array pair per canonical
  metric (capacity doubling up to its bound, amortised O(1) per point); a pass sees them as zero-copy Series views,
  so no tidy table is rebuilt and nothing is re-parsed.
* **Only rules whose inputs changed are judged again.** A rule reads the series its conditions name; a pass
  re-runs it only when one of those series got points since it was last judged. A rule that has fired is
  not judged again until the end (each finding is printed once, the first time it fires); rules made only
  of ``missing`` checks judge an absence and wait for the end, as in the training callback.
* **Memory is bounded.** Each series keeps its latest ``RECENT_POINTS`` points at full resolution and its
  older history thinned, ``THIN_CHUNK`` points at a time, into min/max buckets (first, lowest, highest and
  last point of each ``THIN_BUCKET`` points and every non-finite point: the plots' ``decimate``), the thinned
  part itself halved again past ``THINNED_POINTS``; so what the rules look back at (the best eval so far,
  the first loss, a spike's peak, a NaN) survives while the count of held points stops growing. The
  rules that may answer differently live on thinned history are listed in docs/judgement.md; the report at
  the end is made from the source read again, exact.
* **Pointwise rules look at the recent points only.** A rule made only of point-by-point checks
  (``threshold`` with ``reduce: each`` and no window, ``nonfinite``) holds at a point whatever came long
  before, so it is judged on the last ``TAIL_POINTS`` points of its series: O(1) per pass. (Its live message
  counts within that tail; the final report is judged on everything.) Every ``FULL_EVERY`` seconds it is judged
  on the whole history once, so nothing that arrived between passes can be missed; a backlog larger than the
  tail (watch started on a long log) is fed in tail-sized pieces with a pointwise pass after each, so these
  rules see every point at full resolution before it is thinned (a "3 logs in a row" survives).
* **Judging is throttled and budgeted per rule.** A pass runs at most every ``min_interval`` seconds and only
  when points arrived. Each other rule looks at the whole history of the series it reads (an overfitting
  turn is relative to the best eval loss ever seen), so it costs O(points of those series) with a small
  vectorised constant; each rule gets an equal share of ``budget`` (a share of one core), i.e. it is judged
  again after ``max(min_interval, cost x rules / budget)`` (at most FULL_EVERY). Pointwise rules, whose cost
  does not grow with the history, are judged every ``POINTWISE_INTERVAL`` outside that budget. Cheap rules
  keep answering quickly while the CPU share stays bounded as a history grows long; an expensive rule on a
  very long history waits longer.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossdoctor.metrics.names import canonicalise
from lossdoctor.metrics.objectives import detect
from lossdoctor.model import SEVERITY_RANK, Finding, Provenance, Run, empty_metrics, make_metrics
from lossdoctor.rules.checks import registry
from lossdoctor.rules.engine import evaluate_rule, sort_key
from lossdoctor.table import Series

_INITIAL = 256
#: pointwise rules are judged live on this many latest points of each series
TAIL_POINTS = 4096
#: ... and on the whole history this often (seconds)
FULL_EVERY = 30.0
#: pointwise rules cost O(TAIL_POINTS) whatever the history: judged at this pace, outside the budget
POINTWISE_INTERVAL = 0.5
#: each series keeps its latest this many points at full resolution (``watch --keep-points``) ...
RECENT_POINTS = 32_768
#: ... and older history thinned to at most this many points (min/max buckets, ``decimate``), so a watch's
#: memory stops growing after RECENT_POINTS + THINNED_POINTS + THIN_CHUNK points per series
THINNED_POINTS = 4096
#: the oldest full-resolution points are thinned this many at a time ...
THIN_CHUNK = 8192
#: ... into buckets of this many consecutive points (first, lowest, highest, last and every non-finite kept)
THIN_BUCKET = 64
#: the most points one thinned chunk keeps (four per bucket); the thinned part holds at least this many
_CHUNK_KEPT = 4 * THIN_CHUNK // THIN_BUCKET


def bounds(recent: int, thinned: int) -> tuple[int, int]:
    """(recent, thinned) as a store uses them: at least the tail pointwise rules are judged on, and room for
    one thinned chunk."""
    return max(int(recent), TAIL_POINTS), max(int(thinned), _CHUNK_KEPT)


def thin(steps: np.ndarray, values: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the points to keep of a stretch of history: ``decimate``'s min/max buckets (first, lowest,
    highest and last point per bucket, every non-finite point); non-finite points beyond ``limit // 4`` more
    are sampled evenly (a run that is NaN for thousands of steps), so what is kept stays bounded."""
    from lossdoctor.table import decimate

    idx = decimate(steps, values, limit=limit)
    if len(idx) <= limit + limit // 4:
        return idx
    bad = ~np.isfinite(values[idx])
    nonfinite = idx[bad]
    room = limit // 4 + max(0, limit - int((~bad).sum()))
    pick = np.unique(np.linspace(0, len(nonfinite) - 1, room).round().astype("int64"))
    return np.sort(np.concatenate([idx[~bad], nonfinite[pick]]))


class _Column:
    """One metric's points, kept step-sorted; the last value wins per step (the tidy constructor's policy:
    applied point by point while points arrive in step order, by the constructor itself when some arrived
    out of order).

    Memory is bounded: one buffer holds ``[thinned older history | the latest points at full resolution]``
    (so a series is still one zero-copy view). When the full-resolution part passes ``recent + THIN_CHUNK``
    points its oldest ``THIN_CHUNK`` are thinned into min/max buckets of ``THIN_BUCKET`` points (``thin``:
    16x fewer) and appended to the thinned part; when that passes ``thinned`` points it is thinned again to
    half. Each step is a few vectorised copies of bounded arrays every ``THIN_CHUNK`` points: O(1) amortised
    per point, like the appends."""

    __slots__ = ("steps", "values", "n", "sorted", "t", "recent", "thinned_max", "dropped")

    def __init__(self, recent: int = RECENT_POINTS, thinned: int = THINNED_POINTS) -> None:
        """``recent`` and ``thinned`` as :func:`bounds` gives them."""
        self.steps = np.empty(_INITIAL, dtype="int64")
        self.values = np.empty(_INITIAL, dtype="float64")
        self.n = 0
        self.sorted = True
        self.t = 0  # points [0, t) are thinned history, [t, n) full resolution
        self.recent, self.thinned_max = recent, thinned
        self.dropped = 0  # points thinned away so far

    @property
    def capacity_max(self) -> int:
        return self.thinned_max + self.recent + THIN_CHUNK

    def _room(self, k: int) -> None:
        """Capacity for ``k`` more points (doubling, never past what the bounds need)."""
        n = self.n
        if n + k <= len(self.steps):
            return
        cap = min(max(2 * len(self.steps), n + k), max(self.capacity_max, n + k))
        self.steps = np.concatenate([self.steps[:n], np.empty(cap - n, dtype="int64")])
        self.values = np.concatenate([self.values[:n], np.empty(cap - n, dtype="float64")])

    def _keep(self, a: int, b: int, idx: np.ndarray) -> None:
        """Keep only the points ``a + idx`` of ``[a, b)``; the points after ``b`` move down."""
        k = len(idx)
        self.steps[a : a + k] = self.steps[a:b][idx]
        self.values[a : a + k] = self.values[a:b][idx]
        rest = self.n - b
        self.steps[a + k : a + k + rest] = self.steps[b : self.n]
        self.values[a + k : a + k + rest] = self.values[b : self.n]
        self.dropped += (b - a) - k
        self.n = a + k + rest

    def _bound(self) -> None:
        """Thin the oldest full-resolution points while there are more than ``recent + THIN_CHUNK``, and the
        thinned part to half when it passes its bound."""
        while self.t > self.thinned_max or self.n - self.t >= self.recent + THIN_CHUNK:
            if not self.sorted:
                # points that arrived out of order: sorted (last value per step) only now that thinning is due,
                # or when a pass asks for a view; never per point
                self.view()
                continue
            if self.t > self.thinned_max:
                t = self.t
                idx = thin(self.steps[:t], self.values[:t], self.thinned_max // 2)
                self._keep(0, t, idx)
                self.t = len(idx)
            elif self.n - self.t >= self.recent + THIN_CHUNK:
                a, b = self.t, self.t + THIN_CHUNK
                idx = thin(self.steps[a:b], self.values[a:b], _CHUNK_KEPT)
                self._keep(a, b, idx)
                self.t = a + len(idx)

    def add(self, step: int, value: float) -> None:
        n = self.n
        if n and self.sorted:
            last = int(self.steps[n - 1])
            if step == last:
                self.values[n - 1] = value
                return
            if step < last:
                self.sorted = False
        self._room(1)
        self.steps[n] = step
        self.values[n] = value
        self.n = n + 1
        self._bound()

    def extend(self, steps: list[int], values: list[float]) -> None:
        """Many points at once: array copies when they come after the last step in order (the usual case),
        thinned as they go, so the buffer stays within its bound however many arrive at once."""
        st = np.asarray(steps, dtype="int64")
        n, k = self.n, len(steps)
        if not (self.sorted and k and (n == 0 or st[0] > self.steps[n - 1]) and (k == 1 or (st[1:] > st[:-1]).all())):
            for step, value in zip(steps, values):
                self.add(int(step), float(value))
            return
        va = np.asarray(values, dtype="float64")
        i = 0
        while i < k:  # up to the point where the oldest whole points are thinned, then thin, and on
            m = min(k - i, self.t + self.recent + THIN_CHUNK - self.n)
            self._room(m)
            n = self.n
            self.steps[n : n + m] = st[i : i + m]
            self.values[n : n + m] = va[i : i + m]
            self.n = n + m
            i += m
            self._bound()

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.sorted:  # out-of-order points (rare: a resumed run): sort once, last value per step
            from lossdoctor.tidy import tidy_series

            boundary = int(self.steps[self.t - 1]) if self.t else None
            st, va = tidy_series(self.steps[: self.n], self.values[: self.n])
            self.n = len(st)
            self.steps[: self.n] = st
            self.values[: self.n] = va
            self.sorted = True
            # points that arrived inside the thinned stretch count as thinned history from now on
            self.t = 0 if boundary is None else int(np.searchsorted(st, boundary, side="right"))
        return self.steps[: self.n], self.values[: self.n]

    @property
    def nbytes(self) -> int:
        return int(self.steps.nbytes + self.values.nbytes)


class LiveStore:
    """Points received so far: canonical metric → column, plus the raw names seen for each."""

    def __init__(self, recent: int = RECENT_POINTS, thinned: int = THINNED_POINTS) -> None:
        self.recent, self.thinned_max = bounds(recent, thinned)
        self.columns: dict[str, _Column] = {}
        self.raw_names: dict[str, str] = {}  # raw → canonical
        self.points = 0
        self.last_step: int | None = None

    def canonical(self, raw: str) -> str:
        canon = self.raw_names.get(raw)
        if canon is None:
            canon = self.raw_names[raw] = canonicalise(raw)
        return canon

    def add(self, step: int, raw: str, value: float) -> str:
        canon = self.canonical(raw)
        col = self.columns.get(canon)
        if col is None:
            col = self.columns[canon] = _Column(self.recent, self.thinned_max)
        col.add(int(step), float(value))
        self.points += 1
        if self.last_step is None or step > self.last_step:
            self.last_step = int(step)
        return canon

    def add_many(self, points: list[tuple[int, str, float]]) -> set[str]:
        """Append points (step, raw name, value) in arrival order; returns the canonical metrics touched."""
        by_raw: dict[str, tuple[list[int], list[float]]] = {}
        for step, raw, value in points:
            group = by_raw.get(raw)
            if group is None:
                group = by_raw[raw] = ([], [])
            group[0].append(step)
            group[1].append(value)
        touched = set()
        for raw, (steps, values) in by_raw.items():
            canon = self.canonical(raw)
            col = self.columns.get(canon)
            if col is None:
                col = self.columns[canon] = _Column(self.recent, self.thinned_max)
            col.extend(steps, values)
            touched.add(canon)
            top = max(steps)
            if self.last_step is None or top > self.last_step:
                self.last_step = int(top)
        self.points += len(points)
        return touched

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.columns.values())

    @property
    def held(self) -> int:
        """Points held in memory now (bounded per series; ``points`` counts every point received)."""
        return sum(c.n for c in self.columns.values())

    @property
    def thinned(self) -> int:
        """Points thinned away so far (0: every point is held at full resolution)."""
        return sum(c.dropped for c in self.columns.values())

    def snapshot(
        self, name: str, provenance: Provenance, config: Mapping[str, Any] | None = None, state: str = "running"
    ) -> LiveRun:
        """A Run over the current points (zero-copy views; valid until the next ``add``)."""
        from lossdoctor.tidy import Coded, tidy_points

        last = [(c.view()[0][-1], m, c.view()[1][-1]) for m, c in sorted(self.columns.items()) if c.n]
        names = Coded(np.arange(len(last)), [x[1] for x in last])
        frame = tidy_points(
            np.asarray([x[0] for x in last], dtype="int64"),
            names,
            np.asarray([x[2] for x in last], dtype="float64"),
            canonical=names,
            hf_summary=False,
        ).frame
        return LiveRun(
            name=name, provenance=provenance, metrics=frame, config=dict(config or {}), state=state, store=self
        )

    def tail_view(self, run: LiveRun, points: int = TAIL_POINTS) -> LiveRun:
        """The same snapshot cut to the last ``points`` points of every series."""
        return dataclasses.replace(run, tail=points)

    def to_run(
        self, name: str, provenance: Provenance, config: Mapping[str, Any] | None = None, state: str = "unknown"
    ) -> Run:
        """A plain Run with the full tidy table (for the report when the source cannot be read again)."""
        by_canon: dict[str, str] = {}
        for raw, canon in sorted(self.raw_names.items()):
            by_canon.setdefault(canon, raw)
        steps, raws, values, canons = [], [], [], []
        for metric, col in sorted(self.columns.items()):
            st, va = col.view()
            steps.append(st)
            values.append(va)
            raws.append(np.full(len(st), by_canon.get(metric, metric), dtype=object))
            canons.append(np.full(len(st), metric, dtype=object))
        if not steps:
            frame = empty_metrics()
        else:
            frame = make_metrics(
                np.concatenate(steps), np.concatenate(raws), np.concatenate(values), metrics=np.concatenate(canons)
            )
        return Run(name=name, provenance=provenance, metrics=frame, config=dict(config or {}), state=state)


@dataclass(frozen=True, eq=False)
class LiveRun(Run):
    """A Run whose series are views of a LiveStore's columns. Its ``metrics`` table holds only the last point
    of each metric (what ``missing`` and the facts ask of it: which metrics exist and the last step);
    ``n_points`` counts every point."""

    store: Any = field(default=None, repr=False)
    tail: int | None = None

    def _all_series(self) -> dict[str, Series]:
        cache = self._series_cache
        if cache or self.store is None:
            return cache
        for metric in sorted(self.store.columns):
            steps, values = self.store.columns[metric].view()
            if self.tail is not None:
                steps, values = steps[-self.tail :], values[-self.tail :]
            if len(steps):
                cache[metric] = Series(steps, values, metric)
        return cache

    @property
    def n_points(self) -> int:
        return int(self.store.points) if self.store is not None else 0


def _series_patterns(cond: Any) -> tuple[str, ...]:
    """The series (names or globs) a condition reads, from the args its check kind declares as series."""

    if cond.op != "check":
        return tuple(p for child in cond.children for p in _series_patterns(child))
    check = registry().get(cond.kind)
    if check is None:
        return ("*",)
    out: list[str] = []
    for name, param in check.params.items():
        if param.type not in ("series", "series_list"):
            continue
        value = _args(cond).get(name, param.default)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(str(v) for v in value)
    return tuple(out) or ("*",)


def _pointwise(cond: Any) -> bool:
    """Made only of checks whose value at a point depends on that point alone."""
    if cond.op != "check":
        return bool(cond.children) and all(_pointwise(c) for c in cond.children)
    if cond.kind == "nonfinite":
        return True
    args = _args(cond)
    return cond.kind == "threshold" and args.get("reduce", "each") == "each" and not args.get("window")


def _args(cond: Any) -> Mapping[str, Any]:
    """A check's arguments as the engine evaluates them: resolved at rule load (``${param}`` substituted)."""
    return cond.resolved if cond.resolved is not None else cond.args


def _only_missing(cond: Any) -> bool:
    if cond.op == "check":
        return cond.kind == "missing"
    return bool(cond.children) and all(_only_missing(c) for c in cond.children)


@dataclass
class LiveJudge:
    """Judges a LiveStore with a RuleSet as points arrive; remembers what fired first."""

    ruleset: Any
    min_interval: float = 0.25  # seconds between passes
    budget: float = 0.03  # share of one core that judging may use on average
    fired: dict[str, Finding] = field(default_factory=dict)
    crashed: dict[str, str] = field(default_factory=dict)
    passes: int = 0
    spent: float = 0.0
    _last_pass: float | None = None
    _stale: set[str] = field(default_factory=set)  # rules whose series got points since judged
    _patterns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _deferred: frozenset[str] = frozenset()
    _pointwise: frozenset[str] = frozenset()
    _cost: dict[str, float] = field(default_factory=dict)  # rule id → seconds of its last judgement
    _judged_at: dict[str, float] = field(default_factory=dict)
    _full_at: float | None = None

    def __post_init__(self) -> None:
        self._patterns = {r.id: _series_patterns(r.when) for r in self.ruleset.rules}
        self._deferred = frozenset(r.id for r in self.ruleset.rules if _only_missing(r.when))
        self._pointwise = frozenset(r.id for r in self.ruleset.rules if _pointwise(r.when))

    def touched(self, metrics: Iterable[str]) -> None:
        """Say which canonical metrics got points since the last call."""
        metrics = set(metrics)
        for rule_id, patterns in self._patterns.items():
            if rule_id in self._stale or rule_id in self.fired or rule_id in self._deferred:
                continue
            if any(p == "*" or any(fnmatch.fnmatchcase(m, p) for m in metrics) for p in patterns):
                self._stale.add(rule_id)

    @property
    def pending(self) -> bool:
        return bool(self._stale)

    def _interval(self, rule_id: str) -> float:
        if rule_id in self._pointwise:
            return max(self.min_interval, POINTWISE_INTERVAL)
        live = max(1, len(self._patterns) - len(self._deferred) - len(self.fired) - len(self._pointwise))
        return min(FULL_EVERY, max(self.min_interval, self._cost.get(rule_id, 0.0) * live / self.budget))

    def _ready(self, rule_id: str, now: float) -> bool:
        last = self._judged_at.get(rule_id)
        return last is None or now - last >= self._interval(rule_id)

    def due(self, now: float) -> bool:
        """Points arrived, the interval has passed, and some stale rule's share allows judging it."""
        if not self._stale:
            return False
        if self._last_pass is not None and now - self._last_pass < self.min_interval:
            return False
        return any(self._ready(r, now) for r in self._stale)

    def judge(self, run: LiveRun | Run, now: float, final: bool = False, pointwise_only: bool = False) -> list[Finding]:
        """One pass over ``run`` (a LiveRun snapshot, or the whole run when ``final``); returns the findings
        that fired for the first time. ``pointwise_only``: only the stale pointwise rules, on the tail, whatever
        their pace (the caller feeds a large backlog in pieces, so that every point is judged by them at full
        resolution before the store thins it)."""

        full = not pointwise_only and (final or self._full_at is None or now - self._full_at >= FULL_EVERY)
        if full:
            self._full_at = now
        tail = run.store.tail_view(run) if isinstance(run, LiveRun) and not full else run
        new: list[Finding] = []
        t_pass = time.perf_counter()
        # judged by the rules for the run's objective, as analyze judges it; detected again each pass, from
        # the metric names seen so far (a DPO run shows its rewards/* with its first log)
        objective = detect(run).id
        for rule in self.ruleset.rules:
            rid = rule.id
            if final:
                if rid in self.fired and rid not in self._deferred:
                    continue
            elif rid not in self._stale or (pointwise_only and rid not in self._pointwise):
                continue
            elif not pointwise_only and not self._ready(rid, now):
                continue
            if not rule.applies_to(objective):
                self._stale.discard(rid)
                continue
            pointwise = rid in self._pointwise
            t0 = time.perf_counter()
            try:
                finding = evaluate_rule(rule, tail if pointwise else run)
            except Exception as exc:  # noqa: BLE001 - reported once, exit 2 at the end (as analyze)
                self.crashed.setdefault(rid, f"{rid}: {type(exc).__name__}: {exc}")
                finding = None
            cost = time.perf_counter() - t0
            # the first judgement of a rule pays one-off imports and warm-up: it does not set the pace
            old = self._cost.get(rid)
            self._cost[rid] = 0.0 if rid not in self._judged_at else cost if not old else 0.5 * (old + cost)
            self._judged_at[rid] = now
            self._stale.discard(rid)
            if finding is not None and rid not in self.fired:
                self.fired[rid] = finding
                new.append(finding)
        self.spent += time.perf_counter() - t_pass
        self.passes += 1
        self._last_pass = now
        new.sort(key=sort_key)
        return new

    def worst(self) -> str | None:
        if not self.fired:
            return None
        return max((f.severity for f in self.fired.values()), key=SEVERITY_RANK.__getitem__)
