"""Comparison reports: Comparison → CompareData (pure, decided once) → terminal / HTML / Markdown / JSON.

Kept apart from the single-run formats (``report/formats``) on purpose: a comparison has columns of runs,
not one run, so it has its own view data and templates; it reuses the single-run pieces that mean the same
thing (number formatting, plot decimation, ``PlotSpec`` and the plot renderers). Every module in this package
with a module-level ``RENDERER`` is a comparison format (adding one is adding a file).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lossdoctor import __version__
from lossdoctor.errors import UsageError
from lossdoctor.plugins import METHOD, Registry, declares
from lossdoctor.report.data import Line, PlotSpec, Span, fmt_num, fmt_steps, span_gid
from lossdoctor.report.write import write_files
from lossdoctor.table import decimate

if TYPE_CHECKING:
    from lossdoctor.compare import Comparison

#: series overlaid across runs, in this order, when at least one run has them: (metric, title, y label)
KEY_SERIES: tuple[tuple[str, str, str], ...] = (
    ("eval/loss", "Eval loss", "eval loss"),
    ("train/loss", "Train loss", "train loss"),
    ("train/learning_rate", "Learning rate", "learning rate"),
    ("train/grad_norm", "Gradient norm", "grad_norm"),
)
RUN_COLOURS: tuple[str, ...] = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
STATUS_WORDS = {"fixed": "fixed", "new": "NEW", "persisting": "persisting", "absent": "-", "baseline": ""}


@dataclass(frozen=True)
class RunHead:
    key: str
    name: str
    location: str
    kind: str
    verdict: str
    level: str
    colour: str
    is_best: bool


@dataclass(frozen=True)
class RuleView:
    rule_id: str
    title: str
    severity: str
    cells: tuple[str, ...]  # per run: "warning, steps 24-192" or "-"
    status: tuple[str, ...]  # per run: "", "fixed", "NEW", "persisting", "-"
    trend: tuple[str, ...]  # per run: "", worse, better, mixed, same
    details: tuple[str, ...]  # per run
    messages: tuple[str, ...]  # per run ("" where absent)


@dataclass(frozen=True)
class CompareData:
    title: str
    runs: tuple[RunHead, ...]
    headlines: tuple[str, ...]
    best_key: str
    best_reason: str
    facts: tuple[tuple[str, tuple[str, ...]], ...]  # label, value per run
    rules: tuple[RuleView, ...]
    plots: tuple[PlotSpec, ...]
    version: str


def _facts(cmp: Comparison) -> tuple[tuple[str, tuple[str, ...]], ...]:
    def at(value: float | None, step: int | None) -> str:
        return "-" if value is None else f"{fmt_num(value)} at step {step}"

    def gap(value: float | None) -> str:
        if value is None:
            return "-"
        return f"+{value:.1f}%" if math.isfinite(value) and value >= 0 else f"{fmt_num(value)}%"

    rows = [
        ("Verdict", tuple(r.verdict for r in cmp.runs)),
        ("Best eval loss", tuple(at(r.facts.best_eval_loss, r.facts.best_eval_step) for r in cmp.runs)),
        ("Final eval loss", tuple(at(r.facts.final_eval_loss, r.facts.final_eval_step) for r in cmp.runs)),
        ("Final vs best eval loss", tuple(gap(r.facts.final_gap_pct) for r in cmp.runs)),
        ("Final train loss", tuple(fmt_num(r.facts.final_train_loss) for r in cmp.runs)),
        ("Last step", tuple(fmt_num(r.facts.last_step) for r in cmp.runs)),
        ("Epochs", tuple("-" if r.epochs is None else f"{r.epochs:.3g}" for r in cmp.runs)),
        (
            "Points logged",
            tuple(f"{r.facts.train_points} train loss, {r.facts.eval_points} eval loss" for r in cmp.runs),
        ),
        ("State", tuple(r.state for r in cmp.runs)),
    ]
    return tuple(rows)


def _rules(cmp: Comparison) -> tuple[RuleView, ...]:
    out = []
    for row in cmp.rows:
        cells = tuple(
            "-" if w is None else f"{w.severity}, steps {fmt_steps(w.first_step, w.last_step)}" for w in row.cells
        )
        out.append(
            RuleView(
                rule_id=row.rule_id,
                title=row.title,
                severity=row.severity,
                cells=cells,
                status=tuple(STATUS_WORDS.get(s, s) for s in row.status),
                trend=row.trend,
                details=row.details,
                messages=tuple("" if w is None else w.message for w in row.cells),
            )
        )
    return tuple(out)


_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def _plots(cmp: Comparison) -> tuple[PlotSpec, ...]:
    plots = []
    for metric, title, ylabel in KEY_SERIES:
        lines: list[Line] = []
        spans: list[Span] = []
        for i, (col, diag) in enumerate(zip(cmp.runs, cmp.diagnoses)):
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            s = diag.run.series(metric)
            if s.empty:
                continue
            steps, values = s.index, s.to_numpy(dtype="float64")
            idx = decimate(steps, values)
            lines.append(
                Line(
                    metric=metric,
                    label=f"{col.key}: {col.name}"[:60],
                    steps=tuple(steps[idx].tolist()),
                    values=tuple(values[idx].tolist()),
                    colour=colour,
                )
            )
            for f in diag.findings:
                if metric not in f.series:
                    continue
                first = f.first_step if f.first_step is not None else f.last_step
                last = f.last_step if f.last_step is not None else f.first_step
                if first is None or last is None:  # the finding names no step
                    continue
                spans.append(
                    Span(
                        rule_id=f.rule_id,
                        severity=f.severity,
                        first_step=int(first),
                        last_step=int(last),
                        gid=span_gid(f"{col.key}-{f.rule_id}"),
                        colour=colour,
                        label=f"{col.key}: {f.rule_id}",
                    )
                )
        if not lines:
            continue
        vals = np.array([v for ln in lines for v in ln.values], dtype="float64")
        vals = vals[np.isfinite(vals)]
        log_y = bool(vals.size > 1 and (vals > 0).all() and vals.max() / vals.min() > 1e3)
        plots.append(
            PlotSpec(
                key="compare-" + _SLUG.sub("_", metric),
                title=title,
                ylabel=ylabel,
                lines=tuple(lines),
                spans=tuple(spans),
                marker=None,
                small=False,
                log_y=log_y,
            )
        )
    return tuple(plots)


def build_compare_data(cmp: Comparison) -> CompareData:
    """Pure: the same Comparison always gives the same CompareData."""

    runs = tuple(
        RunHead(
            key=r.key,
            name=r.name,
            location=r.location,
            kind=r.kind,
            verdict=r.verdict,
            level=r.level,
            colour=RUN_COLOURS[i % len(RUN_COLOURS)],
            is_best=i == cmp.best,
        )
        for i, r in enumerate(cmp.runs)
    )
    title = "lossdoctor compare: " + " vs ".join(f"{r.key} {r.name}" for r in cmp.runs)
    return CompareData(
        title=title,
        runs=runs,
        headlines=cmp.headlines,
        best_key=cmp.runs[cmp.best].key,
        best_reason=cmp.best_reason,
        facts=_facts(cmp),
        rules=_rules(cmp),
        plots=_plots(cmp),
        version=__version__,
    )


class CompareRenderer(Protocol):
    name: str
    aliases: tuple[str, ...]
    primary: str

    def render(self, cmp: Comparison, data: CompareData) -> dict[str, bytes]: ...


_FORMATS: Registry[Any] = Registry(
    __name__,
    "RENDERER",
    "comparison formats",
    lambda renderer: (renderer.name, *renderer.aliases),
    validate=declares("comparison format", name=str, aliases=tuple, primary=str, render=METHOD),
)


def registry() -> dict[str, Any]:
    return _FORMATS.all()


def lookup(name: str) -> Any | None:
    return _FORMATS.get(name)


def render_many(cmp: Comparison, formats: tuple[str, ...]) -> tuple[dict[str, bytes], list[str]]:
    data = build_compare_data(cmp)
    files: dict[str, bytes] = {}
    primaries: list[str] = []
    done: list[Any] = []
    for fmt in formats:
        r = lookup(fmt)
        if r is None:
            raise UsageError(f"unknown comparison format {fmt!r}; expected one of {', '.join(registry())}")
        if r in done:
            continue
        done.append(r)
        files.update(r.render(cmp, data))
        primaries.append(r.primary)
    return files, primaries


def write_comparison(cmp: Comparison, formats: tuple[str, ...], out_dir: Path) -> list[Path]:
    """Render everything in memory first, then write atomically (report/write.py)."""

    files, primaries = render_many(cmp, formats)
    write_files(Path(out_dir), files)
    return [Path(out_dir) / p for p in primaries]


def render_terminal(cmp: Comparison, color: bool) -> str:
    from lossdoctor.report.compare.terminal import summary

    return summary(build_compare_data(cmp), color)
