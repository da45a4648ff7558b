"""Write a large, deterministic HF Trainer console log (transformers-5 style) for the console-reader bench.

    /work/venv/bin/python bench/gen_console_log.py 1000000 /tmp/console_1m.log [--noise 1] [--seed 0]

Layout, as ``python train.py 2>&1 | tee log`` records it with transformers 5: for each of N train log
dicts (one every LOGGING_STEPS steps) some tqdm ``\\r`` redraws of the main bar, the bar clear, the dict
(every float a ``.4g`` string), and the redraw after it; every EVAL_EVERY dicts an evaluation (eval bar
redraws with ANSI cursor-up, then an eval dict); every WARN_EVERY dicts a warning with a Windows path and a
two-line traceback-style continuation; at the end the train_runtime summary. ``--noise K`` multiplies the
redraw/warning lines by K (same points, K× the noise) to show that memory follows the points, not the bytes.

`expected(i)` is the formula: the tests and the bench read values back against it, never the reverse.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path
from typing import TextIO

LOGGING_STEPS = 10
EVAL_EVERY = 50  # one eval dict per this many train dicts
WARN_EVERY = 1000
STEPS_PER_EPOCH = 2000
EVAL_BATCHES = 2


def fmt(x: float) -> str:
    return format(x, ".4g")


def train_values(i: int, rng: random.Random) -> dict[str, str]:
    """The i-th train dict (1-based) as printed. Drawn from `rng` in call order (deterministic per seed)."""
    step = i * LOGGING_STEPS
    noise = rng.random()
    loss = 2.0 * math.exp(-step / 50_000) + 0.5 + 0.05 * noise
    return {
        "loss": fmt(loss),
        "grad_norm": fmt(0.5 + 3 * noise),
        "learning_rate": fmt(2e-4 * (1 - i / (i + 1e6))),
        "entropy": fmt(2.0 + noise),
        "num_tokens": fmt(512.0 * step),
        "mean_token_accuracy": fmt(0.5 + noise / 4),
        "epoch": fmt(step / STEPS_PER_EPOCH),
    }


def eval_values(i: int) -> dict[str, str]:
    step = i * LOGGING_STEPS
    return {
        "eval_loss": fmt(1.0 + 1.0 / (1 + step / 10_000)),
        "eval_runtime": fmt(0.4523),
        "eval_samples_per_second": fmt(8.843),
        "eval_steps_per_second": fmt(2.211),
        "epoch": fmt(step / STEPS_PER_EPOCH),
    }


def expected(n: int, seed: int = 0) -> tuple[list[tuple[int, dict[str, str]]], list[tuple[int, dict[str, str]]]]:
    """(train points, eval points) as (step, printed values) for a file made with `n` and `seed`."""
    rng = random.Random(seed)
    train, evals = [], []
    for i in range(1, n + 1):
        train.append((i * LOGGING_STEPS, train_values(i, rng)))
        if i % EVAL_EVERY == 0:
            evals.append((i * LOGGING_STEPS, eval_values(i)))
    return train, evals


def _bar(n: int, total: int) -> str:
    pct = n * 100 // total
    filled = pct // 10
    return f"\r{pct:3d}%|{'█' * filled}{' ' * (10 - filled)}| {n}/{total} [00:{n % 60:02d}<01:00, 4.77it/s]"


def _dict(values: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in values.items()) + "}"


def write_log(out: TextIO, n: int, seed: int = 0, noise: int = 1) -> None:
    rng = random.Random(seed)
    total = n * LOGGING_STEPS
    clear = "\r" + " " * 40 + "\r"
    out.write(
        "C:\\peft_test\\.venv\\lib\\site-packages\\transformers\\training_args.py:1525: FutureWarning: "
        "`evaluation_strategy` is deprecated\n  warnings.warn(\n"
    )
    out.write(_bar(0, total) + "\n")
    for i in range(1, n + 1):
        step = i * LOGGING_STEPS
        parts = [_bar(step - k, total) for k in range(2 * noise - 1, -1, -1)]
        out.write("".join(parts) + clear + _dict(train_values(i, rng)) + "\n" + _bar(step, total) + "\n")
        if i % EVAL_EVERY == 0:
            ev = "".join(
                f"\r{b * 100 // EVAL_BATCHES:3d}%|{'█' * b}| {b}/{EVAL_BATCHES} [00:00<00:00, 9.1it/s]\x1b[A"
                for b in range(EVAL_BATCHES + 1)
                for _ in range(noise)
            )
            out.write(ev + clear + "\x1b[A" + _dict(eval_values(i)) + "\n" + _bar(step, total) + "\n")
        if i % WARN_EVERY == 0:
            for _ in range(noise):
                out.write(
                    "C:\\peft_test\\.venv\\lib\\site-packages\\torch\\_dynamo\\eval_frame.py:632: UserWarning: "
                    "torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly.\n"
                    "  return fn(*args, **kwargs)\n"
                )
    out.write(
        clear
        + _dict(
            {
                "train_runtime": fmt(n * 0.5),
                "train_samples_per_second": fmt(16.0),
                "train_steps_per_second": fmt(LOGGING_STEPS / 0.5),
                "train_loss": fmt(0.6),
                "epoch": fmt(total / STEPS_PER_EPOCH),
            }
        )
        + "\n"
        + _bar(total, total)
        + "\n"
    )


def generate(path: Path, n: int, seed: int = 0, noise: int = 1) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        write_log(fh, n, seed, noise)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=1_000_000, help="train log dicts (default 1,000,000)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=int, default=1, help="multiply tqdm/warning lines by this")
    args = ap.parse_args(argv)
    generate(args.out, args.n, args.seed, args.noise)
    print(f"{args.out}: {args.n} train dicts, {args.out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
