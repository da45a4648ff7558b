"""`lossdoctor eval-corpus DIR`: analyse every labelled run under DIR and score the rules against the labels."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lossdoctor.commands._options import load_ruleset, rule_options
from lossdoctor.errors import LossdoctorError, UsageError
from lossdoctor.exitcodes import EXIT_GATE, EXIT_OK
from lossdoctor.safetext import visible
from lossdoctor.textfile import read_text

#: label.yaml and floors.yaml are a few lines each.
MAX_YAML_BYTES = 1 << 20


def _read_yaml(path: Path) -> str:
    return read_text(path, expected="a YAML file", max_bytes=MAX_YAML_BYTES)


@click.command("eval-corpus")
@click.argument("corpus_dir", type=click.Path(file_okay=False), metavar="DIR")
@rule_options
@click.option(
    "--floors",
    "floors_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML of precision/recall floors [default: DIR/floors.yaml if present].",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the scores and per-case results as JSON.",
)
@click.option("--only", "only", multiple=True, metavar="GLOB", help="Only cases whose directory matches (repeatable).")
@click.option("--verbose", "-v", is_flag=True, help="List every case, not only the wrong ones.")
def eval_corpus_command(
    corpus_dir: str,
    rule_files: tuple[str, ...],
    no_default_rules: bool,
    floors_file: str | None,
    json_out: str | None,
    only: tuple[str, ...],
    verbose: bool,
) -> int:
    """Score the rules on a labelled corpus: one sub-directory per run, holding the run's files and a
    label.yaml (verdicts, onset_step, eval_interval, why). Prints a confusion table per verdict, precision and
    recall per rule and the overfitting onset error.

    \b
    Exit codes: 0 every floor met (or no floors); 1 a floor was missed; 2 bad input.
    """
    import fnmatch

    from lossdoctor import corpus
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.sources import read_runs
    from lossdoctor.sources.base import ReadOptions

    root = Path(corpus_dir)
    if not root.is_dir():
        raise UsageError("corpus directory not found", corpus_dir)
    ruleset = load_ruleset(rule_files, no_default_rules)
    verdict_of = corpus.rule_verdicts(ruleset)
    floors_path = Path(floors_file) if floors_file else root / "floors.yaml"
    floors = None
    if floors_file or floors_path.exists():
        if not floors_path.is_file():
            raise UsageError("floors file not found", str(floors_path))
        floors = corpus.parse_floors(_read_yaml(floors_path), str(floors_path))

    if json_out and not Path(json_out).resolve().parent.is_dir():  # fail before any work or output
        raise UsageError("--json: the directory to write into does not exist", json_out)
    cases = sorted(p for p in root.iterdir() if p.is_dir() and (p / "label.yaml").is_file())
    if only:
        cases = [p for p in cases if any(fnmatch.fnmatchcase(p.name, g) for g in only)]
    if not cases:
        raise UsageError("no case directories with a label.yaml", corpus_dir)
    results = []
    options = ReadOptions(offline=True)
    for case in cases:
        label_path = case / "label.yaml"
        label = corpus.parse_label(_read_yaml(label_path), str(label_path), case.name)
        try:
            runs = read_runs(str(case), options)
        except LossdoctorError as exc:  # an unreadable case is a miss, not the end of the evaluation
            results.append(corpus.CaseResult(label=label, predicted=frozenset(), fired=(), error=str(exc)))
            continue
        results.append(corpus.case_result(label, diagnose(runs[0], ruleset), verdict_of))

    scored = corpus.score(results, verdict_of, {r.id: r.objectives for r in ruleset.rules})
    click.echo(corpus.render_text(scored, verbose=verbose), nl=False)
    if json_out:
        from lossdoctor.atomic import atomic_write_bytes

        text = json.dumps(corpus.to_json(scored), indent=2, sort_keys=True) + "\n"
        try:
            atomic_write_bytes(Path(json_out), text.encode("utf-8"))
        except OSError as exc:
            raise UsageError(f"--json: cannot write: {exc.strerror or exc}", json_out) from None
    if floors is None:
        return EXIT_OK
    failures = corpus.check_floors(scored, floors)
    for line in failures:
        click.echo(visible(f"lossdoctor: below floor: {line}"), err=True)
    if not failures:
        click.echo(f"all floors in {floors_path} met")
    return EXIT_GATE if failures else EXIT_OK


COMMAND = eval_corpus_command
