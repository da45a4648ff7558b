"""Check arguments are resolved once, when the rule file is loaded; overrides are typed; check kinds are
validated when the registry takes them in (closed parameter types, evidence keys as declared)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lossdoctor.model import Provenance, Run, make_metrics
from lossdoctor.rules import schema
from lossdoctor.rules.checks import PARAM_TYPES, CheckDeclarationError, Param, global_result, registry, validate_check
from lossdoctor.rules.engine import run_rules
from lossdoctor.rules.packs import RuleSet, load_rules
from lossdoctor.rules.schema import Override, parse_rule_text

RULE = """version: 1
rules:
  - id: loss-high
    severity: warning
    title: Loss high
    params: {limit: 0.5}
    when: {check: threshold, series: train/loss, op: ">", value: "${limit}"}
    message: "loss {evidence.value} above {params.limit}"
"""


def _run(values: list[float]) -> Run:
    steps = list(range(10, 10 * (len(values) + 1), 10))
    return Run("r", Provenance("t", "t"), make_metrics(steps, ["train/loss"] * len(values), values))


def test_arguments_are_resolved_at_load_and_not_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULE, encoding="utf-8")
    rules = load_rules((str(path),), include_default=False)
    cond = rules.get("loss-high").when
    assert cond.args["value"] == "${limit}"  # the file's text is kept
    assert cond.resolved["value"] == 0.5 and cond.resolved["series"] == "train/loss"
    assert cond.resolved["reduce"] == registry()["threshold"].params["reduce"].default  # defaults filled

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("check arguments re-validated at evaluation")

    monkeypatch.setattr(schema, "check_args", refuse)
    monkeypatch.setattr(schema, "coerce_arg", refuse)
    for _ in range(3):  # the live callback judges on every log
        result = run_rules(_run([0.2, 0.9, 0.3]), rules)
        assert not result.crashed and [f.rule_id for f in result.findings] == ["loss-high"]


def test_override_params_are_resolved_again(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE, encoding="utf-8")
    (tmp_path / "o.yaml").write_text(
        "version: 1\noverrides:\n  loss-high: {params: {limit: 2}, for: 2 points}\n", encoding="utf-8"
    )
    rules = load_rules((str(tmp_path / "r.yaml"), str(tmp_path / "o.yaml")), include_default=False)
    rule = rules.get("loss-high")
    assert rule.when.resolved["value"] == 2.0 and (rule.for_count, rule.for_unit) == (2, "points")
    assert not run_rules(_run([0.2, 0.9, 0.3]), rules).findings


def test_overrides_are_a_typed_frozen_structure() -> None:
    parsed, problems = parse_rule_text(
        "version: 1\noverrides:\n  a: disable\n  b: {severity: error, for: 3 evals, "
        "params: {max: 2}, objectives: [sft]}\n",
        "o.yaml",
    )
    assert not problems and parsed is not None
    a, b = parsed.overrides["a"], parsed.overrides["b"]
    assert isinstance(a, Override) and a.enabled is False and a.severity is None and a.origin == "o.yaml:3"
    assert (b.severity, b.persist, dict(b.params or {}), b.objectives, b.enabled) == (
        "error",
        (3, "evals"),
        {"max": 2},
        ("sft",),
        None,
    )
    assert b.params_pos["max"][0] == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.severity = "info"  # type: ignore[misc]


def test_a_parameter_of_unknown_type_is_refused_with_a_clear_message() -> None:
    with pytest.raises(CheckDeclarationError, match=r"unknown parameter type 'colour'; expected one of bool, "):
        Param("colour")
    with pytest.raises(CheckDeclarationError, match="'choice' parameter needs its choices"):
        Param("choice")
    assert {"series", "int", "fraction", "choice", "window"} <= PARAM_TYPES


class _Check:
    kind = "leaky"
    doc = "a test check"
    params: Mapping[str, Param] = {"series": Param("series", required=True)}
    evidence_keys = frozenset({"value"})

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> Any:
        return global_result(True, 10, {"value": 1.0, "secret": 2}, (args["series"],))


def test_registry_validates_declarations() -> None:
    assert all(validate_check(check) is check for check in registry().values())  # the shipped kinds pass
    bad = _Check()
    object.__setattr__(bad, "params", {"series": object()})
    with pytest.raises(CheckDeclarationError, match=r"check kind 'leaky' .*parameter 'series' must be a Param"):
        validate_check(bad)
    bad = _Check()
    bad.evidence_keys = {"value"}  # type: ignore[assignment]
    with pytest.raises(CheckDeclarationError, match="evidence_keys must be a frozenset"):
        validate_check(bad)
    bad = _Check()
    bad.kind = "Leaky Check"
    with pytest.raises(CheckDeclarationError, match="kind must be a lower-case name"):
        validate_check(bad)


def test_an_undeclared_evidence_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry(), "leaky", validate_check(_Check()))
    parsed, problems = parse_rule_text(
        """version: 1
rules:
  - id: leak
    severity: info
    title: Leak
    when: {check: leaky, series: train/loss}
    message: "{evidence.value}"
""",
        "leak.yaml",
    )
    assert not problems and parsed is not None
    result = run_rules(_run([1.0, 2.0]), RuleSet(rules=parsed.rules, sources=("leak.yaml",)))
    assert not result.findings
    assert result.crashed == (
        "leak: CheckDeclarationError: check kind 'leaky' emitted evidence key(s) secret it "
        "does not declare in evidence_keys",
    )


def test_live_judging_reads_the_series_a_param_names(tmp_path) -> None:  # noqa: ANN001
    """A rule whose series is a ${param} is watched on the series the param names (resolved at load), and a
    pointwise threshold is recognised from its resolved arguments as the engine evaluates them."""
    from lossdoctor.live import LiveJudge, _pointwise

    path = tmp_path / "live.yaml"
    path.write_text(
        "version: 1\nrules:\n  - id: big-grad\n    severity: warning\n    title: t\n    description: d\n"
        "    params: {s: train/grad_norm, how: each}\n"
        "    when: {check: threshold, series: '${s}', op: '>', value: 10, reduce: '${how}'}\n"
        "    message: m\n"
    )
    ruleset = load_rules([str(path)], include_default=False)
    judge = LiveJudge(ruleset)
    assert judge._patterns["big-grad"] == ("train/grad_norm",)
    assert _pointwise(ruleset.rules[0].when)


@pytest.mark.parametrize("seed", range(3))
def test_level_at_start_and_end_is_the_median_of_three_in_a_row(seed: int) -> None:
    """``level`` at start / end takes one median of the first / last 3 finite points; at max, the highest of
    every 3-in-a-row median; a series of fewer points (a rule with a lower ``min_points``) has one level, the
    median of them all (it used to crash the rule)."""
    import math
    import random

    rng = random.Random(seed)
    values = [rng.choice([rng.uniform(0, 20), math.nan, math.inf]) for _ in range(60)]
    finite = [v for v in values if math.isfinite(v)]
    meds = [sorted(finite[i : i + 3])[1] for i in range(len(finite) - 2)]
    check = registry()["level"]
    for at, want in (("start", meds[0]), ("end", meds[-1]), ("max", max(meds))):
        args = {p: d.default for p, d in check.params.items()} | {"series": "train/loss", "at": at}
        got = check.evaluate(_run(values), args)
        assert got.evidence_at(0)["level"] == want, at
    # a rule that asks for fewer points: the median of the two there are, wherever it looks
    for at in ("start", "end", "max"):
        args = {p: d.default for p, d in check.params.items()} | {"series": "train/loss", "at": at, "min_points": 1}
        assert check.evaluate(_run([2.0, 5.0]), args).evidence_at(0)["level"] == 3.5, at
