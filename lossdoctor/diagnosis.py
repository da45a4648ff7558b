"""Run + RuleSet → Diagnosis: findings from the engine plus the headline facts and a one-line verdict."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from lossdoctor.memory import release
from lossdoctor.metrics.names import canonicalise
from lossdoctor.metrics.objectives import detect, missing_caveat
from lossdoctor.model import Diagnosis, Facts, Objective, Run
from lossdoctor.rules.engine import run_rules
from lossdoctor.rules.packs import RuleSet

#: final eval loss this far above the best (relative) means stopping at the best step would have helped
EARLY_STOP_MARGIN = 0.01


def summary_value(run: Run, metric: str) -> float | None:
    """The run summary's value for a canonical metric (its final value as the source recorded it)."""

    keys = [metric] + sorted(
        str(k) for k in run.summary if str(k) != metric and "/" in str(k) and canonicalise(str(k)) == metric
    )
    for key in keys:
        value = run.summary.get(key)
        if (
            isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        ):
            return float(value)
    return None


def is_shape_only(run: Run) -> bool:
    """Values recovered as a shape (e.g. W&B console sparklines: 8 levels, order known, magnitudes not)."""
    return run.provenance.confidence < 1.0 and run.provenance.step_source == "ordinal"


def compute_facts(run: Run, findings: tuple = ()) -> Facts:
    facts = _measured_facts(run, findings)
    if not is_shape_only(run):
        return facts
    # only what is known: the order of the points (best step, whether eval ended higher) and the summary's
    # final values; never a number reconstructed from sparkline levels
    return replace(
        facts,
        best_eval_loss=None,
        final_gap_pct=None,
        final_eval_loss=summary_value(run, "eval/loss") if facts.final_eval_step is not None else None,
        final_train_loss=summary_value(run, "train/loss"),
    )


def _early_stop(
    findings: tuple, best_step: int, final_step: int, best: float, final: float
) -> tuple[bool, int | None, str | None]:
    """(would early stopping have helped, the step to stop at, the metric judged) — from the findings, so a
    verdict and its facts always agree: yes when an early-stopping finding (an ``overfit`` check: evidence
    ``early_stopping: yes``) fired, or when the run failed (an error finding) after its best eval by more
    than EARLY_STOP_MARGIN."""
    for f in findings:
        if f.evidence.get("early_stopping") == "yes":
            return True, int(f.evidence.get("best_step", best_step)), str(f.evidence.get("metric", "eval/loss"))
    failed = any(f.severity == "error" for f in findings)
    if failed and best_step < final_step and final > best * (1 + EARLY_STOP_MARGIN):
        return True, best_step, "eval/loss"
    return False, None, None


def _measured_facts(run: Run, findings: tuple = ()) -> Facts:
    ev = run.series("eval/loss")
    ev = ev[np.isfinite(ev.to_numpy())]
    tr = run.series("train/loss")
    tr_f = tr[np.isfinite(tr.to_numpy())]
    last_step = int(run.metrics["step"].max()) if len(run.metrics) else None
    if ev.empty:
        return Facts(
            final_train_loss=float(tr_f.iloc[-1]) if len(tr_f) else None,
            eval_points=0,
            train_points=int(len(tr)),
            last_step=last_step,
        )
    best_pos = int(np.argmin(ev.to_numpy()))
    best_step, best = int(ev.index[best_pos]), float(ev.iloc[best_pos])
    final_step, final = int(ev.index[-1]), float(ev.iloc[-1])
    gap = (final - best) / abs(best) * 100.0 if best != 0 else (0.0 if final == best else math.inf)
    helped, stop_step, stop_metric = _early_stop(tuple(findings), best_step, final_step, best, final)
    return Facts(
        best_eval_step=best_step,
        best_eval_loss=best,
        final_eval_step=final_step,
        final_eval_loss=final,
        final_gap_pct=gap,
        early_stopping_would_help=helped,
        early_stop_step=stop_step,
        early_stop_metric=stop_metric,
        final_train_loss=float(tr_f.iloc[-1]) if len(tr_f) else None,
        eval_points=int(len(ev)),
        train_points=int(len(tr)),
        last_step=last_step,
    )


def verdict_line(
    diag_findings: tuple, crashed: tuple[str, ...], facts: Facts, run: Run, caveat: str | None = None
) -> str:
    """``caveat``: what a healthy verdict must add (from the objective's ``needs``); None = the eval-loss one."""
    if crashed:
        return f"analysis incomplete: {len(crashed)} rule check(s) crashed"
    errors = [f for f in diag_findings if f.severity == "error"]
    warnings = [f for f in diag_findings if f.severity == "warning"]
    if errors:
        head = "unhealthy"
        titles = [f.title for f in errors] + [f.title for f in warnings]
    elif warnings:
        head = "needs attention"
        titles = [f.title for f in warnings]
    else:
        so_far = " so far" if run.state in ("running", "unknown", "interrupted") else ""
        if caveat is None:
            caveat = "" if facts.eval_points else "no eval loss: overfitting not judged"
        return f"healthy{so_far}" + (f" ({caveat})" if caveat else "")
    text = f"{head}: " + "; ".join(titles[:3])
    if len(titles) > 3:
        text += f" (+{len(titles) - 3} more)"
    if (
        facts.early_stopping_would_help
        and facts.best_eval_step is not None
        and facts.early_stop_metric in (None, "eval/loss")
    ):
        if facts.best_eval_loss is None or facts.final_gap_pct is None:  # a shape: the order is all we know
            text += f" - eval loss lowest around step {facts.best_eval_step}, higher at the end"
        else:
            text += (
                f" - best eval loss {facts.best_eval_loss:.4g} at step {facts.best_eval_step}, "
                f"final {facts.final_eval_loss:.4g} (+{facts.final_gap_pct:.1f}%)"
            )
    return text


def diagnose(run: Run, ruleset: RuleSet, objective: Objective | None = None) -> Diagnosis:
    """Judge ``run`` by the rules for its objective: ``objective`` when given (``--objective``), else the one
    its metric names and config show (lossdoctor/metrics/objectives.yaml)."""

    objective = objective or detect(run)
    result = run_rules(run, ruleset, objective.id)
    facts = compute_facts(run, result.findings)
    verdict = verdict_line(result.findings, result.crashed, facts, run, missing_caveat(run, objective))
    release()  # the checks' scratch arrays, freed, go back to the system before the reports (lossdoctor/memory.py)
    return Diagnosis(
        run=run,
        findings=result.findings,
        facts=facts,
        verdict=verdict,
        crashed_checks=result.crashed,
        rule_sources=ruleset.sources,
        objective=objective,
        rules_not_applied=result.not_applied,
        rule_outcomes=result.outcomes,
    )
