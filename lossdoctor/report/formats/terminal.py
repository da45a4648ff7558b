"""Terminal summary: verdict, headline facts, one line per finding (ANSI colour by severity).

Run strings are stripped of control characters first: a run name or message carrying an escape
sequence must not be able to rewrite the user's terminal.
"""

from __future__ import annotations

from lossdoctor.model import Diagnosis
from lossdoctor.report.data import ReportData, build_report_data
from lossdoctor.safetext import blank

COLOURS = {"error": "31", "warning": "33", "info": "36", "ok": "32", "incomplete": "35"}


def clean(text: str) -> str:
    """One line, no control characters (ESC included)."""
    return blank(text)


def _paint(text: str, level: str, color: bool, bold: bool = False) -> str:
    if not color:
        return text
    code = COLOURS.get(level, "0")
    return f"\x1b[{'1;' if bold else ''}{code}m{text}\x1b[0m"


def summary_from_data(data: ReportData, color: bool) -> str:
    lines = [f"{clean(data.run.name)}: " + _paint(clean(data.verdict), data.level, color, bold=True)]
    for caveat in data.caveats:
        lines.append("  ! " + clean(caveat))
    lines.append("  objective: " + clean(data.objective))
    lines.append("  " + "; ".join(f"{label.lower()}: {clean(value)}" for label, value in data.facts[:4]))
    for f in data.findings:
        tag = _paint(f"{f.severity.upper():<7}", f.severity, color)
        lines.append(f"  {tag} {clean(f.rule_id)} [steps {clean(f.holds_text)}] {clean(f.message)}")
    for c in data.crashed_checks:
        lines.append("  " + _paint("CRASHED", "incomplete", color) + " " + clean(c))
    return "\n".join(lines)


def summary(diagnosis: Diagnosis, color: bool) -> str:
    return summary_from_data(build_report_data(diagnosis), color)


class TerminalRenderer:
    name = "terminal"
    aliases: tuple[str, ...] = ("txt",)
    primary = "summary.txt"
    description = "summary.txt: the terminal summary without colour"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        return {self.primary: (summary_from_data(data, color=False) + "\n").encode("utf-8")}


RENDERER = TerminalRenderer()
