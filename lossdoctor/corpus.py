"""Measure the rules on a labelled corpus: one directory per run, each with the run's files and a ``label.yaml``.

Pure core: :func:`parse_label` (text → Label), :func:`predict` (Diagnosis → verdicts + onset),
:func:`score` (results → per-verdict confusion counts, per-rule precision/recall, onset errors),
:func:`render_text` and :func:`check_floors`. Reading directories and running the analysis is
``commands/eval_corpus.py``'s job.

Which rule stands for which verdict is data: a rule's ``labels: {verdict: overfitting}`` in its rule file.
A run whose findings carry no verdict is predicted ``healthy``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lossdoctor import yamlpos
from lossdoctor.errors import SourceError, UsageError
from lossdoctor.metrics.objectives import objective_table
from lossdoctor.model import Diagnosis
from lossdoctor.rules.packs import RuleSet

VERDICTS: tuple[str, ...] = (
    "healthy",
    "overfitting",
    "diverging",
    "nonfinite",
    "exploding-gradients",
    "not-learning",
    "no-learning-signal",
    "reward-falling",
    "kl-blowup",
    "entropy-collapse",
    "length-collapse",
    "length-pinned",
    "likelihood-displacement",
    "implausible-loss",
    "slowdown",
)
#: severities a user reads as an alarm (a healthy run with one is a false alarm)
ALARM_SEVERITIES = ("warning", "error")
LABEL_KEYS = frozenset(
    {"source", "origin", "verdicts", "onset_step", "eval_interval", "why", "oracle", "notes", "objective"}
)


@dataclass(frozen=True)
class Label:
    case: str
    verdicts: frozenset[str]
    onset_step: int | None = None
    eval_interval: int | None = None
    source: str = ""
    origin: str = ""
    why: str = ""
    objective: str | None = None  # what the run optimised (objectives.yaml id); None = not labelled


@dataclass(frozen=True)
class CaseResult:
    label: Label
    predicted: frozenset[str]
    fired: tuple[str, ...]  # rule ids that fired (any severity)
    onset: int | None = None  # predicted overfitting onset step
    error: str | None = None  # the case could not be analysed (counts as predicted nothing)
    worst: str | None = None  # the worst severity among the findings (None: no finding)
    objective: str | None = None  # the objective lossdoctor took the run for

    @property
    def objective_group(self) -> str:
        """The labelled objective, else the detected one (per-objective tables group by it)."""
        return self.label.objective or self.objective or "?"

    @property
    def correct(self) -> bool:
        return self.error is None and self.predicted == self.label.verdicts


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan


@dataclass(frozen=True)
class CorpusScore:
    results: tuple[CaseResult, ...]
    verdicts: Mapping[str, Counts]
    rules: Mapping[str, Counts]  # per rule, against the verdict it stands for, on the runs it judges
    rule_verdict: Mapping[str, str]
    onset_errors: tuple[tuple[str, int, int | None], ...]  # (case, |error| in steps, eval interval)
    healthy_flagged: tuple[str, ...] = field(default=())  # healthy-labelled cases called overfitting/diverging
    by_objective: Mapping[str, Mapping[str, Counts]] = field(default_factory=dict)  # objective → verdict → counts
    #: "case: rule" for each rule that fired on a run whose labelled objective it does not judge
    off_objective: tuple[str, ...] = field(default=())
    false_alarms: tuple[str, ...] = field(default=())  # healthy-labelled cases with a warning or an error
    healthy_runs: int = 0

    @property
    def false_alarm_rate(self) -> float:
        """Share of the healthy-labelled runs whose report says more than info (a warning or an error): what
        a user sees as an alarm, whatever verdict it stands for."""
        return len(self.false_alarms) / self.healthy_runs if self.healthy_runs else math.nan

    @property
    def onset_within_interval(self) -> float:
        ok = [e <= (iv or 0) for _, e, iv in self.onset_errors]
        return sum(ok) / len(ok) if ok else math.nan

    @property
    def onset_median_error(self) -> float:
        return float(statistics.median(e for _, e, _ in self.onset_errors)) if self.onset_errors else math.nan


def _err(location: str, message: str, where: tuple[int, int] | None = None) -> SourceError:
    return SourceError(message, location, where[0] if where else None, where[1] if where else None)


def _load_mapping(text: str, location: str, expected: str) -> yamlpos.PosDict:
    try:
        data = yamlpos.load(text)
    except yamlpos.YamlPosError as exc:
        raise SourceError(f"invalid YAML: {exc}", location) from None
    if not isinstance(data, yamlpos.PosDict):
        raise _err(location, f"expected {expected}")
    return data


def parse_label(text: str, location: str, case: str) -> Label:
    """A label.yaml → Label; the first problem raises a located SourceError."""
    data = _load_mapping(text, location, "a mapping with 'verdicts' (see tests/corpus/README.md)")
    for key in data:
        if key not in LABEL_KEYS:
            raise _err(location, f"unknown key {key!r}; expected one of {', '.join(sorted(LABEL_KEYS))}", data.pos(key))
    verdicts = data.get("verdicts")
    if not isinstance(verdicts, list) or not verdicts or not all(isinstance(v, str) for v in verdicts):
        raise _err(location, "'verdicts' must be a non-empty list of verdict names", data.pos("verdicts"))
    unknown = [v for v in verdicts if v not in VERDICTS]
    if unknown:
        raise _err(
            location, f"unknown verdict(s) {', '.join(unknown)}; expected {', '.join(VERDICTS)}", data.pos("verdicts")
        )
    if "healthy" in verdicts and len(verdicts) > 1:
        raise _err(location, "'healthy' cannot be combined with another verdict", data.pos("verdicts"))
    ints: dict[str, int | None] = {}
    for key in ("onset_step", "eval_interval"):
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise _err(location, f"'{key}' must be a non-negative integer step", data.pos(key))
        ints[key] = value
    if ints["onset_step"] is not None and "overfitting" not in verdicts:
        raise _err(location, "'onset_step' is only for overfitting runs", data.pos("onset_step"))
    objective = data.get("objective")
    if objective is not None:
        known = objective_table().ids()
        if objective not in known:
            raise _err(
                location, f"unknown objective {objective!r}; expected one of {', '.join(known)}", data.pos("objective")
            )
    return Label(
        case=case,
        verdicts=frozenset(verdicts),
        onset_step=ints["onset_step"],
        eval_interval=ints["eval_interval"],
        source=str(data.get("source", "")),
        origin=str(data.get("origin", "")),
        why=" ".join(str(data.get("why", "")).split()),
        objective=objective,
    )


def rule_verdicts(ruleset: RuleSet) -> dict[str, str]:
    """rule id → the verdict it stands for (from the rule's ``labels.verdict``)."""
    out: dict[str, str] = {}
    for rule in ruleset.rules:
        verdict = rule.labels.get("verdict")
        if verdict is None:
            continue
        if verdict not in VERDICTS or verdict == "healthy":
            raise UsageError(
                f"rule {rule.id}: labels.verdict {verdict!r} is not one of "
                f"{', '.join(v for v in VERDICTS if v != 'healthy')}",
                rule.origin,
            )
        out[rule.id] = verdict
    return out


def predict(diag: Diagnosis, verdict_of: Mapping[str, str]) -> tuple[frozenset[str], int | None]:
    verdicts = {verdict_of[f.rule_id] for f in diag.findings if f.rule_id in verdict_of}
    onset = next((f.first_step for f in diag.findings if verdict_of.get(f.rule_id) == "overfitting"), None)
    return (frozenset(verdicts) if verdicts else frozenset({"healthy"})), onset


def case_result(label: Label, diag: Diagnosis, verdict_of: Mapping[str, str]) -> CaseResult:
    predicted, onset = predict(diag, verdict_of)
    return CaseResult(
        label=label,
        predicted=predicted,
        fired=tuple(sorted({f.rule_id for f in diag.findings})),
        onset=onset,
        objective=diag.objective.id,
        worst=diag.worst_severity,
    )


def _count(pairs: Iterable[tuple[bool, bool]]) -> Counts:
    tp = fp = fn = tn = 0
    for truth, said in pairs:
        tp += truth and said
        fp += (not truth) and said
        fn += truth and not said
        tn += (not truth) and not said
    return Counts(tp, fp, fn, tn)


def score(
    results: Iterable[CaseResult],
    verdict_of: Mapping[str, str],
    rule_objectives: Mapping[str, tuple[str, ...]] | None = None,
) -> CorpusScore:
    """``rule_objectives``: rule id → the objectives it judges (() = every one), to catch a rule firing on a
    run of an objective it does not judge (a supervised-loss rule on a GRPO run)."""
    results = tuple(sorted(results, key=lambda r: r.label.case))
    verdicts = {v: _count((v in r.label.verdicts, v in r.predicted) for r in results) for v in VERDICTS}
    by_objective: dict[str, dict[str, Counts]] = {}
    for group in sorted({r.objective_group for r in results}):
        rows = [r for r in results if r.objective_group == group]
        by_objective[group] = {v: _count((v in r.label.verdicts, v in r.predicted) for r in rows) for v in VERDICTS}
    off = tuple(
        f"{r.label.case}: {rid}"
        for r in results
        if r.label.objective
        for rid in r.fired
        if (rule_objectives or {}).get(rid) and r.label.objective not in (rule_objectives or {})[rid]
    )
    judged = rule_objectives or {}

    def judges(rid: str, r: CaseResult) -> bool:  # a rule is scored on the runs of the objectives it judges
        return not judged.get(rid) or r.objective_group in judged[rid]

    rules = {
        rid: _count((v in r.label.verdicts, rid in r.fired) for r in results if judges(rid, r))
        for rid, v in sorted(verdict_of.items())
    }
    onsets = []
    for r in results:
        if "overfitting" in r.label.verdicts and r.label.onset_step is not None and r.onset is not None:
            onsets.append((r.label.case, abs(r.onset - r.label.onset_step), r.label.eval_interval))
    flagged = tuple(
        r.label.case for r in results if "healthy" in r.label.verdicts and r.predicted & {"overfitting", "diverging"}
    )
    healthy = [r for r in results if "healthy" in r.label.verdicts]
    alarms = tuple(r.label.case for r in healthy if r.worst in ALARM_SEVERITIES)
    return CorpusScore(
        results=results,
        verdicts=verdicts,
        rules=rules,
        rule_verdict=dict(verdict_of),
        onset_errors=tuple(onsets),
        healthy_flagged=flagged,
        by_objective=by_objective,
        off_objective=off,
        false_alarms=alarms,
        healthy_runs=len(healthy),
    )


def _pct(x: float) -> str:
    return "  -  " if math.isnan(x) else f"{x:5.2f}"


def render_text(s: CorpusScore, verbose: bool = False) -> str:
    n = len(s.results)
    lines = [
        f"corpus: {n} run(s), {sum(r.correct for r in s.results)} with every verdict right, "
        f"{sum(r.error is not None for r in s.results)} unreadable",
        "",
    ]
    # confusion matrix: label verdict (rows) x predicted verdict (columns); multi-label runs count in each cell
    short = {v: v[:11] for v in VERDICTS}
    present = [v for v in VERDICTS if v == "healthy" or any(v in r.label.verdicts | r.predicted for r in s.results)]
    lines.append("confusion (rows: labelled, columns: predicted; a run with several verdicts counts in each)")
    lines.append(f"{'':<24}" + "".join(f"{short[v]:>12}" for v in present) + f"{'runs':>7}")
    for truth in present:
        rows = [r for r in s.results if truth in r.label.verdicts]
        cells = [sum(pred in r.predicted for r in rows) for pred in present]
        lines.append(f"{truth:<24}" + "".join(f"{c:>12}" for c in cells) + f"{len(rows):>7}")
    lines += ["", f"{'verdict':<24}{'tp':>5}{'fp':>5}{'fn':>5}{'tn':>5}{'precision':>11}{'recall':>8}"]
    for v, c in s.verdicts.items():
        if v in present:
            lines.append(f"{v:<24}{c.tp:>5}{c.fp:>5}{c.fn:>5}{c.tn:>5}{_pct(c.precision):>11}{_pct(c.recall):>8}")
    lines += [
        "",
        "per objective (as labelled; else as detected)",
        f"  {'':<2}{'verdict':<22}{'tp':>5}{'fp':>5}{'fn':>5}{'tn':>5}{'precision':>11}{'recall':>8}",
    ]
    for group, counts in s.by_objective.items():
        rows = [r for r in s.results if r.objective_group == group]
        labelled = [r for r in rows if r.label.objective]
        detected = (
            f"; objective detected right on {sum(r.objective == r.label.objective for r in labelled)}/{len(labelled)}"
            if labelled
            else ""
        )
        lines.append(
            f"  {group}: {len(rows)} run(s), {sum(r.correct for r in rows)} with every verdict right{detected}"
        )
        for v, c in counts.items():
            if c.tp + c.fp + c.fn:
                lines.append(
                    f"    {v:<22}{c.tp:>5}{c.fp:>5}{c.fn:>5}{c.tn:>5}{_pct(c.precision):>11}{_pct(c.recall):>8}"
                )
    rw = max([22] + [len(r) + 2 for r in s.rules])
    vw = max([20] + [len(v) + 2 for v in s.rule_verdict.values()])
    lines += ["", f"{'rule':<{rw}}{'verdict':<{vw}}{'fired':>6}{'precision':>11}{'recall':>8}"]
    for rid, c in s.rules.items():
        lines.append(
            f"{rid:<{rw}}{s.rule_verdict[rid]:<{vw}}{c.tp + c.fp:>6}{_pct(c.precision):>11}{_pct(c.recall):>8}"
        )
    lines.append("")
    if s.onset_errors:
        lines.append(
            f"overfitting onset: median error {s.onset_median_error:g} steps; within one eval interval on "
            f"{sum(e <= (iv or 0) for _, e, iv in s.onset_errors)}/{len(s.onset_errors)} runs "
            f"({s.onset_within_interval:.0%})"
        )
    else:
        lines.append("overfitting onset: no labelled onset was predicted")
    lines.append(
        f"healthy runs called overfitting or diverging: {len(s.healthy_flagged)}"
        + (f" ({', '.join(s.healthy_flagged)})" if s.healthy_flagged else "")
    )
    lines.append(
        f"rules that fired on a run of an objective they do not judge: {len(s.off_objective)}"
        + (f" ({'; '.join(s.off_objective)})" if s.off_objective else "")
    )
    rate = "-" if math.isnan(s.false_alarm_rate) else f"{s.false_alarm_rate:.0%}"
    lines.append(
        f"false alarms (healthy runs with a warning or an error): {len(s.false_alarms)}/{s.healthy_runs}"
        f" ({rate})" + (f": {', '.join(s.false_alarms)}" if s.false_alarms else "")
    )
    wrong = [r for r in s.results if not r.correct]
    if wrong or verbose:
        lines += ["", "runs " + ("" if verbose else "with a wrong verdict ") + "(label -> predicted; rules fired)"]
        for r in s.results if verbose else wrong:
            said = r.error or ",".join(sorted(r.predicted))
            lines.append(
                f"  {'ok ' if r.correct else 'XX '}{r.label.case}: {','.join(sorted(r.label.verdicts))} -> "
                f"{said}; {' '.join(r.fired) or '-'}"
            )
    return "\n".join(lines) + "\n"


# --- floors ----------------------------------------------------------------------------------------------

FLOOR_KEYS = frozenset(
    {
        "verdicts",
        "rules",
        "onset_within_interval",
        "max_healthy_flagged",
        "min_runs",
        "max_off_objective",
        "max_false_alarm_rate",
    }
)


def parse_floors(text: str, location: str) -> dict[str, Any]:
    data = _load_mapping(text, location, "a mapping of floors")
    for key in data:
        if key not in FLOOR_KEYS:
            raise _err(location, f"unknown key {key!r}; expected one of {', '.join(sorted(FLOOR_KEYS))}", data.pos(key))
    for key in ("min_runs", "max_healthy_flagged", "max_off_objective"):
        value = data.get(key)
        if key in data and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise _err(location, f"'{key}' must be a whole number >= 0", data.pos(key))
    for key in ("onset_within_interval", "max_false_alarm_rate"):
        if key in data:
            value = data[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise _err(location, f"'{key}' must be a number in 0..1", data.pos(key))
    for group in ("verdicts", "rules"):
        block = data.get(group) or yamlpos.PosDict()
        if not isinstance(block, yamlpos.PosDict):  # a YAML mapping is always a PosDict
            raise _err(location, f"'{group}' must map names to {{precision, recall}}", data.pos(group))
        for name, spec in block.items():
            if group == "verdicts" and name not in VERDICTS:
                raise _err(location, f"unknown verdict {name!r}", block.pos(name))
            if not isinstance(spec, yamlpos.PosDict) or not set(spec) <= {"precision", "recall"}:
                raise _err(location, f"{group}.{name}: expected {{precision: x, recall: y}}", block.pos(name))
            for k, v in spec.items():
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
                    raise _err(location, f"{group}.{name}.{k}: expected a number in 0..1", spec.pos(k))
    return {k: v for k, v in data.items()}


def check_floors(s: CorpusScore, floors: Mapping[str, Any]) -> list[str]:
    """Every floor the score falls below, as one line each (empty = all met). NaN (no case) fails a floor."""
    failures: list[str] = []

    def below(name: str, what: str, value: float, floor: float) -> None:
        if math.isnan(value) or value < floor:
            failures.append(f"{name} {what} {'n/a' if math.isnan(value) else f'{value:.2f}'} < floor {floor:g}")

    for v, spec in (floors.get("verdicts") or {}).items():
        for what, floor in spec.items():
            below(f"verdict {v}", what, getattr(s.verdicts[v], what), float(floor))
    for rid, spec in (floors.get("rules") or {}).items():
        if rid not in s.rules:
            failures.append(f"rule {rid} has a floor but no labels.verdict (or is not enabled)")
            continue
        for what, floor in spec.items():
            below(f"rule {rid}", what, getattr(s.rules[rid], what), float(floor))
    if "onset_within_interval" in floors:
        below(
            "overfitting onset",
            "within one eval interval",
            s.onset_within_interval,
            float(floors["onset_within_interval"]),
        )
    if "max_healthy_flagged" in floors and len(s.healthy_flagged) > int(floors["max_healthy_flagged"]):
        failures.append(
            f"{len(s.healthy_flagged)} healthy run(s) called overfitting/diverging "
            f"> {floors['max_healthy_flagged']}: {', '.join(s.healthy_flagged)}"
        )
    if "max_off_objective" in floors and len(s.off_objective) > int(floors["max_off_objective"]):
        failures.append(
            f"{len(s.off_objective)} rule firing(s) on a run of an objective the rule does not judge "
            f"> {floors['max_off_objective']}: {'; '.join(s.off_objective)}"
        )
    if "max_false_alarm_rate" in floors:
        rate = s.false_alarm_rate
        if not math.isnan(rate) and rate > float(floors["max_false_alarm_rate"]):
            failures.append(
                f"false-alarm rate {rate:.2f} ({len(s.false_alarms)}/{s.healthy_runs} healthy runs with a "
                f"warning or error: {', '.join(s.false_alarms)}) > {floors['max_false_alarm_rate']:g}"
            )
    if "min_runs" in floors and len(s.results) < int(floors["min_runs"]):
        failures.append(f"only {len(s.results)} run(s) in the corpus < min_runs {floors['min_runs']}")
    return failures


def to_json(s: CorpusScore) -> dict[str, Any]:
    def num(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 6)

    return {
        "runs": len(s.results),
        "verdicts": {
            v: {"tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn, "precision": num(c.precision), "recall": num(c.recall)}
            for v, c in s.verdicts.items()
        },
        "rules": {
            r: {
                "verdict": s.rule_verdict[r],
                "fired": c.tp + c.fp,
                "precision": num(c.precision),
                "recall": num(c.recall),
            }
            for r, c in s.rules.items()
        },
        "onset": {
            "runs": len(s.onset_errors),
            "median_error_steps": num(s.onset_median_error),
            "within_one_eval_interval": num(s.onset_within_interval),
        },
        "healthy_flagged": list(s.healthy_flagged),
        "false_alarms": {"runs": list(s.false_alarms), "healthy_runs": s.healthy_runs, "rate": num(s.false_alarm_rate)},
        "objectives": {
            g: {
                v: {
                    "tp": c.tp,
                    "fp": c.fp,
                    "fn": c.fn,
                    "tn": c.tn,
                    "precision": num(c.precision),
                    "recall": num(c.recall),
                }
                for v, c in counts.items()
                if c.tp + c.fp + c.fn
            }
            for g, counts in s.by_objective.items()
        },
        "off_objective": list(s.off_objective),
        "cases": [
            {
                "case": r.label.case,
                "label": sorted(r.label.verdicts),
                "predicted": sorted(r.predicted),
                "fired": list(r.fired),
                "onset_label": r.label.onset_step,
                "onset_predicted": r.onset,
                "worst": r.worst,
                "error": r.error,
                "objective_label": r.label.objective,
                "objective_detected": r.objective,
            }
            for r in s.results
        ],
    }
