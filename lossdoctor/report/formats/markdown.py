"""Markdown: for a PR comment or $GITHUB_STEP_SUMMARY; plots are PNG files in plots/ beside it.

Every string from the run is escaped (``md_escape``): HTML-significant characters become entities
(GitHub renders some raw HTML) and table/emphasis/link markup is backslash-escaped, so a run named
``a|b *c*`` cannot break a table or restyle the comment.
"""
from __future__ import annotations

import re

from lossdoctor.model import Diagnosis
from lossdoctor.report.data import ReportData
from lossdoctor.report.formats._jinja import md_env
from lossdoctor.safetext import blank

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
SEVERITY_MARK = {"error": "🔴 error", "warning": "🟠 warning", "info": "🔵 info"}
LEVEL_MARK = {"error": "🔴", "warning": "🟠", "info": "🔵", "ok": "🟢", "incomplete": "⚠️"}


def md_escape(text: str) -> str:
    """One line without control characters (no raw ESC in the file), HTML entities for & < >, backslash
    before Markdown markup characters."""
    text = blank(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


class MarkdownRenderer:
    name = "markdown"
    aliases: tuple[str, ...] = ("md",)
    primary = "report.md"
    description = "report.md + plots/*.png: for PR comments and $GITHUB_STEP_SUMMARY"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        from lossdoctor.report.plots import render_png

        files: dict[str, bytes] = {}
        images = []
        for plot in data.plots:
            rel = f"plots/{plot.key}.png"
            files[rel] = render_png(plot)
            images.append((plot.title, rel))
        template = md_env(md_escape).get_template("report.md.j2")
        text = template.render(d=data, images=images, severity_mark=SEVERITY_MARK,
                               level_mark=LEVEL_MARK.get(data.level, ""))
        text = re.sub(r"\n{3,}", "\n\n", text)
        files[self.primary] = text.encode("utf-8")
        return files


RENDERER = MarkdownRenderer()
