"""JSON: the diagnosis as data for machines (schema in docs/report-schema.md).

Sized for people and CI artifacts: each metric's points are decimated the way the plots are (at most
``MAX_PLOT_POINTS`` per series: per bucket the first, lowest, highest and last point), keeping every
non-finite point and every step a finding names (its range, its evidence, where it holds). With
``ReportOptions(full_series=True)`` (``analyze --full-series``) every point is written.

Deterministic: keys sorted, findings in the diagnosis order, metrics sorted by name, floats as
Python's shortest repr. JSON has no NaN/Infinity, so non-finite floats are the strings "nan", "inf"
and "-inf" (a consumer can map them back with float()); missing values are null.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lossdoctor import __version__
from lossdoctor.model import Diagnosis, Run
from lossdoctor.report.data import ReportData, build_report_data, evidence_steps
from lossdoctor.table import decimate

SCHEMA = "lossdoctor.diagnosis"
SCHEMA_VERSION = 1


def jsonable(value: Any) -> Any:
    """Plain JSON types only: non-finite floats as strings, numpy scalars unwrapped, unknowns as str."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
        return _number_list(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return str(value)


def _number_list(arr: np.ndarray) -> list[Any]:
    """A numeric array as a JSON list in one C pass; only non-finite entries are patched to strings."""
    if arr.dtype.kind != "f":
        return arr.astype("int64").tolist() if arr.dtype.kind in "iu" else arr.astype(bool).tolist()
    out = arr.astype("float64").tolist()
    for i in np.flatnonzero(~np.isfinite(arr)).tolist():
        out[i] = jsonable(out[i])
    return out


def _metrics(run: Run, keep_steps: np.ndarray | None) -> list[dict[str, Any]]:
    """One item per metric; ``keep_steps`` None writes every point, else the decimated series."""
    out = []
    raw_names: dict[str, set[str]] = {}
    for raw_name, metric, _ in run.metrics.pairs():
        raw_names.setdefault(metric, set()).add(raw_name)
    for name in run.metric_names():
        s = run.series(name)
        raw = sorted(raw_names.get(name, ()))
        steps, vals = s.index, s.to_numpy(dtype="float64")
        item: dict[str, Any] = {
            "name": name,
            "raw_names": raw,
            "points": int(len(s)),
            "nonfinite": int((~np.isfinite(vals)).sum()),
        }
        if keep_steps is not None:
            idx = decimate(steps, vals, keep_steps=keep_steps)
            item["decimated"] = bool(len(idx) < len(vals))
            steps, vals = steps[idx], vals[idx]
        else:
            item["decimated"] = False
        item["steps"], item["values"] = steps, vals
        out.append(item)
    return out


def diagnosis_to_dict(diagnosis: Diagnosis, data: ReportData | None = None) -> dict[str, Any]:
    data = data if data is not None else build_report_data(diagnosis)
    run = diagnosis.run
    holds = tuple(v.holds for v in data.findings)
    keep = None if data.options.full_series else evidence_steps(diagnosis.findings, holds)
    findings = []
    for f, view in zip(diagnosis.findings, data.findings):
        item = dataclasses.asdict(f)
        item["holds"] = [list(r) for r in view.holds]
        findings.append(item)
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "lossdoctor_version": __version__,
        "run": {
            "name": run.name,
            "provenance": run.provenance,
            "state": run.state,
            "created": run.created,
            "tags": list(run.tags),
            "config": dict(run.config),
            "summary": dict(run.summary),
            "n_points": run.n_points,
            "metrics": _metrics(run, keep),
            "full_series": keep is None,
        },
        "facts": diagnosis.facts,
        "verdict": diagnosis.verdict,
        "objective": diagnosis.objective,
        "rules_not_applied": list(diagnosis.rules_not_applied),
        "worst_severity": diagnosis.worst_severity,
        "findings": findings,
        "rules": [
            {"rule_id": o.rule_id, "severity": o.severity, "status": o.status, "reason": o.reason, "origin": o.origin}
            for o in diagnosis.rule_outcomes
        ],
        "crashed_checks": list(diagnosis.crashed_checks),
        "rule_sources": list(diagnosis.rule_sources),
    }
    return jsonable(doc)


class JsonRenderer:
    name = "json"
    aliases: tuple[str, ...] = ()
    primary = "diagnosis.json"
    description = "diagnosis.json: findings, facts and the series as plotted (--full-series: every point)"

    def render(self, diagnosis: Diagnosis, data: ReportData) -> dict[str, bytes]:
        text = json.dumps(
            diagnosis_to_dict(diagnosis, data), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False
        )
        return {self.primary: (text + "\n").encode("utf-8")}


RENDERER = JsonRenderer()
