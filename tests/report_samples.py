"""Sample Diagnosis objects for the report tests, built by formula (no rule engine involved).

Why by hand: the reports must be tested on their own (the renderers only see a Diagnosis), and each
expected value below follows from the formula that made the series, so tests can state it
independently of the renderer's output.

- ``overfit``:  train loss 3·exp(-s/30)+0.4 every 5 steps; eval loss 1 + 5e-5·(s-20)² every 10 steps
                (best 1.0 at step 20, final 1.32 at step 100: +32 %); LR linear decay from 2e-4;
                grad_norm 1 + s/100 except 150 at steps 60-70 (the explosion).
- ``healthy``:  still running, steps from epoch×cadence, confidence 0.8, no eval loss, no findings.
- ``hostile``:  run strings full of HTML/Markdown/ANSI that must come out inert.
- ``nonfinite``: NaN at step 30 and +inf at step 40 in train loss, one crashed check, a one-step finding.
"""

from __future__ import annotations

import math

import numpy as np

from lossdoctor.model import Diagnosis, Facts, Finding, Provenance, Run, make_metrics

XSS_NAME = "<script>alert(1)</script>"


def _exp(x: np.ndarray) -> np.ndarray:
    # math.exp element by element: numpy's vectorised exp may differ in the last bit between CPUs
    # (SIMD dispatch), which would make the gold files machine-dependent.
    return np.array([math.exp(float(v)) for v in x], dtype="float64")


def _train_loss(s: np.ndarray) -> np.ndarray:
    return 3.0 * _exp(-s / 30.0) + 0.4


def _eval_loss(s: np.ndarray) -> np.ndarray:
    return 1.0 + 5e-5 * (s - 20.0) ** 2


def _grad_norm(s: np.ndarray) -> np.ndarray:
    g = 1.0 + s / 100.0
    return np.where((s >= 60) & (s <= 70), 150.0, g)


def _table(columns: dict[str, tuple[np.ndarray, np.ndarray]]):  # noqa: ANN202
    steps, names, values = [], [], []
    for raw, (s, v) in columns.items():
        steps.extend(int(x) for x in s)
        names.extend([raw] * len(s))
        values.extend(float(x) for x in v)
    return make_metrics(steps, names, values)


def overfit_run(location: str = "/data/runs/sft-demo/trainer_state.json", name: str = "sft|lora *demo*") -> Run:
    t = np.arange(5, 101, 5, dtype="float64")
    e = np.arange(10, 101, 10, dtype="float64")
    metrics = _table(
        {
            "loss": (t, _train_loss(t)),
            "eval_loss": (e, _eval_loss(e)),
            "learning_rate": (t, 2e-4 * (1 - t / 100.0)),
            "grad_norm": (t, _grad_norm(t)),
            "mean_token_accuracy": (t, 0.5 + 0.004 * t),
            "epoch": (t, t / 50.0),
        }
    )
    config = {
        "learning_rate": 2e-4,
        "num_train_epochs": 2,
        "lora.r": 16,
        "lora.target_modules": ["q_proj", "v_proj"],
        "model_name_or_path": "tiny-llama",
        "gradient_checkpointing": True,
        "warmup_ratio": 0.0,
    }
    return Run(
        name=name,
        provenance=Provenance(kind="trainer-state", location=location, step_source="logged"),
        metrics=metrics,
        config=config,
        summary={"train_runtime": 12.5, "total_flos": float("nan")},
        state="finished",
        created=None,
        tags=("demo",),
    )


def overfit_diagnosis(location: str = "/data/runs/sft-demo/trainer_state.json") -> Diagnosis:
    run = overfit_run(location)
    final = float(_eval_loss(np.array([100.0]))[0])  # 1 + 5e-5·80² = 1.32
    gap = (final - 1.0) / 1.0 * 100.0  # 32 %
    train_final = float(_train_loss(np.array([100.0]))[0])
    overfit = Finding(
        rule_id="overfitting",
        severity="warning",
        title="Eval loss rising while train loss falls",
        message=f"eval/loss rose {gap:.1f}% from its best 1.0000 at step 20 to {final:.4f} at step 100, "
        f"while train/loss fell.",
        remediation=(
            "Keep the checkpoint from step 20 (load_best_model_at_end + EarlyStoppingCallback).",
            "Train fewer epochs, add data, or raise lora_dropout / weight_decay.",
        ),
        series=("eval/loss", "train/loss"),
        first_step=20,
        last_step=100,
        evidence={"best": 1.0, "best_step": 20, "last": final, "last_step": 100, "rise_pct": gap},
        origin="rules/default.yaml:10",
        category="generalisation",
    )
    explode = Finding(
        rule_id="grad-norm-explosion",
        severity="error",
        title="Gradient norm exploded",
        message="grad_norm > 100 for 3 logs (peak 150.0 @ 60).",
        remediation=("Lower the learning rate or set max_grad_norm=1.0.",),
        series=("train/grad_norm",),
        first_step=60,
        last_step=70,
        evidence={"peak": 150.0, "peak_step": 60, "points": 3},
        origin="rules/default.yaml:73",
    )
    facts = Facts(
        best_eval_step=20,
        best_eval_loss=1.0,
        final_eval_step=100,
        final_eval_loss=final,
        final_gap_pct=gap,
        early_stopping_would_help=True,
        final_train_loss=train_final,
        eval_points=10,
        train_points=20,
        last_step=100,
    )
    return Diagnosis(
        run=run,
        findings=(explode, overfit),
        facts=facts,
        verdict="unhealthy: Gradient norm exploded; Eval loss rising while train loss falls",
        rule_sources=("default",),
    )


def healthy_diagnosis() -> Diagnosis:
    t = np.arange(10, 201, 10, dtype="float64")
    metrics = _table({"train_loss": (t, 2.0 * _exp(-t / 100.0) + 0.5), "lr": (t, np.full(t.shape, 1e-4))})
    run = Run(
        name="healthy-run",
        provenance=Provenance(
            kind="hf-console",
            location="logs/train.log",
            step_source="epoch*cadence",
            notes=("3 lines without a dict were skipped",),
            confidence=0.8,
        ),
        metrics=metrics,
        config={},
        state="running",
    )
    final = float(2.0 * math.exp(-2.0) + 0.5)
    facts = Facts(final_train_loss=final, eval_points=0, train_points=20, last_step=200)
    return Diagnosis(run=run, findings=(), facts=facts, verdict="healthy so far (no eval loss: overfitting not judged)")


def hostile_diagnosis() -> Diagnosis:
    s = np.arange(1, 11, dtype="float64")
    metrics = _table(
        {"loss": (s, 2.0 - 0.1 * s), "eval_loss": (s, 1.0 + 0.01 * (s - 3) ** 2), "<svg onload=alert(4)>": (s, s)}
    )
    run = Run(
        name=XSS_NAME,
        provenance=Provenance(
            kind="csv",
            location="runs/<img src=x onerror=alert(5)>.csv",
            notes=("note <iframe src=//evil.example></iframe>",),
        ),
        metrics=metrics,
        config={"<b>key</b>": "<img src=x onerror=alert(3)>", "pipe|key": "a|b *c* [l](u)"},
        state="finished",
    )
    finding = Finding(
        rule_id="overfitting",
        severity="warning",
        title="Title <script>alert(6)</script>",
        message="rose <img src=x onerror=alert(2)> | *bold* _it_ `code`",
        remediation=("do <b>this</b> | that",),
        series=("eval/loss",),
        first_step=3,
        last_step=10,
        evidence={"<k>": "<v>"},
        origin="x.yaml:1",
    )
    facts = Facts(
        best_eval_step=3,
        best_eval_loss=1.0,
        final_eval_step=10,
        final_eval_loss=1.49,
        final_gap_pct=49.0,
        early_stopping_would_help=True,
        final_train_loss=1.0,
        eval_points=10,
        train_points=10,
        last_step=10,
    )
    return Diagnosis(run=run, findings=(finding,), facts=facts, verdict="needs attention: <script>x</script>")


def nonfinite_diagnosis() -> Diagnosis:
    s = np.arange(10, 101, 10, dtype="float64")
    loss = 2.0 - s / 100.0
    loss[s == 30] = np.nan
    loss[s == 40] = np.inf
    metrics = _table({"loss": (s, loss), "grad_norm": (s, np.ones_like(s))})
    run = Run(
        name="nan-run", provenance=Provenance(kind="trainer-state", location="t.json"), metrics=metrics, state="crashed"
    )
    nonfinite = Finding(
        rule_id="nonfinite-loss",
        severity="error",
        title="Loss became NaN/inf",
        message="train/loss was non-finite at 2 logs (first at step 30).",
        remediation=(),
        series=("train/loss",),
        first_step=30,
        last_step=40,
        evidence={"count": 2, "first_value": float("nan"), "peak": float("inf"), "low": float("-inf")},
        origin="rules/default.yaml:44",
    )
    spike = Finding(
        rule_id="loss-spike",
        severity="info",
        title="One-step spike",
        message="spike at 50",
        remediation=(),
        series=("train/loss",),
        first_step=50,
        last_step=50,
        evidence={},
        origin="rules/default.yaml:165",
    )
    facts = Facts(final_train_loss=1.0, eval_points=0, train_points=10, last_step=100)
    return Diagnosis(
        run=run,
        findings=(nonfinite, spike),
        facts=facts,
        verdict="analysis incomplete: 1 rule check(s) crashed",
        crashed_checks=("loss-plateau: ZeroDivisionError: division by zero",),
    )
