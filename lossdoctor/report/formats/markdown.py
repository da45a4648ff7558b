"""Markdown: for a PR comment or $GITHUB_STEP_SUMMARY, self-contained (no image files, no links).

The curves are Unicode sparklines and a small table of the headline metrics at the steps that matter; the
timeline of where each finding holds is a monospaced text strip. No local absolute path is printed (a run
location, a config value or a note naming ``/home/me/...`` shows only its last component).

Every string from the run is escaped (``md_escape``): HTML-significant characters become entities
(GitHub renders some raw HTML) and table/emphasis/link markup is backslash-escaped, so a run named
``a|b *c*`` cannot break a table or restyle the comment. Text inside the code block (rule ids) has its
backticks replaced, so it cannot close the block.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportData, Timeline
from lossdoctor.report.data import public_text
from lossdoctor.safetext import blank

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
SEVERITY_MARK = {"error": "🔴 error", "warning": "🟠 warning", "info": "🔵 info"}
LEVEL_MARK = {"error": "🔴", "warning": "🟠", "info": "🔵", "ok": "🟢", "incomplete": "⚠️"}
STRIP_WIDTH = 48
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f`]")


def md_escape(text: str) -> str:
    """One line without control characters (no raw ESC in the file), HTML entities for & < >, backslash
    before Markdown markup characters."""
    text = blank(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def text_strip(timeline: Timeline, width: int = STRIP_WIDTH) -> str:
    """The timeline as monospaced text: one row per finding, ``█`` where it holds, ``·`` elsewhere."""
    lo, hi = timeline.first_step, timeline.last_step
    span = max(hi - lo, 1)
    names = [_CONTROL.sub("'", r.rule_id)[:28] for r in timeline.rows]
    pad = max([len(n) for n in names] + [4])

    def col(step: int) -> int:
        return min(width - 1, max(0, int((step - lo) * (width - 1) / span + 0.5)))

    head = f"{lo}".ljust(width - len(str(hi))) + f"{hi}"
    lines = [" " * pad + "  " + head]
    for name, row in zip(names, timeline.rows):
        cells = ["·"] * width
        for a, b in row.ranges:
            for i in range(col(a), col(b) + 1):
                cells[i] = "█"
        lines.append(f"{name.ljust(pad)}  {''.join(cells)}")
    if timeline.best_eval_step is not None and lo <= timeline.best_eval_step <= hi:
        marker = [" "] * width
        marker[col(timeline.best_eval_step)] = "^"
        lines.append(f"{'':{pad}}  {''.join(marker).rstrip()} best eval (step {timeline.best_eval_step})")
    return "\n".join(lines)


class MarkdownRenderer:
    name = "markdown"
    aliases: tuple[str, ...] = ("md",)
    primary = "report.md"
    description = "report.md: for PR comments and $GITHUB_STEP_SUMMARY (sparklines, no images)"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        from lossdoctor.report.formats._jinja import MdSafe, md_env  # jinja2 only when rendered

        env = md_env(md_escape)
        template = env.get_template("report.md.j2")
        strip = MdSafe(text_strip(data.timeline)) if data.timeline is not None and data.timeline.rows else None
        text = template.render(
            d=data,
            strip=strip,
            severity_mark=SEVERITY_MARK,
            level_mark=LEVEL_MARK.get(data.level, ""),
            public=public_text,
        )
        text = re.sub(r"\n{3,}", "\n\n", text)
        return {self.primary: text.encode("utf-8")}


RENDERER = MarkdownRenderer()
