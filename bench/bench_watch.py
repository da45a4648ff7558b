"""`lossdoctor watch` on a log that grows at a fixed line rate: CPU share, finding latency, memory.

    /work/venv/bin/python bench/bench_watch.py                        # 1,000 lines/s for 60 s
    /work/venv/bin/python bench/bench_watch.py --seconds 600          # the 10-minute target

A writer thread appends a transformers-5 HF console log (the layout of gen_console_log.py: a train dict and
the progress bar redrawn after it, an eval dict every 50) line by line at ``--rate`` lines/s, each line
flushed. Two problems are injected at known times: grad_norm above 100 for 3 logs at 40 % of the run
(grad-norm-explosion, an error, fires at the 3rd) and a NaN loss at 70 % (nonfinite-loss). The writer
records the wall time at which it wrote the line that makes each finding true; the watcher's stdout is read
with a timestamp per line, so latency = print time - write time. The watcher is a separate
``lossdoctor watch`` process; its CPU time (utime+stime from /proc) and RSS are sampled every second; memory
is "flat" when the highest RSS of the last quarter of the run exceeds that of the second by less than
``FLAT_MB`` (a judging pass's scratch is a transient every quarter has; the store's bound is reached within the
first quarter at 1,000 lines/s: ~45k points per series).

Baseline measured in the same run: the naive watcher, which re-reads and re-analyses the whole file each
second (``lossdoctor analyze`` in-process: read + diagnose), timed on the file as it is at the end; its CPU
share at that point is (one pass) / (1 s).
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_console_log import EVAL_EVERY, LOGGING_STEPS, _bar, _dict, eval_values, fmt, train_values  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICK = 0.01
#: memory counts as flat when RSS grows less than this after the first quarter of the run
FLAT_MB = 4.0


def log_lines(n_dicts: int, explode_at: int, nan_at: int, seed: int = 0):
    """(line, tag) in file order; tag names the finding the line makes true (else "")."""
    rng = random.Random(seed)
    total = n_dicts * LOGGING_STEPS
    clear = "\r" + " " * 40 + "\r"
    yield "Training starts\n", ""
    for i in range(1, n_dicts + 1):
        step = i * LOGGING_STEPS
        values = train_values(i, rng)
        tag = ""
        if explode_at <= i < explode_at + 3:
            values["grad_norm"] = fmt(250.0 + i - explode_at)
            tag = "grad-norm-explosion" if i == explode_at + 2 else ""
        if i == nan_at:
            values["loss"] = "nan"
            tag = "nonfinite-loss"
        yield _bar(step - 1, total) + clear + _dict(values) + "\n", ""
        yield _bar(step, total) + "\n", tag  # the counter after the dict: now its step is known
        if i % EVAL_EVERY == 0:
            yield clear + "\x1b[A" + _dict(eval_values(i)) + "\n", ""
            yield _bar(step, total) + "\n", ""
    yield (
        clear
        + _dict(
            {
                "train_runtime": fmt(n_dicts * 0.5),
                "train_samples_per_second": "16.0",
                "train_steps_per_second": "20.0",
                "train_loss": "0.6",
                "epoch": fmt(total / 2000),
            }
        )
        + "\n",
        "",
    )


def writer(path: Path, rate: float, seconds: float, marks: dict[str, float], done: threading.Event) -> None:
    n_lines = int(rate * seconds)
    n_dicts = max(10, int(n_lines / (2 + 2 / EVAL_EVERY)))
    lines = log_lines(n_dicts, explode_at=int(n_dicts * 0.4), nan_at=int(n_dicts * 0.7))
    per_tick = rate * TICK
    start = time.monotonic()
    written = 0.0
    with path.open("a", encoding="utf-8", newline="") as fh:
        for k, (line, tag) in enumerate(lines):
            fh.write(line)
            if tag or k % max(1, int(per_tick)) == 0:
                fh.flush()
            if tag:
                marks[tag] = time.monotonic()
            written += 1
            ahead = start + written / rate - time.monotonic()
            if ahead > TICK:
                fh.flush()
                time.sleep(ahead)
        fh.flush()
    marks["_end"] = time.monotonic()
    marks["_lines"] = written
    done.set()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def naive_pass(path: Path) -> float:
    """One pass of the naive watcher: read the whole file and diagnose it (in this process)."""
    from lossdoctor import analyze, load_run

    t0 = time.perf_counter()
    analyze(load_run(str(path)))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="lines per second (default 1000)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the log grows (default 60)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    atexit.register(shutil.rmtree, tmp, True)  # the grown log and its reports, ~100-170 MB
    log = tmp / "train.log"
    log.touch()
    cmd = [
        sys.executable,
        "-m",
        "lossdoctor",
        "watch",
        str(log),
        "--format",
        "json",
        "--out",
        str(tmp / "report"),
        "--no-color",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    printed: dict[str, float] = {}

    def read_stdout() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            now = time.monotonic()
            if line.startswith("[lossdoctor] "):
                rule = line.split()[2]
                printed.setdefault(rule, now)

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    time.sleep(2.0)  # let the watcher start (imports) before the log grows
    marks: dict[str, float] = {}
    done = threading.Event()
    w = threading.Thread(target=writer, args=(log, args.rate, args.seconds, marks, done), daemon=True)
    cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
    w.start()
    samples: list[tuple[float, float, float]] = []  # (t, cpu, rss)
    while not done.is_set():
        time.sleep(1.0)
        try:
            samples.append((time.monotonic() - t0, proc_cpu(proc.pid) - cpu0, proc_rss_mb(proc.pid)))
        except OSError:
            break
    cpu_end, t_end = proc_cpu(proc.pid) - cpu0, time.monotonic() - t0
    proc.wait(timeout=300)
    reader.join(timeout=5)
    stderr = proc.stderr.read() if proc.stderr else ""  # type: ignore[union-attr]

    size_mb = log.stat().st_size / 1e6
    print(
        f"log: {marks.get('_lines', 0):.0f} lines in {marks['_end'] - t0 - 0:.1f} s "
        f"({marks.get('_lines', 0) / max(1e-9, marks['_end'] - t0):.0f} lines/s), {size_mb:.1f} MB"
    )
    print(
        f"watcher CPU while the log grew: {cpu_end:.2f} s over {t_end:.1f} s = "
        f"{100 * cpu_end / t_end:.2f} % of one core (target <= 5 %)"
    )
    quarter = [s for s in samples if s[0] >= t_end * 0.25]
    if quarter:
        steady = (quarter[-1][1] - quarter[0][1]) / max(1e-9, quarter[-1][0] - quarter[0][0])
        print(f"  steady state (after the first quarter): {100 * steady:.2f} % of one core")
    for tag in ("grad-norm-explosion", "nonfinite-loss"):
        if tag in marks and tag in printed:
            print(
                f"finding {tag}: printed {printed[tag] - marks[tag]:.3f} s after the line that made it true "
                "(target <= 1 s)"
            )
        else:
            print(f"finding {tag}: NOT printed (written: {tag in marks})")
    # while the log grew: the samples up to 1 s before its last line (then the watcher reads the whole file
    # again for the report, which is not what "flat while watching" is about; that peak is printed apart)
    growing = [s for s in samples if s[0] <= marks["_end"] - t0 - 1.0]
    if growing:
        rss = [s[2] for s in growing]
        n = len(rss)
        picks = [rss[min(n - 1, int(n * f))] for f in (0.1, 0.25, 0.5, 0.75)] + [rss[-1]]
        print(
            "watcher RSS MB at 10/25/50/75/100 % of the run: "
            + " / ".join(f"{x:.1f}" for x in picks)
            + f" (at the end, with the final re-read for the report: {samples[-1][2]:.1f})"
        )
        # flat = the envelope does not rise: the highest RSS of the last quarter against that of the second (a
        # judging pass's scratch is a transient that every quarter has; growth with the points would show here)
        quarters = [rss[int(n * q / 4) : max(int(n * q / 4) + 1, int(n * (q + 1) / 4))] for q in range(4)]
        tops = [max(part) for part in quarters]
        growth = tops[3] - tops[1]
        print(
            "watcher RSS MB, highest in each quarter of the run: "
            + " / ".join(f"{x:.1f}" for x in tops)
            + f"; after the first quarter the highest grew {growth:.1f} MB -> "
            + ("flat" if growth < FLAT_MB else "NOT flat")
            + f" (flat: < {FLAT_MB:g} MB)"
        )
    passes = [ln for ln in stderr.splitlines() if "rule passes" in ln]
    if passes:
        print("watcher: " + passes[-1].replace("lossdoctor: ", ""))
    naive = naive_pass(log)
    print(
        f"baseline (naive watcher: re-read + re-analyse the whole file every second): one pass on the final "
        f"file {naive:.2f} s = {100 * naive:.0f} % of one core at the end; "
        f"lossdoctor watch used {100 * cpu_end / t_end:.2f} % on average "
        f"({naive / max(1e-9, cpu_end / t_end):.0f}x less)"
    )
    report = tmp / "report" / "diagnosis.json"
    if report.exists():
        doc = json.loads(report.read_text())
        print("report: " + ", ".join(f["rule_id"] for f in doc["findings"]) + f"; exit code {proc.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
