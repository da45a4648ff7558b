"""The generic text-log reader: each format with the right train/eval series and step axis, the layout and
role notes, detection next to the specific readers, parity with the specific readers on their own fixtures,
the notebook entry point, and 'could not judge' for text without metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs

DATA = Path(__file__).parent / "data"
TEXT = DATA / "textlogs"
_spec = importlib.util.spec_from_file_location("make_textlogs", TEXT / "make_textlogs.py")
mk = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(mk)


def one_run(path: Path | str, **opts):
    runs = read_runs(str(path), ReadOptions(**opts))
    assert len(runs) == 1
    return runs[0]


def as_dict(series) -> dict[int, float]:
    return {int(k): float(v) for k, v in series.items()}


def notes_of(run) -> str:
    return " | ".join(run.provenance.notes)


# --- written from documented formats: exact values from the formula ----------------------------------------


def test_mlx_lora_output() -> None:
    path = TEXT / "mlx_lora.log"
    assert detect(make_target(str(path)))[0].kind == "text-log"
    run = one_run(path)
    assert run.provenance.step_source == "logged"
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 3) for s in mk.train_steps()}
    evals = [1] + list(mk.eval_steps())
    assert as_dict(run.series("eval/loss")) == {s: round(mk.eval_loss(s), 3) for s in evals}
    lr = run.series("train/learning_rate")
    assert list(lr.index) == list(mk.train_steps())
    assert lr.tolist() == pytest.approx([float(f"{mk.learning_rate(s):.3e}") for s in mk.train_steps()])
    assert run.series("train/num_tokens").iloc[-1] == 8000 * len(mk.train_steps())
    assert run.series("peak_mem").iloc[0] == 5.1  # '5.100 GB': the unit is tolerated
    assert run.series("val_took").iloc[0] == pytest.approx(4.901)  # '4.901s'
    notes = notes_of(run)
    assert "layout inferred by the generic text reader" in notes and "'Iter'" in notes
    assert "train loss <- 'Train loss'" in notes and "eval loss <- 'Val loss'" in notes


def test_nanogpt_lines_with_units() -> None:
    """The nanoGPT reader (specific: it keeps the eval-time 'train loss' apart) claims it; the generic one
    reads the same per-iteration loss when forced."""
    path = TEXT / "nanogpt_bpc.log"
    source, _ = detect(make_target(str(path)))
    assert source.kind == "nanogpt-log"
    steps = range(0, mk.LAST + 1, mk.TRAIN_EVERY)
    run = one_run(path)
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 4) for s in steps}
    assert as_dict(run.series("eval/loss")) == {s: round(mk.eval_loss(s), 4) for s in range(0, mk.LAST + 1, 50)}
    assert run.series("train/step_time").iloc[0] == pytest.approx(0.26)
    generic = one_run(path, source_kind="text-log")
    assert as_dict(generic.series("eval/loss")) == as_dict(run.series("eval/loss"))
    assert set(generic.series("train/step_time")) == {0.26}  # ms → s
    assert set(generic.series("train/mfu")) == {-100.0, 9.0}


def test_slurm_out_with_json_lines() -> None:
    run = one_run(TEXT / "slurm_json.out")
    assert run.provenance.kind == "text-log"
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 4) for s in mk.train_steps()}
    assert as_dict(run.series("eval/loss")) == {s: round(mk.eval_loss(s), 4) for s in mk.eval_steps()}
    assert as_dict(run.series("train/grad_norm")) == {s: 0.5 + s / 400 for s in mk.train_steps()}
    assert "json" in notes_of(run) and "'step' key" in notes_of(run)


def test_plain_step_loss_lr_lines() -> None:
    run = one_run(TEXT / "plain_steps.log")
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 4) for s in mk.train_steps()}
    assert as_dict(run.series("train/learning_rate")) == {
        s: float(f"{mk.learning_rate(s):.2e}") for s in mk.train_steps()
    }
    assert as_dict(run.series("eval/loss")) == {s: round(mk.eval_loss(s), 4) for s in mk.eval_steps()}


def test_coqui_trainer_blocks() -> None:
    """Step on a header line, its metrics on the indented lines below; the EVAL PERFORMANCE block (ANSI
    coloured values) read as eval; component losses never taken as the train loss."""
    path = TEXT / "coqui_trainer.log"
    assert detect(make_target(str(path)))[0].kind == "text-log"
    run = one_run(path)
    assert as_dict(run.series("train/loss")) == pytest.approx({s: mk.train_loss(s) for s in mk.coqui_train_steps()})
    assert as_dict(run.series("eval/loss")) == pytest.approx(dict(mk.coqui_eval_steps()))
    assert as_dict(run.series("train/learning_rate")) == pytest.approx(
        {s: mk.learning_rate(s) for s in mk.coqui_train_steps()}
    )
    frame = run.frame()
    raw = set(frame.loc[frame["metric"] == "train/loss", "raw_name"])
    assert raw == {"loss"}  # not loss_mel_ce / loss_text_ce
    assert run.has("loss_mel_ce") and run.has("loss_text_ce")
    assert "block layout" in notes_of(run)


# --- real public logs ---------------------------------------------------------------------------------------


def _lines(path: Path, pattern: str) -> list[re.Match[str]]:
    rx = re.compile(pattern)
    return [m for m in map(rx.search, path.read_text(encoding="utf-8").splitlines()) if m]


def test_llmc_main_log() -> None:
    path = TEXT / "llmc_main.log"
    run = one_run(path)
    trl = {int(m.group(1)): float(m.group(2)) for m in _lines(path, r"^s:(\d+) trl:(\S+)")}
    tel = {int(m.group(1)): float(m.group(2)) for m in _lines(path, r"^s:(\d+) tel:(\S+)")}
    assert as_dict(run.series("train/loss")) == trl and len(trl) == 501
    assert as_dict(run.series("eval/loss")) == tel and sorted(tel) == [0, 250, 500]
    assert run.series("train/grad_norm").size == 501 and run.series("train/learning_rate").size == 501
    assert run.provenance.step_source == "logged" and "'s'" in notes_of(run)


def test_megatron_slurm_output() -> None:
    path = TEXT / "megatron_bigscience_n4.out"
    run = one_run(path)
    lm = {
        int(m.group(1)): float(m.group(2)) for m in _lines(path, r"^ iteration\s+(\d+)/\s*\d+ \|.*\| lm loss: (\S+) \|")
    }
    val = {
        int(m.group(1)): float(m.group(2))
        for m in _lines(path, r"validation loss at iteration (\d+) \| lm loss value: (\S+) \|")
    }
    iters = [int(m.group(1)) for m in _lines(path, r"^ iteration\s+(\d+)/")]
    assert as_dict(run.series("train/loss")) == lm and len(lm) == len(iters) - 1  # iteration 10 was skipped
    assert as_dict(run.series("eval/loss")) == val and sorted(val) == [100, 200]
    assert list(run.series("train/learning_rate").index) == iters
    gn = {int(m.group(1)): float(m.group(2)) for m in _lines(path, r"^ iteration\s+(\d+)/.*\| grad norm: (\S+) \|")}
    assert as_dict(run.series("train/grad_norm")) == gn and gn
    assert "eval/<name>" in notes_of(run)  # the validation lines were read as evaluation


# --- parity with the specific readers on their own fixtures -------------------------------------------------


def _same(a, b, metric: str) -> None:
    sa, sb = a.series(metric), b.series(metric)
    assert list(sa.index) == list(sb.index), metric
    assert sa.tolist() == pytest.approx(sb.tolist()), metric


def test_generic_matches_torchtune_reader_on_its_disk_log() -> None:
    path = DATA / "logs" / "torchtune_disk.log"
    specific, generic = one_run(path), one_run(path, source_kind="text-log")
    assert specific.provenance.kind == "torchtune-log"
    for metric in ("train/loss", "eval/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second"):
        _same(specific, generic, metric)


def test_generic_matches_hf_console_values_in_order() -> None:
    """On an HF console log the dicts carry no step: the generic reader numbers them (the hf-console reader,
    which wins detection, recovers the real steps from tqdm); the values and their order are the same."""
    path = DATA / "console" / "seed001_console.log"
    specific = one_run(path)
    assert specific.provenance.kind == "hf-console"
    generic = one_run(path, source_kind="text-log")
    assert generic.provenance.step_source == "ordinal"
    for metric in ("train/loss", "eval/loss", "train/grad_norm", "train/learning_rate"):
        assert generic.series(metric).tolist() == pytest.approx(specific.series(metric).tolist()), metric
    # the end-of-run summary is not a point (no fake last-step loss) but the run's summary
    assert generic.series("train/loss").size == specific.series("train/loss").size
    assert "train_runtime" in generic.summary


def test_generic_matches_nanogpt_reader_on_iter_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text(
        "".join(f"iter {s}: loss {mk.train_loss(s):.4f}, time 12.00ms, mfu 30.00%\n" for s in range(0, 50, 5))
    )
    specific, generic = one_run(path), one_run(path, source_kind="text-log")
    assert specific.provenance.kind == "nanogpt-log"
    for metric in ("train/loss", "train/step_time", "train/mfu"):
        _same(specific, generic, metric)


# --- detection, entry point, unreadable ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, kind",
    [
        (DATA / "logs" / "torchtune_disk.log", "torchtune-log"),
        (DATA / "logs" / "seed001_wandb_block.log", "wandb-console"),
        (DATA / "console" / "seed001_console.log", "hf-console"),
        (DATA / "logs" / "metrics.jsonl", "jsonl"),
        (DATA / "logs" / "lightning_metrics.csv", "csv"),
        (TEXT / "nanogpt_bpc.log", "nanogpt-log"),
    ],
)
def test_specific_readers_win_over_the_generic_one(path: Path, kind: str) -> None:
    source, confidence = detect(make_target(str(path)))
    assert source.kind == kind
    from lossdoctor.sources.text_log import SOURCE

    assert SOURCE.sniff(make_target(str(path))) < confidence


def test_read_log_text_entry_point_labels_its_location() -> None:
    from lossdoctor.sources.text_log import read_log_text

    run = read_log_text(mk.mlx_lora(), "demo.ipynb:cell 7", line_offset=100)
    assert run.provenance.location == "demo.ipynb:cell 7" and run.provenance.kind == "text-log"
    assert run.series("train/loss").size == len(mk.train_steps())
    with pytest.raises(SourceError) as err:
        read_log_text("hello\nworld\n", "demo.ipynb:cell 8")
    assert str(err.value).startswith("demo.ipynb:cell 8: no training metrics found; looked for")


def test_tqdm_redraws_ansi_crlf_and_rank_prefixes(tmp_path: Path) -> None:
    bar = "".join(f"\r{p:3d}%|{'#' * (p // 10)}| {p}/100 [00:01<00:05, 4.2it/s]" for p in (10, 20))
    lines = [f"[rank1]: step {s} loss {mk.train_loss(s) + 1:.4f}" for s in (10, 20)]
    lines += [f"{bar}\r\x1b[32m[rank0]: step {s} loss {mk.train_loss(s):.4f}\x1b[0m" for s in (10, 20)]
    path = tmp_path / "ddp.log"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    run = one_run(path)
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 4) for s in (10, 20)}
    assert "ranks other than the lowest-numbered dropped" in notes_of(run)


def test_step_less_records_are_numbered_and_epoch_only_logs_use_the_epoch(tmp_path: Path) -> None:
    path = tmp_path / "epochs.log"
    path.write_text(
        "".join(f"Epoch {e}/5 - train_loss: {3 - e / 10} - val_loss: {3.1 - e / 20}\n" for e in range(1, 6))
    )
    run = one_run(path)
    assert run.provenance.step_source == "epoch"
    assert as_dict(run.series("train/loss")) == {e: 3 - e / 10 for e in range(1, 6)}
    assert as_dict(run.series("eval/loss")) == {e: 3.1 - e / 20 for e in range(1, 6)}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lossdoctor", *args], capture_output=True, text=True, timeout=300)


def test_text_without_metrics_could_not_judge(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nWe trained for a while and it looked fine.\n")
    proc = _cli("analyze", str(path), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "no training metrics recognised" in err[0]
    assert not (tmp_path / "r").exists()
    forced = _cli("analyze", str(path), "--source-kind", "text-log", "--out", str(tmp_path / "r"))
    assert forced.returncode == 2
    line = forced.stderr.strip()
    assert "\n" not in line and str(path) in line and "looked for lines with a step" in line
    assert not (tmp_path / "r").exists()


def test_markdown_code_block_log(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    body = "".join(f"Iter {s}: Train loss {mk.train_loss(s):.3f}, Learning Rate 1.000e-05\n" for s in mk.train_steps())
    path.write_text(f"# My fine-tune\n\nResults below.\n\n```\n{body}```\n")
    run = one_run(path)
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 3) for s in mk.train_steps()}


def test_tables_in_markdown_and_aligned_columns(tmp_path: Path) -> None:
    """A results table in a README (mlx-examples' LoRA README reports its run this way) and a console table
    with space-aligned columns: a header with a step-like column, then rows of numbers ('N/A' = not logged)."""
    md = tmp_path / "README.md"
    rows = "".join(
        f"| {s} | {'N/A' if s == 1 else f'{mk.train_loss(s):.3f}'} | {mk.eval_loss(s):.3f} |\n"
        for s in (1, 50, 100, 150, 200)
    )
    md.write_text(
        "## Results\n\n| Iteration | Train Loss | Validation Loss |\n| --- | --- | --- |\n"
        + rows
        + "\nThe model trains at around 475 tokens per second.\n"
    )
    run = one_run(md)
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 3) for s in (50, 100, 150, 200)}
    assert as_dict(run.series("eval/loss")) == {s: round(mk.eval_loss(s), 3) for s in (1, 50, 100, 150, 200)}
    console = tmp_path / "train.txt"
    console.write_text(
        "Step    Loss      Grad Norm    Learning Rate\n"
        + "-" * 48
        + "\n"
        + "".join(f"{s:<8}{mk.train_loss(s):<10.4f}{0.5:<13}{mk.learning_rate(s):.7f}\n" for s in mk.train_steps())
    )
    run = one_run(console)
    assert as_dict(run.series("train/loss")) == {s: round(mk.train_loss(s), 4) for s in mk.train_steps()}
    assert run.series("train/grad_norm").size == len(mk.train_steps())
    assert "table" in notes_of(run)


def test_epoch_and_batch_counter_layouts(tmp_path: Path) -> None:
    """Logs whose only step is an epoch plus a batch counter, as printed by Keras' progress bar (verbose=1,
    the final redraw of each epoch), pytorch/examples word_language_model (`| epoch 1 | 200/2983 batches |
    ... | loss 7.64`, then `| end of epoch 1 | ... | valid loss 5.53`) and fairseq (`num_updates` is its step)."""
    keras = tmp_path / "keras.log"
    keras.write_text(
        "".join(
            f"Epoch {e}/3\n469/469 [==============================] - 5s 10ms/step - loss: "
            f"{mk.train_loss(e * 10):.4f} - val_loss: {mk.eval_loss(e * 50):.4f}\n"
            for e in (1, 2, 3)
        )
    )
    run = one_run(keras)
    assert as_dict(run.series("train/loss")) == {469 * e: round(mk.train_loss(e * 10), 4) for e in (1, 2, 3)}
    assert as_dict(run.series("eval/loss")) == {469 * e: round(mk.eval_loss(e * 50), 4) for e in (1, 2, 3)}
    wlm = tmp_path / "wlm.log"
    lines = []
    for e in (1, 2):
        lines += [
            f"| epoch {e:3d} | {b:5d}/ 2983 batches | lr 20.00 | ms/batch 11.61 | loss {mk.train_loss(b // 10 + e):5.2f} "
            f"| ppl 2079.22"
            for b in (200, 400)
        ]
        lines += [
            "-" * 89,
            f"| end of epoch {e:3d} | time: 35.58s | valid loss {mk.eval_loss(e * 50):5.2f} | valid ppl 252.86",
            "-" * 89,
        ]
    wlm.write_text("\n".join(lines) + "\n")
    run = one_run(wlm)
    assert as_dict(run.series("train/loss")) == {
        (e - 1) * 2983 + b: round(mk.train_loss(b // 10 + e), 2) for e in (1, 2) for b in (200, 400)
    }
    assert as_dict(run.series("eval/loss")) == {e * 2983: round(mk.eval_loss(e * 50), 2) for e in (1, 2)}
    fairseq = tmp_path / "fairseq.log"
    fairseq.write_text(
        "".join(
            f"2021-01-01 10:00:00 | INFO | train_inner | epoch 001:    {u} / 1000 loss={mk.train_loss(u // 10):.3f}, "
            f"ppl=724.1, wps=10000, num_updates={u}, lr={mk.learning_rate(u // 10):.3g}, gnorm=2.3, wall=60\n"
            for u in (100, 200)
        )
        + "2021-01-01 10:02:00 | INFO | valid | epoch 001 | valid on 'valid' subset | "
        f"loss {mk.eval_loss(20):.3f} | ppl 294.1 | num_updates 200\n"
    )
    run = one_run(fairseq)
    assert as_dict(run.series("train/loss")) == {u: round(mk.train_loss(u // 10), 3) for u in (100, 200)}
    assert as_dict(run.series("eval/loss")) == {200: round(mk.eval_loss(20), 3)}


def test_source_lines_and_finished_state(tmp_path: Path) -> None:
    """Each point keeps the line it was read from (reports point at it); a log whose last record reaches its
    total ('step 50 / 50') or that says 'Training finished.' after it is finished; cut short, it is not."""
    lines = ["starting run", "config: lr=1e-4"]
    at: dict[int, int] = {}
    for step in range(5, 51, 5):
        lines.append(f"step {step} / 50 | loss: {mk.train_loss(step):.4f} | lr: 0.0001")
        at[step] = len(lines)
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    run = one_run(path)
    frame = run.frame()
    loss = frame[frame["metric"] == "train/loss"]
    assert dict(zip(loss["step"], loss["line"])) == at
    assert run.state == "finished"
    cut = tmp_path / "cut.log"
    cut.write_text("\n".join(lines[:-2]) + "\n")
    assert one_run(cut).state == "unknown"
    said = tmp_path / "said.log"
    said.write_text("\n".join(lines[:-2] + ["Training finished."]) + "\n")
    assert one_run(said).state == "finished"
    seed004 = one_run(DATA / "logs" / "seed004_ddp.log")
    assert seed004.state == "finished"


def test_sources_explain_shows_roles(tmp_path: Path) -> None:
    from lossdoctor.commands.sources import COMMAND

    result = CliRunner().invoke(COMMAND, ["--explain", str(TEXT / "llmc_main.log"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    roles = {r["metric"]: r["from"] for r in data["runs"][0]["roles"]}
    assert roles["train/loss"] == ["trl"] and roles["eval/loss"] == ["tel"] and roles["train/grad_norm"] == ["norm"]
    assert data["claimed_by"][0]["kind"] == "text-log"
    text = CliRunner().invoke(COMMAND, ["--explain", str(TEXT / "llmc_main.log")])
    assert "train loss" in text.output and "<- 'trl'" in text.output
