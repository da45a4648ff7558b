"""Write the old-wandb fixtures in this directory with the real, old wandb packages (not the test extra's).

How they were made (Python 3.11; wandb 0.9 needs the collections ABC aliases that Python 3.10 removed, so
that venv gets a sitecustomize.py restoring them: collections.Iterable = collections.abc.Iterable, ...):

    python3 -m venv /tmp/w09 && /tmp/w09/bin/pip install wandb==0.9.7 protobuf==3.20.3
    cd OUT && WANDB_MODE=dryrun /tmp/w09/bin/python make_old_runs.py 0.9      # wandb/dryrun-*/
    python3 -m venv /tmp/w10 && /tmp/w10/bin/pip install wandb==0.10.33 protobuf==3.20.3
    cd OUT && WANDB_MODE=offline /tmp/w10/bin/python make_old_runs.py 0.10    # wandb/offline-run-*/ (.wandb)

Values follow loss(i) below so the tests compute what they expect. The names are the ones the issue met in
old runs: `training_loss` / `validation_loss` (W&B's OpenAI fine-tune sync), `epoch_loss`, `train/lr(1e-3)`.
"""
from __future__ import annotations

import math
import sys

N = 12            # log calls; the last two are a 10x blow-up and a NaN


def loss(i: int) -> float:
    if i == N - 2:
        return 10 * 3.0 * math.exp(-(i - 1) / 5)
    if i == N - 1:
        return float("nan")
    return 3.0 * math.exp(-i / 5)


def val_loss(i: int) -> float:
    return 2.0 + 0.01 * i


def main(version: str) -> None:
    import wandb

    train_key = "training_loss" if version == "0.9" else "epoch_loss"
    run = wandb.init(project="old-wandb", config={"lr": 0.001, "epochs": 3, "optimizer": {"name": "adam"}}, dir=".")
    for i in range(N):
        row = {train_key: loss(i), "train/lr(1e-3)": 1.0 - i / 20}
        if i % 3 == 0:
            row["validation_loss"] = val_loss(i)
        wandb.log(row)
    run.finish() if hasattr(run, "finish") else wandb.join()


if __name__ == "__main__":
    main(sys.argv[1])
