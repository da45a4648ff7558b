"""Rule files are strict data: every error collected with file:line:col; overrides; nothing executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lossdoctor.errors import RuleFileError
from lossdoctor.model import Provenance, Run, make_metrics
from lossdoctor.rules import template
from lossdoctor.rules.engine import run_rules
from lossdoctor.rules.packs import load_rules, validate_files
from lossdoctor.rules.schema import Condition, Rule


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_every_error_is_collected_with_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """version: 1
rules:
  - id: a
    severity: fatal
    title: A
    when: {check: threshold, series: train/loss, op: ">", value: 3}
    message: m
  - id: b
    severity: info
    title: B
    when: {check: sorcery, series: train/loss}
    message: m
""",
    )
    problems = validate_files((path,))
    assert f'{path}:4:5: rule "a": severity: expected one of info, warning, error' in problems
    assert any(p.startswith(f"{path}:11:") and "unknown check kind 'sorcery'" in p for p in problems)
    assert len(problems) == 2


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nrules:\n  - id: a\n   severity: [\n")
    problems = validate_files((path,))
    assert len(problems) == 1 and problems[0].startswith(f"{path}:") and "YAML syntax error" in problems[0]


def test_python_tags_are_not_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(
        tmp_path,
        f"""version: 1
rules:
  - id: a
    severity: info
    title: !!python/object/apply:os.system ["touch {marker}"]
    when: {{check: missing, series: eval/loss}}
    message: m
""",
    )
    problems = validate_files((path,))
    assert problems and not marker.exists()


def test_unknown_param_and_evidence_and_template_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """version: 1
rules:
  - id: a
    severity: info
    title: A
    params: {max: 3}
    when: {check: threshold, series: train/loss, op: ">", value: "${nope}", colour: red}
    message: "{evidence.nothing} {params.max} {rule.id}"
""",
    )
    problems = "\n".join(validate_files((path,)))
    assert "colour" in problems and "${nope} refers to an unknown param" in problems
    assert "{evidence.nothing} is not provided" in problems and "unknown field {rule.id}" in problems


def test_override_disables_and_rethresholds_a_default_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """version: 1
extends: default
overrides:
  grad-norm-high: {severity: error, params: {max: 2}}
  many-epochs: disable
""",
    )
    rules = load_rules((path,))
    assert rules.get("many-epochs") is None and "many-epochs" in rules.disabled
    rule = rules.get("grad-norm-high")
    assert rule is not None and rule.severity == "error" and rule.params["max"] == 2
    # the first three logs are warm-up (not judged by grad-norm-high since issue 12)
    run = Run(
        "r",
        Provenance("t", "t"),
        make_metrics([10, 20, 30, 40, 50, 60, 70], ["grad_norm"] * 7, [1.0, 1.0, 1.0, 2.5, 3.0, 2.9, 1.0]),
    )
    fired = [f.rule_id for f in run_rules(run, rules).findings]
    assert "grad-norm-high" in fired


def test_override_unknown_param_is_an_error_with_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\noverrides:\n  grad-norm-high:\n    params: {maximum: 2}\n")
    with pytest.raises(RuleFileError) as info:
        load_rules((path,))
    assert str(info.value).startswith(f"{path}:4:") and "unknown param 'maximum'" in str(info.value)


def test_override_of_unknown_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\noverrides:\n  no-such-rule: disable\n")
    problems = validate_files((path,))
    assert problems == [
        f"{path}:3:3: overrides: unknown rule 'no-such-rule'; known rules: "
        + ", ".join(r.id for r in load_rules().rules)
    ]


def test_missing_rule_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="rule file not found"):
        load_rules((str(tmp_path / "absent.yaml"),))
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RuleFileError, match="not UTF-8"):
        load_rules((str(bad),))


def test_template_is_restricted() -> None:
    assert template.render("{evidence.x:.2f} / {params.y}", {"x": 1.23456}, {"y": "5%"}) == "1.23 / 5%"
    assert template.render("{evidence.missing}", {}, {}) == "?"
    for bad in ("{evidence.__class__.__mro__}", "{evidence[x]}", "{evidence.x!r}", "{os.system}"):
        with pytest.raises(ValueError):
            template.fields(bad)


def test_a_crashing_check_is_reported_not_dropped() -> None:
    from lossdoctor.rules.packs import RuleSet

    bad = Rule(
        id="bad",
        severity="error",
        title="t",
        description="",
        params={},
        when=Condition(op="check", kind="threshold", args={"series": "train/loss", "op": ">"}),
        for_count=1,
        for_unit="points",
        message="m",
        remediation=(),
        labels={},
        origin="x:1",
    )
    good = load_rules().get("nonfinite-loss")
    run = Run("r", Provenance("t", "t"), make_metrics([1, 2], ["loss", "loss"], [1.0, float("nan")]))
    result = run_rules(run, RuleSet(rules=(bad, good), sources=()))
    assert [f.rule_id for f in result.findings] == ["nonfinite-loss"]
    assert len(result.crashed) == 1 and result.crashed[0].startswith("bad: ValueError")
