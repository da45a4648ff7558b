"""GitHub Actions workflow commands, printed to standard output: one annotation per finding.

``::error file=train.log,line=12,title=lossdoctor overfitting::eval/loss rose ...`` (error / warning /
notice by severity) plus a ``::notice`` with the verdict. The runner turns them into annotations on the
run and, for files in the repository, on the diff. Data and property values are escaped the way the
runner expects (``%``, CR, LF; and ``:`` / ``,`` in properties), so a run string cannot end a command early
or inject another one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lossdoctor.report.formats.sarif import artifact_uri

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportData

LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_commands(diagnosis: Diagnosis, data: ReportData) -> str:
    location = diagnosis.run.provenance.location
    file = location if artifact_uri(location) is not None and "://" not in location else None
    lines = []
    for f, view in zip(diagnosis.findings, data.findings):
        props = []
        if file is not None:
            props.append(f"file={escape_property(file)}")
            if view.line is not None:
                props.append(f"line={int(view.line)}")
        props.append(f"title={escape_property(f'lossdoctor {f.rule_id}: {f.title} (steps {view.holds_text})')}")
        text = " ".join(f.message.split())
        if f.remediation:
            text += " What to do: " + " ".join(" ".join(r.split()) for r in f.remediation)
        lines.append(f"::{LEVELS.get(f.severity, 'warning')} {','.join(props)}::{escape_data(text)}")
    for c in diagnosis.crashed_checks:
        lines.append(f"::error title=lossdoctor rule check crashed::{escape_data(c)}")
    lines.append(
        f"::notice title={escape_property('lossdoctor: ' + diagnosis.run.name)}::{escape_data(diagnosis.verdict)}"
    )
    return "\n".join(lines) + "\n"


class GithubRenderer:
    name = "github"
    aliases: tuple[str, ...] = ()
    primary = "github-annotations.txt"
    description = "GitHub Actions annotations (::error file=...,line=...::), printed to standard output"
    to_stdout = True

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        return {self.primary: workflow_commands(diagnosis, data).encode("utf-8")}


RENDERER = GithubRenderer()
