"""Generic text-log reader vs the HF console reader on the same ~100 MB HF Trainer console log.

    /work/venv/bin/python bench/bench_generic_reader.py                 # ~100 MB (240,000 train dicts)
    /work/venv/bin/python bench/bench_generic_reader.py --points 24000  # ~10 MB quick run
    /work/venv/bin/python bench/bench_generic_reader.py --file my.log   # an existing log

The log is the console-reader bench's generated transformers-5 console (bench/gen_console_log.py: tqdm
``\\r`` redraws, ANSI cursor moves, eval dicts, warnings, the train_runtime summary). Each reader runs in its
own child process, the same file in the same bench run: lossdoctor's ``hf-console`` reader (the specific
one, with its template regex and tqdm step inference) and the generic ``text-log`` reader (per line: tokens,
dict pairs, the tidy table, role inference). Prints both times (CPU time of the read, which a machine
shared with other jobs disturbs less than wall time; best of --repeat, the two readers interleaved), the values each read, and the ratio.
Target (issue 11): the generic reader within 2x of the HF console reader's time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(which: str, path: str) -> None:
    """Runs in a child process: read `path`, print {"seconds", "points"} as JSON."""
    from lossdoctor.sources import make_target

    target = make_target(path)
    if which == "hf-console":
        from lossdoctor.sources.hf_console import read_console

        t0, c0 = time.perf_counter(), time.process_time()
        run = read_console(Path(path), path)
    else:
        from lossdoctor.sources.base import ReadOptions
        from lossdoctor.sources.text_log import SOURCE

        t0, c0 = time.perf_counter(), time.process_time()
        run = SOURCE.read(target, ReadOptions())[0]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    train = run.series("train/loss")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "points": run.n_points,
                "train_loss_points": int(train.size),
                "eval_loss_points": int(run.series("eval/loss").size),
            }
        )
    )


def measure(which: str, path: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", which, str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    if proc.returncode != 0:
        raise SystemExit(f"{which} child failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="generic text-log reader vs hf-console reader")
    ap.add_argument("--points", type=int, default=240_000, help="train log dicts to generate (~420 bytes each)")
    ap.add_argument("--file", type=Path, help="use this log instead of generating one")
    ap.add_argument("--repeat", type=int, default=1, help="runs per reader; the best time is kept")
    args = ap.parse_args(argv)
    from gen_console_log import generate

    tmp = Path(tempfile.mkdtemp(prefix="ld-bench-generic-"))
    try:
        path = args.file or generate(tmp / "console.log", args.points)
        size_mb = path.stat().st_size / 1e6
        print(f"file: {path} ({size_mb:.1f} MB)")
        runs: dict[str, list[dict[str, float]]] = {"hf-console": [], "text-log": []}
        for _ in range(max(1, args.repeat)):  # interleaved, so both meet the same machine load
            for which in runs:
                runs[which].append(measure(which, path))
        results = {}
        for which in runs:
            results[which] = min(runs[which], key=lambda r: r["cpu"])
            r = results[which]
            print(
                f"{which:>10}: {r['cpu']:7.2f} s CPU ({r['seconds']:.2f} s wall)  {size_mb / r['cpu']:7.1f} MB/s  "
                f"{int(r['points'])} values ({int(r['train_loss_points'])} train loss, "
                f"{int(r['eval_loss_points'])} eval loss)"
            )
        ratio = results["text-log"]["cpu"] / results["hf-console"]["cpu"]
        print(f"time ratio text-log / hf-console (CPU time of the read): {ratio:.2f}x (target <= 2x)")
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
