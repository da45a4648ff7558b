"""Comparison as Markdown (PR comment / step summary): the key series of every run as Unicode sparklines in a
table (no image files, which a PR comment or $GITHUB_STEP_SUMMARY cannot show). Every run string goes through
the single-run report's ``md_escape``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lossdoctor.report.compare import CompareData
from lossdoctor.report.data import fmt_num, sparkline
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
        import numpy as np

        curves = []  # (series title, run label, sparkline, first, last, points)
        for plot in data.plots:
            for line in plot.lines:
                values = np.asarray(line.values, dtype="float64")
                finite = values[np.isfinite(values)]
                curves.append(
                    (
                        plot.title,
                        line.label,
                        sparkline(values, log=plot.log_y),
                        fmt_num(float(finite[0])) if finite.size else "-",
                        fmt_num(float(finite[-1])) if finite.size else "-",
                        len(values),
                    )
                )
        text = (
            md_env(md_escape)
            .get_template("compare.md.j2")
            .render(d=data, curves=curves, severity_mark=SEVERITY_MARK, level_mark=LEVEL_MARK, trend_mark=TREND_MARK)
        )
        return {self.primary: re.sub(r"\n{3,}", "\n\n", text).encode("utf-8")}


RENDERER = MarkdownRenderer()
