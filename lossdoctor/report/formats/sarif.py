"""SARIF 2.1.0 (GitHub code scanning, ``github/codeql-action/upload-sarif``): one result per finding.

Stable rule ids (the rule's own id), the log file as the artifact location (as given on the command line,
so run it from the repository root with a relative path), the line of the log where the finding starts
when the reader knows it, a partial fingerprint per (run, rule) so code scanning tracks a finding across
pushes, and every rule in force in ``tool.driver.rules``. A crashed check is a tool execution
notification (``executionSuccessful: false``). Validated against the SARIF 2.1.0 JSON schema in tests.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from lossdoctor import __version__
from lossdoctor.report.formats.json import jsonable

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportData

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
INFO_URI = "https://pypi.org/project/lossdoctor/"


def artifact_uri(location: str) -> str | None:
    """A SARIF uri-reference for a run location: a relative path stays relative (POSIX separators), an
    absolute one becomes a file:// URI, a URL stays; stdin and other pseudo locations have none."""
    from urllib.parse import quote

    if not location or location.startswith("<") or location == "-":
        return None
    if "://" in location:
        return location
    path = location.replace("\\", "/")
    if path.startswith("/"):
        return "file://" + quote(path, safe="/:")
    if len(path) > 2 and path[1] == ":" and path[2] == "/":  # C:/...
        return "file:///" + quote(path, safe="/:")
    return quote(path, safe="/:")


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def sarif_log(diagnosis: Diagnosis, data: ReportData) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}

    def add_rule(rule_id: str, severity: str, title: str, description: str, origin: str) -> None:
        if rule_id in index:
            return
        index[rule_id] = len(rules)
        rules.append(
            {
                "id": rule_id,
                "name": rule_id,
                "shortDescription": {"text": title or rule_id},
                "fullDescription": {"text": " ".join((description or title or rule_id).split())},
                "defaultConfiguration": {"level": LEVELS.get(severity, "warning")},
                "properties": {"origin": origin, "severity": severity},
            }
        )

    for o in diagnosis.rule_outcomes:
        add_rule(o.rule_id, o.severity, o.title, o.description, o.origin)
    for f in diagnosis.findings:
        add_rule(f.rule_id, f.severity, f.title, "", f.origin)

    uri = artifact_uri(diagnosis.run.provenance.location)
    results = []
    for f, view in zip(diagnosis.findings, data.findings):
        text = f"{f.title}: {' '.join(f.message.split())}"
        if f.remediation:
            text += " What to do: " + " ".join(" ".join(r.split()) for r in f.remediation)
        result: dict[str, Any] = {
            "ruleId": f.rule_id,
            "ruleIndex": index[f.rule_id],
            "level": LEVELS.get(f.severity, "warning"),
            "message": {"text": text},
            "partialFingerprints": {"lossdoctorRun/v1": _fingerprint(diagnosis.run.name, f.rule_id)},
            "properties": {
                "steps": view.holds_text,
                "firstStep": f.first_step,
                "lastStep": f.last_step,
                "holds": [list(r) for r in view.holds],
                "evidence": {k: v for k, v in view.key_evidence},
            },
        }
        if uri is not None:
            physical: dict[str, Any] = {"artifactLocation": {"uri": uri, "index": 0}}
            if view.line is not None and view.line >= 1:
                physical["region"] = {"startLine": int(view.line)}
            result["locations"] = [{"physicalLocation": physical}]
        results.append(result)

    slug = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in diagnosis.run.name).strip("-") or "run"
    run: dict[str, Any] = {
        # one category per training run: code scanning keeps the results of several runs apart
        "automationDetails": {"id": f"lossdoctor/{slug[:80]}/"},
        "tool": {
            "driver": {
                "name": "lossdoctor",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFO_URI,
                "rules": rules,
            }
        },
        "results": results,
        "invocations": [
            {
                "executionSuccessful": not diagnosis.crashed_checks,
                "toolExecutionNotifications": [
                    {"level": "error", "message": {"text": f"rule check crashed: {c}"}}
                    for c in diagnosis.crashed_checks
                ],
            }
        ],
        "properties": {
            "runName": diagnosis.run.name,
            "verdict": diagnosis.verdict,
            "worstSeverity": diagnosis.worst_severity,
        },
    }
    if uri is not None:
        run["artifacts"] = [{"location": {"uri": uri}, "roles": ["analysisTarget"]}]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


class SarifRenderer:
    name = "sarif"
    aliases: tuple[str, ...] = ()
    primary = "report.sarif"
    description = "report.sarif: SARIF 2.1.0 for GitHub code scanning (upload-sarif)"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        text = json.dumps(
            jsonable(sarif_log(diagnosis, data)), indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False
        )
        return {self.primary: (text + "\n").encode("utf-8")}


RENDERER = SarifRenderer()
