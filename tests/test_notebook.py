"""Notebooks (.ipynb): the HF Trainer progress table, stream outputs, log_history, several runs, bad input,
and the diagnosis shown inline.

Fixtures in tests/data/notebooks/ were executed for real in a Jupyter kernel (``make_notebooks.py``: nbclient +
ipykernel, trl SFTTrainer on a tiny random Qwen2). Expected steps and totals come from the settings written in
that script (max_steps 30, logging every 5, eval every 10 ...); expected values of the HTML table come from the
same run's ``trainer.state.log_history`` displayed in another cell (parsed here with ``ast.literal_eval``, which
is fine in a test over our own fixture), never from lossdoctor's output.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path

import pytest
from test_cli import assert_one_line_error, cli

from lossdoctor import diagnose
from lossdoctor.errors import SourceError
from lossdoctor.sources import read_runs, read_text_runs
from lossdoctor.sources.base import ReadOptions

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "tests" / "data" / "notebooks"
TINY = NB / "tiny_sft.ipynb"
RUNS = NB / "runs.ipynb"
HOSTILE = "<img src=x onerror=alert(1)>"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _save(nb: dict, path: Path) -> Path:
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _log_history(nb: dict) -> list[dict]:
    """The fixture's ``trainer.state.log_history`` cell (text/plain repr of a list of dicts)."""
    for cell in nb["cells"]:
        if "".join(cell.get("source", "")).strip() == "trainer.state.log_history":
            text = "".join(cell["outputs"][0]["data"]["text/plain"])
            return ast.literal_eval(text)
    raise AssertionError("fixture has no log_history cell")


def _one(location: str, **opts) -> object:
    runs = read_runs(location, ReadOptions(**opts))
    assert len(runs) == 1
    return runs[0]


# --------------------------------------------------------------------------- the real progress table


def test_progress_table_alone_gives_train_eval_series_steps_and_totals(tmp_path: Path) -> None:
    nb = _load(TINY)
    history = _log_history(nb)
    nb["cells"] = nb["cells"][:3]  # title, setup, trainer.train(): only the progress table is left
    run = _one(str(_save(nb, tmp_path / "table_only.ipynb")))
    assert run.provenance.kind == "notebook"
    assert run.name == "table_only.ipynb#cell-3"
    assert run.provenance.location.endswith("table_only.ipynb#cell-3")
    # eval every 10 of 30 steps: one table row per evaluation
    train, ev = run.series("train/loss"), run.series("eval/loss")
    assert list(ev.index) == [10, 20, 30]
    assert list(train.index) == [10, 20, 30]
    want_train = {r["step"]: r["loss"] for r in history if "loss" in r}
    want_eval = {r["step"]: r["eval_loss"] for r in history if "eval_loss" in r and r["step"] in (10, 20, 30)}
    for step, value in train.items():
        assert value == pytest.approx(want_train[step], abs=5e-7)  # the table prints six decimals
    for step, value in ev.items():
        assert value == pytest.approx(want_eval[step], abs=5e-7)
    # trl's eval metric columns are eval metrics (not train ones)
    assert {"eval/mean_token_accuracy", "eval/entropy", "eval/num_tokens"} <= set(run.metric_names())
    assert "train/mean_token_accuracy" not in run.metric_names()
    # the header [30/30 ..., Epoch 1/2]: reached == total == max_steps
    assert run.summary["global_step"] == 30 and run.summary["max_steps"] == 30
    assert run.config["trainer.max_steps"] == 30
    assert run.state == "finished"
    assert run.config["notebook.cell"] == 3 and run.config["notebook.execution_count"] == 2


def test_whole_fixture_is_one_run_with_every_logged_point() -> None:
    run = _one(str(TINY))
    assert run.name == "tiny_sft.ipynb#cell-3"
    # log_history (cell 5) and the printed JSON lines (cell 7) are the same run: merged, exact values kept
    assert list(run.series("train/loss").index) == [5, 10, 15, 20, 25, 30]  # logging_steps=5
    assert list(run.series("eval/loss").index) == [10, 20, 30]
    history = _log_history(_load(TINY))
    want = [r["loss"] for r in history if "loss" in r]
    assert run.series("train/loss").tolist() == want
    notes = " | ".join(run.provenance.notes)
    assert "merged: cell 5 (In [4])" in notes and "merged: cell 7 (In [6])" in notes
    assert "merged: cell 4 (In [3]), trainer.evaluate() table" in notes
    assert "1 image/PDF output(s) skipped without decoding" in notes
    assert run.state == "finished"


# --------------------------------------------------------------------------- several runs


def test_last_run_by_default_with_a_note_listing_the_others() -> None:
    run = _one(str(RUNS))
    assert run.name == "runs.ipynb#cell-6"
    assert list(run.series("eval/loss").index) == [10, 20, 30, 40]  # max_steps=40, eval every 10
    listing = next(n for n in run.provenance.notes if "training runs" in n)
    for rid in ("#cell-3", "#cell-4", "#cell-5", "#cell-6"):
        assert rid in listing
    assert f"'{RUNS}#cell-3'" in listing and "--all" in listing


def test_selector_picks_the_epoch_table_run() -> None:
    run = _one(f"{RUNS}#cell-3")
    # eval_strategy=epoch, 3 epochs of 16 steps (64 rows / batch 4): rows at epochs 1..3 → steps 16, 32, 48
    assert list(run.series("eval/loss").index) == [16, 32, 48]
    assert run.series("train/epoch").loc[[16, 32, 48]].tolist() == [1.0, 2.0, 3.0]
    assert run.provenance.step_source == "epoch*cadence"
    assert run.summary["max_steps"] == 48 and run.config["trainer.num_train_epochs"] == 3


def test_run_without_evaluation_has_every_train_log() -> None:
    run = _one(f"{RUNS}#cell-4")
    assert list(run.series("train/loss").index) == [5, 10, 15, 20, 25, 30]
    assert not run.has("eval/loss")


def test_crashed_run_is_said_with_its_cell_and_steps() -> None:
    run = _one(f"{RUNS}#cell-5")
    assert run.state == "crashed"
    assert run.summary["max_steps"] == 30 and run.summary["global_step"] < 30
    notes = " | ".join(run.provenance.notes)
    assert "cell 5 (In [4]) stopped with RuntimeError: simulated crash at step 12" in notes
    assert "of 30: the run stopped short of its total" in notes


def test_all_reads_each_run_and_unknown_selector_lists_them() -> None:
    runs = read_runs(str(RUNS), ReadOptions(all_runs=True))
    assert [r.name for r in runs] == [f"runs.ipynb#cell-{i}" for i in (3, 4, 5, 6)]
    with pytest.raises(SourceError, match=r"no training run in #cell-2; this notebook's runs: #cell-3, #cell-4"):
        read_runs(f"{RUNS}#cell-2")


def test_cli_selector_and_all(tmp_path: Path) -> None:
    proc = cli("analyze", f"{RUNS}#cell-5", "--format", "json", "--out", str(tmp_path / "one"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("runs.ipynb#cell-5: ")
    data = json.loads((tmp_path / "one" / "diagnosis.json").read_text())
    assert data["run"]["state"] == "crashed"
    proc = cli("analyze", str(RUNS), "--all", "--format", "json", "--out", str(tmp_path / "all"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert [ln.split(":")[0] for ln in proc.stdout.splitlines()] == [f"runs.ipynb#cell-{i}" for i in (3, 4, 5, 6)]


# --------------------------------------------------------------------------- other outputs


def _hf_table(columns: list[str], rows: list[list[str]], reached: int, total: int, epoch: str) -> str:
    """A table laid out as transformers' NotebookProgressCallback writes it (utils/notebook.py:
    html_progress_bar + text_to_html_table), for cases the real trainer cannot be made to produce here."""
    head = "".join(f"      <th>{c}</th>\n" for c in columns)
    body = "".join("    <tr>\n" + "".join(f"      <td>{v}</td>\n" for v in row) + "    </tr>\n" for row in rows)
    return (
        f"\n    <div>\n      \n      <progress value='{reached}' max='{total}' style='width:300px; height:20px; "
        f"vertical-align: middle;'></progress>\n      [{reached}/{total} 01:00, Epoch {epoch}]\n    </div>\n"
        f'    <table border="1" class="dataframe">\n  <thead>\n <tr style="text-align: left;">\n{head}'
        f"    </tr>\n  </thead>\n  <tbody>\n{body}  </tbody>\n</table><p>"
    )


def _notebook(*cells: list[dict], nbformat: int = 4) -> dict:
    return {
        "nbformat": nbformat,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "execution_count": i + 1,
                "metadata": {},
                "source": ["trainer.train()"],
                "outputs": outs,
            }
            for i, outs in enumerate(cells)
        ],
    }


def _html_output(html: str) -> dict:
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"text/html": html, "text/plain": ["<IPython.core.display.HTML object>"]},
    }


def _overfit_rows(steps: range) -> list[list[str]]:
    # train 3·exp(-s/30)+0.4 falls; eval 1 + 5e-5·(s-20)² has its minimum at step 20 (overfitting after it)
    return [
        [str(s), f"{3 * math.exp(-s / 30) + 0.4:.6f}", f"{1 + 5e-5 * (s - 20) ** 2:.6f}", f"{0.5 + s / 1000:.6f}"]
        for s in steps
    ]


def test_malformed_cell_reads_up_to_it_with_a_note(tmp_path: Path) -> None:
    rows = _overfit_rows(range(10, 101, 10))
    rows[6][2] = "0.9x7"
    html = _hf_table(["Step", "Training Loss", "Validation Loss", "Accuracy"], rows, 100, 100, "2/2")
    run = _one(str(_save(_notebook([_html_output(html)]), tmp_path / "bad_cell.ipynb")))
    assert list(run.series("eval/loss").index) == [10, 20, 30, 40, 50, 60]
    assert (
        "cell 1 (In [1]): table row 7, column 'Validation Loss': '0.9x7' is not a number; read up to row 6"
        in run.provenance.notes
    )


def test_an_evaluate_summary_after_training_does_not_hide_the_training_curve(tmp_path: Path) -> None:
    """A cell that prints trainer.evaluate()'s dict after the training cell is a run of its own (listed),
    but the one analysed by default is the last with a train loss curve: the overfitting shows."""
    html = _hf_table(
        ["Step", "Training Loss", "Validation Loss", "Accuracy"], _overfit_rows(range(10, 101, 10)), 100, 100, "2/2"
    )
    summary = {
        "output_type": "stream",
        "name": "stdout",  # what trainer.log_metrics("eval", ...) prints
        "text": [
            "***** Running Evaluation *****\n",
            "  Num examples = 840\n",
            "  Batch size = 8\n",
            "***** eval metrics *****\n",
            "  epoch                   =        2.0\n",
            "  eval_accuracy           =       0.61\n",
            "  eval_loss               =       1.32\n",
            "  eval_runtime            = 0:00:12.74\n",
        ],
    }
    path = _save(_notebook([_html_output(html)], [summary]), tmp_path / "with_summary.ipynb")
    assert len(read_runs(str(path), ReadOptions(all_runs=True))) == 2
    run = _one(str(path))
    assert run.name == "with_summary.ipynb#cell-1"
    assert list(run.series("eval/loss").index) == list(range(10, 101, 10))
    listing = next(n for n in run.provenance.notes if "training runs" in n)
    assert "#cell-1, the last with a train loss curve, was analysed" in listing and "#cell-2" in listing
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lossdoctor",
            "analyze",
            str(path),
            "--format",
            "json",
            "--out",
            str(tmp_path / "out"),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "overfitting" in proc.stdout, proc.stderr


def test_the_selection_metric_written_in_the_code_is_the_one_judged(tmp_path: Path) -> None:
    """metric_for_best_model / greater_is_better written as literals in a code cell reach the run's config
    (read as text, never run): eval loss rising while the selected accuracy holds is no overfitting."""
    rows = [[r[0], r[1], r[2], f"{0.80 + int(r[0]) / 10000:.4f}"] for r in _overfit_rows(range(10, 101, 10))]
    html = _hf_table(["Step", "Training Loss", "Validation Loss", "Accuracy"], rows, 100, 100, "2/2")
    nb = _notebook([], [_html_output(html)])
    nb["cells"][0]["source"] = [
        "args = TrainingArguments(output_dir='out', load_best_model_at_end=True,\n",
        '    metric_for_best_model="accuracy", greater_is_better=True)\n',
        "trainer = Trainer(model=model, args=args)",
    ]
    path = _save(nb, tmp_path / "selected.ipynb")
    run = _one(str(path))
    assert run.config["trainer.metric_for_best_model"] == "accuracy"
    assert run.config["trainer.greater_is_better"] is True
    ids = {f.rule_id for f in diagnose(run).findings}
    assert "overfitting" not in ids and "eval-loss-metric-disagree" in ids
    nb["cells"][0]["source"] = ["trainer = Trainer(model=model, args=TrainingArguments(output_dir='out'))"]
    assert "overfitting" in {f.rule_id for f in diagnose(_one(str(_save(nb, tmp_path / "plain.ipynb")))).findings}


def test_no_log_cells_are_missing_not_zero(tmp_path: Path) -> None:
    rows = [["1", "No log", "0.299171", "0.7"], ["2", "0.350000", "0.280000", "0.8"]]
    html = _hf_table(["Epoch", "Training Loss", "Validation Loss", "Accuracy"], rows, 20, 20, "2/2")
    run = _one(str(_save(_notebook([_html_output(html)]), tmp_path / "nolog.ipynb")))
    assert list(run.series("train/loss").index) == [20]  # 10 steps per epoch
    assert list(run.series("eval/loss").index) == [10, 20]
    assert run.series("eval/accuracy").tolist() == [0.7, 0.8]


def test_stream_log_dicts_go_to_the_console_reader(tmp_path: Path) -> None:
    lines = [
        f"{{'loss': {2.0 - i / 10:.4f}, 'grad_norm': 1.5, 'learning_rate': 0.0002, 'epoch': {i / 10:.2f}}}\n"
        for i in range(1, 9)
    ]
    stream = [
        {"output_type": "stream", "name": "stdout", "text": lines[:4]},
        {"output_type": "stream", "name": "stderr", "text": ["some warning\n"]},
        {"output_type": "stream", "name": "stdout", "text": lines[4:]},
    ]
    nb = _notebook([], stream)
    run = _one(str(_save(nb, tmp_path / "stream.ipynb")))
    assert run.name == "stream.ipynb#cell-2"
    assert run.series("train/loss").tolist() == pytest.approx([2.0 - i / 10 for i in range(1, 9)])
    assert any("stream output (hf-console reader)" in n for n in run.provenance.notes)


def test_read_text_runs_detects_like_a_file_and_names_the_location() -> None:
    text = "".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 6))
    (run,) = read_text_runs(text, "somewhere#cell-9")
    assert run.provenance.location == "somewhere#cell-9" and run.name == "somewhere#cell-9"
    assert list(run.series("train/loss").index) == [1, 2, 3, 4, 5]
    assert read_text_runs("nothing to see here\n", "x") == []


def test_application_json_log_history_and_nbformat3(tmp_path: Path) -> None:
    history = [{"loss": 2.0 - s / 100, "learning_rate": 1e-4, "epoch": s / 50, "step": s} for s in range(10, 60, 10)]
    history += [{"eval_loss": 1.9 - s / 200, "epoch": s / 50, "step": s} for s in (20, 40)]
    out = {
        "output_type": "execute_result",
        "execution_count": 1,
        "metadata": {},
        "data": {"application/json": {"log_history": history}, "text/plain": ["<TrainerState>"]},
    }
    run = _one(str(_save(_notebook([out]), tmp_path / "json.ipynb")))
    assert list(run.series("train/loss").index) == [10, 20, 30, 40, 50]
    assert list(run.series("eval/loss").index) == [20, 40]
    # nbformat 3: worksheets, prompt_number, short mime keys, 'pyout'
    rows = _overfit_rows(range(10, 51, 10))
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {},
        "worksheets": [
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "prompt_number": 7,
                        "input": ["trainer.train()"],
                        "language": "python",
                        "outputs": [
                            {"output_type": "display_data", "metadata": {}, "png": "iVBORw0KGgo" + "A" * 1000},
                            {
                                "output_type": "display_data",
                                "metadata": {},
                                "html": _hf_table(
                                    ["Step", "Training Loss", "Validation Loss", "Accuracy"], rows, 50, 50, "1/1"
                                ),
                            },
                        ],
                    }
                ]
            }
        ],
    }
    run = _one(str(_save(v3, tmp_path / "v3.ipynb")))
    assert run.name == "v3.ipynb#cell-1" and run.config["notebook.execution_count"] == 7
    assert list(run.series("eval/loss").index) == [10, 20, 30, 40, 50]


def test_raw_tag_in_a_header_is_dropped_not_rendered(tmp_path: Path) -> None:
    """NotebookProgressCallback writes column names unescaped: a metric named like a tag becomes markup in the
    saved HTML. The reader only ever takes text out of it."""
    rows = _overfit_rows(range(10, 41, 10))
    html = _hf_table(["Step", "Training Loss", "Validation Loss", "<img src=x onerror=alert(1)>"], rows, 40, 40, "1/1")
    run = _one(str(_save(_notebook([_html_output(html)]), tmp_path / "raw.ipynb")))
    assert list(run.series("eval/loss").index) == [10, 20, 30, 40]
    assert not any("img" in m for m in run.metric_names())


# --------------------------------------------------------------------------- bad input


def _truncated(tmp_path: Path) -> Path:
    data = TINY.read_bytes()
    return _write(tmp_path / "cut.ipynb", data[: len(data) // 2])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda d: _write(d / "x.ipynb", b"this is not json\n"), "not JSON"),
        (_truncated, "truncated: the JSON ends before the notebook does"),
        (lambda d: _write(d / "x.ipynb", b'{"a": [1, 2, 3]}\n'), "JSON, but not a Jupyter notebook"),
        (lambda d: _save(_notebook([]), d / "x.ipynb"), "no saved outputs in this notebook"),
        (
            lambda d: _save(
                _notebook([{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]), d / "x.ipynb"
            ),
            "no training log in this notebook's saved outputs",
        ),
    ],
)
def test_bad_notebooks_exit_2_with_one_line_naming_the_file(tmp_path: Path, make, fragment: str) -> None:  # noqa: ANN001
    path = make(tmp_path)
    out = tmp_path / "out"
    proc = cli("analyze", str(path), "--out", str(out))
    assert_one_line_error(proc, str(path), fragment)
    assert not out.exists()


def test_truncated_error_names_the_line(tmp_path: Path) -> None:
    path = _truncated(tmp_path)
    with pytest.raises(SourceError) as err:
        read_runs(str(path))
    assert err.value.line is not None and err.value.line > 1


# --------------------------------------------------------------------------- diagnose() and the inline view


def _overfit_notebook(tmp_path: Path, name: str = "overfit.ipynb", column: str = "Accuracy") -> Path:
    html = _hf_table(
        ["Step", "Training Loss", "Validation Loss", column], _overfit_rows(range(10, 101, 10)), 100, 100, "3/3"
    )
    return _save(_notebook([_html_output(html)]), tmp_path / name)


def test_diagnose_accepts_paths_runs_and_trainer_states(tmp_path: Path) -> None:
    import lossdoctor

    d = lossdoctor.diagnose(_overfit_notebook(tmp_path))
    assert "overfitting" in {f.rule_id for f in d.findings}
    assert lossdoctor.diagnose(d.run).verdict == d.verdict
    history = _log_history(_load(TINY))
    by_list = lossdoctor.diagnose(history)
    assert list(by_list.run.series("train/loss").index) == [5, 10, 15, 20, 25, 30]

    class State:  # the attributes a transformers TrainerState has (duck-typed, as diagnose reads it)
        log_history = history
        global_step = 30
        max_steps = 30

    class Args:
        output_dir = "out/tiny"
        run_name = "tiny-run"

    class FakeTrainer:
        state = State()
        args = Args()

    d2 = lossdoctor.diagnose(FakeTrainer())
    assert d2.run.name == "tiny-run" and d2.run.state == "finished"
    assert d2.run.series("eval/loss").tolist() == by_list.run.series("eval/loss").tolist()
    with pytest.raises(TypeError, match="expected a Trainer"):
        lossdoctor.diagnose(42)


def test_diagnose_notebook_repr_html_without_transformers_or_torch() -> None:
    code = (
        "import sys, lossdoctor; d = lossdoctor.diagnose(sys.argv[1]); h = d._repr_html_(); "
        "m = d._repr_markdown_(); print(len(h) > 1000, 'Verdict:' in h, '**Verdict:**' in m, "
        "'transformers' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, f"{RUNS}#cell-5"], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "True", "True", "False", "False"], out.stderr


def test_inline_html_findings_first_and_escaped(tmp_path: Path) -> None:
    import lossdoctor

    # the column header escaped in the saved HTML (as pandas writes it), so the name survives as text
    d = lossdoctor.diagnose(_overfit_notebook(tmp_path, name=f"{HOSTILE}.ipynb", column=html_escape(HOSTILE)))
    assert f"eval_{HOSTILE.replace(' ', '_')}" in d.run.metric_names()
    html = d._repr_html_()
    assert HOSTILE not in html and "eval_&lt;img_src=x_onerror=alert(1)&gt;" in html
    assert "<script" not in html and "<link" not in html and "<style" not in html and "<img" not in html
    assert 'href="http' not in html and "src=" not in html.replace("src=x", "")
    # findings first: the verdict and the overfitting finding come before the plots and the facts
    assert html.index("Verdict:") < html.index('data-rule="overfitting"') < html.index("<svg") < html.index("ld-facts")
    assert html.count("<svg") in (1, 2)
    md = d._repr_markdown_()
    assert HOSTILE not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert md.index("**Verdict:**") < md.index("overfitting")


def test_public_kaggle_notebook_excerpt() -> None:
    """A real Kaggle notebook's training cell (tests/data/notebooks/public/SOURCE.md): 692 steps, eval every 100;
    the trainer.evaluate() progress bar (no table) and the eval_results dict (no step) add nothing."""
    run = _one(str(NB / "public" / "law-llm-excerpt.ipynb"))
    assert run.name == "law-llm-excerpt.ipynb#cell-1"
    assert list(run.series("eval/loss").index) == [100, 200, 300, 400, 500, 600]
    assert run.series("eval/loss").iloc[-1] == pytest.approx(0.303802)
    assert run.series("train/loss").iloc[0] == pytest.approx(284.8732)
    assert run.summary["max_steps"] == 692 and run.state == "finished"
    assert len(run.provenance.notes) == 1  # nothing else was taken for a run


def test_trl_table_columns_are_train_metrics_and_the_code_names_the_trainer(tmp_path: Path) -> None:
    """A GRPO table as trl/unsloth notebooks show it: logged train metrics under their log keys (lower case,
    spaced slashes), not HF's title-cased eval columns; GRPO's loss 0.0 repeats at every row and each row is
    its own log. The code cell that built the trainer tells the objective when the table has only the loss."""
    rows = [
        [str(s), "0.000000", f"{0.5 + s / 100:.6f}", f"{0.3:.6f}", f"{s / 1e5:.6f}", f"{1.0 + s / 50:.6f}"]
        for s in range(1, 11)
    ]
    html = _hf_table(["Step", "Training Loss", "reward", "reward_std", "kl", "rewards / margins"], rows, 10, 10, "1/1")
    nb = _notebook([_html_output(html)])
    (run,) = read_runs(str(_save(nb, tmp_path / "grpo.ipynb")))
    assert run.series("train/loss").to_dict() == {s: 0.0 for s in range(1, 11)}  # no row dropped as a repeat
    assert run.series("train/reward").iloc[-1] == pytest.approx(0.6)
    assert {"train/kl", "train/reward_std", "train/rewards/margins"} <= set(run.metric_names())
    assert not [m for m in run.metric_names() if m.startswith("eval")]

    only_loss = _hf_table(["Step", "Training Loss"], [[str(s), "0.000000"] for s in range(1, 11)], 10, 10, "1/1")
    nb = _notebook([], [_html_output(only_loss)])
    nb["cells"][0]["source"] = [
        "from trl import GRPOConfig, GRPOTrainer\n",
        "trainer = GRPOTrainer(model=m,\n",
        "    reward_funcs=[r])\n",
    ]
    path = _save(nb, tmp_path / "grpo_loss_only.ipynb")
    (run,) = read_runs(str(path))
    assert run.config["trainer_class"] == "GRPOTrainer"
    proc = cli("analyze", str(path), "--format", "json", "--out", str(tmp_path / "r"))
    doc = json.loads((tmp_path / "r" / "diagnosis.json").read_text())
    assert doc["objective"]["id"] == "rl" and "config trainer_class=GRPOTrainer" in doc["objective"]["evidence"]
    assert proc.returncode == 0, proc.stdout  # loss 0.0 at every step is GRPO's normal
