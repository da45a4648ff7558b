"""Overhead of LossDoctorCallback: the overfit example trained with and without it, in one process.

    HF_HUB_OFFLINE=1 /work/venv/bin/python bench/bench_callback.py [--repeats 3]

Prints the mean step time of each variant (steps that contain an evaluation excluded, as eval time is large
and noisy) and the overhead in percent (target: < 3 %), then the whole train() time of each, evals included
(the callback always judges eval logs, so this is the figure that shows that cost).
Variants alternate (A B A B ...) so drift in a shared machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


RUNTIME: dict[bool, list[float]] = {False: [], True: []}


def step_times(with_callback: bool, work: Path) -> list[float]:
    from transformers import TrainerCallback

    from lossdoctor.integrations import LossDoctorCallback
    from lossdoctor.train.config import build_config
    from lossdoctor.train.recipe import _build_trainer, check_all

    class Clock(TrainerCallback):
        """Time between consecutive step starts; intervals that contain an evaluation are dropped."""

        def __init__(self) -> None:
            self.last: float | None = None
            self.evaluated = False
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            now = time.perf_counter()
            if self.last is not None and not self.evaluated:
                self.times.append(now - self.last)
            self.last, self.evaluated = now, False

        def on_evaluate(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            self.evaluated = True

    out = Path(tempfile.mkdtemp(dir=work))
    config = build_config(
        str(ROOT / "examples" / "train_overfit.yaml"),
        {"output_dir": str(out / "run"), "wandb": "off", "threads": 1, "save_steps": 10_000},
    )
    trainer, _ = _build_trainer(config, check_all(config), out / "run")
    clock = Clock()
    trainer.add_callback(clock)
    if with_callback:
        trainer.add_callback(LossDoctorCallback(stop_on="never", print_fn=lambda s: None))
    t0 = time.perf_counter()
    trainer.train()
    RUNTIME[with_callback].append(time.perf_counter() - t0)
    return clock.times[5:]  # skip warm-up steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()
    results: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        step_times(False, Path(tmp))  # warm-up run (imports, allocator)
        RUNTIME[False].clear()
        for _ in range(opts.repeats):
            for variant in (False, True):
                results[variant].extend(step_times(variant, Path(tmp)))
    base = statistics.fmean(results[False])
    cb = statistics.fmean(results[True])
    print(f"steps timed: {len(results[False])} without, {len(results[True])} with the callback")
    print(f"mean step time without callback: {base * 1000:.2f} ms")
    print(f"mean step time with callback:    {cb * 1000:.2f} ms")
    print(f"overhead: {(cb / base - 1) * 100:+.1f} % (target < 3 %)")
    total_base, total_cb = statistics.fmean(RUNTIME[False]), statistics.fmean(RUNTIME[True])
    print(
        f"whole train() incl. evals: {total_base:.2f} s without, {total_cb:.2f} s with "
        f"({(total_cb / total_base - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    main()
