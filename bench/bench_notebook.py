"""Benchmark: reading a large notebook (embedded images) with lossdoctor's notebook reader vs a plain
``json.load`` of the same file. Each is timed in its own child process; peak RSS is the child's ru_maxrss.

    .venv/bin/python bench/bench_notebook.py              # ~50 MB notebook
    .venv/bin/python bench/bench_notebook.py --mb 200

The notebook is generated (deterministic): a Colab-like fine-tuning notebook whose plotting cells each hold a
~600 KB base64 PNG (random bytes, so nothing compresses), a few stream cells of tqdm/warning noise, and one
training cell with the HF Trainer's progress table (300 rows). Printed: size, wall time and peak RSS of both
children, an import-only floor (python + lossdoctor's reader imports, nothing read), and the ratios.
Targets (issue 19): under 1 s and under 200 MB.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
if mode != "json":
    from lossdoctor.sources import read_runs, registry
    registry()
t0 = time.perf_counter()
if mode == "json":
    import json
    with open(path, encoding="utf-8") as fh:
        nb = json.load(fh)
    n = len(nb["cells"])
elif mode == "lossdoctor":
    (run,) = read_runs(path)
    n = run.n_points
else:
    n = 0
dt = time.perf_counter() - t0
print(f"{dt:.4f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} {n}")
"""


def _table(rows: int) -> str:
    head = "".join(f"      <th>{c}</th>\n" for c in ("Step", "Training Loss", "Validation Loss", "Accuracy"))
    body = []
    for i in range(1, rows + 1):
        s = i * 10
        vals = (f"{2.5 * math.exp(-s / 900) + 0.3:.6f}", f"{0.6 + 1e-7 * (s - 1500) ** 2:.6f}", f"{0.5 + s / 9000:.6f}")
        body.append(
            "    <tr>\n" + f"      <td>{s}</td>\n" + "".join(f"      <td>{v}</td>\n" for v in vals) + "    </tr>\n"
        )
    return (
        f"<div><progress value='{rows * 10}' max='{rows * 10}'></progress> [{rows * 10}/{rows * 10} 1:02:03, "
        f'Epoch 3/3]</div><table border="1" class="dataframe">\n  <thead>\n <tr style="text-align: left;">'
        f"\n{head}    </tr>\n  </thead>\n  <tbody>\n{''.join(body)}  </tbody>\n</table><p>"
    )


def make_notebook(path: Path, megabytes: float, seed: int = 0) -> int:
    rng = random.Random(seed)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + rng.randbytes(450_000)).decode("ascii")
    cells: list[dict] = []

    def code(outputs: list[dict], source: str) -> None:
        cells.append(
            {
                "cell_type": "code",
                "execution_count": len(cells) + 1,
                "id": f"c{len(cells)}",
                "metadata": {},
                "outputs": outputs,
                "source": source.splitlines(True),
            }
        )

    code(
        [
            {
                "output_type": "stream",
                "name": "stderr",
                "text": [f"\rMap: {i}%|{'#' * (i // 10)}| {i}/100 [00:0{i % 10}<00:00]" for i in range(0, 101, 5)],
            }
        ],
        "ds = ds.map(tokenize)",
    )
    code(
        [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {
                    "text/html": _table(300).splitlines(True),
                    "text/plain": ["<IPython.core.display.HTML object>"],
                },
            },
            {
                "output_type": "execute_result",
                "execution_count": 2,
                "metadata": {},
                "data": {"text/plain": ["TrainOutput(global_step=3000, training_loss=0.61)"]},
            },
        ],
        "trainer.train()",
    )
    size = 0
    while size < megabytes * 1e6:
        code(
            [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {"image/png": png, "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
                },
                {"output_type": "stream", "name": "stdout", "text": ["plotted\n"]},
            ],
            "plt.plot(xs, ys); plt.show()",
        )
        size += len(png)
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}}, "cells": cells}
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path.stat().st_size


def child(mode: str, path: Path) -> tuple[float, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    t, rss, n = out.stdout.split()
    return float(t), float(rss), int(n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.ipynb"
        size = make_notebook(path, args.mb)
        best = {}
        for mode in ("json", "lossdoctor", "floor"):
            runs = [child(mode, path) for _ in range(args.repeat)]
            best[mode] = min(runs)
        jt, jr, _ = best["json"]
        lt, lr, points = best["lossdoctor"]
        _, fr, _ = best["floor"]
    print(f"notebook {size / 1e6:.1f} MB ({points} points read), best of {args.repeat}:")
    print(f"  json.load           {jt:.3f} s   peak RSS {jr:.0f} MB")
    print(f"  lossdoctor reader   {lt:.3f} s   peak RSS {lr:.0f} MB   (imports alone: {fr:.0f} MB)")
    print(
        f"  ratio time {lt / jt:.2f}x, RSS {lr / jr:.2f}x; read adds {lr - fr:.0f} MB over its imports "
        f"(json.load's file + parsed tree: {jr:.0f} MB)"
    )
    print(f"  targets: < 1 s {'met' if lt < 1 else 'MISSED'}, < 200 MB {'met' if lr < 200 else 'MISSED'}")


if __name__ == "__main__":
    main()
