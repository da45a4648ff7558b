"""HTML: one self-contained file (inline CSS, inline SVG plots, no script, no external URL).

Order: the verdict and the facts, the findings with what to do, the timeline of where each finding holds,
then the curves (the most telling first; throughput and token counts last), then the run's details.

Escaping: jinja2 autoescape=True escapes every run string; the SVGs are the only Markup inserted raw, and
``report/svg.py`` escapes every string it writes into them. A Content-Security-Policy meta tag forbids
scripts and remote loads as a second line of defence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportData


class HtmlRenderer:
    name = "html"
    aliases: tuple[str, ...] = ()
    primary = "report.html"
    description = "report.html: one self-contained page (verdict, findings, timeline, curves)"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        from markupsafe import Markup  # jinja2 only when an HTML report is rendered

        from lossdoctor.report.formats._jinja import html_env
        from lossdoctor.report.svg import SEVERITY_COLOURS, plot_svg, timeline_svg

        svgs = [(plot, Markup(plot_svg(plot))) for plot in data.plots]
        strip = Markup(timeline_svg(data.timeline)) if data.timeline is not None and data.findings else None
        text = (
            html_env()
            .get_template("report.html.j2")
            .render(d=data, svgs=svgs, timeline_svg=strip, colours=SEVERITY_COLOURS)
        )
        return {self.primary: text.encode("utf-8")}


RENDERER = HtmlRenderer()
