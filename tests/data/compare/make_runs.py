"""Make the compare fixtures by real tiny training (`lossdoctor train`, CPU, seconds each).

    /work/venv/bin/python tests/data/compare/make_runs.py            # rewrites tests/data/compare/<name>/

Three runs of examples/train_overfit.yaml (tiny Qwen2 + LoRA on 32 rows, seed 42), differing in one flag:

- ``overfit``: as configured (12 epochs, lr 0.008): eval loss turns up after step 24-48 and stays up;
- ``fixed``: the fix, ``--epochs 3``: stops before the turn;
- ``overfit-slow``: ``--lr 0.003``: still overfits, later (its onset moves from step 24 to 48).

Kept per run: ``trainer_state.json`` (what the trainer-state reader reads) and ``run.json`` (the flags; the
reader takes the config from it, e.g. max_grad_norm). Absolute paths in run.json are replaced by
``<output_dir>`` / the repository-relative data path.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = {"overfit": [], "fixed": ["--epochs", "3"], "overfit-slow": ["--lr", "0.003"]}


def make(name: str, extra: list[str], work: Path, dest: Path) -> None:
    out = work / name
    cmd = [sys.executable, "-m", "lossdoctor", "train", "--config", str(ROOT / "examples" / "train_overfit.yaml"),
           "--output-dir", str(out), "--overwrite", "--wandb", "off", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "trainer_state.json", dest / "trainer_state.json")
    text = (out / "run.json").read_text(encoding="utf-8")
    text = text.replace(json.dumps(str(out))[1:-1], "<output_dir>").replace(json.dumps(str(ROOT))[1:-1] + "/", "")
    (dest / "run.json").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    target = Path(argv[0]) if argv else HERE
    with tempfile.TemporaryDirectory(prefix="compare-runs-") as tmp:
        for name, extra in RUNS.items():
            make(name, extra, Path(tmp), target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
