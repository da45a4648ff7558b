"""`lossdoctor analyze SOURCE...`: read → diagnose → report → exit code by severity."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lossdoctor.commands._options import (
    load_ruleset,
    make_read_options,
    metric_option,
    parse_formats,
    quiet_option,
    read_options,
    report_options,
    rule_options,
    use_color,
)
from lossdoctor.errors import LossdoctorError, UsageError, doing
from lossdoctor.exitcodes import EXIT_ERROR, EXIT_OK, FAIL_ON_CHOICES, gate
from lossdoctor.safetext import visible

#: --jobs for a triage when not given: runs read at once (network-bound: threads)
TRIAGE_JOBS = 8

if TYPE_CHECKING:
    from lossdoctor.model import Run
    from lossdoctor.sources.base import ReadOptions

DEFAULT_FORMATS = "html,md"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
#: `analyze -` reads at most this much of standard input (a log that large belongs in a file)
STDIN_LIMIT = 256 * 1024 * 1024
STDIN_LOCATION = "<stdin>"


def run_slug(name: str) -> str:
    slug = _SLUG.sub("-", name).strip("-.") or "run"
    return slug[:80]


def read_stdin_runs(options: ReadOptions, limit: int = STDIN_LIMIT) -> list[Run]:
    """`analyze -`: standard input (bounded) read like a file; the runs say <stdin>, never a temp path."""
    import dataclasses
    import tempfile

    from lossdoctor.sources import read_runs

    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise UsageError(
            f"standard input is larger than {limit // (1024 * 1024)} MiB; save it to a file and pass the file",
            STDIN_LOCATION,
        )
    if not data.strip():
        raise UsageError("standard input is empty; expected a training log or a trainer_state.json", STDIN_LOCATION)
    with tempfile.TemporaryDirectory(prefix="lossdoctor-stdin-") as tmp:
        path = Path(tmp) / "stdin"
        path.write_bytes(data)
        try:
            runs = read_runs(str(path), options)
        except LossdoctorError as err:
            err.location = STDIN_LOCATION
            raise
    out = []
    for run in runs:
        prov = dataclasses.replace(
            run.provenance,
            location=STDIN_LOCATION,
            notes=tuple(n.replace(str(path), STDIN_LOCATION) for n in run.provenance.notes),
        )
        name = "stdin" if run.name in (path.name, path.stem, Path(tmp).name) else run.name
        out.append(dataclasses.replace(run, provenance=prov, name=name))
    return out


@click.command("analyze")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@rule_options
@report_options(DEFAULT_FORMATS, "Report directory [default: reports/<run-name>/].")
@click.option(
    "--full-series",
    is_flag=True,
    help="diagnosis.json: every point of every metric (default: the points the plots use).",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON_CHOICES, case_sensitive=False),
    default="error",
    show_default=True,
    help="Exit 1 when a finding at or above this severity fires.",
)
@click.option(
    "--objective",
    default=None,
    metavar="NAME",
    help="What the run optimises (sft, preference/dpo, rl/grpo/ppo, reward-model, classification, "
    "speech) [default: told from its metric names and config].",
)
@read_options
@metric_option()
@quiet_option("Print only the verdict line per run.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="W&B project triage: only runs with state=..., tag=... or sweep=... (repeatable).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Triage: at most this many runs.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Triage: runs read at once [default: 8]. One big console log: processes that scan it, at most 4 "
    "[default: 1 with the compiled scanner, else one per core].",
)
def analyze_command(
    sources: tuple[str, ...],
    rule_files: tuple[str, ...],
    no_default_rules: bool,
    formats: str,
    full_series: bool,
    out_dir: str | None,
    fail_on: str,
    source_kind: str | None,
    log_format: str | None,
    all_runs: bool,
    refresh: bool,
    offline: bool,
    timeout: float,
    quiet: bool,
    color: bool | None,
    filters: tuple[str, ...],
    limit: int | None,
    jobs: int | None,
    metric_roles: tuple[str, ...] = (),
    objective: str | None = None,
) -> int:
    """Diagnose one or more runs: a log file, a trainer_state.json, a run/output dir, a wandb run dir,
    a W&B run URL, a notebook (nb.ipynb, nb.ipynb#cell-12), or - (standard input).

    \b
    A W&B project (ENTITY/PROJECT, a project or sweep URL) or a directory of runs is triaged: every run
    read in parallel (--jobs), one summary table sorted worst first, each run's report (JSON unless
    --format says otherwise).

    \b
    Exit codes: 0 nothing at or above --fail-on fired; 1 something did; 2 bad input or usage.
    """
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.metrics.objectives import resolve as resolve_objective
    from lossdoctor.report import available_formats, has_format, render_reports, render_terminal
    from lossdoctor.report.data import ReportOptions
    from lossdoctor.report.write import write_files
    from lossdoctor.sources import read_runs

    wanted = parse_formats(formats, has_format, available_formats)
    given_objective = resolve_objective(objective) if objective is not None else None
    ruleset = load_ruleset(rule_files, no_default_rules)
    from lossdoctor.metrics.roles import parse_overrides

    options = make_read_options(
        source_kind,
        log_format,
        all_runs,
        refresh,
        offline,
        timeout,
        metric_roles=parse_overrides(metric_roles),
        jobs=jobs or 0,
    )
    fail_on = fail_on.lower()
    items = None
    if filters or not all(Path(s).is_file() for s in sources):  # a regular file is one run, never a collection
        from lossdoctor.triage import expand

        items = expand(sources, filters, limit, timeout, offline)
    if items is not None:
        from click.core import ParameterSource

        from lossdoctor.commands._triage import run_triage

        given = click.get_current_context().get_parameter_source("formats") != ParameterSource.DEFAULT
        return run_triage(
            items,
            " ".join(sources),
            ruleset,
            dataclasses.replace(options, progress=False),
            wanted if given else None,
            out_dir,
            fail_on,
            jobs or TRIAGE_JOBS,
            quiet,
        )
    if sum(1 for location in sources if location == "-") > 1:
        raise UsageError("standard input (-) can be given only once")
    runs: list[Run] = []
    for location in sources:
        with doing("reading", location):
            runs.extend(read_stdin_runs(options) if location == "-" else read_runs(location, options))
    report_options = ReportOptions(full_series=full_series)
    diagnoses = []
    for run in runs:
        with doing("diagnosing", run.provenance.location):
            diagnoses.append(diagnose(run, ruleset, given_objective))

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
    painted = use_color(color)
    # every report is rendered before any is written, so one that cannot be rendered stops the command with
    # nothing written; then each run's directory is written atomically, run by run
    rendered = []
    for diag in diagnoses:
        with doing("rendering the report of", diag.run.provenance.location):
            rendered.append(render_reports(diag, wanted, report_options))
    written_all = []
    for (files, primaries, printed), target in zip(rendered, targets):
        if files:
            write_files(target, files)
        written_all.append([target / p for p in primaries])
        for text in printed:
            click.echo(text, nl=False)
    for diag, written in zip(diagnoses, written_all):
        for note in diag.run.provenance.notes:
            click.echo(visible(f"lossdoctor: note: {diag.run.name}: {note}"), err=True)
        if quiet:
            click.echo(visible(f"{diag.run.name}: {diag.verdict}"))
        else:
            click.echo(render_terminal(diag, painted))
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
