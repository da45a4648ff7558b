"""promtool-style rule test cases: tests/cases/<rule-id>.yaml.

Series notation (a compact, expanding one like promtool's): space-separated segments, each either a number,
``nan``/``inf``/``-inf``, ``_`` (no point logged), or ``A+BxN`` / ``A-BxN`` = A, A±B, ..., A±N·B (N+1 values).
A series is ``{every: STEPS, start: STEP, values: "..."}`` (start defaults to every). A case may give the
run's ``config`` (flat keys, as readers put them in ``Run.config``) for rules that read it, and its
``objective`` (e.g. ``rl``; without it the objective is told from the series' names, as for a real run);
``objective_detected: ID`` also asserts what the series are taken for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lossdoctor.model import Provenance, Run, make_metrics

_RANGE = re.compile(r"^(-?[\d.eE+-]+?)([+-])([\d.eE]+)x(\d+)$")
CASES_DIR = Path(__file__).parent / "cases"


def expand(text: str) -> list[float | None]:
    out: list[float | None] = []
    for seg in str(text).split():
        m = _RANGE.match(seg)
        if m:
            a, sign, b, n = float(m.group(1)), m.group(2), float(m.group(3)), int(m.group(4))
            inc = b if sign == "+" else -b
            out.extend(a + inc * i for i in range(n + 1))
        elif seg == "_":
            out.append(None)
        else:
            out.append(float(seg))
    return out


def build_run(series: dict[str, Any], name: str = "case", config: dict[str, Any] | None = None) -> Run:
    steps, names, values = [], [], []
    for metric, spec in series.items():
        every = int(spec.get("every", 1))
        start = int(spec.get("start", every))
        for i, v in enumerate(expand(spec["values"])):
            if v is None:
                continue
            steps.append(start + i * every)
            names.append(metric)
            values.append(v)
    return Run(
        name=name,
        provenance=Provenance("test-case", name),
        metrics=make_metrics(steps, names, values),
        config=dict(config or {}),
    )


def load_cases() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in data["cases"]:
            out.append((data["rule"], f"{path.stem}::{case['name']}", case))
    return out


def numbers_match(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return bool(np.isclose(actual, expected, rtol=1e-3, atol=1e-9))
    return actual == expected
