"""Comparison as one self-contained HTML page (inline CSS and SVG, no script; autoescaped template)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from markupsafe import Markup

from lossdoctor.report.compare import CompareData
from lossdoctor.report.formats._jinja import html_env
from lossdoctor.report.svg import SEVERITY_COLOURS, plot_svg

if TYPE_CHECKING:
    from lossdoctor.compare import Comparison


class HtmlRenderer:
    name = "html"
    aliases: tuple[str, ...] = ()
    primary = "compare.html"

    def render(self, cmp: Comparison, data: CompareData) -> dict[str, bytes]:
        svgs = [(plot, Markup(plot_svg(plot))) for plot in data.plots]
        text = html_env().get_template("compare.html.j2").render(d=data, svgs=svgs, colours=SEVERITY_COLOURS)
        return {self.primary: text.encode("utf-8")}


RENDERER = HtmlRenderer()
