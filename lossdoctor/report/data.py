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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossdoctor import __version__
from lossdoctor.diagnosis import is_shape_only
from lossdoctor.metrics.objectives import describe, judged_on
from lossdoctor.model import SEVERITY_RANK, Diagnosis, Finding, Run
from lossdoctor.table import decimate

#: Metrics that only count things (never worth a plot of their own).
BOOKKEEPING_METRICS: frozenset[str] = frozenset(
    {
        "train/epoch",
        "train/global_step",
        "train/num_tokens",
        "eval/runtime",
        "eval/samples_per_second",
        "eval/steps_per_second",
        "train/runtime",
        "train/samples_per_second",
        "train/steps_per_second",
        "train/total_flos",
        "_step",
        "_runtime",
        "_timestamp",
    }
)

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
class ReportOptions:
    """What the user asked of the report (not of the run): passed from the CLI through ``render_many``."""

    full_series: bool = False  # diagnosis.json: every point instead of the plotted (decimated) ones


@dataclass(frozen=True)
class Line:
    """One metric drawn on a plot; non-finite values stay in ``values`` (plots mark them)."""

    metric: str
    label: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    colour: str = ""  # "" = the metric's colour; compare colours lines by run


@dataclass(frozen=True)
class Span:
    """Where a finding holds, shaded on a plot. ``gid`` is the SVG element id (unique per report); ``ranges``
    are the step ranges (inclusive) where the finding's condition holds, ``first_step``..``last_step`` their
    hull."""

    rule_id: str
    severity: str
    first_step: int
    last_step: int
    gid: str
    ranges: tuple[tuple[int, int], ...] = ()
    colour: str = ""  # "" = the severity's colour; compare colours spans by run
    label: str = ""  # legend text; "" = "rule (severity)"


@dataclass(frozen=True)
class Marker:
    """The best eval point (drawn on the loss plot)."""

    step: int
    value: float
    label: str
    gid: str = "best-eval-step"


@dataclass(frozen=True)
class PlotSpec:
    """One plot: its lines (decimated), the findings' spans over it and an optional marker."""

    key: str  # stable slug (HTML id plot-<key>)
    title: str
    ylabel: str
    lines: tuple[Line, ...]
    spans: tuple[Span, ...]
    marker: Marker | None
    small: bool  # a small multiple (extra metric) rather than a headline plot
    log_y: bool
    group: str = "main"  # "main" | "extra" | "throughput" (throughput and token counts come last)


@dataclass(frozen=True)
class FindingView:
    """One finding as every report shows it (raw strings: each renderer escapes them)."""

    rule_id: str
    severity: str
    title: str
    message: str
    remediation: tuple[str, ...]
    steps: str  # "20-100", "40", or "-" (no step range)
    series: tuple[str, ...]
    evidence: tuple[tuple[str, str], ...]  # every key, sorted, display value
    origin: str
    confidence: str  # "" when 1.0
    key_evidence: tuple[tuple[str, str], ...] = ()  # the few telling values, rounded (shown first)
    note: str = ""  # a caveat on the message's numbers (recovered shapes)
    holds: tuple[tuple[int, int], ...] = ()  # step ranges where the finding holds (inclusive)
    holds_text: str = "-"  # the same as text: "80-192", "1-49", "30, 40-50"
    line: int | None = None  # line of the log where it starts, when the reader knows


@dataclass(frozen=True)
class TimelineRow:
    """One rule's firing step ranges on the findings timeline."""

    rule_id: str
    severity: str
    title: str
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Timeline:
    """The health strip: one row per finding with a step range, over the run's whole step axis."""

    first_step: int
    last_step: int
    rows: tuple[TimelineRow, ...]
    best_eval_step: int | None = None


@dataclass(frozen=True)
class Curve:
    """A headline metric in a few characters: a Unicode sparkline and its first / best / last values."""

    metric: str
    spark: str
    first: str
    last: str
    low: str  # lowest finite value and its step, e.g. "0.7625 @ 180"
    points: int


@dataclass(frozen=True)
class RunInfo:
    """The run's identity and provenance, as the reports print it."""

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
    public_location: str = ""  # location without a local absolute directory (for Markdown / CI output)


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows about one diagnosis, decided once for every format."""

    title: str
    verdict: str
    level: str  # error | warning | info | ok | incomplete (CSS class / colour)
    objective: str  # what the run optimises and how that was decided (one line)
    caveats: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]  # label, display value
    findings: tuple[FindingView, ...]
    counts: tuple[tuple[str, int], ...]  # severity, count (error, warning, info)
    crashed_checks: tuple[str, ...]
    run: RunInfo
    config: tuple[tuple[str, str], ...]  # sorted key, display value
    plots: tuple[PlotSpec, ...]
    rule_sources: tuple[str, ...]
    version: str
    timeline: Timeline | None = None
    curves: tuple[Curve, ...] = ()
    key_steps: tuple[tuple[str, ...], ...] = ()  # header row, then one row per key step (Markdown table)
    options: ReportOptions = ReportOptions()


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
        return text if any(c in text for c in ".en") else text + ".0"  # 1.0 stays visibly a float
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

_ABS_PATH = re.compile(r"""(?<![^\s"'(=,\[])(?:/|[A-Za-z]:[\\/]|~[\\/])[^\s"',;|()<>]+""")


def public_text(text: str) -> str:
    """``text`` with every local absolute path cut to its last component (``/home/me/runs/x.log`` →
    ``…/x.log``): what a PR comment or a CI log may show of a machine's directories. URLs are kept."""

    def cut(m: re.Match[str]) -> str:
        path = m.group(0).rstrip("/\\")
        tail = re.split(r"[\\/]", path)[-1] if path else ""
        return "…/" + tail if tail else "…/"

    return _ABS_PATH.sub(cut, str(text))


def _caveats(diagnosis: Diagnosis) -> tuple[str, ...]:
    run = diagnosis.run
    out: list[str] = []
    if diagnosis.crashed_checks:
        out.append(
            f"Analysis incomplete: {len(diagnosis.crashed_checks)} rule check(s) crashed "
            "(listed below); their rules were not judged."
        )
    if run.state in STATE_CAVEATS:
        out.append(STATE_CAVEATS[run.state])
    if run.provenance.confidence < 1.0:
        out.append(
            f"Values were recovered with confidence {run.provenance.confidence:.2f} "
            "(e.g. from sparklines): the shapes hold, exact numbers may not."
        )
    if run.provenance.step_source in ("epoch*cadence", "ordinal"):
        out.append("Step axis: " + STEP_SOURCE_WORDS[run.provenance.step_source] + ".")
    return tuple(out)


def _shape_facts(diagnosis: Diagnosis) -> tuple[tuple[str, str], ...]:
    """Facts of a run recovered as a shape (W&B console sparklines): only what is known, i.e. the summary's
    final values, the order of the points and the shape; never a number reconstructed from 8 glyph levels."""
    run, f = diagnosis.run, diagnosis.facts
    rows: list[tuple[str, str]] = []
    ev = run.series("eval/loss")
    vals = ev.to_numpy(dtype="float64")
    finite = np.flatnonzero(np.isfinite(vals))
    if finite.size:
        best_i = int(finite[np.argmin(vals[finite])])
        where = f"point {best_i + 1} of {len(vals)}"
        rows.append(("Lowest eval loss", f"at {where} (about step {f.best_eval_step}); its value is not recorded"))
        rows.append(
            (
                "Final eval loss",
                f"{fmt_num(f.final_eval_loss)} (run summary)"
                if f.final_eval_loss is not None
                else "not in the run summary",
            )
        )
        if f.early_stopping_would_help:
            rows.append(("After its lowest point", "eval loss rose to the end (by how much is not recorded)"))
            rows.append(("Early stopping would have helped", f"likely: eval loss was lowest at {where}"))
        else:
            rows.append(("After its lowest point", "eval loss did not rise"))
    else:
        rows.append(("Eval loss", "not logged: overfitting cannot be judged"))
    rows.append(
        (
            "Final train loss",
            f"{fmt_num(f.final_train_loss)} (run summary)"
            if f.final_train_loss is not None
            else "not in the run summary",
        )
    )
    rows.append(("Last step", fmt_num(f.last_step)))
    rows.append(("Points recovered", f"{f.train_points} train loss, {f.eval_points} eval loss (shape only)"))
    return tuple(rows)


def _facts(diagnosis: Diagnosis) -> tuple[tuple[str, str], ...]:
    if is_shape_only(diagnosis.run):
        return _shape_facts(diagnosis)
    f = diagnosis.facts
    rows: list[tuple[str, str]] = []
    if f.best_eval_step is not None:
        rows.append(("Best eval loss", f"{fmt_num(f.best_eval_loss)} at step {f.best_eval_step}"))
        rows.append(("Final eval loss", f"{fmt_num(f.final_eval_loss)} at step {f.final_eval_step}"))
        gap = f.final_gap_pct
        rows.append(
            (
                "Final vs best eval loss",
                "-" if gap is None else (f"+{gap:.1f}%" if math.isfinite(gap) and gap >= 0 else f"{fmt_num(gap)}%"),
            )
        )
        helped = f.early_stopping_would_help
        if helped is None:
            rows.append(("Early stopping would have helped", "-"))
        elif helped:
            on = "" if f.early_stop_metric in (None, "eval/loss") else f", judged on {f.early_stop_metric}"
            rows.append(
                (
                    "Early stopping would have helped",
                    f"yes: stop at step {f.early_stop_step if f.early_stop_step is not None else f.best_eval_step}"
                    f" (load_best_model_at_end{on})",
                )
            )
        else:
            rows.append(("Early stopping would have helped", "no"))
    else:
        # a run judged on other signals (reward, reward margins) shows their last values instead
        own = [m for m in judged_on(diagnosis.run, diagnosis.objective) if m != "eval/loss"]
        for metric in own:
            s = diagnosis.run.series(metric)
            s = s[np.isfinite(s.to_numpy())]
            if len(s):
                rows.append((f"Final {metric}", f"{fmt_num(float(s.iloc[-1]))} at step {int(s.index[-1])}"))
        if not own:
            rows.append(("Eval loss", "not logged: overfitting cannot be judged"))
    rows.append(("Final train loss", fmt_num(f.final_train_loss)))
    rows.append(("Last step", fmt_num(f.last_step)))
    rows.append(("Points logged", f"{f.train_points} train loss, {f.eval_points} eval loss"))
    return tuple(rows)


# ----------------------------------------------------------------------- where a finding holds


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    v = float(value)
    return int(v) if math.isfinite(v) and v == int(v) else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def _mask_ranges(steps: np.ndarray, mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Runs of consecutive True points as inclusive (first step, last step) ranges."""
    if not len(mask) or not mask.any():
        return ()
    padded = np.r_[False, mask, False].astype(np.int8)
    diff = np.diff(padded)
    starts, ends = np.flatnonzero(diff == 1), np.flatnonzero(diff == -1) - 1
    return tuple((int(steps[a]), int(steps[b])) for a, b in zip(starts.tolist(), ends.tolist()))


def hold_ranges(f: Finding, run: Run) -> tuple[tuple[int, int], ...]:
    """The step ranges where a finding holds, from the evidence its check kind declares:

    - a trend measured from the best point (``best_step``: overfitting, divergence): from the best on;
    - a bound crossed (``threshold`` + ``peak`` + ``metric``: lr too high, grad norm too high or too low,
      many epochs): every run of points of that metric on the peak's side of the bound, over the whole
      series (lr-too-high judges the peak, but holds wherever the lr is over the limit);
    - non-finite values (``bad_points``): the runs of non-finite points of the finding's series;
    - a window (``from_step``/``to_step``: plateau, relation, share): that window;
    - otherwise the finding's first..last step.
    """
    first = f.first_step if f.first_step is not None else f.last_step
    last = f.last_step if f.last_step is not None else f.first_step
    if first is None or last is None:  # the finding names no step
        return ()
    first, last = int(first), int(last)
    ev = f.evidence
    best_step = _int(ev.get("best_step"))
    if best_step is not None and first <= best_step <= last:
        return ((best_step, last),)
    threshold, peak, metric = _num(ev.get("threshold")), _num(ev.get("peak")), ev.get("metric")
    if threshold is not None and peak is not None and isinstance(metric, str) and peak != threshold and run.has(metric):
        s = run.series(metric)
        steps, values = s.index, s.to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            mask = np.isfinite(values) & ((values >= threshold) if peak > threshold else (values <= threshold))
        found = _mask_ranges(steps, mask)
        if found:
            return found
    if _int(ev.get("bad_points")) is not None:
        found_all: list[tuple[int, int]] = []
        for name in f.series:
            if run.has(name):
                s = run.series(name)
                steps, values = s.index, s.to_numpy(dtype="float64")
                found_all.extend(_mask_ranges(steps, ~np.isfinite(values) & (steps >= first) & (steps <= last)))
        if found_all:
            return _merge(found_all)
    lo, hi = _int(ev.get("from_step")), _int(ev.get("to_step"))
    if lo is not None and hi is not None and lo <= hi:
        return ((lo, hi),)
    return ((first, last),)


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def source_line(run: Run, step: int | None, series: tuple[str, ...]) -> int | None:
    """The line of the source file that logged ``step`` (of one of ``series`` if it can), when the reader
    recorded line numbers (an optional ``line`` column of the metric table); else None."""
    table = run.metrics
    if step is None or table.line is None or not len(table):
        return None
    at = table.step == int(step)
    if not at.any():
        return None
    lines = table.line.astype("float64")
    codes = [c for c in (table.code_of(m) for m in series) if c is not None]
    pick = at & np.isin(table.metric_codes, codes) if series else at
    if not (pick & np.isfinite(lines)).any():
        pick = at
    found = lines[pick & np.isfinite(lines)]
    return int(found.min()) if found.size else None


def ranges_text(ranges: tuple[tuple[int, int], ...], limit: int = 4) -> str:
    if not ranges:
        return "-"
    parts = [fmt_steps(a, b) for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"+{len(ranges) - limit} more")
    return ", ".join(parts)


# ----------------------------------------------------------------------- evidence people read

#: evidence keys worth showing first, most telling first (keys declared by the check kinds); the rest of
#: the evidence is folded away. Bookkeeping keys (fired_step, held_points, onset_step, metric, ...) never lead.
KEY_EVIDENCE: tuple[str, ...] = (
    "best",
    "best_step",
    "last",
    "rise_pct",
    "a_drop_pct",
    "peak",
    "peak_step",
    "threshold",
    "bound",
    "ratio",
    "share_pct",
    "value",
    "baseline",
    "bad_points",
    "first_bad_step",
    "last_finite",
    "head",
    "tail",
    "drop_pct",
    "problem",
    "found_points",
    "lr_ratio",
)
MAX_KEY_EVIDENCE = 4


def fmt_evidence(key: str, value: Any) -> str:
    """A rounded evidence value: 4 significant digits, percentages with one decimal and a % sign."""
    if key.endswith("_pct") and _num(value) is not None and math.isfinite(float(value)):
        return f"{float(value):.1f}%"
    if isinstance(value, str):
        return value
    return fmt_value(value) if isinstance(value, (list, tuple, dict)) else fmt_num(value)


def _key_evidence(evidence: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for key in KEY_EVIDENCE:
        if key in evidence and len(out) < MAX_KEY_EVIDENCE:
            value = evidence[key]
            if key == "value" and "peak" in evidence:
                continue
            out.append((key, fmt_evidence(key, value)))
    return tuple(out)


SHAPE_NOTE = (
    "The numbers in this message were read off a recovered shape (8-level sparklines), not measured: "
    "only the direction and the order of the points hold."
)


def _finding_view(f: Finding, run: Run) -> FindingView:
    holds = hold_ranges(f, run)
    shape = is_shape_only(run)
    key = _key_evidence(f.evidence)
    if shape:  # only what the shape knows: where (steps), not how much
        key = tuple((k, v) for k, v in key if k.endswith("step"))
    return FindingView(
        rule_id=f.rule_id,
        severity=f.severity,
        title=f.title,
        message=f.message,
        remediation=tuple(f.remediation),
        steps=fmt_steps(f.first_step, f.last_step),
        series=tuple(f.series),
        evidence=tuple(
            (str(k), fmt_evidence(str(k), v)) for k, v in sorted(f.evidence.items(), key=lambda kv: str(kv[0]))
        ),
        origin=f.origin,
        confidence="" if f.confidence >= 1.0 else f"{f.confidence:.2f}",
        key_evidence=key,
        holds=holds,
        holds_text=ranges_text(holds),
        note=SHAPE_NOTE if shape else "",
        line=source_line(run, holds[0][0] if holds else f.first_step, f.series),
    )


def _level(diagnosis: Diagnosis) -> str:
    if diagnosis.crashed_checks:
        return "incomplete"
    return diagnosis.worst_severity or "ok"


# ----------------------------------------------------------------------- series for plots and JSON


def evidence_steps(findings: tuple[Finding, ...], holds: tuple[tuple[tuple[int, int], ...], ...] = ()) -> np.ndarray:
    """Every step a finding names (its range, its evidence's ``*step`` values, the ends of where it holds):
    the points a decimated series must keep."""
    out: set[int] = set()
    for f in findings:
        for v in (f.first_step, f.last_step):
            if v is not None:
                out.add(int(v))
        for k, v in f.evidence.items():
            if str(k).endswith("step") and _int(v) is not None:
                out.add(int(v))
    for ranges in holds:
        for a, b in ranges:
            out.update((a, b))
    # a step from a run's config (best_global_step) can be any integer: only steps a series can hold count
    return np.asarray(sorted(x for x in out if -(2**63) <= x < 2**63), dtype="int64")


def _line(run: Run, metric: str, keep_steps: np.ndarray) -> Line | None:
    s = run.series(metric)
    if s.empty:
        return None
    steps, values = s.index, s.to_numpy(dtype="float64")
    idx = decimate(steps, values, keep_steps=keep_steps)
    return Line(metric=metric, label=metric, steps=tuple(steps[idx].tolist()), values=tuple(values[idx].tolist()))


def _positive_span(lines: tuple[Line, ...]) -> float:
    vals = np.array([v for ln in lines for v in ln.values], dtype="float64")
    vals = vals[np.isfinite(vals)]
    if vals.size < 2 or (vals <= 0).any():
        return 1.0
    return float(vals.max() / vals.min())


def _log_y(key: str, lines: tuple[Line, ...]) -> bool:
    """Loss on a log axis when it spans more than 10x (the first train losses would flatten an eval rise);
    any other positive series when it spans more than three decades (grad_norm blow-ups, LR warmup)."""
    return _positive_span(lines) > (10.0 if key == "loss" else 1e3)


_THROUGHPUT = re.compile(
    r"(tokens|samples|steps)_per_s(ec(ond)?)?|num_tokens|tokens?$|throughput|runtime|"
    r"flos|_per_second|mfu|memory|mem_",
    re.I,
)


def _group_of(metric: str) -> str:
    return "throughput" if _THROUGHPUT.search(metric) else "extra"


def _plots(diagnosis: Diagnosis, views: tuple[FindingView, ...], keep_steps: np.ndarray) -> tuple[PlotSpec, ...]:
    """Headline plots, then other metrics, then throughput / token counts; within that, the plots that show
    a finding first (worst severity first). Every plot shades where each finding on its series holds."""
    run = diagnosis.run
    present = run.metric_names()
    groups: list[tuple[str, str, tuple[str, ...], str, bool, str]] = []
    used: set[str] = set()
    for key, title, metrics, ylabel in MAIN_PLOTS:
        have = tuple(m for m in metrics if m in present)
        if have:
            groups.append((key, title, have, ylabel, False, "main"))
            used.update(have)
    extras = [m for m in present if m not in used and m not in BOOKKEEPING_METRICS]
    plain = [m for m in extras if _group_of(m) == "extra"][:MAX_EXTRA_PLOTS]
    throughput = [m for m in extras if _group_of(m) == "throughput"][:MAX_EXTRA_PLOTS]
    for m in plain + throughput:
        key = "metric-" + (_GID_BAD.sub("_", m).strip("_") or "x")
        groups.append((key, m, (m,), m, True, _group_of(m)))

    seen_gid: dict[str, int] = {}
    facts = diagnosis.facts
    out: list[tuple[tuple[int, int, int], PlotSpec]] = []
    keys_used: set[str] = set()
    for order, (key, title, metrics, ylabel, small, group) in enumerate(groups):
        while key in keys_used:  # two odd names can slug to the same key
            key += "_"
        keys_used.add(key)
        lines = tuple(ln for ln in (_line(run, m, keep_steps) for m in metrics) if ln is not None)
        spans: list[Span] = []
        for f, view in zip(diagnosis.findings, views):
            if not view.holds or not set(f.series) & set(metrics):
                continue
            base = span_gid(f.rule_id)
            seen_gid[base] = seen_gid.get(base, 0) + 1
            gid = base if seen_gid[base] == 1 else f"{base}-{seen_gid[base]}"
            spans.append(
                Span(
                    rule_id=f.rule_id,
                    severity=f.severity,
                    first_step=view.holds[0][0],
                    last_step=view.holds[-1][1],
                    gid=gid,
                    ranges=view.holds,
                )
            )
        marker = None
        if "eval/loss" in metrics and facts.best_eval_step is not None and facts.best_eval_loss is not None:
            marker = Marker(
                step=int(facts.best_eval_step),
                value=float(facts.best_eval_loss),
                label=f"best eval {fmt_num(facts.best_eval_loss)} @ step {facts.best_eval_step}",
            )
        worst = max((SEVERITY_RANK.get(sp.severity, 0) + 1 for sp in spans), default=0)
        rank = (0 if group == "main" else 1 if group == "extra" else 2, -worst, order)
        out.append(
            (
                rank,
                PlotSpec(
                    key=key,
                    title=title,
                    ylabel=ylabel,
                    lines=lines,
                    spans=tuple(spans),
                    marker=marker,
                    small=small,
                    log_y=_log_y(key, lines),
                    group=group,
                ),
            )
        )
    out.sort(key=lambda item: item[0])
    return tuple(spec for _, spec in out)


# ----------------------------------------------------------------------- timeline, curves, key steps


def _timeline(diagnosis: Diagnosis, views: tuple[FindingView, ...]) -> Timeline | None:
    run = diagnosis.run
    if not len(run.metrics):
        return None
    steps = run.metrics.step
    rows = tuple(
        TimelineRow(rule_id=v.rule_id, severity=v.severity, title=v.title, ranges=v.holds) for v in views if v.holds
    )
    return Timeline(
        first_step=int(steps.min()),
        last_step=int(steps.max()),
        rows=rows,
        best_eval_step=diagnosis.facts.best_eval_step,
    )


SPARK_GLYPHS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24
CURVE_METRICS: tuple[str, ...] = ("train/loss", "eval/loss", "train/learning_rate", "train/grad_norm")


def sparkline(values: np.ndarray, width: int = SPARK_WIDTH, log: bool = False) -> str:
    """``values`` as at most ``width`` glyphs (the mean of each bucket of consecutive points, scaled to eight
    levels between the lowest and highest finite value); a bucket with a NaN/inf point is ``×``."""
    values = np.asarray(values, dtype="float64")
    if not len(values):
        return ""
    n = min(width, len(values))
    edges = np.linspace(0, len(values), n + 1).astype("int64")
    means, bad = np.empty(n), np.zeros(n, dtype=bool)
    for i in range(n):
        chunk = values[edges[i] : edges[i + 1]]
        ok = np.isfinite(chunk)
        bad[i] = not ok.all()
        means[i] = float(chunk[ok].mean()) if ok.any() else np.nan
    shown = np.log10(means) if log and np.nanmin(np.where(np.isfinite(means), means, np.inf)) > 0 else means
    finite = np.isfinite(shown)
    if not finite.any():
        return "×" * n
    lo, hi = float(np.min(shown[finite])), float(np.max(shown[finite]))
    out = []
    for i in range(n):
        if bad[i] or not finite[i]:
            out.append("×")
        elif hi - lo <= 0 or not math.isfinite(hi - lo):
            out.append(SPARK_GLYPHS[0])
        else:
            out.append(SPARK_GLYPHS[int(round((shown[i] - lo) / (hi - lo) * 7))])
    return "".join(out)


def _curves(run: Run) -> tuple[Curve, ...]:
    out = []
    for metric in CURVE_METRICS:
        s = run.series(metric)
        if s.empty:
            continue
        steps, values = s.index, s.to_numpy(dtype="float64")
        finite = np.flatnonzero(np.isfinite(values))
        low = "-"
        if finite.size:
            i = int(finite[np.argmin(values[finite])])
            low = f"{fmt_num(values[i])} @ {int(steps[i])}"
        log = (
            metric.endswith("loss")
            and finite.size > 1
            and bool((values[finite] > 0).all())
            and float(values[finite].max() / values[finite].min()) > 10
        )
        out.append(
            Curve(
                metric=metric,
                spark=sparkline(values, log=log),
                first=fmt_num(values[0]),
                last=fmt_num(values[-1]),
                low=low,
                points=int(len(values)),
            )
        )
    return tuple(out)


MAX_KEY_STEPS = 8


def _key_steps(diagnosis: Diagnosis, views: tuple[FindingView, ...]) -> tuple[tuple[str, ...], ...]:
    """A small table of the headline curves at the steps that matter: the first and last step, the best eval
    step, and where each finding starts to hold (as-of values: the last point at or before the step)."""
    run = diagnosis.run
    metrics = [m for m in CURVE_METRICS if run.has(m)]
    if not metrics or not len(run.metrics):
        return ()
    steps_all = run.metrics.step
    marks: dict[int, list[str]] = {}

    def mark(step: int | None, why: str) -> None:
        if step is not None:
            marks.setdefault(int(step), [])
            if why not in marks[int(step)]:
                marks[int(step)].append(why)

    mark(int(steps_all.min()), "first")
    if diagnosis.facts.best_eval_step is not None:
        mark(diagnosis.facts.best_eval_step, "best eval")
    for v in views:
        if v.holds:
            mark(v.holds[0][0], f"{v.rule_id} from")
    mark(int(steps_all.max()), "last")
    chosen = sorted(marks)
    if len(chosen) > MAX_KEY_STEPS:
        keep = {chosen[0], chosen[-1]}
        if diagnosis.facts.best_eval_step is not None:
            keep.add(int(diagnosis.facts.best_eval_step))
        chosen = sorted(keep | set(chosen[1 : MAX_KEY_STEPS - len(keep) + 1]))
    rows: list[tuple[str, ...]] = [("step", *metrics, "note")]
    series = {m: run.series(m) for m in metrics}
    for step in chosen:
        cells = [str(step)]
        for m in metrics:
            s = series[m]
            i = int(np.searchsorted(s.index, step, side="right")) - 1
            cells.append(fmt_num(float(s.values[i])) if i >= 0 else "-")
        cells.append(", ".join(marks[step]))
        rows.append(tuple(cells))
    return tuple(rows)


def build_report_data(diagnosis: Diagnosis, options: ReportOptions | None = None) -> ReportData:
    """Pure: the same Diagnosis always gives the same ReportData (no clock, no environment)."""

    run = diagnosis.run
    prov = run.provenance
    counts = tuple((sev, sum(1 for f in diagnosis.findings if f.severity == sev)) for sev in SEVERITY_ORDER)
    info = RunInfo(
        name=run.name,
        kind=prov.kind,
        location=prov.location,
        step_source=prov.step_source,
        step_source_words=STEP_SOURCE_WORDS.get(prov.step_source, prov.step_source),
        state=run.state,
        confidence=float(prov.confidence),
        notes=tuple(prov.notes),
        created=run.created or "",
        tags=tuple(run.tags),
        n_points=run.n_points,
        metrics=run.metric_names(),
        public_location=public_text(prov.location),
    )
    config = tuple((str(k), fmt_value(v)) for k, v in sorted(run.config.items(), key=lambda kv: str(kv[0])))

    views = tuple(_finding_view(f, run) for f in diagnosis.findings)
    keep = evidence_steps(diagnosis.findings, tuple(v.holds for v in views))
    return ReportData(
        title=f"lossdoctor: {run.name}",
        verdict=diagnosis.verdict,
        level=_level(diagnosis),
        objective=describe(diagnosis.objective),
        caveats=_caveats(diagnosis),
        facts=_facts(diagnosis),
        findings=views,
        counts=counts,
        crashed_checks=tuple(diagnosis.crashed_checks),
        run=info,
        config=config,
        plots=_plots(diagnosis, views, keep),
        rule_sources=tuple(diagnosis.rule_sources),
        version=__version__,
        timeline=_timeline(diagnosis, views),
        curves=_curves(run),
        key_steps=_key_steps(diagnosis, views),
        options=options or ReportOptions(),
    )
