"""The judgement of issue 12: the noise model, the metric the run selected, facts that agree with the
findings, confidence, and whole runs of the corpus read end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from rulecases import build_run

from lossdoctor.diagnosis import diagnose
from lossdoctor.rules.checks.overfit import judge, known_direction, selected_metric
from lossdoctor.rules.noise import normal_confidence, point_noise, residual_noise, robust_sigma
from lossdoctor.rules.packs import load_rules
from lossdoctor.sources import read_runs
from lossdoctor.sources.base import ReadOptions

CORPUS = Path(__file__).resolve().parent / "corpus"
RULES = load_rules()

MILD = {
    "train/loss": {"every": 5, "values": "2.0-0.02x24"},
    "eval/loss": {"every": 10, "values": "3.5 3.2 3.0 2.9 2.973 2.98 2.99 2.997 3.005 3.012 3.018 3.022"},
}


# --- the noise model ----------------------------------------------------------------------------------


def test_point_noise_ignores_a_linear_trend_and_measures_jitter() -> None:
    assert point_noise(np.linspace(3.0, 1.0, 12)) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    jitter = np.linspace(3.0, 1.0, 400) + rng.normal(0.0, 0.1, 400)
    assert point_noise(jitter) == pytest.approx(0.1, rel=0.15)
    assert math.isnan(point_noise(np.array([1.0, 2.0, 3.0])))  # 3 points: no estimate


def test_residual_noise_is_robust_to_a_spike() -> None:
    rng = np.random.default_rng(1)
    loss = np.linspace(2.0, 1.0, 300) + rng.normal(0.0, 0.05, 300)
    spiked = loss.copy()
    spiked[150] = 50.0
    assert residual_noise(loss) == pytest.approx(0.05, rel=0.2)
    assert residual_noise(spiked) == pytest.approx(residual_noise(loss), rel=0.05)
    assert robust_sigma(np.array([1.0, 1.0, 1.0, 100.0])) == 0.0


def test_normal_confidence() -> None:
    assert normal_confidence(0.0) == pytest.approx(0.5)
    assert normal_confidence(1.0) == pytest.approx(0.841, abs=1e-3)
    assert normal_confidence(10.0) == 0.99


# --- which metric is judged ---------------------------------------------------------------------------


def test_selected_metric_from_the_config_and_from_best_metric() -> None:
    series = {
        "eval/loss": {"every": 100, "values": "0.6 0.5 0.55"},
        "eval/accuracy": {"every": 100, "values": "0.7 0.8 0.9"},
    }
    chosen = selected_metric(build_run(series, config={"metric_for_best_model": "eval_accuracy"}))
    assert (chosen.metric, chosen.lower_is_better) == ("eval/accuracy", False)
    chosen = selected_metric(
        build_run(series, config={"trainer.best_metric": 0.9, "trainer.best_model_checkpoint": "out/checkpoint-300"})
    )
    assert chosen.metric == "eval/accuracy" and not chosen.lower_is_better
    assert selected_metric(build_run(series)).metric == "eval/loss"
    # selecting on the loss itself, or on a metric the run never logged: the eval loss
    assert selected_metric(build_run(series, config={"metric_for_best_model": "loss"})).metric == "eval/loss"
    assert selected_metric(build_run(series, config={"metric_for_best_model": "f1"})).metric == "eval/loss"


def test_a_wer_is_lower_better_whatever_best_metric_suggests() -> None:
    # pub-whisper-bangla's shape: best_metric is the *highest* WER (greater_is_better set wrong); WER falls
    series = {
        "eval/loss": {"every": 50, "values": "0.5 0.45 0.42 0.40"},
        "eval_wer": {"every": 50, "values": "0.48 0.45 0.43 0.40"},
    }
    chosen = selected_metric(build_run(series, config={"trainer.best_metric": 0.48, "trainer.best_global_step": 50}))
    assert chosen.metric == "eval/wer" and chosen.lower_is_better  # eval_wer canonicalised (aliases trainer_split)
    assert known_direction("eval/accuracy") is False and known_direction("eval_cer") is True
    assert known_direction("eval/reward") is None


# --- facts and findings agree -------------------------------------------------------------------------


def test_mild_sustained_overfitting_gets_a_finding_and_the_facts_agree() -> None:
    diag = diagnose(build_run(MILD), RULES)
    ids = {f.rule_id for f in diag.findings}
    assert "overfitting-mild" in ids and "overfitting" not in ids
    assert diag.facts.early_stopping_would_help is True and diag.facts.early_stop_step == 40
    mild = next(f for f in diag.findings if f.rule_id == "overfitting-mild")
    assert mild.severity == "info" and "UP8" in mild.message and 0.5 < mild.confidence <= 0.99


def test_near_zero_jitter_is_neither_overfitting_nor_a_reason_to_stop() -> None:
    run = build_run(
        {
            "train/loss": {"every": 5, "values": "2.0-0.02x24"},
            "eval/loss": {"every": 10, "values": "0.5 0.1 0.01 0.002 0.0011 0.0009 0.0012 0.0010 0.0013 0.0011 0.0012"},
        }
    )
    diag = diagnose(run, RULES)
    assert not [f for f in diag.findings if f.category == "generalisation"]
    assert diag.facts.early_stopping_would_help is False


def test_a_short_log_is_judged_with_a_lower_confidence() -> None:
    run = build_run(
        {"train/loss": {"every": 10, "values": "3.0 2.5 2.0"}, "eval/loss": {"every": 10, "values": "2.0 2.1 2.2"}}
    )
    diag = diagnose(run, RULES)
    over = next(f for f in diag.findings if f.rule_id == "overfitting")
    assert over.confidence < 0.6
    assert "too-short-to-judge" in {f.rule_id for f in diag.findings}


def _long_noisy_evals(tail: list[float]) -> dict:
    """300 evals on a flat 0.40 level with jitter 0.026 (the noise of per-100-step evals on a few batches),
    then ``tail``; the train loss keeps falling slowly."""
    rng = np.random.default_rng(7)
    evals = [round(float(v), 4) for v in 0.40 + rng.normal(0.0, 0.026, 300)] + tail
    return {
        "train/loss": {"every": 100, "values": " ".join(f"{1.0 - i / 1000:.4f}" for i in range(len(evals)))},
        "eval/loss": {"every": 100, "values": " ".join(str(v) for v in evals)},
    }


def test_a_record_low_among_hundreds_of_noisy_evals_is_not_the_level_to_rise_from() -> None:
    """The lowest of 300 noisy evals sits ~2.8 deviations under their level: two ordinary evals after a new
    record are 18% 'worse' than it without anything having changed (a public notebook did exactly this)."""
    series = _long_noisy_evals([0.30, 0.39, 0.405])  # 0.30: a new record low
    j = judge(build_run(series), smooth_evals=0.0)
    assert j is not None and j.mask[-1]  # the raw criteria alone fire ...
    diag = diagnose(build_run(series), RULES)
    assert not [f for f in diag.findings if f.category == "generalisation"]  # ... the smoothed level did not move


def test_a_sustained_rise_after_hundreds_of_noisy_evals_is_still_overfitting() -> None:
    series = _long_noisy_evals([0.40 + 0.004 * k for k in range(1, 41)])  # +40% over the last 40 evals
    over = [f for f in diagnose(build_run(series), RULES).findings if f.rule_id == "overfitting"]
    assert over and over[0].evidence["last"] == pytest.approx(0.56)


def test_the_judgement_walks_back_only_over_the_run_that_reaches_the_end() -> None:
    j = judge(build_run(MILD), min_gl=0.01, noise_z=2.0, strong_gl=0.0, max_train_rise=0.0)
    assert j is not None and j.mask[-1] and not j.mask[:4].any()
    assert j.gl[-1] == pytest.approx((3.022 / 2.9 - 1) * 100)


@pytest.mark.parametrize("case", sorted(p.name for p in CORPUS.iterdir() if (p / "label.yaml").is_file()))
def test_early_stopping_fact_agrees_with_the_findings_on_the_corpus(case: str) -> None:
    diag = diagnose(read_runs(str(CORPUS / case), ReadOptions(offline=True))[0], RULES)
    says_stop = any(f.evidence.get("early_stopping") == "yes" for f in diag.findings)
    failed = any(f.severity == "error" for f in diag.findings)
    if diag.facts.early_stopping_would_help:
        assert says_stop or failed, case
    else:
        assert not says_stop, case


# --- whole runs ---------------------------------------------------------------------------------------


def _findings(case: str) -> dict[str, str]:
    diag = diagnose(read_runs(str(CORPUS / case), ReadOptions(offline=True))[0], RULES)
    return {f.rule_id: f.severity for f in diag.findings}


def test_the_dead_run_is_an_error() -> None:
    found = _findings("gen-dead-1")  # --lr 1000, clipping off: loss at ln V, grad_norm 0
    assert found.get("training-dead") == "error"


def test_fp16_overflows_stay_healthy_and_hidden_nans_do_not() -> None:
    for case in ("doc-fp16-overflow-1", "doc-fp16-overflow-2"):
        found = _findings(case)
        assert found.get("nonfinite-grad-norm-transient") == "info"
        assert not [r for r, sev in found.items() if sev != "info"], (case, found)
    assert _findings("doc-nan-as-zero-1").get("loss-nan-as-zero") == "error"
    assert _findings("doc-masked-labels-1").get("loss-collapsed-to-zero") == "error"


def test_a_run_stopped_at_a_quarter_of_max_steps_is_not_called_finished_by_the_rules() -> None:
    diag = diagnose(read_runs(str(CORPUS / "doc-stopped-early-1"), ReadOptions(offline=True))[0], RULES)
    incomplete = next(f for f in diag.findings if f.rule_id == "run-incomplete")
    assert incomplete.evidence["step"] == 1000 and incomplete.evidence["max_steps"] == 4000
