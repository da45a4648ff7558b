"""Console-reader throughput and memory: lossdoctor's hf-console reader vs the naive reader, same run.

    /work/venv/bin/python bench/bench_console_reader.py                    # 1,000,000 log dicts
    /work/venv/bin/python bench/bench_console_reader.py --points 100000    # quick run
    /work/venv/bin/python bench/bench_console_reader.py --file my.log      # an existing log

The naive reader is what people write first: for each line find the ``{...}`` and ``ast.literal_eval`` it,
keeping a list of dicts. Each reader runs in its own child process (so its peak RSS is its own, taken from
``os.wait4``'s rusage); both read the same file in the same bench run and the ratio is printed. A third child
that only imports lossdoctor gives the RSS floor. Memory scaling: the lossdoctor reader is also run on a file
with the same points and 4x the noise (tqdm redraws, warnings); its peak should barely move.
A fourth child runs the whole analysis in one process (imports, read, default rules, JSON report): the
end-to-end figure. Target (issue 13): end to end >= 10x the naive parse alone, peak RSS <= 300 MB.
lossdoctor may split a big log between worker processes (``analyze --jobs``; by default only where the
compiled scanner is not built, as analyze does): its peak RSS is then the sum over the processes
(bench/proctree.py), and its CPU time is given.
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


def child(which: str, path: str, jobs: int) -> None:
    """Runs in a child process: read `path` (with up to `jobs` worker processes where lossdoctor's reader
    splits a big log), print {"seconds", "points"} as JSON."""
    if which == "floor":
        import lossdoctor.sources.hf_console  # noqa: F401

        print(json.dumps({"seconds": 0.0, "points": 0}))
        return
    if which == "analyze":  # end to end: what `lossdoctor analyze FILE --format json` does
        import tempfile as _tf

        t0 = time.perf_counter()
        from lossdoctor.diagnosis import diagnose
        from lossdoctor.report import write_reports
        from lossdoctor.rules.packs import load_rules
        from lossdoctor.sources import ReadOptions, read_runs

        (run,) = read_runs(path, ReadOptions(jobs=jobs))
        diag = diagnose(run, load_rules(()))
        with _tf.TemporaryDirectory() as out:
            write_reports(diag, ("json",), Path(out))
        print(json.dumps({"seconds": time.perf_counter() - t0, "points": run.n_points}))
        return
    if which == "lossdoctor":
        from lossdoctor.sources import ReadOptions
        from lossdoctor.sources._hf_scan import auto_workers
        from lossdoctor.sources.hf_console import read_console

        t0 = time.perf_counter()
        run = read_console(Path(path), path, workers=ReadOptions(jobs=jobs).workers(auto_workers()))
        seconds = time.perf_counter() - t0
        points = run.n_points
    else:
        import ast

        t0 = time.perf_counter()
        rows = []
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                i = line.find("{")
                if i < 0:
                    continue
                j = line.rfind("}")
                try:
                    d = ast.literal_eval(line[i : j + 1])
                except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                    continue
                if isinstance(d, dict):
                    rows.append(d)
        seconds = time.perf_counter() - t0
        points = sum(len(d) for d in rows)
    print(json.dumps({"seconds": seconds, "points": points}))


def measure(which: str, path: Path, jobs: int) -> dict[str, float]:
    """Run one child; its figures plus ``peak_rss_mb``: the larger of wait4's peak (one process) and the
    sampled peak of the RSS summed over the child and its worker processes (bench/proctree.py)."""
    from proctree import TreeRSS

    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", which, str(path), str(jobs)],
        stdout=subprocess.PIPE,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.stdout is not None
    with TreeRSS(proc.pid) as tree:
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{which} child failed with {proc.returncode}")
    result = json.loads(out)
    result["peak_rss_mb"] = max(usage.ru_maxrss / 1024, tree.peak_mb)  # Linux: KiB
    result["processes"] = tree.most
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # its worker processes', once waited for, included
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="HF console reader benchmark")
    ap.add_argument("--points", type=int, default=1_000_000, help="train log dicts to generate")
    ap.add_argument("--file", type=Path, help="use this log instead of generating one (skips the noise run)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="lossdoctor's worker processes for one big log (analyze --jobs; 0: one per usable core, the "
        "default of analyze; 1: one process)",
    )
    args = ap.parse_args(argv)
    from gen_console_log import generate

    tmp = Path(tempfile.mkdtemp(prefix="ld-bench-console-"))
    try:
        if args.file:
            path, noisy = args.file, None
        else:
            path = generate(tmp / "console.log", args.points)
            noisy = generate(tmp / "console_noise4.log", args.points, noise=4)
        size_mb = path.stat().st_size / 1e6
        print(f"file: {path} ({size_mb:.1f} MB); lossdoctor --jobs {args.jobs or 'auto'}")
        floor = measure("floor", path, args.jobs)
        ours = measure("lossdoctor", path, args.jobs)
        naive = measure("naive", path, args.jobs)
        for name, r in (("lossdoctor", ours), ("naive ast.literal_eval", naive)):
            print(
                f"{name:>24}: {r['seconds']:8.2f} s  {size_mb / r['seconds']:8.1f} MB/s  "
                f"peak RSS {r['peak_rss_mb']:8.1f} MB  ({int(r['points'])} values; CPU {r['cpu_s']:.2f} s, "
                f"{r['processes']} process(es))"
            )
        print(f"{'import-only floor':>24}: peak RSS {floor['peak_rss_mb']:.1f} MB")
        ratio = naive["seconds"] / ours["seconds"]
        print(f"throughput ratio lossdoctor / naive: {ratio:.1f}x (the reader alone)")
        e2e = measure("analyze", path, args.jobs)
        print(
            f"{'end to end (analyze)':>24}: {e2e['seconds']:8.2f} s  peak RSS {e2e['peak_rss_mb']:8.1f} MB  "
            f"(imports, read, diagnose, JSON report; CPU {e2e['cpu_s']:.2f} s, {e2e['processes']} process(es))"
        )
        print(
            f"end-to-end ratio naive parse / lossdoctor analyze: {naive['seconds'] / e2e['seconds']:.1f}x "
            f"(target >= 10x, RSS <= 300 MB)"
        )
        if noisy is not None:
            noisy_mb = noisy.stat().st_size / 1e6
            ours4 = measure("lossdoctor", noisy, args.jobs)
            print(
                f"memory scaling: same points, 4x noise lines ({noisy_mb:.1f} MB): lossdoctor "
                f"{ours4['seconds']:.2f} s, {noisy_mb / ours4['seconds']:.1f} MB/s, peak RSS "
                f"{ours4['peak_rss_mb']:.1f} MB (vs {ours['peak_rss_mb']:.1f} MB for {size_mb:.1f} MB)"
            )
    finally:
        if not args.keep:
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
        else:
            print(f"kept: {tmp}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main())
