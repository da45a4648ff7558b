"""Comparison as Markdown (PR comment / step summary) with the overlay plots as PNG files beside it.
Every run string goes through the single-run report's ``md_escape``."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lossdoctor.report.compare import CompareData
from lossdoctor.report.formats._jinja import md_env
from lossdoctor.report.formats.markdown import LEVEL_MARK, SEVERITY_MARK, md_escape

if TYPE_CHECKING:
    from lossdoctor.compare import Comparison

TREND_MARK = {"worse": "🔴 worse", "better": "🟢 better", "mixed": "🟠 mixed", "same": "same", "": ""}


class MarkdownRenderer:
    name = "markdown"
    aliases: tuple[str, ...] = ("md",)
    primary = "compare.md"

    def render(self, cmp: Comparison, data: CompareData) -> dict[str, bytes]:
        from lossdoctor.report.plots import render_png

        files: dict[str, bytes] = {}
        images = []
        for plot in data.plots:
            rel = f"plots/{plot.key}.png"
            files[rel] = render_png(plot)
            images.append((plot.title, rel))
        text = md_env(md_escape).get_template("compare.md.j2").render(
            d=data, images=images, severity_mark=SEVERITY_MARK, level_mark=LEVEL_MARK, trend_mark=TREND_MARK)
        files[self.primary] = re.sub(r"\n{3,}", "\n\n", text).encode("utf-8")
        return files


RENDERER = MarkdownRenderer()
