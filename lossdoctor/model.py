"""Data that crosses module boundaries: Run, Finding, Facts, Diagnosis (frozen dataclasses).

The metric table of a Run is a *tidy long* table (tbparse style) held as numpy columns,
:class:`lossdoctor.table.MetricTable`: ``step:int64, metric (canonical; codes into a few names),
value:float64 (NaN/inf kept), raw_name (codes)``, optionally ``wall_time`` and ``line`` (the 1-based line of
the source file, for text logs; reports point at it). ``Run.series(name)`` gives one metric as a
:class:`lossdoctor.table.Series` (numpy steps and values); ``Run.frame()`` / ``Series.to_pandas()`` are the
pandas views, and the only places this module touches pandas (imported on call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossdoctor.table import MetricTable, Series
from lossdoctor.tidy import tidy_points

METRIC_COLUMNS: tuple[str, ...] = ("step", "metric", "value", "raw_name")


@dataclass(frozen=True)
class Provenance:
    """Where a run came from and how it was read."""

    kind: str  # source kind, e.g. "hf-console", "trainer-state", "wandb-offline"
    location: str  # path or URL as given by the user (never carries credentials)
    #: where the step axis came from, said in every report: "logged" (the source carries it), "tqdm" (the console's
    #: progress counter), "epoch*cadence", "ordinal" (only the order is known), a W&B step key, ...
    step_source: str = "logged"
    notes: tuple[str, ...] = ()  # reader remarks: recovered records, skipped lines, lower confidence ...
    confidence: float = 1.0  # 1.0 for exact values; lower for shapes recovered from sparklines


@dataclass(frozen=True, eq=False)
class Run:
    """One training run: metadata + config + one step-indexed tidy metric table.

    ``metrics`` is a :class:`MetricTable`; a pandas DataFrame with step / metric / value (/ raw_name) columns
    is accepted too and converted on construction."""

    name: str
    provenance: Provenance
    metrics: MetricTable
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    state: str = "unknown"  # finished | running | crashed | interrupted | unknown (reported unless finished)
    created: str | None = None
    tags: tuple[str, ...] = ()
    #: per-metric Series, built once on first use (the metric table is not modified after construction)
    _series_cache: dict[str, Series] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, MetricTable):
            object.__setattr__(self, "metrics", MetricTable.from_frame(self.metrics))

    def _all_series(self) -> dict[str, Series]:
        """Every metric as a step-sorted Series in one pass over the table (last value wins per step)."""
        cache = self._series_cache
        table = self.metrics
        if cache or not len(table):
            return cache
        codes, steps = table.metric_codes, table.step
        if len(steps) > 1 and not bool(
            ((codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (steps[1:] > steps[:-1]))).all()
        ):
            # a table not built by the tidy constructor (a DataFrame by hand, tables concatenated): its points
            # resolved by the constructor's policy (the last row per (metric, step)); the table stays as given
            from lossdoctor.tidy import retidy

            table = retidy(table).frame
        # (metric, step) order with one point per step: every series is a view of the table, no copy
        codes, steps, values, names = table.metric_codes, table.step, table.value, table.metric_names
        bounds = np.searchsorted(codes, np.arange(len(names) + 1))
        for i, name in enumerate(names):
            a, b = int(bounds[i]), int(bounds[i + 1])
            if a < b:
                cache[name] = _frozen_series(steps[a:b], values[a:b], name)
        return cache

    def metric_names(self) -> tuple[str, ...]:
        return tuple(self._all_series()) if len(self.metrics) else ()

    def has(self, metric: str) -> bool:
        return metric in self._all_series()

    def series(self, metric: str) -> Series:
        """The metric as a step-indexed float :class:`Series` (numpy ``index`` and ``values``), sorted by step;
        the last value wins per step. Shared between callers (read-only arrays). ``.to_pandas()`` gives a
        pandas Series."""
        found = self._all_series().get(metric)
        if found is None:
            return Series.empty_of(metric)
        return found

    def frame(self) -> Any:
        """The tidy metric table as a pandas DataFrame (pandas imported here; the analysis never calls it)."""
        return self.metrics.to_pandas()

    @property
    def last_step(self) -> int | None:
        """The highest step of any point (None for an empty table)."""
        return int(self.metrics.step.max()) if len(self.metrics) else None

    @property
    def n_points(self) -> int:
        return int(len(self.metrics))


def _frozen_series(steps: np.ndarray, values: np.ndarray, name: str) -> Series:
    steps.flags.writeable = False
    values.flags.writeable = False
    return Series(steps, values, name)


def empty_metrics() -> MetricTable:
    return MetricTable.blank()


def make_metrics(steps: Any, raw_names: Any, values: Any, metrics: Any | None = None) -> MetricTable:
    """Build the tidy table from parallel arrays (canonical names from the alias table unless given), through
    the one constructor, :func:`lossdoctor.tidy.tidy_points` (its notes are dropped here: readers that report
    what was dropped call it directly)."""

    return tidy_points(steps, raw_names, values, canonical=metrics).frame


#: a finding's severity, least to most severe; the --fail-on gate (lossdoctor/exitcodes.py) ranks by it
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")
SEVERITY_RANK: dict[str, int] = {name: i for i, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Finding:
    """One rule that fired, with the evidence that made it fire."""

    rule_id: str
    severity: str  # info | warning | error
    title: str
    message: str  # rendered from the rule's template
    remediation: tuple[str, ...]
    series: tuple[str, ...]  # canonical metrics the rule looked at
    first_step: int | None
    last_step: int | None
    evidence: Mapping[str, Any]
    origin: str  # "rules/default.yaml:12"
    confidence: float = 1.0
    category: str = ""


@dataclass(frozen=True)
class Facts:
    """The numbers a person wants first."""

    best_eval_step: int | None = None
    best_eval_loss: float | None = None
    final_eval_step: int | None = None
    final_eval_loss: float | None = None
    final_gap_pct: float | None = None  # (final - best) / best × 100
    early_stopping_would_help: bool | None = None
    early_stop_step: int | None = None  # where to stop (the judged metric's best), when it would help
    early_stop_metric: str | None = None  # the metric that judgement was made on (eval/loss or selected)
    final_train_loss: float | None = None
    eval_points: int = 0
    train_points: int = 0
    last_step: int | None = None


@dataclass(frozen=True)
class Objective:
    """What the run optimises (lossdoctor/metrics/objectives.yaml): rules judge only the objectives they name."""

    id: str = "sft"  # sft | preference | rl | reward-model | classification | speech
    title: str = ""
    how: str = "default"  # "detected" | "given" (--objective) | "default" (no sign found)
    evidence: tuple[str, ...] = ()  # the signs that decided it: "metric train/reward", "config loss_type=sigmoid"
    given_as: str = ""  # the name passed to --objective, when it was an alias (e.g. "dpo")


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule in force came out on a run (CI reports: one test case per rule)."""

    rule_id: str
    severity: str
    title: str
    origin: str  # "rules/default.yaml:12"
    status: str  # fired | passed | skipped | crashed
    reason: str = ""  # why it was skipped (e.g. the series it needs is not logged), or the crash
    description: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """What the rules found on one run: findings, facts, verdict, and which rule files judged it."""

    run: Run
    findings: tuple[Finding, ...]
    facts: Facts
    verdict: str
    crashed_checks: tuple[str, ...] = ()  # "rule-id: ExceptionType: message"
    rule_sources: tuple[str, ...] = ()
    schema_version: int = 1
    objective: Objective = field(default_factory=Objective)
    rules_not_applied: tuple[str, ...] = ()  # enabled rules that do not judge this objective
    rule_outcomes: tuple[RuleOutcome, ...] = ()  # every rule in force, in rule-set order (empty: not recorded)

    @property
    def worst_severity(self) -> str | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__)

    def __repr__(self) -> str:
        """Short (the default dataclass repr prints the whole metric table; notebooks save it as text/plain)."""
        rules = ", ".join(f.rule_id for f in self.findings)
        return f"<Diagnosis of {self.run.name!r}: {self.verdict!r}; findings: [{rules}]>"

    def _repr_html_(self) -> str:
        """Shown inline by Jupyter / Colab / VS Code: findings first (lossdoctor/report/inline.py)."""
        from lossdoctor.report.inline import render_inline_html

        return render_inline_html(self)

    def _repr_markdown_(self) -> str:
        from lossdoctor.report.inline import render_inline_markdown

        return render_inline_markdown(self)
