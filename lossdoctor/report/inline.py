"""The diagnosis shown inside a notebook: ``Diagnosis._repr_html_`` / ``_repr_markdown_`` render through here.

Findings first, and small: the verdict, each finding with what to do, one or two small plots (the loss curves,
and the series of the first finding that is not a loss), then the headline facts and the reader's notes folded
away. Built from the same ReportData as the file reports (``report/data.py``); this module only lays it out.

Self-contained and inert: inline ``style`` attributes only (notebook front-ends drop or scope ``<style>``
blocks differently), inline SVG (no external file, no script), every run string escaped (jinja autoescape for
HTML, ``md_escape`` for Markdown). The SVG refers to no id (no clip paths, no ``url(#...)``), so two
diagnoses shown in one notebook page cannot disturb each other's plots.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from markupsafe import Markup

from lossdoctor.report.data import build_report_data
from lossdoctor.report.formats.markdown import LEVEL_MARK, SEVERITY_MARK, md_escape
from lossdoctor.report.svg import SEVERITY_COLOURS, plot_svg

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import PlotSpec, ReportData

#: verdict box colours by level (the file reports use the same severity colours)
LEVEL_COLOURS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4", "ok": "#2ca02c", "incomplete": "#9467bd"}
MAX_PLOTS = 2


def inline_plots(data: ReportData) -> tuple[PlotSpec, ...]:
    """The loss plot, then the plot holding the first finding's series when that is another one."""
    by_key = {p.key: p for p in data.plots}
    chosen: list[PlotSpec] = []
    if "loss" in by_key:
        chosen.append(by_key["loss"])
    for f in data.findings:
        for p in data.plots:
            if p not in chosen and set(f.series) & {ln.metric for ln in p.lines}:
                chosen.append(p)
                break
        if len(chosen) >= MAX_PLOTS:
            break
    if not chosen and data.plots:
        chosen.append(data.plots[0])
    return tuple(replace(p, small=True) for p in chosen[:MAX_PLOTS])


#: inline plots are narrower than the file report's
INLINE_WIDTH = 640


def render_inline_html(diagnosis: Diagnosis, data: ReportData | None = None) -> str:
    from lossdoctor.report.formats._jinja import html_env

    data = data or build_report_data(diagnosis)
    svgs = [(p, Markup(plot_svg(p, width=INLINE_WIDTH))) for p in inline_plots(data)]
    return (
        html_env()
        .get_template("inline.html.j2")
        .render(d=data, svgs=svgs, colours=SEVERITY_COLOURS, level_colour=LEVEL_COLOURS.get(data.level, "#888"))
    )


def render_inline_markdown(diagnosis: Diagnosis, data: ReportData | None = None) -> str:
    from lossdoctor.report.formats._jinja import md_env

    data = data or build_report_data(diagnosis)
    text = (
        md_env(md_escape)
        .get_template("inline.md.j2")
        .render(d=data, severity_mark=SEVERITY_MARK, level_mark=LEVEL_MARK.get(data.level, ""))
    )
    return text.strip() + "\n"


def render_live_html(step: int, fired: list, crashed: list[str], stopped_by, stopped_at: int | None) -> str:  # noqa: ANN001
    """What the live callback shows while training runs: the findings so far (each with the step it first
    fired at), a crashed check, the stop. Replaced by the full diagnosis when training ends."""
    from lossdoctor.report.formats._jinja import html_env

    return (
        html_env()
        .get_template("inline_live.html.j2")
        .render(
            step=step,
            fired=fired,
            crashed=crashed,
            stopped_by=stopped_by,
            stopped_at=stopped_at,
            colours=SEVERITY_COLOURS,
        )
    )
