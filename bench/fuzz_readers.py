"""The long fuzz run: seeded mutations of every file reader's fixtures through ``cli.main`` (tests/fuzzkit.py).

Targets: 0 tracebacks / internal errors, 0 exit codes other than 0/1/2, exit 1 only when diagnosis.json holds
a finding at or above --fail-on, exactly one stderr line on exit 2, no rule check crashed. The normal test run
(tests/test_fuzz_readers.py) runs a small budget of the same inputs.

    .venv/bin/python bench/fuzz_readers.py --inputs 100000 --jobs 2        # ~9,100 per reader
    .venv/bin/python bench/fuzz_readers.py --inputs 2000 --seed 7          # a quick other seed
    .venv/bin/python bench/fuzz_readers.py --seed 0 --only jsonl --show 123  # one input, with --debug

Prints per-reader exit-code counts, every failing input as (reader, index), throughput and peak RSS.
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import fuzzkit  # noqa: E402


def _work(args: tuple[int, int, int, int, list[str] | None, str]) -> fuzzkit.Report:
    job, jobs, per_kind, seed, kinds, seeds_dir = args
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{job}-") as tmp:
        seeds = fuzzkit.make_seeds(Path(seeds_dir))
        t0 = time.perf_counter()

        def progress(report: fuzzkit.Report) -> None:
            n = sum(report.inputs.values())
            if n % 2000 < len(report.inputs):
                print(
                    f"  job {job}: {n:,} inputs, {len(report.failures)} failing, {time.perf_counter() - t0:.0f}s",
                    flush=True,
                )
                for f in report.failures[-3:]:
                    print(f"    FAIL {f[0]} #{f[1]} ({f[2]}): {'; '.join(f[3])[:300]}", flush=True)

        return fuzzkit.fuzz(
            Path(tmp), per_kind, seed=seed, kinds=kinds, seeds=seeds, job=job, jobs=jobs, on_progress=progress
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100_000, help="total inputs, spread evenly over the readers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--only", action="append", help="fuzz only this reader kind (repeatable)")
    ap.add_argument("--show", type=int, default=None, help="run one input (of --only) with --debug and print it")
    args = ap.parse_args()

    seeds_dir = Path(tempfile.mkdtemp(prefix="fuzz-seeds-"))
    atexit.register(shutil.rmtree, seeds_dir, True)
    seeds = fuzzkit.make_seeds(seeds_dir)  # made once (the TensorBoard and .wandb files take seconds)
    kinds = sorted({s.kind for s in seeds if not args.only or s.kind in args.only})
    if args.show is not None:
        kind = kinds[0]
        base, data, extra = fuzzkit.input_for(seeds, kind, args.show, args.seed)
        print(f"{kind} #{args.show}: from {base.name}, {len(data):,} bytes, extra args {extra}")
        print(repr(data[:600]))
        o = fuzzkit.run_one(seeds_dir, kind, base, data, extra, debug=True)
        print(f"exit {o.code} in {o.seconds:.2f}s; problems: {fuzzkit.problems_of(o)}\n--- stderr\n{o.stderr}")
        return
    per_kind = max(1, args.inputs // len(kinds))
    print(
        f"fuzzing {len(kinds)} readers x {per_kind:,} inputs (seed {args.seed}, {args.jobs} job(s)): "
        f"{', '.join(kinds)}",
        flush=True,
    )
    t0 = time.perf_counter()
    jobs = [(j, args.jobs, per_kind, args.seed, kinds, str(seeds_dir)) for j in range(args.jobs)]
    if args.jobs == 1:
        reports = [_work(jobs[0])]
    else:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            reports = pool.map(_work, jobs)
    total = fuzzkit.Report.merge(reports)
    total.seconds = time.perf_counter() - t0
    print(total.summary())
    n = sum(total.inputs.values())
    tracebacks = sum(1 for f in total.failures if any("traceback" in p for p in f[3]))
    print(
        f"\n{n:,} inputs: {len(total.failures)} failing ({tracebacks} tracebacks/internal errors); "
        f"exit codes {dict(sorted(total.all_codes().items()))}; {total.seconds / 60:.1f} min wall"
    )
    sys.exit(1 if total.failures else 0)


if __name__ == "__main__":
    main()
