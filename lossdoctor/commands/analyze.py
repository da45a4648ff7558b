"""`lossdoctor analyze SOURCE...`: read → diagnose → report → exit code by severity."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from lossdoctor.errors import UsageError, doing
from lossdoctor.exitcodes import EXIT_ERROR, EXIT_OK, FAIL_ON_CHOICES, gate
from lossdoctor.safetext import visible

DEFAULT_FORMATS = "html,md"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def run_slug(name: str) -> str:
    slug = _SLUG.sub("-", name).strip("-.") or "run"
    return slug[:80]


def parse_formats(text: str) -> tuple[str, ...]:
    from lossdoctor.report import available_formats

    wanted = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    known = available_formats()
    bad = [f for f in wanted if f not in known]
    if bad or not wanted:
        raise UsageError(f"--format: unknown format(s) {', '.join(bad) or '(none)'}; expected a comma-separated "
                         f"list of {', '.join(known)}")
    return wanted


@click.command("analyze")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--rules", "rule_files", multiple=True, metavar="FILE",
              help="Extra rule file (repeatable); may extend/override the default pack.")
@click.option("--no-default-rules", is_flag=True, help="Use only the --rules files.")
@click.option("--format", "formats", default=DEFAULT_FORMATS, show_default=True,
              help="Comma-separated report formats: html, md, json.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report directory [default: reports/<run-name>/].")
@click.option("--fail-on", type=click.Choice(FAIL_ON_CHOICES), default="error", show_default=True,
              help="Exit 1 when a finding at or above this severity fires.")
@click.option("--source-kind", default=None, metavar="KIND", help="Skip detection (see `lossdoctor sources`).")
@click.option("--log-format", type=click.Path(dir_okay=False), default=None,
              help="YAML line-format file for a custom trainer log.")
@click.option("--all", "all_runs", is_flag=True, help="Every run under a wandb/ directory, not only the latest.")
@click.option("--refresh", is_flag=True, help="Refetch a W&B run even if it is cached.")
@click.option("--offline", is_flag=True, help="Never touch the network (W&B runs from the cache only).")
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Total time budget in seconds for network reads, retries included.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line per run.")
@click.option("--color/--no-color", default=None, help="Colour the terminal summary [default: if a TTY].")
def analyze_command(sources: tuple[str, ...], rule_files: tuple[str, ...], no_default_rules: bool, formats: str,
                    out_dir: str | None, fail_on: str, source_kind: str | None, log_format: str | None,
                    all_runs: bool, refresh: bool, offline: bool, timeout: float, quiet: bool,
                    color: bool | None) -> int:
    """Diagnose one or more runs: a log file, a trainer_state.json, a run/output dir, a wandb run dir,
    or a W&B run URL.

    \b
    Exit codes: 0 nothing at or above --fail-on fired; 1 something did; 2 bad input or usage.
    """
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.report import render_many, render_terminal
    from lossdoctor.report.write import write_files
    from lossdoctor.rules.packs import load_rules
    from lossdoctor.sources import read_runs
    from lossdoctor.sources.base import ReadOptions

    wanted = parse_formats(formats)
    if no_default_rules and not rule_files:
        raise UsageError("--no-default-rules needs at least one --rules FILE")
    ruleset = load_rules(rule_files, include_default=not no_default_rules)
    if log_format and not source_kind:
        source_kind = "user-format"
    options = ReadOptions(source_kind=source_kind, all_runs=all_runs, refresh=refresh, offline=offline,
                          timeout=timeout, log_format=log_format, progress=sys.stderr.isatty())
    runs = []
    for location in sources:
        with doing("reading", location):
            runs.extend(read_runs(location, options))
    diagnoses = []
    for run in runs:
        with doing("diagnosing", run.provenance.location):
            diagnoses.append(diagnose(run, ruleset))

    # every report is rendered before anything is written (each file is written atomically)
    base = Path(out_dir) if out_dir else None
    names_seen: dict[str, int] = {}
    targets = []
    for diag in diagnoses:
        slug = run_slug(diag.run.name)
        names_seen[slug] = names_seen.get(slug, 0) + 1
        if names_seen[slug] > 1:
            slug = f"{slug}-{names_seen[slug]}"
        if base is None:
            target = Path("reports") / slug
        else:
            target = base if len(diagnoses) == 1 else base / slug
        targets.append(target)
    use_color = sys.stdout.isatty() if color is None else color
    rendered = []
    for diag in diagnoses:
        with doing("rendering the report of", diag.run.provenance.location):
            rendered.append(render_many(diag, wanted))
    written_all = []
    for (files, primaries), target in zip(rendered, targets):
        write_files(target, files)
        written_all.append([target / p for p in primaries])
    for diag, written in zip(diagnoses, written_all):
        for note in diag.run.provenance.notes:
            click.echo(visible(f"lossdoctor: note: {diag.run.name}: {note}"), err=True)
        if quiet:
            click.echo(visible(f"{diag.run.name}: {diag.verdict}"))
        else:
            click.echo(render_terminal(diag, use_color))
            for path in written:
                click.echo(visible(f"  report: {path}"))
    crashed = [c for d in diagnoses for c in d.crashed_checks]
    if crashed:
        for item in crashed:
            click.echo(visible(f"lossdoctor: error: rule check crashed: {item}"), err=True)
        return EXIT_ERROR
    severities = [f.severity for d in diagnoses for f in d.findings]
    return gate(severities, fail_on) if severities else EXIT_OK


COMMAND = analyze_command
