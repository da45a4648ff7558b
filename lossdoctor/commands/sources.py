"""`lossdoctor sources`: every reader the registry found, with what it reads and an example;
`lossdoctor sources --explain FILE`: how one file is read (which reader, which layout, what was taken as what).

Built from the registry, so a new reader file shows up here without touching this command.
"""

from __future__ import annotations

import json
from typing import Any

import click

from lossdoctor.commands._options import metric_option, source_kind_option


@click.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
@click.option(
    "--explain",
    "explain",
    default=None,
    metavar="SOURCE",
    help="Show how SOURCE is read: the readers that claim it, the step axis, the notes, and which "
    "series was taken as train loss, eval loss, lr ... (override with analyze --metric).",
)
@source_kind_option("With --explain: force a reader.")
@metric_option("With --explain: the same overrides as analyze --metric.")
def sources_command(as_json: bool, explain: str | None, source_kind: str | None, metric_roles: tuple[str, ...]) -> None:
    """List the log and metric formats lossdoctor reads (use a KIND with --source-kind)."""
    from lossdoctor.sources import registry

    if explain:
        _explain(explain, source_kind, metric_roles, as_json)
        return
    rows = [{"kind": kind, "description": src.description, "example": src.example} for kind, src in registry().items()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max((len(r["kind"]) for r in rows), default=0)
    for row in rows:
        click.echo(f"{row['kind']:<{width}}  {row['description']}")
        click.echo(f"{'':<{width}}  e.g. {row['example']}")
    click.echo("\nAuto-detected from the file or directory; force one with --source-kind KIND.")


def explain_rows(location: str, source_kind: str | None = None, metric_roles: tuple[str, ...] = ()) -> dict[str, Any]:
    """What `--explain` prints, as data (pure apart from reading the source)."""
    from lossdoctor.metrics.roles import describe, parse_overrides
    from lossdoctor.sources import ReadOptions, make_target, read_runs, registry

    target = make_target(location)
    claims: list[dict[str, Any]] = []
    for kind, source in registry().items():
        try:
            score = float(source.sniff(target))
        except Exception:  # noqa: BLE001 - same tolerance as detection
            score = 0.0
        if score > 0:
            claims.append({"kind": kind, "confidence": round(score, 3)})
    claims.sort(key=lambda c: (-float(c["confidence"]), str(c["kind"])))
    runs = read_runs(location, ReadOptions(source_kind=source_kind, metric_roles=parse_overrides(metric_roles)))
    out_runs = []
    for run in runs:
        frame = run.metrics
        counts = sorted(((m, r), n) for r, m, n in frame.pairs())
        out_runs.append(
            {
                "name": run.name,
                "kind": run.provenance.kind,
                "location": run.provenance.location,
                "step_source": run.provenance.step_source,
                "points": run.n_points,
                "notes": list(run.provenance.notes),
                "roles": [{"role": a.role, "metric": a.canonical, "from": list(a.raw_names)} for a in describe(frame)],
                "series": [{"metric": str(m), "raw_name": str(r), "points": int(n)} for (m, r), n in counts],
            }
        )
    return {"source": location, "claimed_by": claims, "runs": out_runs}


def _explain(location: str, source_kind: str | None, metric_roles: tuple[str, ...], as_json: bool) -> None:
    from lossdoctor.report.formats.terminal import clean as safe_text

    data = explain_rows(location, source_kind, metric_roles)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    claims = ", ".join(f"{c['kind']} ({c['confidence']})" for c in data["claimed_by"])
    click.echo(f"{safe_text(location)}: claimed by {claims or 'no reader'}")
    for run in data["runs"]:
        click.echo(
            f"run {safe_text(run['name'])}: read by {run['kind']}, {run['points']} points, "
            f"step axis: {run['step_source']}"
        )
        for note in run["notes"]:
            click.echo(f"  note: {safe_text(note)}")
        click.echo("  roles (override with --metric ROLE=NAME):")
        for role in run["roles"]:
            names = ", ".join(safe_text(repr(r)) for r in role["from"])
            click.echo(f"    {role['role']:<12} {role['metric']:<24} <- {names}")
        click.echo("  series (canonical <- as logged: points):")
        for row in run["series"]:
            click.echo(f"    {safe_text(row['metric'])} <- {safe_text(repr(row['raw_name']))}: {row['points']}")


COMMAND = sources_command
