"""The report path of a small run (issue 13 targets): `lossdoctor analyze` on a 1,000-step trainer_state.json,
end to end in a fresh process, with `--format json` (target <= 0.25 s) and `--format html,md` (<= 0.8 s).

    /work/venv/bin/python bench/bench_report_path.py                       # this checkout
    /work/venv/bin/python bench/bench_report_path.py --compare /work/main  # and another checkout, interleaved

Each command runs ``--repeats`` times, interleaved with the baseline measured in the same run: a fresh
interpreter that only starts (``python -c pass``), i.e. what any Python CLI pays before its first import. It
prints the median wall times, the ratio to that baseline, the cost of the HTML + Markdown reports on top of
the JSON one, and from ``python -X importtime`` the modules that cost the most to import (and whether
matplotlib was imported at all). ``--compare DIR`` times the same commands with another checkout of
lossdoctor (e.g. before a change) in a throwaway venv that sees this venv's packages but imports lossdoctor
from DIR (PYTHONPATH would not do: an editable install's import hook wins over it), interleaved with these,
so the two are measured under the same load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_state(path: Path, steps: int = 1000) -> None:
    hist = []
    for s in range(1, steps + 1):
        hist.append(
            {
                "step": s,
                "epoch": s / 250,
                "loss": 3 * math.exp(-s / 300) + 0.5 + 0.05 * math.sin(s),
                "learning_rate": 2e-4 * (1 - s / steps),
                "grad_norm": 1 + 0.3 * math.cos(s / 7),
            }
        )
        if s % 50 == 0:
            hist.append({"step": s, "epoch": s / 250, "eval_loss": 1.2 + 4e-7 * (s - 400) ** 2, "eval_runtime": 1.0})
    path.write_text(json.dumps({"global_step": steps, "max_steps": steps, "log_history": hist}, indent=2))


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    # cwd: a neutral directory (python -m puts the cwd first on sys.path: a checkout there would win)
    subprocess.run(
        cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir()
    )
    return time.perf_counter() - start


def import_costs(cmd: list[str], env: dict[str, str], top: int = 6) -> tuple[list[tuple[float, str]], bool, float]:
    """(the costliest top-level imports, whether matplotlib was imported, the sum of top-level imports)."""
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    roots: list[tuple[float, str]] = []
    names: set[str] = set()
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2][1:]  # one space, then two more per nesting level
        names.add(name.strip())
        if not name.startswith(" "):
            roots.append((int(parts[1]) / 1e6, name))
    return sorted(roots, reverse=True)[:top], "matplotlib" in names, sum(t for t, _ in roots)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--compare", metavar="DIR", help="another lossdoctor checkout to time alongside (PYTHONPATH)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "run" / "trainer_state.json"
        state.parent.mkdir()
        make_state(state)
        env = dict(os.environ, NO_COLOR="1")
        pythons = {"this": sys.executable}
        if args.compare:
            import sysconfig

            venv = Path(tmp) / "compare-venv"
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            site = next((venv / "lib").glob("python*/site-packages"))
            (site / "compare.pth").write_text(f"{Path(args.compare).resolve()}\n{sysconfig.get_paths()['purelib']}\n")
            pythons["compare"] = str(venv / "bin" / "python")
        variants = {v: env for v in pythons}

        def analyze(fmt: str, v: str = "this") -> list[str]:
            return [
                pythons[v],
                "-m",
                "lossdoctor",
                "analyze",
                str(state),
                "--format",
                fmt,
                "--out",
                str(Path(tmp) / f"out-{v}"),
                "--fail-on",
                "never",
                "-q",
            ]

        commands = {
            "python -c pass (baseline)": (lambda v: [sys.executable, "-c", "pass"], ("this",)),
            "analyze --format json": (lambda v: analyze("json", v), tuple(variants)),
            "analyze --format html,md": (lambda v: analyze("html,md", v), tuple(variants)),
        }
        times: dict[tuple[str, str], list[float]] = {}
        for make, which in commands.values():  # warm the file cache once
            for v in which:
                wall(make(v), variants[v])
        for _ in range(args.repeats):  # interleaved
            for label, (make, which) in commands.items():
                for v in which:
                    times.setdefault((label, v), []).append(wall(make(v), variants[v]))
        base = statistics.median(times[("python -c pass (baseline)", "this")])
        print(f"1,000-step trainer_state.json, median of {args.repeats}, interleaved")
        for (label, v), ts in times.items():
            med = statistics.median(ts)
            tag = "" if v == "this" else f" [{args.compare}]"
            print(f"  {label + tag:<58}{med:7.3f} s  = {med / base:5.1f}x baseline")
        for v in variants:
            js = statistics.median(times[("analyze --format json", v)])
            hm = statistics.median(times[("analyze --format html,md", v)])
            tag = "" if v == "this" else f" [{args.compare}]"
            print(
                f"  html+md on top of json{tag}: {hm - js:+.3f} s; targets json <= 0.25 s: "
                f"{'met' if js <= 0.25 else 'missed'}, html+md <= 0.8 s: {'met' if hm <= 0.8 else 'missed'}"
            )
        for v, venv in variants.items():
            roots, mpl, total = import_costs(analyze("html,md", v), venv)
            tag = "" if v == "this" else f" [{args.compare}]"
            print(
                f"  -X importtime, analyze --format html,md{tag}: {total:.3f} s of top-level imports; "
                f"matplotlib imported: {'yes' if mpl else 'no'}"
            )
            for t, name in roots:
                print(f"      {t:6.3f} s  {name}")


if __name__ == "__main__":
    main()
