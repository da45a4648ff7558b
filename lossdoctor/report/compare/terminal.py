"""Comparison as terminal text: headline per later run, the pick, facts and findings side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lossdoctor.report.compare import CompareData
from lossdoctor.report.formats.terminal import _paint, clean

if TYPE_CHECKING:
    from lossdoctor.compare import Comparison

_TREND_LEVEL = {"worse": "error", "better": "ok", "mixed": "warning", "same": "info"}


def _table(header: list[str], rows: list[list[str]], width: int = 34) -> list[str]:
    cut = [[c if len(c) <= width else c[: width - 1] + "…" for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cut) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cut]


def summary(data: CompareData, color: bool) -> str:
    lines = ["compare: " + ", ".join(f"{r.key} = {clean(r.name)}" for r in data.runs)]
    for r in data.runs:
        lines.append(f"  {r.key}: " + _paint(clean(r.verdict), r.level, color))
    for h in data.headlines:
        lines.append("  " + _paint(clean(h), "info", color, bold=True))
    lines.append("  best run: " + clean(data.best_reason))
    lines.extend(
        _table(
            ["fact", *[r.key for r in data.runs]],
            [[label, *[clean(v) for v in values]] for label, values in data.facts if label != "Verdict"],
        )
    )
    if data.rules:
        rows = []
        for rule in data.rules:
            cells = []
            for i, cell in enumerate(rule.cells):
                status = rule.status[i]
                text = cell if not status or status == "-" else (f"{status}: {cell}" if cell != "-" else status)
                cells.append(clean(text))
            rows.append([rule.rule_id, *cells])
        lines.extend(_table(["finding", *[r.key for r in data.runs]], rows))
        for rule in data.rules:
            for i, detail in enumerate(rule.details):
                if detail:
                    trend = rule.trend[i]
                    tag = _paint(trend, _TREND_LEVEL.get(trend, "info"), color)
                    lines.append(f"  {rule.rule_id} in {data.runs[i].key}: {tag}: {clean(detail)}")
    else:
        lines.append("  no findings in any run")
    return "\n".join(lines)


class TerminalRenderer:
    name = "terminal"
    aliases: tuple[str, ...] = ("txt",)
    primary = "compare.txt"

    def render(self, cmp: Comparison, data: CompareData) -> dict[str, bytes]:
        return {self.primary: (summary(data, color=False) + "\n").encode("utf-8")}


RENDERER = TerminalRenderer()
