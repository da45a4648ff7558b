"""Comparison as JSON (schema ``lossdoctor.comparison`` v1): runs with facts and findings, one row per rule
with each run's status against the baseline, the headlines and the pick. Deterministic (sorted keys); non-finite
floats as the strings "nan"/"inf" as in diagnosis.json."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from lossdoctor import __version__
from lossdoctor.report.compare import CompareData
from lossdoctor.report.formats.json import jsonable

if TYPE_CHECKING:
    from lossdoctor.compare import Comparison

SCHEMA = "lossdoctor.comparison"
SCHEMA_VERSION = 1


def comparison_to_dict(cmp: Comparison) -> dict[str, Any]:
    runs = []
    for col, diag in zip(cmp.runs, cmp.diagnoses):
        runs.append(
            {
                "key": col.key,
                "name": col.name,
                "location": col.location,
                "kind": col.kind,
                "state": col.state,
                "verdict": col.verdict,
                "worst_severity": diag.worst_severity,
                "facts": col.facts,
                "epochs": col.epochs,
                "findings": [dataclasses.asdict(f) for f in diag.findings],
                "crashed_checks": list(diag.crashed_checks),
            }
        )
    rows = []
    for row in cmp.rows:
        rows.append(
            {
                "rule_id": row.rule_id,
                "title": row.title,
                "severity": row.severity,
                "runs": {
                    col.key: {
                        "status": row.status[i],
                        "trend": row.trend[i],
                        "details": row.details[i],
                        "where": row.cells[i],
                    }
                    for i, col in enumerate(cmp.runs)
                },
            }
        )
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "lossdoctor_version": __version__,
        "baseline": cmp.runs[0].key,
        "runs": runs,
        "findings": rows,
        "headlines": list(cmp.headlines),
        "best": {"key": cmp.runs[cmp.best].key, "name": cmp.runs[cmp.best].name, "reason": cmp.best_reason},
    }
    return jsonable(doc)


class JsonRenderer:
    name = "json"
    aliases: tuple[str, ...] = ()
    primary = "comparison.json"

    def render(self, cmp: Comparison, data: CompareData) -> dict[str, bytes]:
        text = json.dumps(comparison_to_dict(cmp), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        return {self.primary: (text + "\n").encode("utf-8")}


RENDERER = JsonRenderer()
