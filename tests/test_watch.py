"""`lossdoctor watch`: a real writer (a thread, or a wandb child process) appends to a file while the watcher
follows it. Behaviour only (what is printed, when relative to what was written, what is reported, exit codes);
speed lives in bench/bench_watch.py."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from bench_watch import log_lines  # noqa: E402

from lossdoctor.commands.watch import Watcher  # noqa: E402
from lossdoctor.live import LiveJudge, LiveStore  # noqa: E402
from lossdoctor.model import Provenance  # noqa: E402
from lossdoctor.rules.packs import load_rules  # noqa: E402

RULES = load_rules(())


class Writer(threading.Thread):
    """Appends (text, tag) pieces to a file with a pause after each; records how much was written when."""

    def __init__(self, path: Path, pieces: list[tuple[str, str]], pause: float) -> None:
        super().__init__(daemon=True)
        self.path, self.pieces, self.pause = path, pieces, pause
        self.written_at: dict[str, int] = {}  # tag → index of the piece that made it true
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with self.path.open("a", encoding="utf-8", newline="") as fh:
            for k, (text, tag) in enumerate(self.pieces):
                if self.stop.is_set():
                    return
                fh.write(text)
                fh.flush()
                self.count = k + 1
                if tag:
                    self.written_at[tag] = k
                time.sleep(self.pause)


class Recorder:
    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.lines: list[tuple[str, int]] = []  # (text, pieces written when printed)

    def __call__(self, text: str, err: bool = False) -> None:
        self.lines.append((text, self.writer.count))

    def finding(self, rule: str) -> tuple[str, int] | None:
        return next(((t, n) for t, n in self.lines if t.startswith("[lossdoctor] ") and f" {rule} " in t), None)


def watch(path: Path, writer: Writer, tmp: Path, **kw) -> tuple[int, Recorder]:
    rec = Recorder(writer)
    # a generous CPU budget: these tests are about behaviour on a shared, loaded machine; the default
    # budget's pace is measured by bench/bench_watch.py
    w = Watcher(str(path), RULES, echo=rec, interval=0.05, budget=0.5, **kw)
    writer.start()
    code = w.run(("json",), str(tmp / "report"), False)
    writer.stop.set()
    return code, rec


def test_console_log_findings_fire_while_it_is_written(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    # ~1.2 s of log after the NaN: pointwise rules are judged every POINTWISE_INTERVAL (0.5 s), so a finding
    # may come up to that long after its line (the 1 s latency target), and must still beat the end
    pieces = list(log_lines(400, explode_at=100, nan_at=250))
    writer = Writer(log, pieces, pause=0.004)
    code, rec = watch(log, writer, tmp_path)
    assert code == 0
    explosion = rec.finding("grad-norm-explosion")
    assert explosion is not None, rec.lines
    made_true = writer.written_at["grad-norm-explosion"]
    # printed after the line that made it true, and well before the log was finished
    assert made_true < explosion[1] < len(pieces) - 50, (made_true, explosion[1])
    assert "@ step 1020" in explosion[0]  # the 3rd exploding log: dict 102, step 10 x 102
    nan = rec.finding("nonfinite-loss")
    assert nan is not None and writer.written_at["nonfinite-loss"] < nan[1] < len(pieces)
    assert any("the run ended: end-of-training summary" in t for t, _ in rec.lines)
    # the report is the full analysis of the finished file (as analyze would give)
    doc = json.loads((tmp_path / "report" / "diagnosis.json").read_text())
    from lossdoctor import analyze, load_run

    assert [f["rule_id"] for f in doc["findings"]] == [f.rule_id for f in analyze(load_run(str(log))).findings]
    # live, too, only the rules for the run's objective judge it (no preference rule on an SFT log)
    from lossdoctor.metrics.objectives import detect

    objective = detect(load_run(str(log))).id
    live = [t.split()[2] for t, _ in rec.lines if t.startswith("[lossdoctor] ")]
    assert live and all(RULES.get(rule_id).applies_to(objective) for rule_id in live), (objective, live)


def test_until_stops_at_the_first_such_finding(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    pieces = list(log_lines(600, explode_at=100, nan_at=500))
    writer = Writer(log, pieces, pause=0.004)
    code, rec = watch(log, writer, tmp_path, until="error")
    assert code == 1
    assert rec.finding("grad-norm-explosion") is not None and rec.finding("nonfinite-loss") is None
    assert writer.count < len(pieces) - 200  # stopped long before the log was done
    assert any("--until error: grad-norm-explosion (error) fired" in t for t, _ in rec.lines)
    assert (tmp_path / "report" / "diagnosis.json").is_file()


def test_jsonl_stall_and_a_cut_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = []
    for i in range(1, 81):
        row = {"step": i, "loss": 3.0 * math.exp(-i / 30), "grad_norm": 1.0}
        if i in (60, 61, 62):
            row["grad_norm"] = 500.0
        rows.append(json.dumps(row) + "\n")
    # the last record arrives in two pieces, the way a writer flushes mid-line
    pieces = [(r, "grad-norm-explosion" if i == 61 else "") for i, r in enumerate(rows[:-1])]
    pieces += [(rows[-1][:10], ""), (rows[-1][10:], "")]
    writer = Writer(path, pieces, pause=0.01)
    code, rec = watch(path, writer, tmp_path, stall_timeout=1.0)
    assert code == 0
    assert rec.finding("grad-norm-explosion") is not None
    assert any(t.startswith("lossdoctor: stalled: no new point for 1 s (last step 80)") for t, _ in rec.lines)
    doc = json.loads((tmp_path / "report" / "diagnosis.json").read_text())
    assert any("watch: stalled" in n for n in doc["run"]["provenance"]["notes"])


def test_trainer_state_rewritten_whole(tmp_path: Path) -> None:
    """The Trainer rewrites trainer_state.json at each save: the tail takes only the new log_history rows."""
    path = tmp_path / "trainer_state.json"
    history: list[dict] = []
    pieces = []
    for i in range(1, 41):
        history.append({"step": i * 5, "loss": 2.0 if i < 30 else float("nan"), "grad_norm": 1.0, "epoch": i / 40})
        pieces.append(json.dumps({"log_history": history}, allow_nan=True))
    history.append({"step": 200, "train_runtime": 10.0, "train_loss": 1.0})
    pieces.append(json.dumps({"log_history": history}, allow_nan=True))

    class Rewriter(Writer):
        def run(self) -> None:
            for k, text in enumerate(self.pieces):
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, self.path)
                self.count = k + 1
                time.sleep(self.pause)

    writer = Rewriter(path, pieces, pause=0.03)
    code, rec = watch(path, writer, tmp_path)
    assert code == 0
    nan = rec.finding("nonfinite-loss")
    assert nan is not None and 29 <= nan[1] < len(pieces)
    assert "step 150" in nan[0] and "nan" in nan[0].lower()
    assert any("end-of-training summary (train_runtime) in log_history" in t for t, _ in rec.lines)


def test_wandb_transaction_log_appended_in_arbitrary_pieces(tmp_path: Path) -> None:
    """A real .wandb file (written by the wandb package) handed to the tail in random cuts: the same points as
    the whole-file reader, the exit record ends the run."""
    import make_wandb_runs as mk

    from lossdoctor.sources.wandb_offline import read_wandb_file
    from lossdoctor.tail.wandb_offline import WandbTail

    run_dir = mk.make_offline_run(tmp_path / "made", mk.RunSpec(steps=120, big_text=True))
    src = next(run_dir.glob("*.wandb"))
    data = src.read_bytes()
    live = tmp_path / "live.wandb"
    live.write_bytes(b"")
    tail = WandbTail(live)
    rng = random.Random(7)
    got: dict[tuple[int, str], float] = {}
    ended = None
    pos = 0
    while pos < len(data):
        cut = min(len(data), pos + rng.randint(1, 9000))
        with live.open("ab") as fh:
            fh.write(data[pos:cut])
        pos = cut
        update = tail.poll(0.0)
        for step, name, value in update.points:
            got[(step, name)] = value
        ended = ended or update.ended
    tail.close()
    assert ended and "exit code 0" in ended
    expected = mk.expected_points(mk.RunSpec(steps=120))
    for metric, points in expected.items():
        for step, value in points.items():
            v = got[(step, metric)]
            assert (math.isnan(v) and math.isnan(value)) or v == value, (metric, step, v, value)
    assert tail.config.get("learning_rate") == 0.001
    # media (the histogram and table logged at step 5) is no metric, as in the whole-file reader
    assert not [name for _, name in got if name.startswith(("weights", "samples"))]
    whole = read_wandb_file(src)
    assert len({s for s, _ in got}) == len(
        {int(r["train/global_step"]) for r in whole.rows if "train/global_step" in r}
    )


def test_sigterm_writes_the_report(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    pieces = list(log_lines(5000, explode_at=10, nan_at=4000))
    writer = Writer(log, pieces, pause=0.002)
    writer.start()
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossdoctor", "watch", str(log), "--format", "json", "--out", str(tmp_path / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while writer.count < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3.0)  # the watcher has started and followed some of it
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    writer.stop.set()
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert "grad-norm-explosion" in out
    doc = json.loads((tmp_path / "r" / "diagnosis.json").read_text())
    assert doc["run"]["state"] == "interrupted"


def test_judge_rejudges_only_rules_whose_series_changed() -> None:
    from lossdoctor.model import Provenance

    store, judge = LiveStore(), LiveJudge(RULES, min_interval=0.0, budget=1.0)
    prov = Provenance(kind="test", location="x")
    judge.touched(store.add_many([(s, "loss", 2.0) for s in range(1, 50)] + [(10, "eval_loss", 2.0)]))
    judge.judge(store.snapshot("x", prov), now=1.0)
    assert not judge.pending
    judge.touched(store.add_many([(60, "eval_loss", 2.1)]))
    stale = set(judge._stale)
    assert "overfitting" in stale and "loss-spike" not in stale and "grad-norm-explosion" not in stale
    # the live run's series are the store's points, last value per step
    store.add_many([(60, "eval_loss", 2.2)])
    run = store.snapshot("x", prov)
    assert run.series("eval/loss").to_dict() == {10: 2.0, 60: 2.2} and run.n_points == 52


def test_missing_file_is_waited_for_or_an_error(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "lossdoctor", "watch", str(tmp_path / "nope.log"), "--no-wait"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and "nope.log" in proc.stderr and "no such file" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "lossdoctor", "watch", str(tmp_path / "later.log"), "--stall-timeout", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and "waiting for" in proc.stderr and "no report" in proc.stderr


def test_store_memory_is_bounded_and_keeps_what_the_rules_look_back_at() -> None:
    """Each series keeps its latest points whole and older history as min/max buckets: the count of held
    points stops growing, and the first point, a spike's peak, a NaN and the best value survive thinning."""
    from lossdoctor.live import TAIL_POINTS, THIN_CHUNK

    store = LiveStore(recent=TAIL_POINTS, thinned=2048)
    rng = random.Random(1)
    held: list[int] = []
    for start in range(0, 200_000, 1000):
        points = []
        for s in range(start + 1, start + 1001):
            loss = 2.0 + 0.05 * rng.random()
            if s == 777:
                loss = 40.0  # the peak of a spike, early
            if s == 1500:
                loss = math.nan
            if s == 9000:
                loss = 0.5  # the lowest value of the run
            points.append((s, "loss", loss))
            if s % 50 == 0:
                points.append((s, "eval_loss", 1.0 + abs(s - 30_000) / 100_000))
        store.add_many(points)
        held.append(store.columns["train/loss"].n)
    loss = store.columns["train/loss"]
    bound = loss.capacity_max
    assert bound == TAIL_POINTS + THIN_CHUNK + 2048 < 200_000 // 10
    # bounded: the loss series never holds more than its bound however many points arrived (it came near it
    # within the first quarter), and each buffer stays within its bound
    assert max(held) <= bound and max(held[: len(held) // 4]) > bound - THIN_CHUNK
    assert all(len(c.steps) <= c.capacity_max for c in store.columns.values())
    assert store.points == 200_000 + 4000 and store.thinned == store.points - store.held
    run = store.snapshot("x", Provenance(kind="test", location="x"))
    s = run.series("train/loss")
    steps, values = s.index, s.to_numpy()
    assert (steps[1:] > steps[:-1]).all()  # still one step-sorted series
    assert steps[0] == 1 and steps[-1] == 200_000
    assert (steps[-TAIL_POINTS:] == np.arange(200_001 - TAIL_POINTS, 200_001)).all()  # the latest kept whole
    assert values[steps == 777].tolist() == [40.0] and np.isnan(values[steps == 1500]).all()
    assert np.nanmin(values) == 0.5 and steps[np.nanargmin(values)] == 9000
    ev = run.series("eval/loss")
    assert len(ev) == 4000 and ev.to_numpy().min() == 1.0  # an eval series this small is kept exact


def test_store_thinned_history_with_a_resumed_run_stays_sorted() -> None:
    """A resumed run logs steps again from its checkpoint: the last value wins per step, also across the
    boundary between the thinned and the whole part."""
    from lossdoctor.live import TAIL_POINTS

    store = LiveStore(recent=TAIL_POINTS, thinned=1024)
    store.add_many([(s, "loss", 2.0) for s in range(1, 30_001)])
    store.add_many([(s, "loss", 1.0) for s in range(10_001, 40_001)])  # resumed from step 10,000
    run = store.snapshot("x", Provenance(kind="test", location="x"))
    s = run.series("train/loss")
    steps, values = s.index, s.to_numpy()
    assert (steps[1:] > steps[:-1]).all() and steps[-1] == 40_000
    assert (values[steps > 10_000] == 1.0).all() and (values[steps <= 10_000] == 2.0).all()
    assert store.held <= store.columns["train/loss"].capacity_max


def test_long_log_bounded_memory_early_finding_and_the_exact_report(tmp_path: Path) -> None:
    """A long JSONL log whose early part is thinned before it is first judged: the early grad-norm explosion
    is still printed live (not "judged at the end"), the store's size stays bounded, and the report at the
    end is analyze's of the same file, with a note that the live judgement used thinned history."""
    from lossdoctor import analyze, load_run
    from lossdoctor.live import TAIL_POINTS, THIN_CHUNK

    path = tmp_path / "metrics.jsonl"
    rng = random.Random(7)
    rows = []
    n = 60_000
    for i in range(1, n + 1):
        row = {"step": i, "loss": round(3.0 * math.exp(-i / 20_000) + 0.05 * rng.random(), 5), "grad_norm": 1.0}
        if i in (500, 501, 502):
            row["grad_norm"] = 500.0
        if i % 200 == 0:
            row["eval_loss"] = round(2.5 * math.exp(-i / 25_000) + 0.2, 5)
        rows.append(json.dumps(row) + "\n")
    # the first 50,000 rows are there when watch starts (read in one poll, thinned before the first pass);
    # the rest arrives in pieces
    pieces = [("".join(rows[:50_000]), "")] + [("".join(rows[k : k + 500]), "") for k in range(50_000, n, 500)]
    writer = Writer(path, pieces, pause=0.02)
    rec = Recorder(writer)
    w = Watcher(
        str(path),
        RULES,
        echo=rec,
        interval=0.05,
        budget=0.5,
        stall_timeout=1.5,
        keep_points=TAIL_POINTS,
        thinned_points=1024,
    )
    writer.start()
    code = w.run(("json",), str(tmp_path / "report"), False)
    writer.stop.set()
    assert code == 0
    explosion = rec.finding("grad-norm-explosion")
    assert explosion is not None and "@ step 502" in explosion[0] and "judged at the end" not in explosion[0]
    store = w.store
    assert store.points == 2 * n + n // 200 and store.thinned > 0
    # each series within its bound (the latest 4,096 whole + 8,192 waiting to be thinned + 1,024 thinned)
    assert all(c.n <= c.capacity_max == TAIL_POINTS + THIN_CHUNK + 1024 for c in store.columns.values())
    assert store.held < store.points / 4
    doc = json.loads((tmp_path / "report" / "diagnosis.json").read_text())
    want = analyze(load_run(str(path)))
    got = [(f["rule_id"], f["first_step"], f["last_step"], f["message"]) for f in doc["findings"]]
    assert got == [(f.rule_id, f.first_step, f.last_step, f.message) for f in want.findings]
    assert doc["verdict"] == want.verdict
    assert any("live judgement used thinned history" in note for note in doc["run"]["provenance"]["notes"])


def test_store_bound_holds_for_a_run_that_is_mostly_nan() -> None:
    """Every non-finite point is kept while thinning, but not without bound: a run that is NaN at every
    other step still holds a bounded number of points, NaNs among them."""
    from lossdoctor.live import TAIL_POINTS

    store = LiveStore(recent=TAIL_POINTS, thinned=1024)
    for start in range(0, 100_000, 2000):
        store.add_many([(s, "loss", math.nan if s % 2 else 1.0 + s * 1e-6) for s in range(start + 1, start + 2001)])
    col = store.columns["train/loss"]
    assert col.n <= col.capacity_max and len(col.steps) <= col.capacity_max
    steps, values = col.view()
    assert np.isnan(values[: col.t]).sum() > 100 and np.isfinite(values[: col.t]).sum() > 100


def test_console_tail_trusts_the_counter_over_a_coarsely_printed_epoch(tmp_path: Path) -> None:
    """transformers 5 prints the epoch with 4 significant digits: past epoch 100 that is 0.1 epoch (200 steps
    here). The counter redrawn after each dict is the step; the epoch may only overrule a counter that is far
    off by more than its printed precision allows (it used to replace good counters, so steps ran backwards)."""
    from lossdoctor.tail.hf_console import ConsoleTail, half_ulp

    assert (half_ulp("100.5"), half_ulp("'0.01'"), half_ulp("3"), half_ulp("2.5e-05")) == (0.05, 0.005, 0.5, 5e-07)
    log = tmp_path / "train.log"
    log.write_text("")
    tail = ConsoleTail(log)
    per_epoch, total, now, points = 2000, 400_000, 0.0, []
    with log.open("a") as fh:
        for step in range(190_000, 215_000, 10):
            epoch = format(step / per_epoch, ".4g")
            fh.write(f" 50%|#####     | {step - 1}/{total} [00:01<00:01]\r{{'loss': '0.5', 'epoch': '{epoch}'}}\n")
            fh.write(f" 50%|#####     | {step}/{total} [00:01<00:01]\n")
            if step % 1000 == 0:
                fh.flush()
                now += 0.1
                points.extend(tail.poll(now).points)
    points.extend(tail.poll(now + 1.0).points)
    steps = [s for s, key, _ in points if key == "loss"]
    assert steps == list(range(190_000, 215_000, 10))[: len(steps)] and len(steps) >= 2400
    assert tail.guessed == 0
