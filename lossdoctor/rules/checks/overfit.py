"""overfit: the eval curve turned and stayed worse while training did not get worse — judged the way
Prechelt ("Early Stopping — but when?", 1998) judges when to stop, with the noise model of
:mod:`lossdoctor.rules.noise`.

The series judged is the metric the run selected its checkpoint on (``metric_for_best_model`` /
``greater_is_better`` in the config, or the eval series whose value equals ``best_metric`` in a
``trainer_state.json``), and the eval loss when the run selected on nothing else (``select: false`` always
takes ``series``). At each eval ``i``, with ``opt`` the best value so far (lower is better; a
greater-is-better metric is judged on its negative):

- **GL** (generalisation loss), ``100 x (E(i)/E_opt - 1)``: how much worse than the best. The rule's
  ``min_gl`` is Prechelt's alpha.
- **PQ** (progress quotient), ``GL / P_k``: ``P_k = 1000 x (mean/min - 1)`` of the train loss over the last
  strip (the train logs since the previous eval): GL large next to what training still gains.
- **UP** (successive increases): how many evals in a row got worse.

It holds at eval ``i`` when GL >= ``min_gl`` (and < ``max_gl`` when given: the band a milder rule covers),
the rise is larger than the eval series' own noise (``noise_z`` x its point noise, when at least 4 evals let
it be estimated; the rise is measured on the median of the last up to 3 evals after the best), the rise is
sustained (GL >= ``min_gl`` at ``confirm`` consecutive evals, or ``up`` successive increases, or GL >=
``strong_gl`` at one), the train loss did not rise by more than ``max_train_rise`` from the best eval's step
(a train loss that rises too is divergence, judged by another rule) and it still holds at the last eval.

Evidence says which criterion fired, the onset (the start of the best basin: the first eval within
``onset_within`` of the best), the counterfactual in the judged metric's own units and a confidence
(Φ(rise / noise), scaled down when fewer than 6 evals exist).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossdoctor.metrics.names import canonicalise
from lossdoctor.model import Run
from lossdoctor.rules.checks import (
    CheckResult,
    Param,
    arrays,
    config_value,
    empty_result,
    resolve_series,
    rolling_median,
)
from lossdoctor.rules.noise import normal_confidence, point_noise, sample_factor

#: config keys naming the metric a run selected its best checkpoint on (W&B / lossdoctor train / trainer)
SELECT_KEYS = ("metric_for_best_model", "trainer.metric_for_best_model", "args.metric_for_best_model")
GREATER_KEYS = ("greater_is_better", "trainer.greater_is_better", "args.greater_is_better")
BEST_METRIC_KEYS = ("trainer.best_metric", "best_metric")
BEST_STEP_KEYS = ("trainer.best_global_step", "best_global_step")
BEST_CKPT_KEYS = ("trainer.best_model_checkpoint", "best_model_checkpoint")
#: evals needed before a conclusion gets full confidence
ENOUGH_EVALS = 6


@dataclass(frozen=True)
class Selected:
    """The eval series the overfitting check judges (the run's own selection metric when it has one)."""

    metric: str  # canonical name of the judged series
    lower_is_better: bool
    source: str  # how it was chosen, said in the message


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def selected_metric(run: Run, default: str = "eval/loss") -> Selected:
    """The metric the run chose its best checkpoint by, when it is an eval series the run logged and not the
    loss; else ``default`` (lower is better)."""

    fallback = Selected(default, True, "eval loss (no other selection metric in the run)")
    name, key = config_value(run, SELECT_KEYS)
    if isinstance(name, str) and name.strip():
        raw = name.strip()
        candidates = [raw] if raw.startswith("eval") else [f"eval_{raw}", raw]
        for cand in candidates:
            for metric in (canonicalise(cand), cand.lower()):
                if run.has(metric) and metric != default and not metric.endswith("loss"):
                    greater = _as_bool(config_value(run, GREATER_KEYS)[0])
                    known = known_direction(metric)
                    if known is not None:  # a WER is lower-better whatever the config says
                        greater = not known
                    elif greater is None:  # the Trainer's own default: greater is better unless it is a loss
                        greater = not raw.endswith("loss")
                    return Selected(metric, not greater, f"{metric} (metric_for_best_model in the run's config)")
        return fallback
    best, _ = config_value(run, BEST_METRIC_KEYS)
    if isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(float(best)):
        return fallback
    step = _best_step(run)
    for metric in run.metric_names():
        if (
            not metric.startswith("eval")
            or metric == default
            or "loss" in metric
            or "runtime" in metric
            or "per_second" in metric
        ):
            continue
        s = run.series(metric)
        v = s.to_numpy(dtype="float64")
        fin = np.isfinite(v)
        if fin.sum() < 2:
            continue
        if step is not None and step in s.index:
            at = float(s.loc[step])
            if not math.isclose(at, float(best), rel_tol=1e-6, abs_tol=1e-12):
                continue
        elif not np.isclose(v[fin], float(best), rtol=1e-6, atol=1e-12).any():
            continue
        hi, lo = float(v[fin].max()), float(v[fin].min())
        known = known_direction(metric)
        if known is not None:
            return Selected(
                metric,
                known,
                f"{metric} (trainer_state best_metric {float(best):.4g} is one of its "
                f"values; {'lower' if known else 'higher'} is better)",
            )
        if math.isclose(float(best), hi, rel_tol=1e-9) and not math.isclose(hi, lo):
            return Selected(metric, False, f"{metric} (trainer_state best_metric {float(best):.4g} is its maximum)")
        if math.isclose(float(best), lo, rel_tol=1e-9) and not math.isclose(hi, lo):
            return Selected(metric, True, f"{metric} (trainer_state best_metric {float(best):.4g} is its minimum)")
    return fallback


#: name fragments whose direction is known whatever a config says (lower is better: True)
_LOWER = ("loss", "wer", "cer", "perplexity", "ppl", "error", "mse", "mae", "rmse")
_HIGHER = (
    "accuracy",
    "acc",
    "f1",
    "bleu",
    "rouge",
    "precision",
    "recall",
    "exact_match",
    "auc",
    "matthews",
    "pearson",
    "spearman",
    "score",
    "map",
    "ndcg",
    "chrf",
    "meteor",
)


def known_direction(metric: str) -> bool | None:
    """True (lower is better) / False (higher is better) from the metric's name; None when unknown."""
    import re

    words = set(re.split(r"[^a-z0-9]+", metric.lower()))
    if words & set(_LOWER):
        return True
    if words & set(_HIGHER):
        return False
    return None


def _best_step(run: Run) -> int | None:
    step, _ = config_value(run, BEST_STEP_KEYS)
    if isinstance(step, (int, float)) and not isinstance(step, bool) and math.isfinite(float(step)):
        return int(step)
    ckpt, _ = config_value(run, BEST_CKPT_KEYS)
    if isinstance(ckpt, str):
        import re

        m = re.search(r"checkpoint-(\d+)\s*$", ckpt.strip().rstrip("/\\"))
        if m:
            return int(m.group(1))
    return None


@dataclass(frozen=True)
class Judgement:
    """Per-eval arrays of the early-stopping criteria (aligned with ``steps``), and the decision mask."""

    metric: str
    lower_is_better: bool
    source: str
    steps: np.ndarray
    values: np.ndarray  # as logged
    mask: np.ndarray
    best_idx: np.ndarray  # index of the best eval so far
    gl: np.ndarray  # percent
    up: np.ndarray  # successive increases ending here
    rise: np.ndarray  # robust rise (median of last <=3 after the best) minus the best, oriented
    noise: np.ndarray  # point noise of the evals up to i (NaN: too few to estimate)
    pq: np.ndarray
    train_change: np.ndarray  # percent, train level at i vs at the best eval (NaN: no train loss)
    train_from: np.ndarray
    train_to: np.ndarray
    train_metric: str | None
    onset_within: float


def judge(
    run: Run,
    series: str = "eval/loss",
    select: bool = True,
    min_gl: float = 0.05,
    max_gl: float = 0.0,
    strong_gl: float = 0.15,
    confirm: int = 2,
    up: int = 3,
    noise_z: float = 1.0,
    max_train_rise: float = 0.1,
    train: str = "train/loss",
    need_train: bool = True,
    min_points: int = 2,
    onset_within: float = 0.01,
    require_no_train: bool = False,
    min_rise_of_first: float = 0.01,
    noise_min_points: int = 8,
    smooth_evals: float = 0.0,
) -> Judgement | None:
    """The early-stopping judgement over a run's evals (None when it has no such eval series). Memoised per
    run (several rules ask for the same judgement; a Run is immutable)."""
    key = (
        series,
        select,
        min_gl,
        max_gl,
        strong_gl,
        confirm,
        up,
        noise_z,
        max_train_rise,
        train,
        need_train,
        min_points,
        onset_within,
        require_no_train,
        min_rise_of_first,
        noise_min_points,
        smooth_evals,
    )
    memo = _MEMO.setdefault(run, {})
    if key not in memo:
        memo[key] = _judge(run, *key)
    return memo[key]


#: run -> {judge arguments: Judgement}; weak, so a run's judgements go with it
_MEMO: weakref.WeakKeyDictionary[Run, dict[tuple, Judgement | None]] = weakref.WeakKeyDictionary()


def _judge(
    run: Run,
    series: str,
    select: bool,
    min_gl: float,
    max_gl: float,
    strong_gl: float,
    confirm: int,
    up: int,
    noise_z: float,
    max_train_rise: float,
    train: str,
    need_train: bool,
    min_points: int,
    onset_within: float,
    require_no_train: bool,
    min_rise_of_first: float,
    noise_min_points: int,
    smooth_evals: float,
) -> Judgement | None:
    if require_no_train and resolve_series(run, train):
        return None
    if select:
        chosen = selected_metric(run, series)
    else:
        names = resolve_series(run, series)
        chosen = Selected(names[0] if names else series, True, "eval loss")
    if not run.has(chosen.metric):
        return None
    steps, raw = arrays(run, chosen.metric)
    ok = np.isfinite(raw)
    steps, raw = steps[ok], raw[ok]
    n = len(raw)
    if n == 0:
        return None
    y = raw if chosen.lower_is_better else -raw  # lower is better from here on
    best = np.minimum.accumulate(y)
    is_new = np.r_[True, best[1:] < best[:-1]]
    best_idx = np.maximum.accumulate(np.where(is_new, np.arange(n), 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        gl = np.where(best != 0, (y - best) / np.abs(best) * 100.0, np.where(y > best, np.inf, 0.0))
    inc = np.r_[False, y[1:] > y[:-1]]
    last_false = np.maximum.accumulate(np.where(~inc, np.arange(n), 0))
    up_run = np.arange(n) - last_false
    idx = np.arange(n)
    after_best = idx > best_idx
    above = gl >= min_gl * 100.0
    prev_above = np.r_[False, above[:-1]] & np.r_[False, after_best[:-1]] & (np.r_[0, best_idx[:-1]] == best_idx)
    sustained = (
        (prev_above if confirm <= 2 else _held(above & after_best, confirm))
        | (up_run >= up)
        | (gl >= strong_gl * 100.0 if strong_gl > 0 else False)
    )
    if confirm <= 1:
        sustained = np.ones(n, dtype=bool)
    # train loss: level at the best eval vs now (rolling median over 5% of its logs, at least 3)
    t_metric = None
    train_from = np.full(n, np.nan)
    train_to = np.full(n, np.nan)
    pq = np.full(n, np.nan)
    t_names = resolve_series(run, train)
    if t_names:
        t_metric = t_names[0]
        t_steps, t_raw = arrays(run, t_metric)
        fin = np.isfinite(t_raw)
        t_steps, t_raw = t_steps[fin], t_raw[fin]
        if len(t_raw):
            t_level = rolling_median(t_raw, max(3, int(round(0.05 * len(t_raw)))))
            at_best = np.searchsorted(t_steps, steps[best_idx], side="right") - 1
            at_best = np.where(at_best < 0, 0, at_best)  # train logged later than the eval: first log
            now = np.searchsorted(t_steps, steps, side="right") - 1
            have = now >= 0
            train_from[have] = t_level[at_best[have]]
            train_to[have] = t_level[now[have]]
            pq = _progress_quotient(gl, steps, t_steps, t_raw)
    with np.errstate(divide="ignore", invalid="ignore"):
        train_change = (train_to - train_from) / np.abs(train_from) * 100.0
    if t_metric is None or not np.isfinite(train_change).any():
        train_ok = np.full(n, not need_train)
    else:
        train_ok = np.isfinite(train_change) & (train_change <= max_train_rise * 100.0)
    if require_no_train:
        train_ok = np.full(n, t_metric is None)
    cand = above & after_best & sustained & train_ok & (idx >= min_points - 1)
    # noise: walk back from the last eval while the candidate holds (only the run that reaches the end counts)
    mask = np.zeros(n, dtype=bool)
    rise = np.full(n, np.nan)
    noise = np.full(n, np.nan)
    # the noise up to each eval, computed exactly for the last few and carried back beyond them (a long
    # overfitting tail of thousands of evals would otherwise cost O(n^2))
    exact_from = max(0, n - 64)
    carried = point_noise(y[: exact_from + 1]) if exact_from + 1 >= noise_min_points else np.nan
    # the robust level after the best: the median of the last (up to) 3 evals since the best, vectorised
    since = idx - best_idx  # evals after the best, up to and including i
    y1 = np.r_[np.nan, y[:-1]]
    y2 = np.r_[np.nan, np.nan, y[:-2]]
    med3 = y + y1 + y2 - np.fmax(np.fmax(y, y1), y2) - np.fmin(np.fmin(y, y1), y2)
    level = np.where(since >= 3, med3, np.where(since == 2, (y + y1) / 2.0, y))
    # many evals: the best is the lowest of many noisy draws, low by the noise alone (the record of 300 draws
    # sits ~2.8 deviations under their level), so the rise is also measured from the level around the best:
    # the median of the evals within half_window of it (up to i), half_window = smooth_evals x evals / 2
    half_window = min(50, int(round(smooth_evals * n)) // 2)
    i = n - 1
    while i >= 0 and cand[i]:
        rise[i] = float(level[i]) - float(best[i])
        if i + 1 < noise_min_points:
            noise[i] = np.nan
        else:
            noise[i] = point_noise(y[: i + 1]) if i >= exact_from else carried
        if np.isfinite(noise[i]) and rise[i] <= noise_z * noise[i]:
            break
        if half_window >= 1 and np.isfinite(noise[i]):
            b = int(best_idx[i])
            around = float(np.median(y[max(0, b - half_window) : min(i, b + half_window) + 1]))
            if float(level[i]) - around <= noise_z * noise[i]:
                break
        if rise[i] < min_rise_of_first * abs(float(y[0])):  # rounding-level wobble of a loss near zero
            break
        mask[i] = True
        i -= 1
    if max_gl > 0 and mask.any():  # the band below a stronger rule: what that rule would not say
        stronger = judge(
            run,
            series,
            select,
            min_gl=max_gl,
            confirm=confirm,
            up=up,
            train=train,
            need_train=need_train,
            min_points=min_points,
            onset_within=onset_within,
            require_no_train=require_no_train,
            min_rise_of_first=min_rise_of_first,
            noise_min_points=noise_min_points,
            smooth_evals=smooth_evals,
        )
        if stronger is not None and len(stronger.mask) == n and stronger.mask[-1]:
            mask[:] = False
    return Judgement(
        chosen.metric,
        chosen.lower_is_better,
        chosen.source,
        steps,
        raw,
        mask,
        best_idx,
        gl,
        up_run,
        rise,
        noise,
        pq,
        train_change,
        train_from,
        train_to,
        t_metric,
        onset_within,
    )


def onset_index(j: Judgement, i: int) -> int:
    """The start of the best basin at eval i: the first eval within ``onset_within`` of the best, or within the
    noise the evals showed up to the best (among values that close, which one is lowest is a coin toss; the
    noise after the turn is left out: an overfitting model's evals often get jumpier)."""
    b = int(j.best_idx[i])
    if j.onset_within <= 0:
        return b
    y = j.values if j.lower_is_better else -j.values
    best = float(y[b])
    tol = abs(best) * j.onset_within
    before = point_noise(y[: b + 1])
    if np.isfinite(before):
        tol = max(tol, before)
    near = np.flatnonzero(y[: b + 1] <= best + tol)
    return int(near[0]) if len(near) else b


def _progress_quotient(gl: np.ndarray, steps: np.ndarray, t_steps: np.ndarray, t_raw: np.ndarray) -> np.ndarray:
    """Prechelt's PQ = GL / P_k at each eval, P_k = 1000 (mean/min - 1) of the train logs in the strip since
    the previous eval (the last 5 train logs when the strip holds fewer than 2). Vectorised: strips are
    (lo, hi) index pairs into the train logs, their sums from a cumulative sum, their minima from one
    ``minimum.reduceat`` over the interleaved pairs."""
    n = len(steps)
    prev: np.ndarray = np.r_[np.iinfo(np.int64).min, steps[:-1]]
    lo = np.searchsorted(t_steps, prev, side="right")
    hi = np.searchsorted(t_steps, steps, side="right")
    short = hi - lo < 2
    lo = np.where(short, np.maximum(0, hi - 5), lo)
    ok = hi - lo >= 2
    cs = np.r_[0.0, np.cumsum(t_raw)]
    mean = np.where(ok, (cs[hi] - cs[lo]) / np.maximum(hi - lo, 1), np.nan)
    padded = np.r_[t_raw, np.inf]
    pairs = np.empty(2 * n, dtype=np.int64)
    pairs[0::2], pairs[1::2] = np.minimum(lo, len(t_raw)), np.minimum(hi, len(t_raw))
    mins = np.minimum.reduceat(padded, pairs)[0::2] if n else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        progress = 1000.0 * (mean / mins - 1.0)
        pq = np.where(progress > 0, gl / progress, np.inf)
    return np.where(ok & (mins > 0), pq, np.nan)


def _held(mask: np.ndarray, count: int) -> np.ndarray:
    idx = np.arange(len(mask))
    last_false = np.maximum.accumulate(np.where(~mask, idx, -1))
    return mask & (idx - last_false >= count)


def criteria_text(j: Judgement, i: int, min_gl: float, up: int) -> str:
    """Which of Prechelt's criteria hold at eval i, in words."""
    parts = [f"GL {j.gl[i]:.1f}% ≥ {min_gl * 100:g}% (generalisation loss: worse than the best by that much)"]
    b = int(j.best_idx[i])
    held = 0
    while held <= i - b - 1 and j.gl[i - held] >= min_gl * 100.0:
        held += 1
    parts.append(f"held at the last {held} eval(s)")
    if j.up[i] >= up:
        parts.append(f"UP{int(j.up[i])}: {int(j.up[i])} successive evals got worse")
    else:
        parts.append(f"UP: {int(j.up[i])} successive rise(s) at the end (not {up})")
    if np.isfinite(j.pq[i]):
        parts.append(f"PQ {j.pq[i]:.2f} (GL over the train progress of the last strip)")
    return "; ".join(parts)


def confidence_at(j: Judgement, i: int) -> float:
    n = i + 1
    if np.isfinite(j.noise[i]) and j.noise[i] > 0:
        base = normal_confidence(float(j.rise[i] / j.noise[i]))
    elif np.isfinite(j.noise[i]):
        base = 0.99
    else:
        base = 0.6  # fewer than 4 evals: the noise cannot be estimated
    return round(base * (0.5 + 0.5 * sample_factor(n, ENOUGH_EVALS)), 3)


def _selected_words(j: Judgement) -> str:
    y = j.values if j.lower_is_better else -j.values
    b = int(np.argmin(y))
    last = len(y) - 1
    where = "at the last eval" if b == last else f"at step {int(j.steps[b])} and {float(j.values[last]):.4g} at the end"
    return (
        f"the run selected its checkpoint on {j.metric} ({'lower' if j.lower_is_better else 'higher'} is "
        f"better), which was at its best, {float(j.values[b]):.4g}, {where}"
    )


class Overfit:
    kind = "overfit"
    doc = "eval (or the selected metric) worse than its best, beyond its noise, sustained, train not rising (Prechelt GL/PQ/UP)"
    params = {
        "series": Param("series", default="eval/loss", doc="eval series judged when the run selected on nothing else"),
        "select": Param("bool", default=True, doc="judge the metric the run selected its checkpoint on"),
        "train": Param("series", default="train/loss"),
        "min_gl": Param("fraction", default=0.05, doc="Prechelt's alpha: relative worsening from the best"),
        "max_gl": Param(
            "fraction",
            default=0.0,
            doc="holds only where this check with its defaults and "
            "min_gl = max_gl does not (the band below the overfitting "
            "rule; 0 = no band)",
        ),
        "strong_gl": Param("fraction", default=0.15, doc="one eval this much worse needs no confirmation"),
        "confirm": Param("int", default=2, doc="consecutive evals at min_gl ..."),
        "up": Param("int", default=3, doc="... or this many successive increases"),
        "noise_z": Param("number", default=1.0, doc="the rise must exceed this many noise deviations"),
        "max_train_rise": Param("fraction", default=0.1, doc="train level may not rise more than this"),
        "need_train": Param("bool", default=True, doc="silent without a train loss"),
        "require_no_train": Param("bool", default=False, doc="holds only when the run has no train loss"),
        "min_points": Param("int", default=2, doc="evals needed"),
        "disagree": Param(
            "bool",
            default=False,
            doc="judge `series` and hold only when the run selected on another metric that did not "
            "get worse (eval loss up, chosen metric fine: over-confidence, not overfitting)",
        ),
        "noise_min_points": Param(
            "int",
            default=8,
            doc="evals needed to estimate their noise (fewer: relative thresholds only, lower confidence)",
        ),
        "min_rise_of_first": Param(
            "fraction", default=0.01, doc="the rise must also be this fraction of the first eval's level"
        ),
        "onset_within": Param("fraction", default=0.01, doc="onset = first eval within this of the best"),
        "smooth_evals": Param(
            "fraction",
            default=0.05,
            doc="with many evals, the rise must also exceed the noise when measured from the "
            "median of the evals around the best (this share of them, when that is 3 or "
            "more): the lowest of hundreds of noisy evals is low by the noise alone",
        ),
    }
    evidence_keys = frozenset(
        {
            "best",
            "best_step",
            "last",
            "last_step",
            "rise_pct",
            "gl",
            "pq",
            "up",
            "criteria",
            "noise",
            "rise",
            "noise_ratio",
            "metric",
            "selection",
            "direction",
            "saving_pct",
            "counterfactual",
            "a_from",
            "a_to",
            "a_drop_pct",
            "a_change_pct",
            "train",
            "confidence",
            "points",
            "train_words",
            "noise_words",
            "early_stopping",
            "selected",
            "selected_words",
        }
    )

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult:
        if bool(args["disagree"]) and selected_metric(run, str(args["series"])).metric == str(args["series"]):
            return empty_result((str(args["series"]),))  # nothing else selected: nothing to disagree with
        j = judge(
            run,
            series=str(args["series"]),
            select=bool(args["select"]),
            min_gl=float(args["min_gl"]),
            max_gl=float(args["max_gl"]),
            strong_gl=float(args["strong_gl"]),
            confirm=int(args["confirm"]),
            up=int(args["up"]),
            noise_z=float(args["noise_z"]),
            max_train_rise=float(args["max_train_rise"]),
            train=str(args["train"]),
            need_train=bool(args["need_train"]),
            min_points=int(args["min_points"]),
            onset_within=float(args["onset_within"]),
            require_no_train=bool(args["require_no_train"]),
            min_rise_of_first=float(args["min_rise_of_first"]),
            noise_min_points=int(args["noise_min_points"]),
            smooth_evals=float(args["smooth_evals"]),
        )
        if j is None:
            return empty_result((str(args["series"]),))
        other = None
        if bool(args["disagree"]):  # eval loss judged; holds only when the selected metric says otherwise
            chosen = selected_metric(run, str(args["series"]))
            if chosen.metric == j.metric:
                return empty_result((str(args["series"]),))
            other = judge(
                run,
                series=str(args["series"]),
                select=True,
                min_gl=float(args["min_gl"]),
                confirm=int(args["confirm"]),
                up=int(args["up"]),
                noise_z=float(args["noise_z"]),
                max_train_rise=1e9,
                need_train=False,
                min_points=int(args["min_points"]),
            )
            if other is None or (len(other.mask) and other.mask[-1]):
                return empty_result((str(args["series"]),))

        def evidence_at(i: int) -> dict[str, Any]:
            b = int(j.best_idx[i])
            best, last = float(j.values[b]), float(j.values[i])
            saving = abs(last - best) / abs(last) * 100.0 if last else float("nan")
            worse = "higher" if j.lower_is_better else "lower"
            noise = float(j.noise[i])
            ratio = float(j.rise[i] / noise) if np.isfinite(noise) and noise > 0 else float("nan")
            if j.train_metric is None:
                words = "no train loss was logged, so overfitting and divergence cannot be told apart"
            else:
                tc = float(j.train_change[i])
                words = (
                    f"{j.train_metric} went {j.train_from[i]:.4g} → {j.train_to[i]:.4g} "
                    f"({'fell' if tc < 0 else 'rose'} {abs(tc):.1f}%)"
                )
            return {
                "best": best,
                "best_step": int(j.steps[b]),
                "last": last,
                "last_step": int(j.steps[i]),
                "rise_pct": float(j.gl[i]),
                "gl": float(j.gl[i]),
                "pq": float(j.pq[i]),
                "up": int(j.up[i]),
                "criteria": criteria_text(j, i, float(args["min_gl"]), int(args["up"])),
                "noise": noise,
                "rise": float(j.rise[i]),
                "noise_ratio": ratio,
                "metric": j.metric,
                "selection": j.source,
                "direction": f"{worse} is worse",
                "saving_pct": saving,
                "counterfactual": f"{j.metric} {best:.4g} instead of {last:.4g}",
                "a_from": float(j.train_from[i]),
                "a_to": float(j.train_to[i]),
                "a_change_pct": float(j.train_change[i]),
                "a_drop_pct": -float(j.train_change[i]),
                "train": j.train_metric or "none",
                "train_words": words,
                "confidence": confidence_at(j, i),
                "points": i + 1,
                "early_stopping": "no" if other is not None else "yes",
                "selected": other.metric if other is not None else j.metric,
                "selected_words": _selected_words(other) if other is not None else "",
                "noise_words": (
                    f"{ratio:.1f}× the evals' own noise ({noise:.3g})"
                    if np.isfinite(ratio)
                    else "above a noise that is ~0"
                    if np.isfinite(noise)
                    else f"not compared with the noise: {i + 1} evals are too few to estimate it"
                ),
            }

        return CheckResult(
            j.steps,
            j.mask,
            evidence_at,
            (j.metric,) + ((j.train_metric,) if j.train_metric else ()),
            onset_at=lambda i: int(j.steps[onset_index(j, i)]),
        )


CHECK = Overfit()
