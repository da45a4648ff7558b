"""Runs every tests/cases/*.yaml against the default pack; a meta-test demands a firing and a silent
case for every default rule (a rule never shown to fire, or to stay quiet, is untested). A case is judged as
`lossdoctor analyze` judges a run: the rule runs only when it judges the case's objective (the case's
`objective:`, else the one its series show)."""

from __future__ import annotations

import pytest
from rulecases import build_run, load_cases, numbers_match

from lossdoctor.metrics.objectives import detect, objective_table, resolve
from lossdoctor.rules.engine import evaluate_rule
from lossdoctor.rules.packs import load_rules

RULES = load_rules()
CASES = load_cases()


@pytest.mark.parametrize("rule_id,case_id,case", CASES, ids=[c[1] for c in CASES])
def test_rule_case(rule_id: str, case_id: str, case: dict) -> None:
    rule = RULES.get(rule_id)
    assert rule is not None, f"{case_id}: no rule {rule_id!r} in the default pack"
    run = build_run(case["series"], case_id, case.get("config"))
    objective = resolve(case["objective"]) if "objective" in case else detect(run)
    if "objective_detected" in case:  # the case pins what its series are taken for
        assert detect(run).id == case["objective_detected"], (detect(run), case["objective_detected"])
    finding = evaluate_rule(rule, run) if rule.applies_to(objective.id) else None
    expect = case["expect"]
    if not expect:
        assert finding is None, f"{case_id}: expected silence, got: {finding and finding.message}"
        return
    assert finding is not None, f"{case_id}: expected {rule_id} to fire"
    want = expect[0]
    for key in ("first_step", "last_step"):
        if key in want:
            assert getattr(finding, key) == want[key], (key, getattr(finding, key), want[key])
    for key, value in (want.get("evidence") or {}).items():
        assert numbers_match(finding.evidence.get(key), value), (key, finding.evidence.get(key), value)
    for fragment in want.get("message_contains", []):
        assert fragment in finding.message, (fragment, finding.message)


def test_every_default_rule_names_known_objectives() -> None:
    """Each default rule says which objectives it judges (so none judges a run it was not written for)."""
    import yaml

    from lossdoctor.rules.packs import builtin_pack_text

    pack = yaml.safe_load(builtin_pack_text("default")[0])
    silent = [r["id"] for r in pack["rules"] if "objectives" not in r and "objectives" not in pack]
    assert not silent, f"default rules that do not say which objectives they judge: {silent}"
    known = set(objective_table().ids())
    assert all(set(r.objectives) <= known for r in RULES.rules)
    assert {r.id for r in RULES.rules if r.applies_to("rl")} != {r.id for r in RULES.rules}


def test_every_default_rule_has_a_firing_and_a_silent_case() -> None:
    firing = {rid for rid, _, c in CASES if c["expect"]}
    silent = {rid for rid, _, c in CASES if not c["expect"]}
    missing = [(r.id, r.id in firing, r.id in silent) for r in RULES.rules if r.id not in firing or r.id not in silent]
    assert not missing, f"rules without a firing/silent case (id, has firing, has silent): {missing}"
