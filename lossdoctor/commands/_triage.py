"""`lossdoctor analyze ENTITY/PROJECT` (or a directory of runs): the triage path of the analyze command.

Reads the runs in parallel (``lossdoctor.triage.fetch_all``), diagnoses and writes each run's report as
results arrive (``lossdoctor.triage.Judges``: in this thread, or in worker processes for a large W&B triage),
prints progress on stderr, then one summary table sorted worst first (stdout, and ``summary.md`` /
``summary.json`` in the report directory). Every run ends as one row: fetched, cached, read, or an error line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from lossdoctor.commands.analyze import run_slug
from lossdoctor.exitcodes import EXIT_ERROR, EXIT_OK, gate

#: per-run report formats in triage unless --format says otherwise (no plots: 200 runs render in seconds)
TRIAGE_FORMATS = ("json",)


def run_triage(
    items: list[Any],
    title: str,
    ruleset: Any,
    options: Any,
    formats: tuple[str, ...] | None,
    out_dir: str | None,
    fail_on: str,
    jobs: int,
    quiet: bool,
) -> int:
    from lossdoctor.report.formats.json import jsonable
    from lossdoctor.report.formats.terminal import clean
    from lossdoctor.report.write import write_files
    from lossdoctor.triage import Judged, Judges, fetch_all, row_for, sort_rows, summary_markdown, summary_text

    wanted = formats or TRIAGE_FORMATS
    base = Path(out_dir) if out_dir else Path("reports") / ("triage-" + run_slug(title))
    rows = []
    judged: list[Judged] = []
    used: dict[str, int] = {}
    started = time.monotonic()
    total = len(items)
    click.echo(f"lossdoctor: triage of {total} run(s) from {title}, {jobs} at a time", err=True)
    # judged in worker processes when many runs come over the network (starting while the first are read): the
    # reading process then mostly waits, and judging in it would take the GIL turns its reads need; local
    # runs are read with this process's CPU, so there the workers would only add their start
    judges = Judges(ruleset, wanted, base, sum(1 for item in items if item.remote))

    def collect(wait: bool = False) -> None:
        for fetched, j in judges.take(wait):
            rows.append(row_for(fetched, j))
            judged.append(j)

    try:
        for k, fetched in enumerate(fetch_all(items, options, jobs), 1):
            if not fetched.runs:
                rows.append(row_for(fetched, None))
                click.echo(f"[{k}/{total}] {fetched.item.label}: error: {clean(fetched.error)}", err=True)
                continue
            for run in fetched.runs:
                label = fetched.item.label
                slug = run_slug(label if len(fetched.runs) == 1 else f"{label}-{run.name}")
                used[slug] = used.get(slug, 0) + 1
                if used[slug] > 1:
                    slug = f"{slug}-{used[slug]}"
                judges.submit(fetched, run, base / slug)
            collect()
            click.echo(f"[{k}/{total}] {fetched.item.label}: {fetched.status} ({fetched.seconds:.1f} s)", err=True)
        collect(wait=True)
    finally:
        judges.close()
    crashed = [c for j in judged for c in j.crashed_checks]
    rows = sort_rows(rows)
    doc = {
        "schema": "lossdoctor.triage",
        "schema_version": 1,
        "source": title,
        "runs": [
            {
                "run": r.label,
                "name": r.name,
                "status": r.status,
                "level": r.level,
                "verdict": r.verdict,
                "top_finding": r.top_finding,
                "best_eval": r.best_eval,
                "onset": r.onset,
                "report": r.report,
            }
            for r in rows
        ],
    }
    write_files(
        base,
        {
            "summary.md": summary_markdown(rows, f"lossdoctor triage: {title}").encode("utf-8"),
            "summary.json": (json.dumps(jsonable(doc), indent=1, sort_keys=True) + "\n").encode("utf-8"),
        },
    )
    if quiet:
        for r in rows:
            click.echo(f"{clean(r.label)}: {clean(r.verdict)}")
    else:
        click.echo(summary_text(rows, clean))
        click.echo(f"  summary: {base / 'summary.md'}")
    errors = sum(1 for r in rows if r.status == "error")
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    click.echo(
        f"lossdoctor: {len(rows)} run(s) in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())),
        err=True,
    )
    if crashed:
        for item in crashed:
            click.echo(f"lossdoctor: error: rule check crashed: {item}", err=True)
    if crashed or errors:
        return EXIT_ERROR
    severities = [sev for j in judged for sev in j.severities]
    return gate(severities, fail_on) if severities else EXIT_OK
