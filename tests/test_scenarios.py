"""The scenario suite (tests/scenarios: situations the peer tools test themselves on, written from seeded
formulas by tests/scenarios/make_scenarios.py): the default rules must meet tests/scenarios/floors.yaml there,
including no false alarm on a healthy scenario, and every scenario must be readable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"


def test_default_rules_meet_the_scenario_floors(tmp_path: Path) -> None:
    labels = list(SCENARIOS.glob("*/label.yaml"))
    assert len(labels) >= 120, f"the scenario suite has {len(labels)} runs; at least 120 expected"
    proc = subprocess.run(
        [sys.executable, "-m", "lossdoctor", "eval-corpus", str(SCENARIOS), "--json", str(tmp_path / "score.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    data = json.loads((tmp_path / "score.json").read_text())
    assert data["runs"] == len(labels)
    assert not [c["case"] for c in data["cases"] if c["error"]], "every scenario must be readable"
    assert data["false_alarms"]["runs"] == []


def test_every_scenario_says_where_its_situation_comes_from() -> None:
    import yaml

    for label in sorted(SCENARIOS.glob("*/label.yaml")):
        data = yaml.safe_load(label.read_text(encoding="utf-8"))
        assert data["source"] == "scenario" and data["origin"] and len(data["why"]) > 40, label
