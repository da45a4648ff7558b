"""The labelled corpus and `lossdoctor eval-corpus`: label parsing, scoring arithmetic, the command's exit
codes, and the gate itself — the default rules must meet tests/corpus/floors.yaml on tests/corpus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lossdoctor import corpus
from lossdoctor.errors import SourceError

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
SEED001 = ROOT / "tests" / "data" / "console" / "seed001_console.log"
SEED004 = ROOT / "tests" / "data" / "logs" / "seed004_ddp.log"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lossdoctor", *args], capture_output=True, text=True, cwd=ROOT)


# --- labels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        ("verdicts: [overfit]\n", 1, "unknown verdict(s) overfit"),
        ("why: x\nverdicts: []\n", 2, "non-empty list"),
        ("verdicts: [healthy]\nonset_step: 10\n", 2, "only for overfitting"),
        ("verdicts: [healthy, overfitting]\n", 1, "cannot be combined"),
        ("verdicts: [overfitting]\nonset: 10\n", 2, "unknown key 'onset'"),
        ("verdicts: [overfitting]\neval_interval: -5\n", 2, "non-negative integer"),
    ],
)
def test_bad_labels_are_located(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SourceError) as info:
        corpus.parse_label(text, "case/label.yaml", "case")
    assert info.value.line == line and fragment in str(info.value)
    assert str(info.value).startswith(f"case/label.yaml:{line}:")


def test_label_fields() -> None:
    label = corpus.parse_label(
        "source: generated\nverdicts: [overfitting, nonfinite]\nonset_step: 40\n"
        "eval_interval: 10\nwhy: >-\n  two\n  lines\n",
        "x",
        "c",
    )
    assert label.verdicts == {"overfitting", "nonfinite"} and label.onset_step == 40 and label.eval_interval == 10
    assert label.why == "two lines"


# --- scoring -----------------------------------------------------------------------------------------


def _result(
    case: str,
    truth: set[str],
    said: set[str],
    fired: tuple[str, ...] = (),
    onset: int | None = None,
    label_onset: int | None = None,
    interval: int | None = None,
) -> corpus.CaseResult:
    label = corpus.Label(case=case, verdicts=frozenset(truth), onset_step=label_onset, eval_interval=interval)
    return corpus.CaseResult(label=label, predicted=frozenset(said), fired=fired, onset=onset)


def test_score_counts_precision_recall_and_onset() -> None:
    verdict_of = {"overfitting": "overfitting", "loss-diverging": "diverging"}
    results = [
        _result("a", {"overfitting"}, {"overfitting"}, ("overfitting",), onset=40, label_onset=40, interval=10),
        _result("b", {"overfitting"}, {"overfitting"}, ("overfitting",), onset=70, label_onset=40, interval=10),
        _result("c", {"overfitting"}, {"healthy"}, (), label_onset=30, interval=10),
        _result("d", {"healthy"}, {"overfitting"}, ("overfitting",)),
        _result("e", {"healthy"}, {"healthy"}),
        _result("f", {"diverging"}, {"diverging"}, ("loss-diverging",)),
    ]
    s = corpus.score(results, verdict_of)
    ov = s.verdicts["overfitting"]
    assert (ov.tp, ov.fp, ov.fn, ov.tn) == (2, 1, 1, 2)
    assert ov.precision == pytest.approx(2 / 3) and ov.recall == pytest.approx(2 / 3)
    assert s.verdicts["healthy"].recall == pytest.approx(0.5)
    assert s.rules["overfitting"].precision == pytest.approx(2 / 3)
    assert s.rules["loss-diverging"].recall == 1.0
    assert sorted(e for _, e, _ in s.onset_errors) == [0, 30]  # c had no predicted onset
    assert s.onset_within_interval == 0.5 and s.onset_median_error == 15
    assert s.healthy_flagged == ("d",)
    failures = corpus.check_floors(
        s,
        {
            "verdicts": {"overfitting": {"precision": 0.6, "recall": 0.9}},
            "max_healthy_flagged": 0,
            "onset_within_interval": 0.5,
            "rules": {"loss-diverging": {"recall": 1.0}},
        },
    )
    assert len(failures) == 2
    assert any("overfitting recall 0.67 < floor 0.9" in f for f in failures)
    assert any("healthy run(s)" in f and "d" in f for f in failures)
    text = corpus.render_text(s)
    assert "XX c: overfitting -> healthy" in text and "ok a" not in text


def test_false_alarm_rate_counts_healthy_runs_with_a_warning_or_error() -> None:
    label = corpus.Label
    results = [
        corpus.CaseResult(label("h1", frozenset({"healthy"})), frozenset({"healthy"}), ("many-epochs",), worst="info"),
        corpus.CaseResult(
            label("h2", frozenset({"healthy"})), frozenset({"healthy"}), ("lr-too-high",), worst="warning"
        ),
        corpus.CaseResult(label("h3", frozenset({"healthy"})), frozenset({"healthy"}), (), worst=None),
        corpus.CaseResult(label("h4", frozenset({"healthy"})), frozenset({"healthy"}), ("x",), worst="error"),
        corpus.CaseResult(
            label("o", frozenset({"overfitting"})), frozenset({"overfitting"}), ("overfitting",), worst="warning"
        ),
    ]
    s = corpus.score(results, {"overfitting": "overfitting"})
    assert s.false_alarms == ("h2", "h4") and s.healthy_runs == 4 and s.false_alarm_rate == 0.5
    assert "false alarms (healthy runs with a warning or an error): 2/4 (50%): h2, h4" in corpus.render_text(s)
    assert corpus.to_json(s)["false_alarms"] == {"runs": ["h2", "h4"], "healthy_runs": 4, "rate": 0.5}
    failures = corpus.check_floors(s, {"max_false_alarm_rate": 0.25})
    assert failures == ["false-alarm rate 0.50 (2/4 healthy runs with a warning or error: h2, h4) > 0.25"]
    assert corpus.check_floors(s, {"max_false_alarm_rate": 0.5}) == []
    with pytest.raises(SourceError) as info:
        corpus.parse_floors("max_false_alarm_rate: 2\n", "floors.yaml")
    assert "'max_false_alarm_rate' must be a number in 0..1" in str(info.value)


def test_a_floor_with_no_case_fails() -> None:
    s = corpus.score([_result("e", {"healthy"}, {"healthy"})], {"grad-norm-explosion": "exploding-gradients"})
    assert corpus.check_floors(s, {"verdicts": {"exploding-gradients": {"recall": 1.0}}}) == [
        "verdict exploding-gradients recall n/a < floor 1"
    ]


# --- the command -------------------------------------------------------------------------------------


def _case(root: Path, name: str, source: Path, target: str, label: str) -> None:
    d = root / name
    d.mkdir(parents=True)
    shutil.copy(source, d / target)
    (d / "label.yaml").write_text(label, encoding="utf-8")


def test_command_scores_real_logs_and_gates_on_floors(tmp_path: Path) -> None:
    _case(tmp_path, "seed001", SEED001, "console.log", "verdicts: [overfitting]\nonset_step: 20\neval_interval: 20\n")
    _case(tmp_path, "seed004", SEED004, "train.log", "verdicts: [healthy]\n")
    _case(tmp_path, "mislabelled", SEED004, "train.log", "verdicts: [overfitting]\n")
    floors = tmp_path / "floors.yaml"
    floors.write_text("verdicts:\n  overfitting: {precision: 1.0, recall: 0.5}\nmax_healthy_flagged: 0\n")
    proc = cli("eval-corpus", str(tmp_path), "--json", str(tmp_path / "out.json"))
    assert proc.returncode == 0, proc.stderr  # recall 0.5 meets 0.5; precision 1.0
    assert "within one eval interval on 1/1 runs" in proc.stdout
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["verdicts"]["overfitting"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 1, "precision": 1.0, "recall": 0.5}
    assert {c["case"]: c["predicted"] for c in data["cases"]} == {
        "mislabelled": ["healthy"],
        "seed001": ["overfitting"],
        "seed004": ["healthy"],
    }
    floors.write_text("verdicts:\n  overfitting: {recall: 0.9}\n")
    proc = cli("eval-corpus", str(tmp_path))
    assert proc.returncode == 1
    assert "lossdoctor: below floor: verdict overfitting recall 0.50 < floor 0.9" in proc.stderr


def test_command_bad_input_exit_2(tmp_path: Path) -> None:
    _case(tmp_path, "a", SEED004, "train.log", "verdicts: [healthy]\nonset_step: 3\n")
    proc = cli("eval-corpus", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"lossdoctor: error: {tmp_path / 'a' / 'label.yaml'}:2:1: 'onset_step' is only for overfitting runs"
    )
    (tmp_path / "a" / "label.yaml").write_text("verdicts: [healthy]\n")
    (tmp_path / "floors.yaml").write_text("verdicts:\n  overfit: {recall: 1}\n")
    proc = cli("eval-corpus", str(tmp_path))
    assert proc.returncode == 2 and "floors.yaml:2:3: unknown verdict 'overfit'" in proc.stderr
    proc = cli("eval-corpus", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "corpus directory not found" in proc.stderr
    (tmp_path / "floors.yaml").write_text("verdicts: {}\nmin_runs: abc\n")
    proc = cli("eval-corpus", str(tmp_path))
    assert proc.returncode == 2 and "floors.yaml:2:1: 'min_runs' must be a whole number >= 0" in proc.stderr
    (tmp_path / "floors.yaml").unlink()
    proc = cli("eval-corpus", str(tmp_path), "--json", str(tmp_path / "no" / "such" / "out.json"))
    assert proc.returncode == 2 and "--json: the directory to write into does not exist" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "no").exists()
    (tmp_path / "a" / "label.yaml").write_bytes(b"\xff\xfe\x00verdicts")
    proc = cli("eval-corpus", str(tmp_path))
    assert proc.returncode == 2 and "label.yaml: not UTF-8 text" in proc.stderr and "Traceback" not in proc.stderr


def test_default_rules_meet_the_corpus_floors(tmp_path: Path) -> None:
    """The CI gate of issue 6: every default rule's precision/recall floor holds on tests/corpus."""
    labels = list(CORPUS.glob("*/label.yaml"))
    assert len(labels) >= 40, f"the corpus has {len(labels)} labelled runs; at least 40 expected"
    proc = cli("eval-corpus", str(CORPUS), "--json", str(tmp_path / "score.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "score.json").read_text())
    assert data["runs"] == len(labels)
    assert not [c for c in data["cases"] if c["error"]], "every corpus run must be readable"
