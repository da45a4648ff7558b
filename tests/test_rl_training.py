"""Real trl GRPOTrainer and DPOTrainer runs on CPU (tests/corpus/make_rl_corpus.py): the logs they write are
read, taken for the right objective, and judged by the preference/RL rules only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from lossdoctor import analyze, load_run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _maker():
    spec = importlib.util.spec_from_file_location("make_rl_corpus", ROOT / "tests" / "corpus" / "make_rl_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_rl_corpus"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name,objective,expected",
    [
        ("gen-grpo-no-signal-1", "rl", {"no-learning-signal", "reward-not-improving"}),
        ("gen-dpo-not-learning-1", "preference", {"preference-not-learning"}),
    ],
)
def test_real_trainer_run_is_judged_by_its_objective(
    tmp_path: Path, name: str, objective: str, expected: set[str]
) -> None:
    maker = _maker()
    case = next(c for c in maker.CASES if c.name == name)
    maker.make(case, root=tmp_path)
    state = tmp_path / name / "trainer_state.json"
    diag = analyze(load_run(str(state)))
    assert diag.objective.id == objective and diag.objective.how == "detected"
    fired = {f.rule_id for f in diag.findings}
    assert expected <= fired
    supervised = {
        "loss-not-decreasing",
        "loss-plateau",
        "loss-spike",
        "loss-diverging",
        "overfitting",
        "grad-norm-vanishing",
        "lr-too-low",
        "no-eval-loss",
    }
    assert not fired & supervised, fired
    label = (tmp_path / name / "label.yaml").read_text()
    assert f'objective: "{objective}"' in label
