"""JUnit XML (GitLab's ``artifacts:reports:junit``, Jenkins' test-report widgets): one test case per rule.

A rule that fired is a ``<failure>`` (its type the severity, the message the finding), a rule that could
not be judged is ``<skipped>`` with the reason (e.g. the run has no eval loss), a check that crashed is an
``<error>``, and a rule that held is a passing test case. Validated against the Jenkins xUnit JUnit schema
(junit-10.xsd) in tests. Characters XML 1.0 cannot carry are dropped; everything else is escaped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lossdoctor.model import Diagnosis
    from lossdoctor.report.data import ReportData

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: object) -> str:
    from xml.sax.saxutils import escape

    return escape(_NOT_XML.sub("", str(value)))


def _attr(value: object) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(" ".join(_NOT_XML.sub(" ", str(value)).split()))


def junit_xml(diagnosis: Diagnosis, data: ReportData) -> str:
    run = diagnosis.run
    classname = f"lossdoctor.{run.name}"
    findings = {f.rule_id: (f, v) for f, v in zip(diagnosis.findings, data.findings)}
    outcomes = list(diagnosis.rule_outcomes)
    known = {o.rule_id for o in outcomes}
    cases: list[str] = []
    failures = errors = skipped = 0
    for o in outcomes:
        head = f'<testcase name={_attr(o.rule_id)} classname={_attr(classname)} time="0">'
        if o.status == "fired" and o.rule_id in findings:
            f, view = findings[o.rule_id]
            failures += 1
            cases.append(head + _failure(f, view) + "</testcase>")
        elif o.status == "crashed":
            errors += 1
            cases.append(head + f'<error type="crashed" message={_attr(o.reason)}>{_text(o.reason)}</error></testcase>')
        elif o.status == "skipped":
            skipped += 1
            cases.append(head + f"<skipped message={_attr(o.reason)}/></testcase>")
        else:
            cases.append(head + "</testcase>")
    for rule_id, (f, view) in findings.items():  # findings of rules not in the outcomes (hand-built)
        if rule_id not in known:
            failures += 1
            cases.append(
                f'<testcase name={_attr(rule_id)} classname={_attr(classname)} time="0">'
                + _failure(f, view)
                + "</testcase>"
            )
    tests = len(cases)
    suite = (
        f'<testsuite name={_attr("lossdoctor: " + run.name)} tests="{tests}" failures="{failures}" '
        f'errors="{errors}" skipped="{skipped}" time="0" file={_attr(run.provenance.location)}>\n'
        f'<properties><property name="verdict" value={_attr(diagnosis.verdict)}/>'
        f'<property name="source_kind" value={_attr(run.provenance.kind)}/>'
        f'<property name="state" value={_attr(run.state)}/></properties>\n' + "\n".join(cases) + "\n</testsuite>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites name="lossdoctor" tests="{tests}" failures="{failures}" errors="{errors}">\n'
        f"{suite}\n</testsuites>\n"
    )


def _failure(f, view) -> str:  # noqa: ANN001
    body = [f"{f.severity}: {f.title}", " ".join(f.message.split()), f"steps: {view.holds_text}"]
    body += [f"what to do: {' '.join(r.split())}" for r in f.remediation]
    if view.key_evidence:
        body.append("evidence: " + ", ".join(f"{k} {v}" for k, v in view.key_evidence))
    body.append(f"rule: {f.origin}")
    return (
        f"<failure type={_attr(f.severity)} message={_attr(f.title + ': ' + f.message)}>"
        f"{_text(chr(10).join(body))}</failure>"
    )


class JUnitRenderer:
    name = "junit"
    aliases: tuple[str, ...] = ()
    primary = "junit.xml"
    description = "junit.xml: one test case per rule (GitLab / Jenkins test reports)"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        return {self.primary: junit_xml(diagnosis, data).encode("utf-8")}


RENDERER = JUnitRenderer()
