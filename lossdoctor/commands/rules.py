"""`lossdoctor rules list|validate|kinds`."""

from __future__ import annotations

import click

from lossdoctor.commands._options import rules_file_option
from lossdoctor.exitcodes import EXIT_ERROR, EXIT_OK
from lossdoctor.safetext import visible


@click.group("rules")
def rules_group() -> None:
    """List, validate and document rule files."""


@rules_group.command("list")
@rules_file_option
def list_command(rule_files: tuple[str, ...]) -> int:
    """The rules in force (default pack + --rules files): id, severity, title, origin."""
    from lossdoctor.rules.packs import load_rules

    ruleset = load_rules(rule_files)
    width = max((len(r.id) for r in ruleset.rules), default=10)
    for rule in ruleset.rules:
        persist = f" for {rule.for_count} {rule.for_unit}" if rule.for_count > 1 else ""
        judges = ",".join(rule.objectives) or "any"
        click.echo(
            visible(f"{rule.id:<{width}}  {rule.severity:<7}  {rule.title}{persist}  [{rule.origin}] ({judges})")
        )
    for rid in ruleset.disabled:
        click.echo(visible(f"{rid:<{width}}  disabled"))
    return EXIT_OK


@rules_group.command("validate")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def validate_command(files: tuple[str, ...]) -> int:
    """Check rule files; print every error as file:line:col and exit 2 if there is one."""
    from lossdoctor.rules.packs import validate_files

    problems = validate_files(files)
    for problem in problems:
        click.echo(visible(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} error(s)", err=True)
        return EXIT_ERROR
    click.echo(f"ok: {len(files)} file(s) valid")
    return EXIT_OK


@rules_group.command("kinds")
def kinds_command() -> int:
    """The check kinds a rule can use, with their parameters and evidence keys."""
    from lossdoctor.rules.checks import registry

    for kind, check in registry().items():
        click.echo(f"{kind}: {check.doc}")
        for name, p in check.params.items():
            req = "required" if p.required else f"default {p.default!r}"
            extra = f" ({', '.join(p.choices)})" if p.choices else ""
            click.echo(f"    {name}: {p.type}{extra}, {req}{' - ' + p.doc if p.doc else ''}")
        click.echo(f"    evidence: {', '.join(sorted(check.evidence_keys))}")
    return EXIT_OK


COMMAND = rules_group
