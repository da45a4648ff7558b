"""`lossdoctor watch SOURCE`: follow a run while it is written and judge it with the same rules as analyze.

Each poll reads only what was appended (``lossdoctor.tail``), new points go into a ``LiveStore`` and a
``LiveJudge`` re-judges the rules whose series changed, at most every ``--interval-ms`` and within a CPU
budget (``lossdoctor.live``). Each finding is printed the first time it fires. The report is written when
the run ends (its end-of-training marker), when it stalls (``--stall-timeout``), when ``--until`` fires,
or on Ctrl-C / SIGTERM; it is made from the whole source read again (as ``analyze`` would), so it is
exactly the report ``analyze`` gives for the same file.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

import click

from lossdoctor.commands._options import (
    load_ruleset,
    parse_formats,
    quiet_option,
    report_options,
    rule_options,
    source_kind_option,
    use_color,
)
from lossdoctor.commands.analyze import run_slug
from lossdoctor.errors import LossdoctorError, SourceError
from lossdoctor.exitcodes import EXIT_ERROR, EXIT_GATE, EXIT_OK, FAIL_ON_CHOICES, gate

PREFIX = "[lossdoctor]"
POLL_SECONDS = 0.1


def _detect(location: str, source_kind: str | None) -> tuple[Any, Path] | None:
    """(tailer, path) once the source exists and says what it is; None while it does not (yet)."""
    from lossdoctor.sources import detect, make_target
    from lossdoctor.sources import registry as readers
    from lossdoctor.tail import registry as tails

    path = Path(location)
    if not path.exists():
        return None
    if source_kind:
        if source_kind not in readers():
            raise SourceError(f"unknown --source-kind {source_kind!r}; kinds: {', '.join(readers())}", location)
        kind = source_kind
    else:
        target = make_target(location)
        if target.is_file and not target.head.strip():
            return None  # created but still empty
        try:
            kind = detect(target)[0].kind
        except SourceError:
            if target.is_file and len(target.head) < 4096:
                return None  # too little written yet to tell
            raise
    tailer = tails().get(kind)
    if tailer is None:
        raise SourceError(
            f"watch cannot follow a {kind} source while it is written (it follows: "
            f"{', '.join(tails())}); use `lossdoctor analyze` when it is done",
            location,
        )
    return tailer, path


def _line(finding: Any, step: int | None) -> str:
    from lossdoctor.report.formats.terminal import clean

    at = f" @ step {step}" if step is not None else ""
    return f"{PREFIX} {finding.severity.upper()} {clean(finding.rule_id)}{at}: {clean(finding.message)}"


@click.command("watch")
@click.argument("source", metavar="SOURCE")
@rule_options
@report_options("html,md", "Report directory [default: reports/<run-name>/].")
@source_kind_option()
@click.option(
    "--until",
    type=click.Choice(FAIL_ON_CHOICES),
    default="never",
    show_default=True,
    help="Stop with exit 1 at the first finding at or above this severity (the report is written).",
)
@click.option(
    "--stall-timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Report the run as stalled and finish when no new point arrived for this long.",
)
@click.option(
    "--interval-ms",
    type=click.IntRange(10, 60_000),
    default=250,
    show_default=True,
    help="Judge the rules at most this often (only when points arrived).",
)
@click.option(
    "--cpu-budget",
    type=click.FloatRange(0.001, 1.0),
    default=0.03,
    show_default=True,
    help="Share of one core that judging may use on average (long histories are judged less often).",
)
@click.option(
    "--keep-points",
    type=click.IntRange(1, None),
    default=None,
    metavar="N",
    help="Keep the latest N points of each series at full resolution, older ones thinned to min/max buckets "
    "(memory stays flat; the report at the end is exact; at least 4096) [default: 32768].",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for SOURCE to appear (a job that has not started writing yet).",
)
@quiet_option("Print only the findings and the final verdict.")
def watch_command(
    source: str,
    rule_files: tuple[str, ...],
    no_default_rules: bool,
    formats: str,
    out_dir: str | None,
    color: bool | None,
    source_kind: str | None,
    until: str,
    stall_timeout: float | None,
    interval_ms: int,
    cpu_budget: float,
    keep_points: int | None,
    wait: bool,
    quiet: bool,
) -> int:
    """Follow a growing console log, trainer_state.json, JSONL file or live local W&B run, print each finding
    when it first fires, and write the report when the run ends, stalls, or on Ctrl-C.

    \b
    lossdoctor watch train.log --until error || scancel "$SLURM_JOB_ID"
    Exit codes: 0 the run ended (or was stopped) without an --until finding; 1 --until fired;
    2 bad input or usage, or a rule check crashed.
    """

    from lossdoctor.report import available_formats, has_format

    wanted = parse_formats(formats, has_format, available_formats)
    ruleset = load_ruleset(rule_files, no_default_rules)
    watcher = Watcher(
        source,
        ruleset,
        source_kind=source_kind,
        until=until,
        stall_timeout=stall_timeout,
        interval=interval_ms / 1000.0,
        budget=cpu_budget,
        keep_points=keep_points,
        wait=wait,
        quiet=quiet,
    )
    return watcher.run(wanted, out_dir, use_color(color))


class Watcher:
    """The watch loop: poll the tail, feed the store, judge when due, stop on end/stall/until/signal."""

    def __init__(
        self,
        location: str,
        ruleset: Any,
        *,
        source_kind: str | None = None,
        until: str = "never",
        stall_timeout: float | None = None,
        interval: float = 0.25,
        budget: float = 0.03,
        keep_points: int | None = None,
        thinned_points: int | None = None,
        wait: bool = True,
        quiet: bool = False,
        echo: Any = None,
        clock: Any = time.monotonic,
    ) -> None:
        from lossdoctor.live import RECENT_POINTS, THINNED_POINTS, LiveJudge, LiveStore

        self.location = location
        self.ruleset = ruleset
        self.source_kind = source_kind
        self.until = until
        self.stall_timeout = stall_timeout
        self.wait = wait
        self.quiet = quiet
        self.echo = echo or (lambda text, err=False: click.echo(text, err=err))
        self.clock = clock
        self.store = LiveStore(keep_points or RECENT_POINTS, thinned_points or THINNED_POINTS)
        self.judge = LiveJudge(ruleset, min_interval=interval, budget=budget)
        self.tail: Any = None
        self.stop_reason: str | None = None
        self.gated: Any = None  # the finding that met --until
        self.fired_step: dict[str, int | None] = {}

    # -- pieces ----------------------------------------------------------------------------------------
    def _snapshot(self) -> Any:
        from lossdoctor.model import Provenance

        prov = Provenance(kind=self.tail.kind, location=self.location, step_source=self.tail.step_source)
        return self.store.snapshot(Path(self.location).name or self.location, prov, self.tail.config)

    def _report_new(self, findings: list[Any], at_end: bool = False) -> None:
        for f in findings:
            fired = f.evidence.get("fired_step")
            step = (
                int(fired) if isinstance(fired, (int, float)) and not isinstance(fired, bool) else self.store.last_step
            )
            self.fired_step[f.rule_id] = step
            self.echo(_line(f, step) + (" (judged at the end)" if at_end else ""))
            if self.gated is None and gate((f.severity,), self.until) == EXIT_GATE:
                self.gated = f
                self.stop_reason = self.stop_reason or f"--until {self.until}: {f.rule_id} ({f.severity}) fired"

    def _add(self, points: list[Any], now: float) -> None:
        """New points into the store. A backlog larger than the tail pointwise rules are judged on goes in
        tail-sized pieces with a pointwise pass after each: the store thins older history, and a point must
        have been judged at full resolution first (three logs in a row above a threshold stay three)."""
        from lossdoctor.live import TAIL_POINTS

        for i in range(0, len(points), TAIL_POINTS):
            self.judge.touched(self.store.add_many(points[i : i + TAIL_POINTS]))
            if i + TAIL_POINTS < len(points):
                self._report_new(self.judge.judge(self._snapshot(), now, pointwise_only=True))

    def _on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.stop_reason = f"stopped by {signal.Signals(signum).name}"

    # -- loop ------------------------------------------------------------------------------------------
    def follow(self) -> None:
        start = self.clock()
        found = None
        announced = False
        while found is None:
            found = _detect(self.location, self.source_kind)
            if found is None:
                if not self.wait and not Path(self.location).exists():
                    raise SourceError("no such file or directory", self.location)
                if not announced and not self.quiet:
                    self.echo(f"lossdoctor: waiting for {self.location} to be written ...", err=True)
                    announced = True
                if self.stop_reason:
                    return
                if self.stall_timeout is not None and self.clock() - start >= self.stall_timeout:
                    self.stop_reason = f"nothing was written for {self.stall_timeout:g} s"
                    return
                time.sleep(POLL_SECONDS)
        tailer, path = found
        self.tail = tailer.open(path, self.location)
        if not self.quiet:
            self.echo(
                f"lossdoctor: watching {self.location} ({self.tail.kind}); Ctrl-C stops and writes the report", err=True
            )
        last_point = self.clock()
        while not self.stop_reason:
            now = self.clock()
            update = self.tail.poll(now)
            for note in update.notes:
                self.echo(f"lossdoctor: note: {note}", err=True)
            if update.points:
                self._add(update.points, now)
                last_point = now
            if self.judge.due(now):
                self._report_new(self.judge.judge(self._snapshot(), now))
            if self.stop_reason:
                break
            if update.ended:
                self.stop_reason = f"the run ended: {update.ended}"
                break
            if self.stall_timeout is not None and now - last_point >= self.stall_timeout:
                self.stop_reason = (
                    f"stalled: no new point for {self.stall_timeout:g} s (last step {self.store.last_step})"
                )
                break
            if not update.backlog:
                time.sleep(POLL_SECONDS)

    def final_diagnosis(self) -> Any:
        """The whole source read again (the report analyze would give), else what was followed."""
        from lossdoctor.diagnosis import diagnose
        from lossdoctor.model import Provenance
        from lossdoctor.sources import read_runs
        from lossdoctor.sources.base import ReadOptions

        run = None
        note = ""
        try:
            runs = read_runs(self.location, ReadOptions(source_kind=self.tail.kind, offline=True))
            run = runs[-1]
        except LossdoctorError as exc:
            note = f"the source could not be read again at the end ({exc}); the report is made of the points followed"
        if run is None:
            prov = Provenance(
                kind=self.tail.kind,
                location=self.location,
                step_source=self.tail.step_source,
                notes=(note,) if note else (),
            )
            run = self.store.to_run(Path(self.location).name or self.location, prov, self.tail.config)
        if self.store.thinned:
            prov = run.provenance
            note = (
                f"watch: the live judgement used thinned history ({self.store.thinned} of {self.store.points} "
                f"points thinned into min/max buckets, the latest {self.store.recent} of each series kept whole); "
                "this report is made from the source read again"
                if not note
                else f"watch: the points followed were thinned ({self.store.thinned} of {self.store.points} into "
                "min/max buckets): this report is approximate"
            )
            run = dataclasses.replace(run, provenance=dataclasses.replace(prov, notes=prov.notes + (note,)))
        if self.stop_reason:
            state = run.state
            if self.stop_reason.startswith(("stalled", "stopped", "--until")) and state in ("unknown", "running"):
                state = "interrupted" if not self.stop_reason.startswith("stalled") else state
            prov = run.provenance
            run = dataclasses.replace(
                run,
                state=state,
                provenance=dataclasses.replace(prov, notes=prov.notes + (f"watch: {self.stop_reason}",)),
            )
        return diagnose(run, self.ruleset)

    def run(self, formats: tuple[str, ...], out_dir: str | None, color: bool) -> int:
        from lossdoctor.report import render_terminal, write_reports

        old_term = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            try:
                self.follow()
            except KeyboardInterrupt:
                self.stop_reason = "stopped by Ctrl-C"
        finally:
            signal.signal(signal.SIGTERM, old_term)
            if self.tail is not None:
                self.tail.close()
        if self.tail is None:
            self.echo(
                f"lossdoctor: {self.stop_reason or 'stopped'} before {self.location} could be followed; no report",
                err=True,
            )
            return EXIT_OK
        self.echo(f"lossdoctor: {self.stop_reason}", err=True)
        diag = self.final_diagnosis()
        at_end = [f for f in diag.findings if f.rule_id not in self.judge.fired]
        for f in at_end:
            self.judge.fired[f.rule_id] = f
        self._report_new(at_end, at_end=True)
        target = Path(out_dir) if out_dir else Path("reports") / run_slug(diag.run.name)
        written = write_reports(diag, formats, target)
        if self.quiet:
            self.echo(f"{diag.run.name}: {diag.verdict}")
        else:
            self.echo(render_terminal(diag, color))
            for p in written:
                self.echo(f"  report: {p}")
            self.echo(
                f"lossdoctor: {self.store.points} points followed ({self.store.held} held in memory), "
                f"{self.judge.passes} rule passes, "
                f"{self.judge.spent:.2f} s judging",
                err=True,
            )
        crashed = list(diag.crashed_checks) + [c for c in self.judge.crashed.values() if c not in diag.crashed_checks]
        if crashed:
            for item in crashed:
                self.echo(f"lossdoctor: error: rule check crashed: {item}", err=True)
            return EXIT_ERROR
        return EXIT_GATE if self.gated is not None else EXIT_OK


COMMAND = watch_command
