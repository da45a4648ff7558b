"""The fuzz budget of the normal test run: 200 seeded mutations of each file reader's fixtures through
``cli.main`` (tests/fuzzkit.py), two worker processes. Every input must keep the CLI contract: exit 0/1/2, no
traceback or internal error, exit 1 only with a finding, one stderr line on exit 2, no crashed rule check.
The long run is ``bench/fuzz_readers.py --inputs 100000``; a failure here is replayed with
``bench/fuzz_readers.py --seed 20260 --only KIND --show INDEX``."""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import fuzzkit  # noqa: E402

PER_READER = 200
SEED = 20260
JOBS = 2


def _job(args: tuple[int, str]) -> fuzzkit.Report:
    job, seeds_dir = args
    seeds = fuzzkit.make_seeds(Path(seeds_dir))
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        # every 100th input also renders the Markdown report with its plots
        return fuzzkit.fuzz(Path(tmp), PER_READER, seed=SEED, seeds=seeds, job=job, jobs=JOBS, render_every=100)


def test_fuzzed_fixtures_keep_the_cli_contract(tmp_path: Path) -> None:
    seeds = fuzzkit.make_seeds(tmp_path)  # the TensorBoard and .wandb seeds are made once, here
    kinds = {s.kind for s in seeds}
    assert {
        "csv",
        "hf-console",
        "jsonl",
        "keyvalue-log",
        "nanogpt-log",
        "torchtune-log",
        "trainer-state",
        "user-format",
        "wandb-console",
    } <= kinds
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(JOBS) as pool:
        reports = pool.map(_job, [(j, str(tmp_path)) for j in range(JOBS)])
    report = fuzzkit.Report.merge(reports)
    report.seconds = time.perf_counter() - t0
    print("\n" + report.summary())
    assert all(n == PER_READER for n in report.inputs.values()), report.inputs
    assert not report.failures, report.summary()
    # the mutations reach the readers: every reader saw inputs it read (0/1) and inputs it refused (2)
    assert all(report.codes[k].get(2, 0) < PER_READER for k in report.codes), report.codes
