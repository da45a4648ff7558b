"""Live rule evaluation over a run that is still growing (``lossdoctor watch``). Pure: no disk, no clock of its
own (the caller passes ``now``).

Cost per new point, not per whole history, where it can be:

* **Points are appended, never re-read.** ``LiveStore`` keeps one growing (steps, values) array pair per
  canonical metric (capacity doubling, amortised O(1) per point); a pass sees them as zero-copy Series views,
  so no tidy table is rebuilt and nothing is re-parsed.
* **Only rules whose inputs changed are judged again.** A rule reads the series its conditions name; a pass
  re-runs it only when one of those series got points since it was last judged. A rule that has fired is
  not judged again until the end (each finding is printed once, the first time it fires); rules made only
  of ``missing`` checks judge an absence and wait for the end, as in the training callback.
* **Judging is throttled and budgeted.** A pass runs at most every ``min_interval`` seconds, only when
  points arrived, and only while the time spent judging stays within ``budget`` of the wall time (a token
  bucket: bursts are allowed, the average is bounded). The rules themselves still look at the whole history
  of the series they read (an overfitting turn is relative to the best eval loss ever seen), so a pass costs
  O(points of those series) with a small vectorised constant; the budget keeps the CPU share bounded when a
  history gets long, at the price of a longer wait between passes.
"""
from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from lossdoctor.exitcodes import SEVERITY_RANK
from lossdoctor.model import Finding, Provenance, Run, make_metrics

_INITIAL = 256


class _Column:
    """One metric's points in arrival order, kept step-sorted; the last value wins per step."""

    __slots__ = ("steps", "values", "n", "sorted")

    def __init__(self) -> None:
        self.steps = np.empty(_INITIAL, dtype="int64")
        self.values = np.empty(_INITIAL, dtype="float64")
        self.n = 0
        self.sorted = True

    def add(self, step: int, value: float) -> None:
        n = self.n
        if n and self.sorted:
            last = int(self.steps[n - 1])
            if step == last:
                self.values[n - 1] = value
                return
            if step < last:
                self.sorted = False
        if n == len(self.steps):
            self.steps = np.concatenate([self.steps, np.empty(n, dtype="int64")])
            self.values = np.concatenate([self.values, np.empty(n, dtype="float64")])
        self.steps[n] = step
        self.values[n] = value
        self.n = n + 1

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.sorted:       # out-of-order points (rare: a resumed run): sort once, last value per step
            st, va = self.steps[: self.n], self.values[: self.n]
            order = np.argsort(st, kind="stable")
            st, va = st[order], va[order]
            keep = np.r_[st[1:] != st[:-1], True] if len(st) else np.zeros(0, dtype=bool)
            st, va = st[keep], va[keep]
            self.n = len(st)
            self.steps[: self.n] = st
            self.values[: self.n] = va
            self.sorted = True
        return self.steps[: self.n], self.values[: self.n]

    @property
    def nbytes(self) -> int:
        return int(self.steps.nbytes + self.values.nbytes)


class LiveStore:
    """Points received so far: canonical metric → column, plus the raw names seen for each."""

    def __init__(self) -> None:
        self.columns: dict[str, _Column] = {}
        self.raw_names: dict[str, str] = {}        # raw → canonical
        self.points = 0
        self.last_step: int | None = None

    def canonical(self, raw: str) -> str:
        canon = self.raw_names.get(raw)
        if canon is None:
            from lossdoctor.metrics.names import canonicalise

            canon = self.raw_names[raw] = canonicalise(raw)
        return canon

    def add(self, step: int, raw: str, value: float) -> str:
        canon = self.canonical(raw)
        col = self.columns.get(canon)
        if col is None:
            col = self.columns[canon] = _Column()
        col.add(int(step), float(value))
        self.points += 1
        if self.last_step is None or step > self.last_step:
            self.last_step = int(step)
        return canon

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.columns.values())

    def snapshot(self, name: str, provenance: Provenance, config: Mapping[str, Any] | None = None,
                 state: str = "running") -> "LiveRun":
        """A Run over the current points (zero-copy views; valid until the next ``add``)."""
        last = [(c.view()[0][-1], m, c.view()[1][-1]) for m, c in sorted(self.columns.items()) if c.n]
        frame = pd.DataFrame({"step": np.asarray([x[0] for x in last], dtype="int64"),
                              "metric": [x[1] for x in last], "value": np.asarray([x[2] for x in last], dtype="float64"),
                              "raw_name": [x[1] for x in last]})
        return LiveRun(name=name, provenance=provenance, metrics=frame, config=dict(config or {}), state=state,
                       store=self)

    def to_run(self, name: str, provenance: Provenance, config: Mapping[str, Any] | None = None,
               state: str = "unknown") -> Run:
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
            from lossdoctor.model import empty_metrics

            frame = empty_metrics()
        else:
            frame = make_metrics(np.concatenate(steps), np.concatenate(raws), np.concatenate(values),
                                 metrics=np.concatenate(canons))
        return Run(name=name, provenance=provenance, metrics=frame, config=dict(config or {}), state=state)


@dataclass(frozen=True, eq=False)
class LiveRun(Run):
    """A Run whose series are views of a LiveStore's columns. Its ``metrics`` table holds only the last point
    of each metric (what ``missing`` and the facts ask of it: which metrics exist and the last step);
    ``n_points`` counts every point."""

    store: Any = field(default=None, repr=False)

    def _all_series(self) -> dict[str, pd.Series]:
        cache = self._series_cache
        if cache or self.store is None:
            return cache
        for metric in sorted(self.store.columns):
            steps, values = self.store.columns[metric].view()
            if len(steps):
                cache[metric] = pd.Series(values, index=pd.Index(steps, name="step", copy=False), name=metric,
                                          copy=False)
        return cache

    @property
    def n_points(self) -> int:
        return int(self.store.points) if self.store is not None else 0


def _series_patterns(cond: Any) -> tuple[str, ...]:
    """The series (names or globs) a condition reads, from the args its check kind declares as series."""
    from lossdoctor.rules.checks import registry

    if cond.op != "check":
        return tuple(p for child in cond.children for p in _series_patterns(child))
    check = registry().get(cond.kind)
    if check is None:
        return ("*",)
    out: list[str] = []
    for name, param in check.params.items():
        if param.type not in ("series", "series_list"):
            continue
        value = cond.args.get(name, param.default)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(str(v) for v in value)
    return tuple(out) or ("*",)


def _only_missing(cond: Any) -> bool:
    if cond.op == "check":
        return cond.kind == "missing"
    return bool(cond.children) and all(_only_missing(c) for c in cond.children)


@dataclass
class LiveJudge:
    """Judges a LiveStore with a RuleSet as points arrive; remembers what fired first and when."""

    ruleset: Any
    min_interval: float = 0.25          # seconds between passes
    budget: float = 0.03                # share of wall time a pass may use on average
    burst: float = 1.0                  # seconds of judging that may be spent at once
    fired: dict[str, Finding] = field(default_factory=dict)
    crashed: dict[str, str] = field(default_factory=dict)
    passes: int = 0
    spent: float = 0.0
    _credit: float = 0.0
    _last_pass: float | None = None
    _last_credit_at: float | None = None
    _dirty: set[str] = field(default_factory=set)
    _patterns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _deferred: frozenset[str] = frozenset()
    _judged_once: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._patterns = {r.id: _series_patterns(r.when) for r in self.ruleset.rules}
        self._deferred = frozenset(r.id for r in self.ruleset.rules if _only_missing(r.when))
        self._credit = self.burst

    def touched(self, metrics: Iterable[str]) -> None:
        """Say which canonical metrics got points since the last pass."""
        self._dirty.update(metrics)

    @property
    def pending(self) -> bool:
        return bool(self._dirty)

    def _refill(self, now: float) -> None:
        if self._last_credit_at is not None:
            self._credit = min(self.burst, self._credit + (now - self._last_credit_at) * self.budget)
        self._last_credit_at = now

    def due(self, now: float) -> bool:
        """Points arrived, the interval has passed and the budget allows a pass."""
        if not self._dirty:
            return False
        if self._last_pass is not None and now - self._last_pass < self.min_interval:
            return False
        self._refill(now)
        return self._credit > 0

    def _wants(self, rule_id: str, dirty: set[str], final: bool) -> bool:
        if final:
            return rule_id not in self.fired or rule_id in self._deferred
        if rule_id in self.fired or rule_id in self._deferred:
            return False
        if rule_id not in self._judged_once:
            return True
        for pattern in self._patterns.get(rule_id, ("*",)):
            if pattern == "*" or any(fnmatch.fnmatchcase(m, pattern) for m in dirty):
                return True
        return False

    def judge(self, run: Run, now: float, final: bool = False) -> list[Finding]:
        """One pass over ``run`` (a LiveRun snapshot); returns the findings that fired for the first time."""
        from lossdoctor.rules.engine import evaluate_rule, sort_key

        dirty, self._dirty = self._dirty, set()
        t0 = time.perf_counter()
        new: list[Finding] = []
        for rule in self.ruleset.rules:
            if not self._wants(rule.id, dirty, final):
                continue
            self._judged_once.add(rule.id)
            try:
                finding = evaluate_rule(rule, run)
            except Exception as exc:  # noqa: BLE001 - reported once, exit 2 at the end (as analyze)
                self.crashed.setdefault(rule.id, f"{rule.id}: {type(exc).__name__}: {exc}")
                continue
            if finding is not None and rule.id not in self.fired:
                self.fired[rule.id] = finding
                new.append(finding)
        cost = time.perf_counter() - t0
        self.spent += cost
        self.passes += 1
        self._refill(now)
        self._credit -= cost
        self._last_pass = now
        new.sort(key=sort_key)
        return new

    def worst(self) -> str | None:
        if not self.fired:
            return None
        return max((f.severity for f in self.fired.values()), key=SEVERITY_RANK.__getitem__)
