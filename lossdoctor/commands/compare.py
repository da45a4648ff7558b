"""`lossdoctor compare A B [C...]`: diagnose every run with the same rules, then compare them by their findings
(fixed / new / persisting, onset and magnitude), facts side by side, overlay plots, and a pick of the best run."""

from __future__ import annotations

from pathlib import Path

import click

from lossdoctor.commands._options import (
    load_ruleset,
    make_read_options,
    parse_formats,
    quiet_option,
    read_options,
    report_options,
    rule_options,
    use_color,
)
from lossdoctor.commands.analyze import run_slug
from lossdoctor.errors import UsageError
from lossdoctor.exitcodes import EXIT_ERROR, EXIT_GATE, EXIT_OK, FAIL_ON_CHOICES

DEFAULT_FORMATS = "html,md"


@click.command("compare")
@click.argument("sources", nargs=-1, required=True, metavar="A B [C...]")
@rule_options
@report_options(DEFAULT_FORMATS, "Report directory [default: reports/compare-<A>-vs-<B>/].")
@click.option(
    "--fail-on-new",
    type=click.Choice(FAIL_ON_CHOICES),
    default="never",
    show_default=True,
    help="Exit 1 when a later run has a finding at or above this severity that the baseline A did not "
    "have (a CI regression gate).",
)
@read_options
@quiet_option("Print only the headline per later run and the best run.")
def compare_command(
    sources: tuple[str, ...],
    rule_files: tuple[str, ...],
    no_default_rules: bool,
    formats: str,
    out_dir: str | None,
    color: bool | None,
    fail_on_new: str,
    source_kind: str | None,
    log_format: str | None,
    all_runs: bool,
    refresh: bool,
    offline: bool,
    timeout: float,
    quiet: bool,
) -> int:
    """Compare runs by their findings. A is the baseline; every later run is compared with it.

    Each SOURCE is anything `analyze` reads (log, trainer_state.json, run dir, wandb dir, W&B URL); kinds can
    be mixed. Findings are matched by rule and say where they hold; each later run gets "X fixed", "new X",
    or "X persisting" with the onset shift and whether it got worse or better.

    \b
    Exit codes: 0 ok; 1 --fail-on-new fired; 2 bad input or usage, or a rule check crashed.
    """
    from lossdoctor.compare import compare, gate_new
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.report.compare import lookup, registry, render_terminal, write_comparison
    from lossdoctor.sources import read_runs

    wanted = parse_formats(formats, lambda name: lookup(name) is not None, registry)
    ruleset = load_ruleset(rule_files, no_default_rules)
    options = make_read_options(source_kind, log_format, all_runs, refresh, offline, timeout)
    runs = [run for location in sources for run in read_runs(location, options)]
    if len(runs) < 2:
        raise UsageError(f"compare needs at least two runs; {len(sources)} source(s) gave {len(runs)}")
    comparison = compare([diagnose(run, ruleset) for run in runs])
    target = (
        Path(out_dir)
        if out_dir
        else Path("reports")
        / ("compare-" + "-vs-".join(run_slug(r.name)[:30] for r in runs[:3]) + ("-etc" if len(runs) > 3 else ""))
    )
    written = write_comparison(comparison, wanted, target)
    for diag in comparison.diagnoses:
        for note in diag.run.provenance.notes:
            click.echo(f"lossdoctor: note: {diag.run.name}: {note}", err=True)
    if quiet:
        for line in comparison.headlines:
            click.echo(line)
        click.echo("best run: " + comparison.best_reason)
    else:
        click.echo(render_terminal(comparison, use_color(color)))
        for path in written:
            click.echo(f"  report: {path}")
    crashed = [c for d in comparison.diagnoses for c in d.crashed_checks]
    if crashed:
        for item in crashed:
            click.echo(f"lossdoctor: error: rule check crashed: {item}", err=True)
        return EXIT_ERROR
    return EXIT_GATE if gate_new(comparison, fail_on_new) else EXIT_OK


COMMAND = compare_command
