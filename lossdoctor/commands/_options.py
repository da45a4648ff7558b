"""Options shared by the commands that read runs and judge them (analyze, compare, watch, eval-corpus, rules,
sources).

One declaration per option: a command stacks the groups it needs (``@rule_options``, ``@read_options``,
``@report_options``) or the single options (``@rules_file_option``, ``@source_kind_option()``,
``@metric_option()``, ``@quiet_option(...)``) and turns the values into a RuleSet / ReadOptions with the
helpers below, so the same flag means the same thing everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from lossdoctor.errors import UsageError

F = Callable[..., Any]


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for deco in reversed(decorators):
            func = deco(func)
        return func

    return apply


rules_file_option = click.option(
    "--rules",
    "rule_files",
    multiple=True,
    metavar="FILE",
    help="Extra rule file (repeatable); may extend/override the default pack.",
)

rule_options = _stack(
    rules_file_option,
    click.option("--no-default-rules", is_flag=True, help="Use only the --rules files."),
)


def source_kind_option(help: str = "Skip detection (see `lossdoctor sources`).") -> Callable[[F], F]:  # noqa: A002
    return click.option("--source-kind", default=None, metavar="KIND", help=help)


def metric_option(
    help: str = (
        "Take series NAME as ROLE (train_loss, eval_loss, lr, grad_norm, epoch, tokens, "  # noqa: A002
        "throughput; or train/loss ...), overriding what was inferred from the names. "
        "Repeatable."
    ),
) -> Callable[[F], F]:
    return click.option("--metric", "metric_roles", multiple=True, metavar="ROLE=NAME", help=help)


def quiet_option(help: str) -> Callable[[F], F]:  # noqa: A002
    return click.option("--quiet", "-q", is_flag=True, help=help)


read_options = _stack(
    source_kind_option(),
    click.option(
        "--log-format",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML line-format file for a custom trainer log.",
    ),
    click.option(
        "--all",
        "all_runs",
        is_flag=True,
        help="Every run in the source (a wandb/ directory, a trackio project, an MLflow store, a "
        "notebook), not only the latest.",
    ),
    click.option("--refresh", is_flag=True, help="Refetch a W&B run even if it is cached."),
    click.option("--offline", is_flag=True, help="Never touch the network (W&B runs from the cache only)."),
    click.option(
        "--timeout",
        type=float,
        default=120.0,
        show_default=True,
        help="Total time budget in seconds for network reads, retries included.",
    ),
)


def report_options(default_formats: str, out_help: str) -> Callable[[F], F]:
    return _stack(
        click.option(
            "--format",
            "formats",
            default=default_formats,
            show_default=True,
            help="Comma-separated report formats (see `lossdoctor analyze --help`).",
        ),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help=out_help),
        click.option("--color/--no-color", default=None, help="Colour the terminal summary [default: if a TTY]."),
    )


def load_ruleset(rule_files: tuple[str, ...], no_default_rules: bool) -> Any:
    from lossdoctor.rules.packs import load_rules

    if no_default_rules and not rule_files:
        raise UsageError("--no-default-rules needs at least one --rules FILE")
    return load_rules(rule_files, include_default=not no_default_rules)


def make_read_options(
    source_kind: str | None = None,
    log_format: str | None = None,
    all_runs: bool = False,
    refresh: bool = False,
    offline: bool = False,
    timeout: float = 120.0,
    progress: bool | None = None,
    metric_roles: tuple[tuple[str, str], ...] = (),
    jobs: int = 0,
) -> Any:
    from lossdoctor.sources.base import ReadOptions

    if log_format and not source_kind:
        source_kind = "user-format"
    return ReadOptions(
        source_kind=source_kind,
        all_runs=all_runs,
        refresh=refresh,
        offline=offline,
        timeout=timeout,
        log_format=log_format,
        metric_roles=metric_roles,
        jobs=jobs,
        progress=sys.stderr.isatty() if progress is None else progress,
    )


def use_color(color: bool | None) -> bool:
    return sys.stdout.isatty() if color is None else color


def parse_formats(text: str, is_known: Callable[[str], bool], known: Callable[[], Iterable[str]]) -> tuple[str, ...]:
    """``--format a,b``: the names asked for, in order, without repeats; a UsageError for an empty list or a
    name ``is_known`` refuses (the report formats of analyze and watch, the comparison formats of compare).
    ``known()``, every accepted name, is only called for the error message: listing means importing every
    format, checking one name imports one."""
    wanted = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [f for f in wanted if not is_known(f)]
    if bad or not wanted:
        raise UsageError(
            f"--format: unknown format(s) {', '.join(bad) or '(none)'}; expected a comma-separated "
            f"list of {', '.join(known())}"
        )
    return wanted
