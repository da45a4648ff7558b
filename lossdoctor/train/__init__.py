"""`lossdoctor train`: LoRA fine-tuning with trl's SFTTrainer that leaves an analysable run directory.

``run_training(TrainConfig(...)) -> Path`` is the Python entry point (tests of other modules use it to make
real runs). Importing this package does not import torch; the recipe imports the stack when it runs.
"""

from __future__ import annotations

from pathlib import Path

from lossdoctor.train.config import TrainConfig

__all__ = ["TrainConfig", "run_training"]


def run_training(config: TrainConfig) -> Path:
    """Train (see lossdoctor.train.recipe.train) and return the run directory."""
    from lossdoctor.train.recipe import run_training as _run

    return _run(config)
