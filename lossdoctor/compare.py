"""Compare runs by their findings: Diagnoses → Comparison (pure; no disk, no clock).

The first run is the baseline (A). Every later run is compared with it, rule by rule: the engine gives at
most one finding per rule per run, so findings are matched by rule id, and each match says where it holds
in both runs (series, step span, onset). Per later run and rule the status is

* ``fixed``: A had the finding, this run does not;
* ``new``: this run has a finding A did not have (what ``--fail-on-new`` gates on);
* ``persisting``: both have it, qualified ``worse`` / ``better`` / ``mixed`` when the onset moved (earlier is
  worse: the problem showed sooner), the magnitude changed (a larger rise, peak, ratio, share or count of bad
  points is worse) or the severity changed.

The facts are set side by side (best eval loss and its step, final eval loss, final-vs-best gap, final train
loss, last step, epochs), and one run is picked as the best with the reason (see ``pick_best``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lossdoctor.model import SEVERITY_RANK, Diagnosis, Facts, Finding

FIXED, NEW, PERSISTING, ABSENT, BASELINE = "fixed", "new", "persisting", "absent", "baseline"

#: evidence keys that say how bad a finding is (larger is worse), first found wins
MAGNITUDE_KEYS: tuple[tuple[str, str], ...] = (
    ("rise_pct", "rise"),
    ("bad_points", "non-finite points"),
    ("share_pct", "share"),
    ("ratio", "peak/bound"),
    ("abs_change_pct", "change"),
    ("value", "value"),
)
_PERCENT_LABELS = frozenset({"rise", "share", "change"})


@dataclass(frozen=True)
class RunColumn:
    """One run as a column of the comparison."""

    key: str  # "A", "B", ... (A is the baseline)
    name: str
    location: str
    kind: str
    verdict: str
    level: str  # error | warning | info | ok | incomplete
    facts: Facts
    epochs: float | None  # last logged train/epoch
    state: str


@dataclass(frozen=True)
class Where:
    """Where one run's finding holds."""

    severity: str
    first_step: int | None
    last_step: int | None
    series: tuple[str, ...]
    message: str
    magnitude: tuple[str, float] | None  # (label, value) from MAGNITUDE_KEYS


@dataclass(frozen=True)
class RuleRow:
    """One rule across the runs: where it holds in each run and its status against the baseline."""

    rule_id: str
    title: str
    severity: str  # the rule's severity (worst seen)
    cells: tuple[Where | None, ...]  # per run
    status: tuple[str, ...]  # per run: baseline/fixed/new/persisting/absent
    trend: tuple[str, ...]  # per run: "" | worse | better | mixed | same
    details: tuple[str, ...]  # per run: onset/magnitude change in words ("" for the baseline)


@dataclass(frozen=True)
class Comparison:
    runs: tuple[RunColumn, ...]
    diagnoses: tuple[Diagnosis, ...]
    rows: tuple[RuleRow, ...]  # worst severity first, then rule id
    headlines: tuple[str, ...]  # one line per later run: "B vs A: overfitting fixed; ..."
    best: int  # index into runs
    best_reason: str

    def new_findings(self, index: int) -> tuple[RuleRow, ...]:
        return tuple(r for r in self.rows if r.status[index] == NEW)


def run_keys(n: int) -> tuple[str, ...]:
    """A, B, ..., Z, AA, AB, ... (spreadsheet column names)."""
    out = []
    for i in range(n):
        name, k = "", i
        while True:
            name = chr(ord("A") + k % 26) + name
            k = k // 26 - 1
            if k < 0:
                break
        out.append(name)
    return tuple(out)


def last_epoch(diag: Diagnosis) -> float | None:
    import numpy as np

    vals = diag.run.series("train/epoch").to_numpy(dtype="float64")
    vals = vals[np.isfinite(vals)]
    return float(vals.max()) if len(vals) else None


def magnitude(evidence: Mapping[str, Any]) -> tuple[str, float] | None:
    for key, label in MAGNITUDE_KEYS:
        value = evidence.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            continue
        return label, float(value)
    return None


def _badness(mag: tuple[str, float]) -> float:
    """How bad a magnitude is; a ratio to a bound counts either way (3x over a maximum, 10x under a minimum)."""
    label, value = mag
    if label == MAGNITUDE_KEYS[3][1] and value > 0:
        return abs(math.log(value))
    return abs(value)


def _where(f: Finding) -> Where:
    return Where(
        severity=f.severity,
        first_step=f.first_step,
        last_step=f.last_step,
        series=tuple(f.series),
        message=f.message,
        magnitude=magnitude(f.evidence),
    )


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _persisting(base: Where, other: Where) -> tuple[str, str]:
    """(trend, details) of a finding present in both the baseline and another run."""
    worse, better, words = 0, 0, []
    if SEVERITY_RANK[other.severity] != SEVERITY_RANK[base.severity]:
        up = SEVERITY_RANK[other.severity] > SEVERITY_RANK[base.severity]
        worse, better = worse + up, better + (not up)
        words.append(f"severity {base.severity} → {other.severity}")
    if base.first_step is not None and other.first_step is not None:
        shift = other.first_step - base.first_step
        if shift:
            words.append(
                f"onset step {base.first_step} → {other.first_step} "
                f"({abs(shift)} steps {'later' if shift > 0 else 'earlier'})"
            )
            worse, better = worse + (shift < 0), better + (shift > 0)
        else:
            words.append(f"onset step {base.first_step} (same)")
    if base.magnitude and other.magnitude and base.magnitude[0] == other.magnitude[0]:
        label = base.magnitude[0]
        a, b = _badness(base.magnitude), _badness(other.magnitude)
        if not math.isclose(a, b, rel_tol=0.02, abs_tol=1e-12):
            unit = "%" if label in _PERCENT_LABELS else ""
            words.append(
                f"{label} {_fmt(base.magnitude[1])}{unit} → {_fmt(other.magnitude[1])}{unit} "
                f"({'larger' if b > a else 'smaller'})"
            )
            worse, better = worse + (b > a), better + (b < a)
    trend = "mixed" if worse and better else "worse" if worse else "better" if better else "same"
    return trend, "; ".join(words)


def _rows(diagnoses: Sequence[Diagnosis]) -> tuple[RuleRow, ...]:
    per_run = [{f.rule_id: f for f in d.findings} for d in diagnoses]
    rule_ids = sorted({rid for m in per_run for rid in m})
    rows = []
    for rid in rule_ids:
        found = [m.get(rid) for m in per_run]
        cells = tuple(_where(f) if f is not None else None for f in found)
        any_f = next(f for f in found if f is not None)
        severity = max((f.severity for f in found if f is not None), key=SEVERITY_RANK.__getitem__)
        status, trend, details = [BASELINE], [""], [""]
        base = cells[0]
        for cell in cells[1:]:
            if base is not None and cell is None:
                status.append(FIXED)
                trend.append("better")
                details.append("")
            elif base is None and cell is not None:
                status.append(NEW)
                trend.append("worse")
                details.append("")
            elif base is None or cell is None:  # neither run has it
                status.append(ABSENT)
                trend.append("")
                details.append("")
            else:
                t, words = _persisting(base, cell)
                status.append(PERSISTING)
                trend.append(t)
                details.append(words)
        rows.append(
            RuleRow(
                rule_id=rid,
                title=any_f.title,
                severity=severity,
                cells=cells,
                status=tuple(status),
                trend=tuple(trend),
                details=tuple(details),
            )
        )
    rows.sort(key=lambda r: (-SEVERITY_RANK[r.severity], r.rule_id))
    return tuple(rows)


def _headline(key: str, base_key: str, rows: tuple[RuleRow, ...], index: int) -> str:
    parts: list[str] = []
    fixed = [r for r in rows if r.status[index] == FIXED]
    new = [r for r in rows if r.status[index] == NEW]
    kept = [r for r in rows if r.status[index] == PERSISTING]
    for r in fixed:
        parts.append(f"{r.rule_id} fixed")
    for r in new:
        parts.append(f"new {r.rule_id} ({r.severity})")
    for r in kept:
        detail = r.details[index]
        trend = r.trend[index]
        parts.append(
            f"{r.rule_id} persisting"
            + (f" ({trend}: {detail})" if trend not in ("same", "") and detail else f" ({detail})" if detail else "")
        )
    if not parts:
        parts.append("no findings in either run")
    return f"{key} vs {base_key}: " + "; ".join(parts)


def _level(diag: Diagnosis) -> str:
    if diag.crashed_checks:
        return "incomplete"
    return diag.worst_severity or "ok"


def _count(diag: Diagnosis, severity: str) -> int:
    return sum(1 for f in diag.findings if f.severity == severity)


def pick_best(runs: Sequence[RunColumn], diagnoses: Sequence[Diagnosis]) -> tuple[int, str]:
    """The run to keep, and why.

    Order: a run whose analysis is complete; then fewer error findings (NaN, divergence, explosion: a broken
    run is never the best); then, where every run logged eval loss, the lowest *final* eval loss (the model
    the run ends with; the best checkpoint is named too); where none did, the lowest final train loss (said
    to be no measure of generalisation); then fewer warnings; then the earlier run.
    """
    have_eval = [r.facts.final_eval_loss is not None for r in runs]
    all_eval, none_eval = all(have_eval), not any(have_eval)

    def quality(i: int) -> float:
        f = runs[i].facts
        value = f.final_eval_loss if not none_eval else f.final_train_loss
        return float(value) if value is not None and math.isfinite(value) else math.inf

    def key(i: int) -> tuple[Any, ...]:
        d = diagnoses[i]
        return (bool(d.crashed_checks), _count(d, "error"), not have_eval[i], quality(i), _count(d, "warning"), i)

    order = sorted(range(len(runs)), key=key)
    best, runner = order[0], order[1] if len(order) > 1 else None
    r = runs[best]
    reasons: list[str] = []
    if runner is not None:
        kb, kr = key(best), key(runner)
        other = runs[runner]
        if kb[0] != kr[0]:
            reasons.append(f"its analysis is complete ({other.key}'s rule checks crashed)")
        elif kb[1] != kr[1]:
            reasons.append(f"fewer error findings ({kb[1]} vs {kr[1]} in {other.key})")
        elif kb[2] != kr[2]:
            reasons.append(f"it logged eval loss ({other.key} did not)")
        elif kb[3] != kr[3]:
            what = "final train loss" if none_eval else "final eval loss"
            mine = r.facts.final_train_loss if none_eval else r.facts.final_eval_loss
            theirs = other.facts.final_train_loss if none_eval else other.facts.final_eval_loss
            assert mine is not None  # its quality sorted strictly first, so it is finite
            reasons.append(
                f"lowest {what}: {_fmt(float(mine))} vs {_fmt(float(theirs))} in {other.key}"
                if theirs is not None
                else f"lowest {what}: {_fmt(float(mine))}"
            )
            if none_eval:
                reasons.append("no run logged eval loss, so train loss decided: it does not measure generalisation")
        elif kb[4] != kr[4]:
            reasons.append(f"fewer warnings ({kb[4]} vs {kr[4]} in {other.key})")
        else:
            reasons.append(f"no difference that decides; {r.key} is the earlier run")
    else:
        reasons.append("the only run")
    best_loss = r.facts.best_eval_loss  # set with best_eval_step (diagnosis.compute_facts)
    if r.facts.best_eval_step is not None and best_loss is not None and r.facts.early_stopping_would_help:
        reasons.append(
            f"keep its checkpoint from step {r.facts.best_eval_step} (best eval loss {_fmt(float(best_loss))})"
        )
    if not all_eval and not none_eval:
        reasons.append("runs without eval loss rank last: overfitting cannot be judged there")
    if not diagnoses[best].findings and not diagnoses[best].crashed_checks:
        reasons.append("no findings")
    return best, f"{r.key} ({r.name}): " + "; ".join(reasons)


def compare(diagnoses: Sequence[Diagnosis]) -> Comparison:
    """Baseline = the first diagnosis. Needs at least two."""
    if len(diagnoses) < 2:
        raise ValueError("compare needs at least two runs")
    keys = run_keys(len(diagnoses))
    runs = tuple(
        RunColumn(
            key=k,
            name=d.run.name,
            location=d.run.provenance.location,
            kind=d.run.provenance.kind,
            verdict=d.verdict,
            level=_level(d),
            facts=d.facts,
            epochs=last_epoch(d),
            state=d.run.state,
        )
        for k, d in zip(keys, diagnoses)
    )
    rows = _rows(diagnoses)
    headlines = tuple(_headline(keys[i], keys[0], rows, i) for i in range(1, len(diagnoses)))
    best, reason = pick_best(runs, diagnoses)
    return Comparison(
        runs=runs, diagnoses=tuple(diagnoses), rows=rows, headlines=headlines, best=best, best_reason=reason
    )


def gate_new(comparison: Comparison, fail_on_new: str) -> bool:
    """True when any later run has a new finding at or above ``fail_on_new`` ("never" never gates)."""
    if fail_on_new == "never":
        return False
    floor = SEVERITY_RANK[fail_on_new]
    return any(SEVERITY_RANK[row.severity] >= floor and NEW in row.status[1:] for row in comparison.rows)
