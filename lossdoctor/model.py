"""Data that crosses module boundaries: Run, Finding, Facts, Diagnosis (frozen dataclasses).

The metric table of a Run is a *tidy long* DataFrame (tbparse style) with columns
``step:int64, metric:str (canonical), value:float64 (NaN/inf kept), raw_name:str``.
Wide frames exist only for plotting (``Run.wide()``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

METRIC_COLUMNS: tuple[str, ...] = ("step", "metric", "value", "raw_name")

#: Where a Run's step axis came from (said in every report).
STEP_SOURCES: tuple[str, ...] = (
    "logged",          # the source carries the step (trainer_state.json, CSV/JSONL step column)
    "tqdm",            # HF console: the tqdm counter printed with the dict
    "epoch*cadence",   # HF console: epoch × steps-per-epoch inferred from the logging cadence
    "ordinal",         # only the order of points is known (sparklines, step-less logs)
    "train/global_step",  # W&B: the HF integration's defined step metric
    "_step",           # W&B: its own log-call counter
)

#: Run states; anything but "finished" is said in the report.
RUN_STATES: tuple[str, ...] = ("finished", "running", "crashed", "interrupted", "unknown")


@dataclass(frozen=True)
class Provenance:
    """Where a run came from and how it was read."""

    kind: str                      # source kind, e.g. "hf-console", "trainer-state", "wandb-offline"
    location: str                  # path or URL as given by the user (never carries credentials)
    step_source: str = "logged"    # one of STEP_SOURCES
    notes: tuple[str, ...] = ()    # reader remarks: recovered records, skipped lines, lower confidence ...
    confidence: float = 1.0        # 1.0 for exact values; lower for shapes recovered from sparklines


@dataclass(frozen=True, eq=False)
class Run:
    """One training run: metadata + config + one step-indexed tidy metric table."""

    name: str
    provenance: Provenance
    metrics: pd.DataFrame
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    state: str = "unknown"
    created: str | None = None
    tags: tuple[str, ...] = ()
    #: per-metric Series, built once on first use (the metric table is not modified after construction)
    _series_cache: dict[str, pd.Series] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _all_series(self) -> dict[str, pd.Series]:
        """Every metric as a step-sorted Series in one pass over the table (last value wins per step)."""
        cache = self._series_cache
        if cache or self.metrics.empty:
            return cache
        frame = self.metrics
        codes, names = frame["metric"].factorize(sort=True)     # on the column itself: no object array
        codes = np.asarray(codes)
        steps = frame["step"].to_numpy(dtype="int64")
        values = frame["value"].to_numpy(dtype="float64")
        # stable sort by (metric, step) keeps file order within a step, so "last" is the last written;
        # tables are usually step-sorted already, and then a stable sort on the metric alone is enough
        if len(steps) < 2 or bool((steps[1:] >= steps[:-1]).all()):
            order = np.argsort(codes, kind="stable")
        else:
            order = np.lexsort((steps, codes))
        c, st, va = codes[order], steps[order], values[order]
        n = len(c)
        last = np.ones(n, dtype=bool)
        if n > 1:
            last[:-1] = (c[1:] != c[:-1]) | (st[1:] != st[:-1])
        c, st, va = c[last], st[last], va[last]
        bounds = np.searchsorted(c, np.arange(len(names) + 1))
        for i, name in enumerate(names):
            a, b = bounds[i], bounds[i + 1]
            idx = st[a:b].copy()
            vals = va[a:b].copy()
            idx.flags.writeable = False
            vals.flags.writeable = False
            cache[str(name)] = pd.Series(vals, index=pd.Index(idx, name="step"), name=str(name))
        return cache

    def metric_names(self) -> tuple[str, ...]:
        return tuple(self._all_series()) if len(self.metrics) else ()

    def has(self, metric: str) -> bool:
        return metric in self._all_series()

    def series(self, metric: str) -> pd.Series:
        """The metric as a step-indexed float Series, sorted by step; the last value wins per step.
        The Series is shared between callers (read-only values): copy before modifying it."""
        found = self._all_series().get(metric)
        if found is None:
            return pd.Series([], index=pd.Index([], dtype="int64", name="step"), dtype="float64", name=metric)
        return found

    def wide(self) -> pd.DataFrame:
        """step × metric table (renderers only)."""
        if self.metrics.empty:
            return pd.DataFrame()
        frame = self.metrics.drop_duplicates(["step", "metric"], keep="last")
        return frame.pivot(index="step", columns="metric", values="value").sort_index()

    @property
    def n_points(self) -> int:
        return int(len(self.metrics))


def empty_metrics() -> pd.DataFrame:
    return pd.DataFrame({
        "step": pd.Series([], dtype="int64"),
        "metric": pd.Series([], dtype="object"),
        "value": pd.Series([], dtype="float64"),
        "raw_name": pd.Series([], dtype="object"),
    })


def make_metrics(steps: Any, raw_names: Any, values: Any, metrics: Any | None = None) -> pd.DataFrame:
    """Build the tidy table from parallel arrays; canonical names from the alias table unless given."""
    from lossdoctor.metrics.names import bounded_names, canonicalise_many

    steps_arr = np.asarray(steps, dtype="int64")
    raw = bounded_names(raw_names)
    vals = np.asarray(values, dtype="float64")
    canon = np.asarray(metrics, dtype="object") if metrics is not None else canonicalise_many(raw)
    frame = pd.DataFrame({"step": steps_arr, "metric": canon, "value": vals, "raw_name": raw})
    return frame.sort_values(["step", "metric"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Finding:
    """One rule that fired, with the evidence that made it fire."""

    rule_id: str
    severity: str                        # info | warning | error
    title: str
    message: str                         # rendered from the rule's template
    remediation: tuple[str, ...]
    series: tuple[str, ...]              # canonical metrics the rule looked at
    first_step: int | None
    last_step: int | None
    evidence: Mapping[str, Any]
    origin: str                          # "rules/default.yaml:12"
    confidence: float = 1.0
    category: str = ""


@dataclass(frozen=True)
class Facts:
    """The numbers a person wants first."""

    best_eval_step: int | None = None
    best_eval_loss: float | None = None
    final_eval_step: int | None = None
    final_eval_loss: float | None = None
    final_gap_pct: float | None = None        # (final - best) / best × 100
    early_stopping_would_help: bool | None = None
    final_train_loss: float | None = None
    eval_points: int = 0
    train_points: int = 0
    last_step: int | None = None


@dataclass(frozen=True)
class Diagnosis:
    run: Run
    findings: tuple[Finding, ...]
    facts: Facts
    verdict: str
    crashed_checks: tuple[str, ...] = ()      # "rule-id: ExceptionType: message"
    rule_sources: tuple[str, ...] = ()
    schema_version: int = 1

    @property
    def worst_severity(self) -> str | None:
        from lossdoctor.exitcodes import SEVERITY_RANK

        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__)
