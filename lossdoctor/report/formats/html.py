"""HTML: one self-contained file (inline CSS, inline SVG plots, no script, no external URL).

Escaping: jinja2 autoescape=True escapes every run string; the SVGs are the only Markup inserted
raw, and matplotlib escapes the text it writes into them. A Content-Security-Policy meta tag forbids
scripts and remote loads as a second line of defence.
"""
from __future__ import annotations

from markupsafe import Markup

from lossdoctor.model import Diagnosis
from lossdoctor.report.data import ReportData
from lossdoctor.report.formats._jinja import html_env
from lossdoctor.report.plots import SEVERITY_COLOURS


class HtmlRenderer:
    name = "html"
    aliases: tuple[str, ...] = ()
    primary = "report.html"
    description = "report.html: one self-contained page with plots"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        from lossdoctor.report.plots import render_svg

        svgs = [(plot, Markup(render_svg(plot, id_prefix=f"p{i}-"))) for i, plot in enumerate(data.plots)]
        text = html_env().get_template("report.html.j2").render(d=data, svgs=svgs, colours=SEVERITY_COLOURS)
        return {self.primary: text.encode("utf-8")}


RENDERER = HtmlRenderer()
