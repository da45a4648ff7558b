"""Diagnosis → ReportData: everything a report shows, decided once, with no rendering.

Why a separate layer (coverage.py's HtmlDataGeneration / HtmlReporter split): the HTML, Markdown and
terminal renderers must agree on what a run "says" (which plots, which caveats, how a step range or a
number is written). Deciding it here, in pure code over frozen dataclasses, keeps the templates dumb
(they only lay out ReportData) and lets tests check the content without parsing HTML.

Strings in ReportData are *raw* (unescaped): each renderer escapes for its own medium.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from lossdoctor.model import Diagnosis, Finding, Run

#: Metrics that only count things (never worth a plot of their own).
BOOKKEEPING_METRICS: frozenset[str] = frozenset({
    "train/epoch", "train/global_step", "train/num_tokens", "eval/runtime", "eval/samples_per_second",
    "eval/steps_per_second", "train/runtime", "train/samples_per_second", "train/steps_per_second",
    "train/total_flos", "_step", "_runtime", "_timestamp",
})

#: The headline plots: (key, title, metrics drawn together, y label).
MAIN_PLOTS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("loss", "Loss", ("train/loss", "eval/loss"), "loss"),
    ("learning_rate", "Learning rate", ("train/learning_rate",), "learning rate"),
    ("grad_norm", "Gradient norm", ("train/grad_norm",), "grad_norm"),
    ("eval_perplexity", "Eval perplexity", ("eval/perplexity",), "perplexity"),
)

#: At most this many extra metrics get a small-multiple plot (alphabetical order).
MAX_EXTRA_PLOTS = 6

STEP_SOURCE_WORDS: Mapping[str, str] = {
    "logged": "optimizer steps as logged by the trainer",
    "tqdm": "steps read from the tqdm progress counter printed beside each log line",
    "epoch*cadence": "steps inferred from epoch x steps-per-epoch (the logging cadence); approximate",
    "ordinal": "only the order of the points is known: the x axis is the point index, not the optimizer step",
    "train/global_step": "W&B train/global_step (the Hugging Face integration's step metric)",
    "_step": "W&B _step (the count of wandb.log calls, not necessarily optimizer steps)",
}

STATE_CAVEATS: Mapping[str, str] = {
    "running": "This run is still running: the diagnosis covers only the steps logged so far.",
    "crashed": "This run crashed: the diagnosis covers the steps logged before it stopped.",
    "interrupted": "This run was interrupted: the diagnosis covers the steps logged before it stopped.",
    "unknown": "The source does not say whether this run finished; it may be incomplete.",
}

SEVERITY_ORDER: tuple[str, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Line:
    """One metric drawn on a plot; non-finite values stay in ``values`` (plots mark them)."""

    metric: str
    label: str
    steps: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Span:
    """A finding's step range shaded on a plot. ``gid`` is the SVG element id (unique per report)."""

    rule_id: str
    severity: str
    first_step: int
    last_step: int
    gid: str


@dataclass(frozen=True)
class Marker:
    """The best eval point (drawn on the loss plot)."""

    step: int
    value: float
    label: str
    gid: str = "best-eval-step"


@dataclass(frozen=True)
class PlotSpec:
    key: str                  # file stem: plots/<key>.png
    title: str
    ylabel: str
    lines: tuple[Line, ...]
    spans: tuple[Span, ...]
    marker: Marker | None
    small: bool               # a small multiple (extra metric) rather than a headline plot
    log_y: bool


@dataclass(frozen=True)
class FindingView:
    rule_id: str
    severity: str
    title: str
    message: str
    remediation: tuple[str, ...]
    steps: str                # "20-100", "40", or "-" (no step range)
    series: tuple[str, ...]
    evidence: tuple[tuple[str, str], ...]   # sorted key, display value
    origin: str
    confidence: str           # "" when 1.0


@dataclass(frozen=True)
class RunInfo:
    name: str
    kind: str
    location: str
    step_source: str
    step_source_words: str
    state: str
    confidence: float
    notes: tuple[str, ...]
    created: str
    tags: tuple[str, ...]
    n_points: int
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class ReportData:
    title: str
    verdict: str
    level: str                # error | warning | info | ok | incomplete (CSS class / colour)
    caveats: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]      # label, display value
    findings: tuple[FindingView, ...]
    counts: tuple[tuple[str, int], ...]     # severity, count (error, warning, info)
    crashed_checks: tuple[str, ...]
    run: RunInfo
    config: tuple[tuple[str, str], ...]     # sorted key, display value
    plots: tuple[PlotSpec, ...]
    rule_sources: tuple[str, ...]
    version: str


# --------------------------------------------------------------------------- formatting helpers

def fmt_num(value: Any) -> str:
    """Numbers as people read them: ints plain, floats to 4 significant digits, NaN/inf spelled out."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = f"{v:.4g}"
        return text if any(c in text for c in ".en") else text + ".0"   # 1.0 stays visibly a float
    return str(value)


def fmt_value(value: Any) -> str:
    """A config/evidence value as text (lists and dicts as compact JSON, so they stay one line)."""
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.dumps(value, sort_keys=True, default=str, allow_nan=True)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isfinite(v) and v != int(v):
            return f"{v:.6g}"
    return fmt_num(value)


def fmt_steps(first: int | None, last: int | None) -> str:
    if first is None and last is None:
        return "-"
    if first is None or last is None or first == last:
        return str(first if first is not None else last)
    return f"{first}-{last}"


_GID_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def span_gid(rule_id: str) -> str:
    """``finding-<rule id>``: the id tests and readers look up (characters outside [A-Za-z0-9_-] → '-')."""
    return "finding-" + (_GID_BAD.sub("-", rule_id) or "rule")


# --------------------------------------------------------------------------- pieces

def _caveats(diagnosis: Diagnosis) -> tuple[str, ...]:
    run = diagnosis.run
    out: list[str] = []
    if diagnosis.crashed_checks:
        out.append(f"Analysis incomplete: {len(diagnosis.crashed_checks)} rule check(s) crashed "
                   "(listed below); their rules were not judged.")
    if run.state in STATE_CAVEATS:
        out.append(STATE_CAVEATS[run.state])
    if run.provenance.confidence < 1.0:
        out.append(f"Values were recovered with confidence {run.provenance.confidence:.2f} "
                   "(e.g. from sparklines): the shapes hold, exact numbers may not.")
    if run.provenance.step_source in ("epoch*cadence", "ordinal"):
        out.append("Step axis: " + STEP_SOURCE_WORDS[run.provenance.step_source] + ".")
    return tuple(out)


def _facts(diagnosis: Diagnosis) -> tuple[tuple[str, str], ...]:
    f = diagnosis.facts
    rows: list[tuple[str, str]] = []
    if f.best_eval_step is not None:
        rows.append(("Best eval loss", f"{fmt_num(f.best_eval_loss)} at step {f.best_eval_step}"))
        rows.append(("Final eval loss", f"{fmt_num(f.final_eval_loss)} at step {f.final_eval_step}"))
        gap = f.final_gap_pct
        rows.append(("Final vs best eval loss", "-" if gap is None else
                     (f"+{gap:.1f}%" if math.isfinite(gap) and gap >= 0 else f"{fmt_num(gap)}%")))
        helped = f.early_stopping_would_help
        if helped is None:
            rows.append(("Early stopping would have helped", "-"))
        elif helped:
            on = "" if f.early_stop_metric in (None, "eval/loss") else f", judged on {f.early_stop_metric}"
            rows.append(("Early stopping would have helped",
                         f"yes: stop at step {f.early_stop_step if f.early_stop_step is not None else f.best_eval_step}"
                         f" (load_best_model_at_end{on})"))
        else:
            rows.append(("Early stopping would have helped", "no"))
    else:
        rows.append(("Eval loss", "not logged: overfitting cannot be judged"))
    rows.append(("Final train loss", fmt_num(f.final_train_loss)))
    rows.append(("Last step", fmt_num(f.last_step)))
    rows.append(("Points logged", f"{f.train_points} train loss, {f.eval_points} eval loss"))
    return tuple(rows)


def _finding_view(f: Finding) -> FindingView:
    return FindingView(
        rule_id=f.rule_id, severity=f.severity, title=f.title, message=f.message,
        remediation=tuple(f.remediation), steps=fmt_steps(f.first_step, f.last_step), series=tuple(f.series),
        evidence=tuple((str(k), fmt_value(v)) for k, v in sorted(f.evidence.items(), key=lambda kv: str(kv[0]))),
        origin=f.origin, confidence="" if f.confidence >= 1.0 else f"{f.confidence:.2f}")


def _level(diagnosis: Diagnosis) -> str:
    if diagnosis.crashed_checks:
        return "incomplete"
    return diagnosis.worst_severity or "ok"


#: a plotted line keeps at most this many points (a plot is ~1000 px wide); see decimate()
MAX_PLOT_POINTS = 2000


def decimate(steps: np.ndarray, values: np.ndarray, limit: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Indices to plot: all of them up to ``limit``; beyond, per bucket of consecutive points the first,
    the lowest, the highest and the last (so spikes, minima and the shape survive), plus every non-finite
    point (NaN/inf markers must not vanish). Deterministic, in step order."""
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
    return np.flatnonzero(keep)


def _line(run: Run, metric: str) -> Line | None:
    s = run.series(metric)
    if s.empty:
        return None
    steps, values = s.index.to_numpy(dtype="int64"), s.to_numpy(dtype="float64")
    idx = decimate(steps, values)
    return Line(metric=metric, label=metric, steps=tuple(steps[idx].tolist()), values=tuple(values[idx].tolist()))


def _log_y(lines: tuple[Line, ...]) -> bool:
    """Log scale when a positive series spans more than three decades (grad_norm blow-ups, LR warmup)."""
    vals = np.array([v for ln in lines for v in ln.values], dtype="float64")
    vals = vals[np.isfinite(vals)]
    if vals.size < 2 or (vals <= 0).any():
        return False
    return bool(vals.max() / vals.min() > 1e3)


def _plots(diagnosis: Diagnosis) -> tuple[PlotSpec, ...]:
    run = diagnosis.run
    present = run.metric_names()
    groups: list[tuple[str, str, tuple[str, ...], str, bool]] = []
    used: set[str] = set()
    for key, title, metrics, ylabel in MAIN_PLOTS:
        have = tuple(m for m in metrics if m in present)
        if have:
            groups.append((key, title, have, ylabel, False))
            used.update(have)
    extras = [m for m in present if m not in used and m not in BOOKKEEPING_METRICS]
    for m in extras[:MAX_EXTRA_PLOTS]:
        key = "metric-" + (_GID_BAD.sub("_", m).strip("_") or "x")
        groups.append((key, m, (m,), m, True))

    seen_gid: dict[str, int] = {}
    facts = diagnosis.facts
    out: list[PlotSpec] = []
    keys_used: set[str] = set()
    for key, title, metrics, ylabel, small in groups:
        while key in keys_used:   # two odd names can slug to the same key
            key += "_"
        keys_used.add(key)
        lines = tuple(ln for ln in (_line(run, m) for m in metrics) if ln is not None)
        spans: list[Span] = []
        for f in diagnosis.findings:
            if f.first_step is None and f.last_step is None:
                continue
            if not set(f.series) & set(metrics):
                continue
            base = span_gid(f.rule_id)
            seen_gid[base] = seen_gid.get(base, 0) + 1
            gid = base if seen_gid[base] == 1 else f"{base}-{seen_gid[base]}"
            first = f.first_step if f.first_step is not None else f.last_step
            last = f.last_step if f.last_step is not None else f.first_step
            spans.append(Span(rule_id=f.rule_id, severity=f.severity, first_step=int(first),
                              last_step=int(last), gid=gid))
        marker = None
        if "eval/loss" in metrics and facts.best_eval_step is not None and facts.best_eval_loss is not None:
            marker = Marker(step=int(facts.best_eval_step), value=float(facts.best_eval_loss),
                            label=f"best eval {fmt_num(facts.best_eval_loss)} @ step {facts.best_eval_step}")
        out.append(PlotSpec(key=key, title=title, ylabel=ylabel, lines=lines, spans=tuple(spans),
                            marker=marker, small=small, log_y=_log_y(lines)))
    return tuple(out)


def build_report_data(diagnosis: Diagnosis) -> ReportData:
    """Pure: the same Diagnosis always gives the same ReportData (no clock, no environment)."""
    from lossdoctor import __version__

    run = diagnosis.run
    prov = run.provenance
    counts = tuple((sev, sum(1 for f in diagnosis.findings if f.severity == sev)) for sev in SEVERITY_ORDER)
    info = RunInfo(
        name=run.name, kind=prov.kind, location=prov.location, step_source=prov.step_source,
        step_source_words=STEP_SOURCE_WORDS.get(prov.step_source, prov.step_source), state=run.state,
        confidence=float(prov.confidence), notes=tuple(prov.notes), created=run.created or "",
        tags=tuple(run.tags), n_points=run.n_points, metrics=run.metric_names())
    config = tuple((str(k), fmt_value(v)) for k, v in sorted(run.config.items(), key=lambda kv: str(kv[0])))
    return ReportData(
        title=f"lossdoctor: {run.name}", verdict=diagnosis.verdict, level=_level(diagnosis),
        caveats=_caveats(diagnosis), facts=_facts(diagnosis),
        findings=tuple(_finding_view(f) for f in diagnosis.findings), counts=counts,
        crashed_checks=tuple(diagnosis.crashed_checks), run=info, config=config, plots=_plots(diagnosis),
        rule_sources=tuple(diagnosis.rule_sources), version=__version__)
