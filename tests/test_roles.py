"""Role inference from name patterns (aliases.yaml `roles:`), and `--metric ROLE=NAME` overriding it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lossdoctor.errors import UsageError
from lossdoctor.metrics.roles import parse_overrides
from lossdoctor.sources import ReadOptions, read_runs

STEPS = range(1, 6)


def jsonl(tmp: Path, columns: dict[str, list[float]], name: str = "m.jsonl") -> Path:
    path = tmp / name
    path.write_text(
        "".join(json.dumps({"step": s, **{k: v[i] for k, v in columns.items()}}) + "\n" for i, s in enumerate(STEPS))
    )
    return path


def read(path: Path, *overrides: str):
    return read_runs(str(path), ReadOptions(metric_roles=parse_overrides(overrides)))[0]


def raw_of(run, metric: str) -> set[str]:
    frame = run.frame()
    return set(frame.loc[frame["metric"] == metric, "raw_name"])


def falling(a: float) -> list[float]:
    return [a - 0.1 * i for i in range(len(STEPS))]


def test_component_losses_never_taken_when_a_total_is_there(tmp_path: Path) -> None:
    run = read(
        jsonl(
            tmp_path,
            {"loss_cls": falling(1), "aux_loss": falling(0.5), "loss_mask": falling(0.3), "total_loss": falling(3)},
        )
    )
    assert raw_of(run, "train/loss") == {"total_loss"}
    assert run.has("loss_cls") and run.has("aux_loss") and run.has("loss_mask")
    assert any("train/loss taken from 'total_loss'" in n for n in run.provenance.notes)


def test_component_eval_losses_are_not_the_eval_loss(tmp_path: Path) -> None:
    run = read(jsonl(tmp_path, {"loss": falling(2), "eval_nll_loss": falling(1), "eval/aux_loss": falling(0.1)}))
    assert raw_of(run, "train/loss") == {"loss"} and not run.has("eval/loss")


def test_lone_loss_is_taken_only_when_unique(tmp_path: Path) -> None:
    one = read(jsonl(tmp_path, {"loss_mel_ce": falling(4)}, "one.jsonl"))
    assert raw_of(one, "train/loss") == {"loss_mel_ce"}
    assert any("the only loss-like series" in n for n in one.provenance.notes)
    two = read(jsonl(tmp_path, {"loss_mel_ce": falling(4), "loss_text_ce": falling(1)}, "two.jsonl"))
    assert not two.has("train/loss")


def test_short_and_stack_specific_names(tmp_path: Path) -> None:
    run = read(
        jsonl(
            tmp_path,
            {
                "trl": falling(3),
                "tel": falling(3.2),
                "norm": [1.0] * 5,
                "lm loss": falling(9),
                "loss scale": [65536.0] * 5,
                "lr-AdamW/pg1": [1e-4] * 5,
            },
        )
    )
    # both 'lm loss' and 'trl' name the train loss; patterns are tried in order and 'lm loss' matches the
    # first one; 'loss scale' is never a loss
    assert raw_of(run, "train/loss") == {"lm loss"}
    assert run.has("trl")
    assert raw_of(run, "eval/loss") == {"tel"}
    assert raw_of(run, "train/grad_norm") == {"norm"}
    assert raw_of(run, "train/learning_rate") == {"lr-AdamW/pg1"}
    assert "loss scale" not in raw_of(run, "train/loss")


def test_scale_in_the_name_is_multiplied_back(tmp_path: Path) -> None:
    run = read(jsonl(tmp_path, {"loss": falling(2), "train/lr(1e-3)": [0.2, 0.2, 0.1, 0.1, 0.05]}))
    assert run.series("train/learning_rate").tolist() == pytest.approx([2e-4, 2e-4, 1e-4, 1e-4, 5e-5])
    assert any("divided by 1e-3" in n for n in run.provenance.notes)


def test_per_epoch_loss_is_said(tmp_path: Path) -> None:
    run = read(jsonl(tmp_path, {"epoch_loss": falling(2), "val_epoch_loss": falling(2.2)}))
    assert raw_of(run, "train/loss") == {"epoch_loss"} and raw_of(run, "eval/loss") == {"val_epoch_loss"}
    assert any("one value per epoch" in n for n in run.provenance.notes)


def test_openai_sync_names_are_aliases(tmp_path: Path) -> None:
    run = read(jsonl(tmp_path, {"training_loss": falling(2), "validation_loss": falling(2.1)}))
    assert raw_of(run, "train/loss") == {"training_loss"} and raw_of(run, "eval/loss") == {"validation_loss"}


def test_metric_override_replaces_alias_and_inference(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"loss": falling(9), "lm_loss": falling(3)})
    run = read(path, "train_loss=lm_loss")
    assert raw_of(run, "train/loss") == {"lm_loss"}
    assert run.has("loss") and run.series("loss").iloc[0] == 9  # the former holder keeps its own name
    assert any("(--metric)" in n for n in run.provenance.notes)
    assert raw_of(read(path, "train/loss=lm_loss"), "train/loss") == {"lm_loss"}  # canonical name as ROLE


@pytest.mark.parametrize("bad", ["loss", "nope=loss", "train_loss="])
def test_bad_metric_override_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="expected ROLE=NAME"):
        parse_overrides([bad])


def test_metric_override_on_the_command_line(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"loss": falling(9), "lm_loss": falling(3), "val_loss": falling(3.5)})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lossdoctor", *args], capture_output=True, text=True, timeout=300)

    ok = cli("analyze", str(path), "--metric", "train_loss=lm_loss", "--format", "json", "--out", str(tmp_path / "r"))
    assert ok.returncode in (0, 1), ok.stderr
    report = json.loads((tmp_path / "r" / "diagnosis.json").read_text())
    assert report["facts"]["final_train_loss"] == pytest.approx(falling(3)[-1])
    missing = cli("analyze", str(path), "--metric", "train_loss=nosuch", "--out", str(tmp_path / "r2"))
    assert missing.returncode == 2
    line = missing.stderr.strip()
    assert "\n" not in line and "no series named 'nosuch'" in line and str(path) in line
    assert not (tmp_path / "r2").exists()
    explained = cli("sources", "--explain", str(path), "--metric", "train_loss=lm_loss")
    assert explained.returncode == 0 and "<- 'lm_loss'" in explained.stdout
