"""Analysis speed on large runs: the default rules + facts on a 100k-point run (issue 6 target: < 1 s).

    /work/venv/bin/python bench/bench_rules.py                 # 100,000 points, 5 repeats
    /work/venv/bin/python bench/bench_rules.py --points 1000000

Builds a deterministic run (train loss / lr / grad_norm every step, eval loss every 10 steps, epoch every 3
steps; noisy, with an overfitting turn) as a trainer_state.json, then times, in this process:

- ``diagnose``: the default rules + facts on the in-memory Run (fresh Run each repeat, so no cached series);
- ``read + diagnose``: the analysis proper, from the trainer_state.json on disk to the Diagnosis (the target);
- the JSON report (series decimated to <= 2000 points, as plotted), the Markdown report and the HTML report
  (inline SVG plots) rendered to bytes, each on its own, and the HTML report of a 100-point run;
- the baseline, measured in the same run: one plain Python loop over every point of the table (what any
  per-point, non-vectorised analysis pays at least once per rule).

It prints the medians, the ratio of each to the baseline, and whether the 1 s target is met.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def make_state(points: int, path: Path) -> int:
    """A trainer_state.json with about ``points`` metric points; returns the exact count."""
    rng = np.random.default_rng(0)
    per_step = 3 + 1 / 10 + 1 / 3  # loss, lr, grad_norm; eval every 10; epoch every 3 (in the train dict)
    steps = int(points / per_step)
    history = []
    count = 0
    for s in range(1, steps + 1):
        loss = 2.0 * np.exp(-s / (steps / 6)) + 0.3 + rng.normal(0, 0.05)
        entry = {
            "step": s,
            "loss": round(float(loss), 5),
            "learning_rate": 2e-4 * (1 - s / steps),
            "grad_norm": round(float(1 + rng.random()), 5),
        }
        count += 3
        if s % 3 == 0:
            entry["epoch"] = s / 1000
            count += 1
        history.append(entry)
        if s % 10 == 0:
            history.append({"step": s, "eval_loss": 1 + ((s - steps / 2) / steps) ** 2, "epoch": s / 1000})
            count += 2
    path.write_text(
        json.dumps({"global_step": steps, "log_history": history, "logging_steps": 1, "eval_steps": 10}),
        encoding="utf-8",
    )
    return count


def median_time(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from dataclasses import replace

    from lossdoctor.diagnosis import diagnose
    from lossdoctor.report import render
    from lossdoctor.rules.packs import load_rules
    from lossdoctor.sources import read_runs

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "trainer_state.json"
        n = make_state(args.points, state)
        ruleset = load_rules((), include_default=True)
        n_rules = len(ruleset.rules)
        run = read_runs(str(state))[0]
        print(
            f"run: {len(run.metrics):,} points ({n:,} written), {len(ruleset.rules)} rules, "
            f"verdict: {diagnose(run, ruleset).verdict}"
        )

        values = run.metrics["value"].tolist()

        def baseline() -> None:  # one Python pass over every point, doing the least a rule does
            best = float("inf")
            hits = 0
            for v in values:
                if v < best:
                    best = v
                elif v > best * 1.05:
                    hits += 1

        def diag_only() -> None:
            diagnose(replace(run), ruleset)  # a fresh Run: its series cache starts empty

        def analyze() -> None:
            diagnose(read_runs(str(state))[0], ruleset)

        small_state = Path(tmp) / "small" / "trainer_state.json"
        small_state.parent.mkdir()
        make_state(100, small_state)
        diag = diagnose(run, ruleset)
        small = diagnose(read_runs(str(small_state))[0], ruleset)
        base = median_time(baseline, args.repeats)
        t_diag = median_time(diag_only, args.repeats)
        t_all = median_time(analyze, args.repeats)
        t_json = median_time(lambda: render(diag, "json"), max(1, args.repeats // 2))
        t_md = median_time(lambda: render(diag, "md"), max(1, args.repeats // 2))
        t_html = median_time(lambda: render(diag, "html"), max(1, args.repeats // 2))
        t_html_small = median_time(lambda: render(small, "html"), max(1, args.repeats // 2))

    def line(what: str, t: float) -> None:
        print(f"{what:<46}{t * 1000:9.1f} ms  = {t / base:7.1f}x baseline")

    line("baseline: one Python loop over the points", base)
    line(f"diagnose ({n_rules} rules + facts, in memory)", t_diag)
    line("analysis: read trainer_state.json + diagnose", t_all)
    line("JSON report (decimated series) to bytes", t_json)
    line("Markdown report to bytes", t_md)
    line("HTML report (SVG plots) to bytes", t_html)
    line("  same, for a 100-point run", t_html_small)
    print(f"target: analysis of {args.points:,} points < 1 s: {'met' if t_all < 1.0 else 'MISSED'} ({t_all:.2f} s)")


if __name__ == "__main__":
    main()
