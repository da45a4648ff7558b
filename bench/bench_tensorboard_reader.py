"""Benchmark: lossdoctor's TensorBoard reader vs tensorboard's EventFileLoader (+ scalar decoding) on the
same event file. Prints wall times and the ratio (ours / baseline) measured in the same run.

    /work/venv/bin/python bench/bench_tensorboard_reader.py [N_STEPS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    from torch.utils.tensorboard import SummaryWriter

    from lossdoctor.sources import read_runs

    with tempfile.TemporaryDirectory() as tmp:
        writer = SummaryWriter(log_dir=tmp)
        for step in range(n):
            writer.add_scalar("train/loss", 2.0 / (1 + step), step)
            writer.add_scalar("train/learning_rate", 1e-4, step)
            writer.add_scalar("eval/loss", 1.5, step, new_style=True)
        writer.close()
        (path,) = Path(tmp).glob("events.out.tfevents.*")

        t0 = time.perf_counter()
        (run,) = read_runs(str(path))
        ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        from tensorboard.util import tensor_util

        count = 0
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.HasField("tensor"):
                    float(tensor_util.make_ndarray(value.tensor))
                    count += 1
        base = time.perf_counter() - t0
    print(
        f"{run.n_points} scalars: lossdoctor {ours:.3f}s, EventFileLoader {base:.3f}s ({count} scalars), "
        f"ratio {ours / base:.2f}"
    )


if __name__ == "__main__":
    main()
