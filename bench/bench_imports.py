"""Import-time budget of `lossdoctor analyze --format json` on a small trainer_state.json (issue 13).

    .venv/bin/python bench/bench_imports.py [--repeats 5]

Runs ``python -X importtime -m lossdoctor analyze ... --format json`` in fresh processes and sums the import
time per top-level package (the self times ``-X importtime`` prints), next to the same interpreter's
``python -c "import numpy"`` measured in the same run: numpy is the one library the analysis core needs, so the
budget is stated relative to it (absolute times swing with the machine's load). Prints the medians and whether
the budget holds. A benchmark, not a test: tests/test_imports.py checks *which* modules load (behaviour).

Budget: all imports of a JSON analyze <= 2x numpy's own import, and none of pandas, pyarrow, wandb, torch,
matplotlib, jinja2 (the HTML template engine), yaml (the package's own data files come from their snapshot) loaded
at all.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_X_NUMPY = 2.0
NEVER = ("pandas", "pyarrow", "wandb", "torch", "matplotlib", "jinja2", "yaml")
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def per_package(stderr: str) -> Counter:
    total: Counter = Counter()
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m:
            total[m.group(4).split(".")[0]] += int(m.group(1))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_rules import make_state

    # byte-code as an installed package has it (pip compiles on install; PYTHONDONTWRITEBYTECODE or a fresh
    # checkout would otherwise time the compiler)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "lossdoctor")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "run" / "trainer_state.json"
        state.parent.mkdir()
        make_state(int(1000 * (3 + 1 / 10 + 1 / 3)), state)
        runs: list[Counter] = []
        numpy_us: list[int] = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [
                    sys.executable,
                    "-X",
                    "importtime",
                    "-m",
                    "lossdoctor",
                    "analyze",
                    str(state),
                    "--format",
                    "json",
                    "--out",
                    str(Path(tmp) / "out"),
                    "-q",
                ],
                capture_output=True,
                text=True,
                cwd=tmp,
            )
            runs.append(per_package(out.stderr))
            np_out = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", "import numpy"], capture_output=True, text=True, cwd=tmp
            )
            numpy_us.append(sum(per_package(np_out.stderr).values()))
    totals = [sum(r.values()) for r in runs]
    total, numpy_total = statistics.median(totals), statistics.median(numpy_us)
    packages = sorted({p for r in runs for p in r}, key=lambda p: -statistics.median(r.get(p, 0) for r in runs))
    print(
        f"analyze --format json, median of {args.repeats}: imports {total / 1e3:.0f} ms "
        f"({total / numpy_total:.2f}x `import numpy` = {numpy_total / 1e3:.0f} ms in the same run)"
    )
    for p in packages[:12]:
        print(f"  {p:28} {statistics.median(r.get(p, 0) for r in runs) / 1e3:7.1f} ms")
    loaded = {p for r in runs for p in r}
    heavy = [p for p in NEVER if p in loaded]
    ok = total <= BUDGET_X_NUMPY * numpy_total and not heavy
    print(
        json.dumps(
            {
                "imports_ms": round(total / 1e3, 1),
                "numpy_ms": round(numpy_total / 1e3, 1),
                "x_numpy": round(total / numpy_total, 2),
                "budget_x_numpy": BUDGET_X_NUMPY,
                "heavy_loaded": heavy,
                "within_budget": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
