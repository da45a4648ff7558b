"""Run × RuleSet → findings. Pure and deterministic: findings sorted by severity, first step, rule id.
A check that raises is reported (rule id + exception) after the others ran — never dropped, never a finding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossdoctor.memory import RELEASE_AFTER_POINTS, release
from lossdoctor.model import SEVERITY_RANK, Finding, RuleOutcome, Run
from lossdoctor.rules import template
from lossdoctor.rules.checks import CheckResult, declared_evidence, registry, sorted_unique
from lossdoctor.rules.packs import RuleSet
from lossdoctor.rules.schema import Condition, Rule
from lossdoctor.rules.window import qualifying_runs


@dataclass(frozen=True)
class EngineResult:
    """The engine's answer for one run: findings, crashed and skipped rules, every rule's outcome."""

    findings: tuple[Finding, ...]
    crashed: tuple[str, ...]  # "rule-id: ExceptionType: message"
    not_applied: tuple[str, ...] = ()  # rules skipped: they do not judge the run's objective
    outcomes: tuple[RuleOutcome, ...] = ()  # every rule: fired / passed / skipped (with the reason) / crashed


def _evaluate(cond: Condition, run: Run) -> CheckResult:
    if cond.op == "check":
        if cond.resolved is None:  # rules come from parse_rule_text / load_rules, which resolve every check
            raise ValueError(
                f"check {cond.kind!r}: arguments not resolved (build rules with rules.schema.resolve_condition)"
            )
        check = registry()[cond.kind]
        return declared_evidence(check, check.evaluate(run, cond.resolved))
    return _combine(cond.op, [_evaluate(child, run) for child in cond.children])


def _sample(part: CheckResult, clock: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, index into part's clock) of ``part`` as of each clock step."""
    if part.scope == "global":
        held = bool(part.mask[0]) if len(part.mask) else False
        return np.full(len(clock), held), np.zeros(len(clock), dtype="int64")
    same = part.clock is clock or (len(part.clock) == len(clock) and np.array_equal(part.clock, clock))
    if same and bool(np.all(clock[1:] > clock[:-1])):  # the same rising clock: each step is its own
        return part.mask.astype(bool), np.arange(len(clock))
    idx = np.searchsorted(part.clock, clock, side="right") - 1
    mask = np.zeros(len(clock), dtype=bool)
    seen = idx >= 0  # a clock step before the part's first has no value yet: False
    mask[seen] = part.mask[idx[seen]]
    return mask, np.maximum(idx, 0)


def _combine(op: str, parts: list[CheckResult]) -> CheckResult:
    pointwise = [p for p in parts if p.scope != "global"]
    if pointwise:
        clock = pointwise[0].clock if op == "all" else sorted_unique(*[p.clock for p in pointwise])
    else:
        clock = parts[0].clock
    sampled = [_sample(p, clock) for p in parts]
    masks = np.vstack([m for m, _ in sampled]) if sampled else np.zeros((0, len(clock)), dtype=bool)
    mask = np.asarray(masks.all(axis=0) if op == "all" else masks.any(axis=0))  # typed as bool | ndarray
    if len(clock) == 0:
        mask = np.zeros(0, dtype=bool)

    def evidence_at(i: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part, (_, idx) in zip(parts, sampled):
            if len(part.clock):
                out.update(part.evidence_at(int(idx[i])))
        return out

    onset_parts = [(p.onset_at, idx) for p, (_, idx) in zip(parts, sampled) if p.onset_at is not None and len(p.clock)]

    def first_onset(i: int) -> int | None:
        onset_at, idx = onset_parts[0]
        return onset_at(int(idx[i]))

    onset: Callable[[int], int | None] | None = first_onset if onset_parts else None

    series: list[str] = []
    for p in parts:
        series.extend(s for s in p.series if s not in series)
    scope = "global" if not pointwise else "points"
    return CheckResult(clock, mask, evidence_at, tuple(series), scope, onset)


def _json_safe(value: Any) -> Any:
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


def _confidence(run: Run, evidence: dict[str, Any]) -> float:
    """The reader's confidence in the numbers x the check's own (``evidence.confidence``: what n points and
    the series' noise allow it to conclude; 1 when the check does not say)."""
    own = evidence.get("confidence")
    own = float(own) if isinstance(own, (int, float)) and not isinstance(own, bool) and np.isfinite(own) else 1.0
    return round(float(run.provenance.confidence) * min(1.0, max(0.0, own)), 3)


def evaluate_rule(rule: Rule, run: Run) -> Finding | None:
    return judge_rule(rule, run)[0]


def judge_rule(rule: Rule, run: Run) -> tuple[Finding | None, str]:
    """(the finding or None, why the rule could not be judged: "" when it was)."""
    params = rule.params
    result = _evaluate(rule.when, run)
    if len(result.clock) == 0:
        return None, f"not judged: the run has no {' / '.join(result.series) or 'data'} series it needs"
    if result.scope == "global":
        if not result.mask[0]:
            return None, ""
        evidence = result.evidence_at(0)
        first = int(evidence.get("from_step", result.clock[0]))
        last = int(evidence.get("to_step", result.clock[0]))
        fired = int(result.clock[0])
        held = 1
    else:
        runs = qualifying_runs(result.clock, result.mask, rule.for_count, rule.for_unit)
        if not runs:
            return None, ""
        start, _, fired_idx = runs[0]
        last_end = runs[-1][1]
        evidence = result.evidence_at(last_end)
        onset = result.onset_at(last_end) if result.onset_at else None
        first = int(onset) if onset is not None else int(result.clock[start])
        last = int(result.clock[last_end])
        fired = int(result.clock[fired_idx])
        held = int(sum(e - s + 1 for s, e, _ in runs))
        evidence["onset_step"] = first
    evidence.update(first_step=first, last_step=last, fired_step=fired, held_points=held)
    evidence = {k: _json_safe(v) for k, v in evidence.items()}
    params_shown = {k: v for k, v in params.items()}
    message = template.render(rule.message, evidence, params_shown)
    remediation = tuple(template.render(r, evidence, params_shown) for r in rule.remediation)
    return Finding(
        rule_id=rule.id,
        severity=rule.severity,
        title=rule.title,
        message=message,
        remediation=remediation,
        series=result.series,
        first_step=first,
        last_step=last,
        evidence=dict(sorted(evidence.items())),
        origin=rule.origin,
        confidence=_confidence(run, evidence),
        category=rule.labels.get("category", ""),
    ), ""


def sort_key(f: Finding) -> tuple[int, int, str]:
    return (-SEVERITY_RANK[f.severity], f.first_step if f.first_step is not None else -1, f.rule_id)


def run_rules(run: Run, ruleset: RuleSet, objective: str | None = None) -> EngineResult:
    """Every enabled rule that judges ``objective`` (all of them when None) against the run."""
    findings: list[Finding] = []
    crashed: list[str] = []
    not_applied: list[str] = []
    outcomes: list[RuleOutcome] = []
    # a long run's checks make scratch arrays of a few MB each; freed heap goes back to the system after each
    # rule, so the peak is the table plus one check's scratch, not plus every check's leftovers
    big = len(run.metrics) >= RELEASE_AFTER_POINTS
    for rule in ruleset.rules:
        if big:
            release()

        def outcome(status: str, reason: str = "", rule: Rule = rule) -> RuleOutcome:
            return RuleOutcome(
                rule_id=rule.id,
                severity=rule.severity,
                title=rule.title,
                origin=rule.origin,
                status=status,
                reason=reason,
                description=rule.description,
            )

        if objective is not None and not rule.applies_to(objective):
            not_applied.append(rule.id)
            outcomes.append(outcome("skipped", f"does not judge {objective} runs"))
            continue
        try:
            finding, skipped = judge_rule(rule, run)
        except Exception as exc:  # noqa: BLE001 - a crashed check is reported and exits 2, never a silent pass
            crashed.append(f"{rule.id}: {type(exc).__name__}: {exc}")
            outcomes.append(outcome("crashed", f"{type(exc).__name__}: {exc}"))
            continue
        if finding is not None:
            findings.append(finding)
            outcomes.append(outcome("fired"))
        else:
            outcomes.append(outcome("skipped", skipped) if skipped else outcome("passed"))
    findings.sort(key=sort_key)
    return EngineResult(tuple(findings), tuple(crashed), tuple(not_applied), tuple(outcomes))
