"""The run's objective: told from metric names and config (data), overridable, recorded in every report; rules
name the objectives they judge (validated with file:line:col), and the engine skips the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lossdoctor.diagnosis import diagnose
from lossdoctor.errors import UsageError
from lossdoctor.metrics.names import canonicalise
from lossdoctor.metrics.objectives import describe, detect, parse_table, resolve
from lossdoctor.model import Provenance, Run, make_metrics
from lossdoctor.rules.packs import load_rules, validate_files

ROOT = Path(__file__).resolve().parents[1]


def run_of(metrics: dict[str, list[float]], config: dict | None = None, every: int = 10) -> Run:
    steps, names, values = [], [], []
    for name, vals in metrics.items():
        for i, v in enumerate(vals):
            steps.append((i + 1) * every)
            names.append(name)
            values.append(v)
    return Run(
        name="t",
        provenance=Provenance("test", "t"),
        metrics=make_metrics(steps, names, values),
        config=dict(config or {}),
    )


# --- names: trl's metric names survive canonicalisation, train and eval apart -------------------------


@pytest.mark.parametrize(
    "raw,canonical",
    [
        ("rewards/chosen", "train/rewards/chosen"),
        ("train/rewards/chosen", "train/rewards/chosen"),
        ("eval_rewards/margins", "eval/rewards/margins"),
        ("eval/rewards/margins", "eval/rewards/margins"),
        ("rewards/accuracies", "train/rewards/accuracies"),
        ("logps/chosen", "train/logps/chosen"),
        ("logps/rejected", "train/logps/rejected"),
        ("reward", "train/reward"),
        ("reward_std", "train/reward_std"),
        ("frac_reward_zero_std", "train/frac_reward_zero_std"),
        ("kl", "train/kl"),
        ("entropy", "train/entropy"),
        ("completions/mean_length", "train/completions/mean_length"),
        ("completion_length", "train/completions/mean_length"),
        ("completions/clipped_ratio", "train/completions/clipped_ratio"),
        ("clip_ratio/low_mean", "train/clip_ratio/low_mean"),
        ("objective/rlhf_reward", "train/reward"),
        ("objective/kl", "objective/kl"),
        ("objective/entropy", "objective/entropy"),
        ("loss", "train/loss"),
        ("eval_loss", "eval/loss"),
    ],
)
def test_trl_names_canonicalise(raw: str, canonical: str) -> None:
    assert canonicalise(raw) == canonical


# --- detection ---------------------------------------------------------------------------------------

DPO = {
    "loss": [0.693, 0.69, 0.68],
    "rewards/chosen": [0, 0.01, 0.02],
    "rewards/rejected": [0, -0.01, -0.03],
    "rewards/margins": [0, 0.02, 0.05],
    "rewards/accuracies": [0, 0.6, 0.7],
    "logps/chosen": [-80, -79, -79],
}
GRPO = {
    "loss": [0.0, 0.0, 0.0001],
    "reward": [0.1, 0.2, 0.3],
    "reward_std": [0.3, 0.3, 0.2],
    "frac_reward_zero_std": [0.1, 0.1, 0.2],
    "kl": [0, 0.001, 0.002],
    "completions/mean_length": [30, 31, 29],
}
KTO = {"loss": [0.5, 0.49], "rewards/chosen": [0, 0.1], "rewards/rejected": [0, -0.1], "kl": [0, 0.01]}
PPO = {
    "loss/policy_avg": [0.1, 0.1],
    "objective/kl": [0, 2],
    "objective/rlhf_reward": [-1, 0],
    "objective/scores": [0.1, 0.3],
}
REWARD_MODEL = {"loss": [0.7, 0.6], "accuracy": [0.5, 0.6], "margin": [0, 0.3], "mean_reward": [0, 0.1]}
SFT = {"loss": [2.0, 1.5], "eval_loss": [2.1, 1.7], "mean_token_accuracy": [0.3, 0.4]}
CLM_WITH_ACCURACY = {"loss": [2.0, 1.5], "eval_loss": [2.1, 1.7], "eval_accuracy": [0.3, 0.4], "perplexity": [8, 5]}
CLASSIFIER = {"loss": [0.7, 0.4], "eval_loss": [0.6, 0.5], "eval_accuracy": [0.7, 0.8], "eval_f1": [0.6, 0.7]}
ASR = {"loss": [3.0, 1.0], "eval_loss": [2.0, 1.1], "eval_wer": [80.0, 30.0]}


@pytest.mark.parametrize(
    "metrics,config,expected",
    [
        (DPO, None, "preference"),
        (GRPO, None, "rl"),
        (KTO, None, "preference"),
        (PPO, None, "rl"),
        (REWARD_MODEL, None, "reward-model"),
        (SFT, None, "sft"),
        (CLM_WITH_ACCURACY, None, "sft"),
        (CLASSIFIER, None, "classification"),
        (ASR, None, "speech"),
        ({"loss": [0.7, 0.6]}, {"loss_type": "sigmoid", "beta": 0.1}, "preference"),
        ({"loss": [0.0, 0.0]}, {"num_generations": 8}, "rl"),
        ({"loss": [0.0, 0.0]}, {"trainer.loss_type": "dr_grpo"}, "rl"),
        ({"loss": [0.7, 0.6]}, {"architectures": ["RobertaForSequenceClassification"]}, "classification"),
        (
            {"loss": [2.0, 1.0]},
            {"architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper"},
            "speech",
        ),
        ({"loss": [2.0, 1.0]}, {"loss_type": "nll"}, "sft"),  # SFT's loss_type is not DPO's
    ],
)
def test_detect(metrics: dict, config: dict | None, expected: str) -> None:
    objective = detect(run_of(metrics, config))
    assert objective.id == expected
    assert objective.how == ("default" if expected == "sft" else "detected")
    if expected != "sft":
        assert objective.evidence and describe(objective).startswith(f"{expected} - ")


def test_one_reward_named_metric_is_not_an_rl_run() -> None:
    assert detect(run_of({"loss": [2.0, 1.0], "reward": [0.1, 0.2]})).id == "sft"  # min_metrics: 2


def test_resolve_names_and_aliases() -> None:
    assert resolve("GRPO").id == "rl" and resolve("GRPO").given_as == "grpo"
    assert resolve("preference").given_as == "" and resolve("dpo").id == "preference"
    with pytest.raises(UsageError) as info:
        resolve("rlhf-magic")
    assert "unknown objective 'rlhf-magic'" in str(info.value) and "preference (dpo" in str(info.value)


def test_table_is_strict() -> None:
    with pytest.raises(RuntimeError):
        parse_table({"version": 1, "default": "sft", "objectives": [{"id": "sft", "colour": "red"}]})
    with pytest.raises(RuntimeError):
        parse_table({"version": 1, "default": "nope", "objectives": [{"id": "sft"}]})


# --- rule files: objectives are validated data --------------------------------------------------------

RULE = """version: 1
{top}rules:
  - id: ceiling
    severity: warning
    title: Loss above 1
{own}    when: {{check: threshold, series: train/loss, op: ">", value: 1}}
    message: loss {{evidence.value}}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_unknown_objective_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, RULE.format(top="", own="    objectives: [sft, dpo]\n"))
    problems = validate_files((path,))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:6:") and "unknown objective 'dpo'" in problems[0]
    assert "write preference" in problems[0]


@pytest.mark.parametrize(
    "own,fragment",
    [
        ("    objectives: 3\n", "expected a list of objectives"),
        ("    objectives: []\n", "expected a list of objectives"),
        ("    objectives: [any, sft]\n", "'any' must stand alone"),
    ],
)
def test_bad_objectives_values(tmp_path: Path, own: str, fragment: str) -> None:
    path = write(tmp_path, RULE.format(top="", own=own))
    problems = validate_files((path,))
    assert len(problems) == 1 and problems[0].startswith(f"{path}:") and fragment in problems[0]


def test_top_level_objectives_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, RULE.format(top="objectives: [sft, grpo]\n", own=""))
    problems = validate_files((path,))
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2:") and "'grpo'" in problems[0]


def test_rule_without_objectives_judges_every_run(tmp_path: Path) -> None:
    """An existing user rule file (no objectives anywhere) keeps firing as before, on any objective."""
    ruleset = load_rules((write(tmp_path, RULE.format(top="", own="")),), include_default=False)
    rule = ruleset.get("ceiling")
    assert rule is not None and rule.objectives == ()
    grpo_like = run_of({**GRPO, "loss": [2.0, 2.0, 2.0]})
    assert [f.rule_id for f in diagnose(grpo_like, ruleset).findings] == ["ceiling"]


def test_file_default_and_rule_own_objectives(tmp_path: Path) -> None:
    text = (
        RULE.format(top="objectives: [rl]\n", own="")
        + """  - id: other
    severity: info
    title: Other
    objectives: [sft]
    when: {check: threshold, series: train/loss, op: ">", value: 1}
    message: m
"""
    )
    ruleset = load_rules((write(tmp_path, text),), include_default=False)
    assert ruleset.get("ceiling").objectives == ("rl",) and ruleset.get("other").objectives == ("sft",)
    diag = diagnose(run_of({**GRPO, "loss": [2.0, 2.0, 2.0]}), ruleset)
    assert [f.rule_id for f in diag.findings] == ["ceiling"] and diag.rules_not_applied == ("other",)


def test_override_changes_objectives(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nextends: default\noverrides:\n  loss-spike: {objectives: any}\n"
        "  loss-plateau: {objectives: [nonsense]}\n",
    )
    problems = validate_files((path,))
    assert len(problems) == 1 and problems[0].startswith(f"{path}:5:") and "'nonsense'" in problems[0]
    path = write(tmp_path, "version: 1\nextends: default\noverrides:\n  loss-spike: {objectives: any}\n")
    assert load_rules((path,)).get("loss-spike").objectives == ()


# --- the engine: supervised-loss rules stay silent on RL and preference runs ---------------------------


def test_grpo_zero_loss_is_not_not_learning() -> None:
    """GRPO's loss is beta x KL: 0.0 at every step is normal. The same numbers without the RL columns are a
    supervised run whose loss never moved (masked labels): that one is called not learning."""
    n = 20
    zero_loss = {"loss": [0.0] * n, "grad_norm": [0.5] * n}
    rl = {
        **zero_loss,
        "reward": [0.1 + 0.02 * i for i in range(n)],
        "reward_std": [0.3] * n,
        "frac_reward_zero_std": [0.1] * n,
        "kl": [0.001 * i for i in range(n)],
    }
    ruleset = load_rules()
    flat_sft = {"loss": [2.3 + 0.01 * (i % 2) for i in range(n)]}
    assert "loss-not-decreasing" in {f.rule_id for f in diagnose(run_of(flat_sft), ruleset).findings}
    diag = diagnose(run_of(rl), ruleset)
    assert diag.objective.id == "rl"
    assert "loss-not-decreasing" in diag.rules_not_applied
    assert not [f for f in diag.findings if f.rule_id.startswith("loss-")]


def test_dpo_spiky_loss_is_not_a_plateau_or_spike() -> None:
    n = 30
    loss = [0.693 - 0.004 * i for i in range(n)]
    loss[12], loss[21] = 1.9, 2.2  # one-batch spikes
    dpo = {
        "loss": loss,
        "rewards/chosen": [0.01 * i for i in range(n)],
        "rewards/rejected": [-0.02 * i for i in range(n)],
        "rewards/margins": [0.03 * i for i in range(n)],
        "rewards/accuracies": [min(1.0, 0.5 + 0.02 * i) for i in range(n)],
    }
    ruleset = load_rules()
    diag = diagnose(run_of(dpo), ruleset)
    assert diag.objective.id == "preference"
    assert not [f.rule_id for f in diag.findings if f.rule_id.startswith("loss-")]
    # the same loss curve judged as a supervised run: the spikes are found
    forced = diagnose(run_of(dpo), ruleset, resolve("sft"))
    assert "loss-spike" in {f.rule_id for f in forced.findings}


# --- reports ------------------------------------------------------------------------------------------


def test_objective_in_every_report(tmp_path: Path) -> None:
    state = {
        "log_history": [
            {
                "step": 10 * (i + 1),
                "epoch": 0.1 * (i + 1),
                "loss": 0.0,
                "reward": 0.1 * i,
                "reward_std": 0.3,
                "frac_reward_zero_std": 0.1,
                "kl": 0.001 * i,
            }
            for i in range(12)
        ],
        "global_step": 120,
        "max_steps": 120,
    }
    src = tmp_path / "trainer_state.json"
    src.write_text(json.dumps(state), encoding="utf-8")
    out = tmp_path / "rep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lossdoctor",
            "analyze",
            str(src),
            "--out",
            str(out),
            "--format",
            "html,md,json",
            "--fail-on",
            "never",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "objective: rl - online reinforcement learning" in proc.stdout
    assert "detected from train/reward, train/reward_std, train/frac_reward_zero_std, train/kl" in proc.stdout
    assert "final train/reward: 1.1 at step 120" in proc.stdout  # judged on its own signals
    doc = json.loads((out / "diagnosis.json").read_text())
    assert doc["objective"]["id"] == "rl" and doc["objective"]["how"] == "detected"
    assert "loss-not-decreasing" in doc["rules_not_applied"]
    assert "**Objective:** rl - online reinforcement learning" in (out / "report.md").read_text()
    assert 'id="objective"><strong>Objective:</strong> rl - online' in (out / "report.html").read_text()

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lossdoctor",
            "analyze",
            str(src),
            "--out",
            str(out),
            "--format",
            "json",
            "--objective",
            "DPO",
            "--fail-on",
            "never",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "diagnosis.json").read_text())
    assert doc["objective"] == {
        "evidence": [],
        "given_as": "dpo",
        "how": "given",
        "id": "preference",
        "title": doc["objective"]["title"],
    }
    assert "(set by --objective dpo)" in proc.stdout

    proc = subprocess.run(
        [sys.executable, "-m", "lossdoctor", "analyze", str(src), "--out", str(tmp_path / "x"), "--objective", "vibes"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "unknown objective 'vibes'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x").exists()


def test_silent_cases_for_other_objectives_have_teeth() -> None:
    """Each tests/cases entry where a supervised rule stays silent on an RL or preference run would fire on
    the same series if objectives were ignored: the silence comes from judging by objective, not from the
    numbers."""
    from rulecases import build_run, load_cases

    from lossdoctor.rules.engine import evaluate_rule

    ruleset = load_rules()
    checked = 0
    for rule_id, case_id, case in load_cases():
        rule = ruleset.get(rule_id)
        kind = case.get("objective_detected")
        if case["expect"] or kind not in ("rl", "preference") or rule.applies_to(kind):
            continue
        assert evaluate_rule(rule, build_run(case["series"], case_id)) is not None, case_id
        checked += 1
    assert checked >= 5


# --- eval-corpus: per objective, and rules off their objective ------------------------------------------


def test_label_objective_is_validated() -> None:
    from lossdoctor import corpus
    from lossdoctor.errors import SourceError

    assert corpus.parse_label("verdicts: [healthy]\nobjective: rl\n", "x", "c").objective == "rl"
    assert corpus.parse_label("verdicts: [healthy]\n", "x", "c").objective is None
    with pytest.raises(SourceError) as info:
        corpus.parse_label("verdicts: [healthy]\nobjective: grpo\n", "case/label.yaml", "c")
    assert str(info.value).startswith("case/label.yaml:2:") and "unknown objective 'grpo'" in str(info.value)


def test_score_per_objective_and_off_objective_firings() -> None:
    from lossdoctor import corpus

    def result(
        case: str, objective: str | None, truth: set[str], said: set[str], fired: tuple[str, ...], detected: str
    ) -> corpus.CaseResult:
        label = corpus.Label(case=case, verdicts=frozenset(truth), objective=objective)
        return corpus.CaseResult(label=label, predicted=frozenset(said), fired=fired, objective=detected)

    verdict_of = {
        "loss-not-decreasing": "not-learning",
        "reward-not-improving": "not-learning",
        "kl-blowup": "kl-blowup",
    }
    judges = {"loss-not-decreasing": ("sft",), "reward-not-improving": ("rl",), "kl-blowup": ("rl",)}
    results = [
        result("a", "rl", {"kl-blowup"}, {"kl-blowup"}, ("kl-blowup",), "rl"),
        result("b", "rl", {"healthy"}, {"not-learning"}, ("loss-not-decreasing",), "sft"),  # misdetected
        result("c", "sft", {"not-learning"}, {"not-learning"}, ("loss-not-decreasing",), "sft"),
        result("d", None, {"healthy"}, {"healthy"}, (), "classification"),
    ]
    s = corpus.score(results, verdict_of, judges)
    assert set(s.by_objective) == {"rl", "sft", "classification"}
    rl = s.by_objective["rl"]
    assert (rl["kl-blowup"].tp, rl["not-learning"].fp, rl["healthy"].fn) == (1, 1, 1)
    assert s.by_objective["sft"]["not-learning"].recall == 1.0
    assert s.off_objective == ("b: loss-not-decreasing",)
    # a rule is scored on the runs of the objectives it judges: b (an RL run) does not count against it
    lnd = s.rules["loss-not-decreasing"]
    assert (lnd.tp, lnd.fp, lnd.fn) == (1, 0, 0)
    rni = s.rules["reward-not-improving"]
    assert (rni.tp, rni.fp, rni.fn, rni.tn) == (0, 0, 0, 2)
    text = corpus.render_text(s)
    assert "rl: 2 run(s), 1 with every verdict right; objective detected right on 1/2" in text
    assert "fired on a run of an objective they do not judge: 1 (b: loss-not-decreasing)" in text
    assert corpus.check_floors(s, {"max_off_objective": 0}) == [
        "1 rule firing(s) on a run of an objective the rule does not judge > 0: b: loss-not-decreasing"
    ]
    assert corpus.to_json(s)["objectives"]["rl"]["kl-blowup"]["recall"] == 1.0


def test_one_signature_metric_is_enough() -> None:
    """LLaMA-Factory's DPO log carries rewards/accuracies (as `accuracy`) and nothing else of the family: only
    preference trainers log it, so it alone tells the objective; a reward-model run's `accuracy` does not."""
    assert detect(run_of({"loss": [0.69, 0.6, 0.5], "rewards/accuracies": [0.5, 0.6, 0.7]}, None)).id == "preference"
    assert detect(run_of({"loss": [0.69, 0.6], "rewards/chosen": [0.0, 0.1]}, None)).id == "sft"  # min_metrics 2
