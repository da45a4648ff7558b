"""Text-log readers: seed 004's DDP log, seed 001's W&B console block, torchtune, nanoGPT (a real tiny
training loop), encodings, rank-glued lines, random bytes, and detection of each fixture."""

from __future__ import annotations

import importlib.util
import io
import math
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lossdoctor.errors import SourceError
from lossdoctor.sources import ReadOptions, detect, make_target, read_runs, registry

LOGS = Path(__file__).parent / "data" / "logs"
_spec = importlib.util.spec_from_file_location("make_logs", LOGS / "make_logs.py")
make_logs = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(make_logs)


def one_run(path: Path | str, **opts):
    runs = read_runs(str(path), ReadOptions(**opts))
    assert len(runs) == 1
    return runs[0]


# --- seed 004: a custom DDP trainer under torchrun --------------------------------------------------

# The five printed records of seed 004 (as printed in the blog post's console block).
SEED004 = {
    10: ("0.000033", "6537.89", "10.9411", "10.9447", "56653.4597"),
    20: ("0.000063", "6560.64", "10.8948", "10.8905", "53663.6150"),
    30: ("0.000093", "6546.46", "10.8261", "10.7966", "48855.7236"),
    40: ("0.000123", "6591.09", "10.7083", "10.6405", "41792.1065"),
    50: ("0.000153", "6565.52", "10.5141", "10.3555", "31430.3487"),
}
SEED004_METRICS = ("train/learning_rate", "train/tokens_per_second", "train/loss", "eval/loss", "eval/perplexity")


def test_seed004_points_exactly_as_printed() -> None:
    path = LOGS / "seed004_ddp.log"
    assert detect(make_target(str(path)))[0].kind == "text-log"
    run = one_run(path)
    for metric, column in zip(SEED004_METRICS, range(5)):
        series = run.series(metric)
        assert list(series.index) == [10, 20, 30, 40, 50], metric
        assert series.tolist() == [float(SEED004[s][column]) for s in (10, 20, 30, 40, 50)], metric
    raw = dict(zip(run.metrics["metric"], run.metrics["raw_name"]))
    assert raw["eval/perplexity"] == "val ppl" and raw["train/tokens_per_second"] == "toks/s (per rank)"
    # 'total files: 1total files: 1', the Namespace(...) dump, amp: True: no points. Since issue 11 values with a
    # unit are read (dt: 1.98s, eta: 0.00h, in seconds); 'dt' aliases to train/step_time like 'step time', which
    # comes first on the line and keeps the name
    assert set(run.metric_names()) == set(SEED004_METRICS) | {"train/epoch", "train/step_time", "dt", "eta"}
    assert run.series("train/step_time").tolist() == [0.16] * 5
    assert run.series("eta").tolist() == [0.0] * 5
    assert run.provenance.step_source == "logged" and run.provenance.confidence == 1.0


# --- seed 001: only the W&B end-of-run block ----------------------------------------------------------


def test_seed001_wandb_block_gives_overfitting_shape() -> None:
    path = LOGS / "seed001_wandb_block.log"
    source, confidence = detect(make_target(str(path)))
    assert (source.kind, confidence) == ("wandb-console", 0.8)
    run = one_run(path)
    assert run.provenance.step_source == "ordinal" and run.provenance.confidence == 0.5
    assert "shape recovered from W&B console sparklines (sampled, lossy)" in run.provenance.notes
    ev, tr = run.series("eval/loss"), run.series("train/loss")
    # 5 eval points and 10 train points spread over the summary's train/global_step 100
    assert list(ev.index) == [20, 40, 60, 80, 100] and list(tr.index) == list(range(10, 101, 10))
    assert ev.iloc[0] == ev.min() and ev.iloc[-1] > ev.iloc[0]  # ▁▇███: rises from its first point
    assert (ev.diff().dropna() >= 0).all()
    assert tr.iloc[0] == tr.max() and (tr.diff().dropna() <= 0).all()  # █▅▂▁▁▁▁▁▁▁ (▁ lost as U+FFFD)
    assert ev.iloc[-1] == pytest.approx(3.63726) and tr.iloc[-1] == pytest.approx(0.0554)  # summary anchors
    assert run.summary["train/global_step"] == 100 and run.summary["eval/loss"] == 3.63726
    assert run.name == "Qwen2-0.5B-Instruct-lora-1755481247"
    # lr ends at 0.0: nothing to anchor its shape to, so it is left out rather than given made-up units
    assert not run.has("train/learning_rate")
    assert any("left out" in n and "train/learning_rate" in n for n in run.provenance.notes)


def test_seed001_wandb_block_is_diagnosed_as_overfitting() -> None:
    try:
        from lossdoctor.diagnosis import diagnose
        from lossdoctor.rules.packs import load_rules
    except ImportError:  # pragma: no cover - the rule engine lands separately
        pytest.skip("rule engine not in the tree yet")
    diagnosis = diagnose(one_run(LOGS / "seed001_wandb_block.log"), load_rules())
    assert "overfitting" in {f.rule_id for f in diagnosis.findings}


def test_wandb_block_levels_follow_wandb_sparkify(tmp_path: Path) -> None:
    """Round trip through wandb's own sparkline code: the recovered levels are the drawn ones."""
    from wandb.sdk.lib.sparkline import sparkify

    values = [3.0, 2.5, 2.0, 1.8, float("nan"), 1.7, 1.9, 2.4]
    line = sparkify(values)
    path = tmp_path / "out.log"
    path.write_text(
        f"wandb: Run history:\nwandb:   val_loss {line}\nwandb:\nwandb: Run summary:\nwandb:   val_loss 2.4\nwandb:\n",
        encoding="utf-8",
    )
    run = one_run(path)
    series = run.series("eval/loss")
    assert list(series.index) == list(range(1, 9))  # no global step: 1..n
    assert math.isnan(series.iloc[4])
    finite = [(v, s) for v, s in zip(values, series.tolist()) if not math.isnan(v)]
    order_true = sorted(range(len(finite)), key=lambda i: finite[i][0])
    order_read = sorted(range(len(finite)), key=lambda i: (finite[i][1], order_true.index(i)))
    assert order_true == order_read
    assert series.iloc[-1] == pytest.approx(2.4)


def test_hf_dicts_beat_the_wandb_block(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_text(
        "{'loss': 2.75, 'grad_norm': 1.7, 'learning_rate': 0.0002, 'epoch': 4.21}\n"
        "wandb: Run history:\nwandb:   train/loss █▁\nwandb:\n",
        encoding="utf-8",
    )
    assert registry()["wandb-console"].sniff(make_target(str(path))) == 0.6


# --- DDP ranks, glued lines, encodings ---------------------------------------------------------------


def test_rank_glued_lines_give_no_wrong_points() -> None:
    run = one_run(LOGS / "ddp_glued.log")
    steps = [s for s in range(10, 101, 10) if s not in make_logs.GLUED_STEPS]
    assert run.series("train/loss").to_dict() == {s: make_logs.train_loss(s) for s in steps}  # rank 0 only
    assert run.series("train/learning_rate").to_dict() == {s: make_logs.learning_rate(s) for s in steps}
    notes = " | ".join(run.provenance.notes)
    assert "2 line(s) with two records glued together dropped" in notes
    assert "ranks other than the lowest-numbered dropped" in notes


@pytest.mark.parametrize("name", ["utf16_powershell.log", "cp949_console.log", "undecodable.log"])
def test_encodings(name: str) -> None:
    path = LOGS / name
    assert detect(make_target(str(path)))[0].kind == "text-log"
    run = one_run(path)
    assert run.series("train/loss").to_dict() == {s: make_logs.train_loss(s) for s in range(10, 101, 10)}
    lossy = [n for n in run.provenance.notes if "undecodable bytes replaced" in n]
    if name == "undecodable.log":
        assert lossy == [f"{make_logs.UNDECODABLE_BYTES} undecodable bytes replaced (decoded as utf-8)"]
    else:
        assert lossy == []


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.log"
    path.write_bytes(b"\xef\xbb\xbf" + make_logs.plain_log().replace("\n", "\r\n").encode())
    run = one_run(path)
    assert run.series("train/loss").to_dict() == {s: make_logs.train_loss(s) for s in range(10, 101, 10)}


def test_random_bytes_are_a_source_error() -> None:
    with pytest.raises(SourceError, match="binary file"):
        read_runs(str(LOGS / "random.bin"))


def test_every_text_reader_survives_random_bytes() -> None:
    target = make_target(str(LOGS / "random.bin"))
    for kind, source in registry().items():
        assert source.sniff(target) < 0.2, kind
        if kind == "user-format":
            continue
        try:
            source.read(target, ReadOptions())
        except SourceError:
            pass


@pytest.mark.parametrize(
    "style",
    [
        "step={s} loss={v}",
        "iter {s} | loss: {v}",
        "[{s}/100] loss: {v}",
        "INFO trainer: global_step {s}, train loss: {v}",
    ],
)
def test_generic_step_styles(tmp_path: Path, style: str) -> None:
    path = tmp_path / "log.txt"
    path.write_text("starting\n" + "".join(style.format(s=s, v=make_logs.train_loss(s)) + "\n" for s in (1, 2, 3)))
    run = one_run(path)
    assert run.series("train/loss").to_dict() == {s: make_logs.train_loss(s) for s in (1, 2, 3)}


# --- torchtune ---------------------------------------------------------------------------------------


def test_torchtune_disk_logger() -> None:
    path = LOGS / "torchtune_disk.log"
    source, confidence = detect(make_target(str(path)))
    assert (source.kind, confidence) == ("torchtune-log", 0.85)
    run = one_run(path)
    steps = range(1, 41)
    assert run.series("train/loss").to_dict() == {s: make_logs.train_loss(s) for s in steps}
    assert run.series("train/learning_rate").to_dict() == {s: make_logs.learning_rate(s) for s in steps}
    assert run.series("train/tokens_per_second").to_dict() == {s: 1000.0 + s for s in steps}
    assert run.series("train/grad_norm").to_dict() == {s: 0.5 + s / 64 for s in steps}
    assert run.series("eval/loss").to_dict() == {s: make_logs.eval_loss(s) for s in (10, 20, 30, 40)}


def test_torchtune_progress_bar_and_tensor_values(tmp_path: Path) -> None:
    run = one_run(LOGS / "torchtune_pbar.log")
    assert run.series("train/loss").to_dict() == {s: make_logs.train_loss(s) for s in range(1, 31)}
    path = tmp_path / "log_1.txt"
    path.write_text("Step 3 | loss:1.25 grad_norm:tensor(0.7500, device='cuda:0') \n")
    run = one_run(path)
    assert run.series("train/grad_norm").to_dict() == {3: 0.75}


# --- nanoGPT: a real (tiny) training loop printing nanoGPT's format strings ---------------------------


def test_nanogpt_real_training_loop(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocab, block, batch = 16, 8, 4
    data = torch.randint(0, vocab, (2000,))
    model = torch.nn.Sequential(torch.nn.Embedding(vocab, 32), torch.nn.Linear(32, vocab))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def get_batch():
        ix = torch.randint(len(data) - block - 1, (batch,))
        x = torch.stack([data[i : i + block] for i in ix])
        y = torch.stack([data[i + 1 : i + block + 1] for i in ix])
        return x, y

    def loss_of(x, y):
        logits = model(x)
        return torch.nn.functional.cross_entropy(logits.view(-1, vocab), y.view(-1))

    @torch.no_grad()
    def estimate_loss():
        return {
            split: float(torch.stack([loss_of(*get_batch()) for _ in range(3)]).mean()) for split in ("train", "val")
        }

    out = io.StringIO()
    printed_iter: dict[int, float] = {}
    printed_eval: dict[int, tuple[float, float]] = {}
    running_mfu, t0 = -1.0, time.time()
    for iter_num in range(0, 31):
        if iter_num % 10 == 0:
            losses = estimate_loss()
            print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", file=out)
            printed_eval[iter_num] = (round(losses["train"], 4), round(losses["val"], 4))
        loss = loss_of(*get_batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t1 = time.time()
        dt, t0 = t1 - t0, t1
        if iter_num % 2 == 0:
            lossf = loss.item()
            if iter_num >= 5:
                mfu = 0.01 / max(dt, 1e-6)
                running_mfu = mfu if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * mfu
            print(f"iter {iter_num}: loss {lossf:.4f}, time {dt * 1000:.2f}ms, mfu {running_mfu * 100:.2f}%", file=out)
            printed_iter[iter_num] = round(lossf, 4)
    path = tmp_path / "train.log"
    path.write_text("Overriding config with config/train_tiny.py:\n" + out.getvalue())
    assert detect(make_target(str(path)))[0].kind == "nanogpt-log"
    run = one_run(path)
    assert run.series("train/loss").to_dict() == pytest.approx(printed_iter)
    assert run.series("eval/loss").to_dict() == pytest.approx({s: v for s, (_, v) in printed_eval.items()})
    assert run.series("eval/train_loss").to_dict() == pytest.approx({s: t for s, (t, _) in printed_eval.items()})
    mfu_steps = set(run.series("train/mfu").index)
    assert mfu_steps == {s for s in printed_iter if s >= 6}  # -100.00% (not yet measured) is skipped
    assert (run.series("train/step_time") < 10).all()  # ms → seconds


# --- user-defined format -----------------------------------------------------------------------------


def test_user_format(tmp_path: Path) -> None:
    fmt = tmp_path / "fmt.yaml"
    fmt.write_text(
        "name: mine\npattern: 'it=(?P<it>\\d+) l=(?P<l>\\S+) v=(?P<v>\\S+)'\nstep: it\n"
        "metrics:\n  l: train/loss\n  v: val_loss\n"
    )
    log = tmp_path / "run.out"
    log.write_text(
        "".join(f"it={s} l={make_logs.train_loss(s)} v={make_logs.eval_loss(s)}\n" for s in (5, 10))
        + "it=15 l=1.0 v=2.0it=15 l=1.0 v=2.0\n"
    )
    assert registry()["user-format"].sniff(make_target(str(log))) == 0.0
    run = one_run(log, source_kind="user-format", log_format=str(fmt))
    assert run.series("train/loss").to_dict() == {s: make_logs.train_loss(s) for s in (5, 10)}
    assert run.series("eval/loss").to_dict() == {s: make_logs.eval_loss(s) for s in (5, 10)}
    assert any("glued together" in n for n in run.provenance.notes)


@pytest.mark.parametrize(
    "body, line, needle",
    [
        ("pattern: '(?P<s>\\d+) (?P<x>(a+)+)'\nstep: s\nmetrics: {x: train/loss}\n", 1, "nested unbounded quantifier"),
        ("pattern: '(?P<s>\\d+)'\nstep: s\nmetrics:\n  nope: train/loss\n", 4, "not a named group"),
        ("pattern: '(?P<s>\\d+) (?P<x>\\S+)'\nstep: q\nmetrics: {x: train/loss}\n", 2, "step group 'q'"),
        ("pattern: '(?P<s>\\d+'\nstep: s\nmetrics: {s: x}\n", 1, "not a valid regular expression"),
        ("pattern: 'x'\nstep: s\nmetrics: {}\ncolour: red\n", 1, "has no named groups"),
        ("pattern: [unclosed\n", 2, "YAML syntax error"),
        ("- just\n- a list\n", 1, "expected a mapping"),
    ],
)
def test_user_format_errors_name_file_and_line(tmp_path: Path, body: str, line: int, needle: str) -> None:
    fmt = tmp_path / "bad.yaml"
    fmt.write_text(body)
    log = tmp_path / "x.log"
    log.write_text("1 aaa\n")
    with pytest.raises(SourceError) as err:
        read_runs(str(log), ReadOptions(source_kind="user-format", log_format=str(fmt)))
    assert str(err.value).startswith(f"{fmt}:{line}: ") and needle in str(err.value)


def test_user_format_needs_the_option(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("1\n")
    with pytest.raises(SourceError, match="needs --log-format"):
        read_runs(str(log), ReadOptions(source_kind="user-format"))


# --- detection and the `sources` command --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kind",
    [
        ("seed004_ddp.log", "text-log"),
        ("seed001_wandb_block.log", "wandb-console"),
        ("ddp_glued.log", "text-log"),
        ("utf16_powershell.log", "text-log"),
        ("torchtune_disk.log", "torchtune-log"),
        ("torchtune_pbar.log", "torchtune-log"),
        ("lightning_metrics.csv", "csv"),
        ("long_metrics.csv", "csv"),
        ("metrics.jsonl", "jsonl"),
    ],
)
def test_detection_picks_the_right_reader(name: str, kind: str) -> None:
    assert detect(make_target(str(LOGS / name)))[0].kind == kind


def test_sources_command_lists_every_kind() -> None:
    from lossdoctor.commands.sources import COMMAND

    result = CliRunner().invoke(COMMAND, [])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for kind, source in registry().items():
        assert any(line.startswith(f"{kind} ") and source.description in line for line in lines), kind
        assert any(source.example in line for line in lines), kind
