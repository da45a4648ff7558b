"""`lossdoctor train`: LoRA fine-tuning (trl SFTTrainer + peft) that leaves a run directory lossdoctor can read.

Every flag may also be given in a YAML ``--config`` file (same names, dashes or underscores); flags win.
No torch import happens until the command runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from lossdoctor.train.config import OptionSpec, option_specs

_CLICK_TYPES: dict[str, Any] = {"int": int, "float": float, "str": None}


def _option(spec: OptionSpec) -> Any:
    """The click option for one TrainConfig field. Every default is None (a flag not given leaves the YAML
    file's value or the field's default in place); the help shows the field's default in brackets."""
    if spec.kind == "bool":
        return click.option(spec.flag, spec.name, is_flag=True, default=None, help=spec.help)
    if spec.kind == "multi":
        return click.option(spec.flag, spec.name, multiple=True, metavar=spec.metavar, help=spec.help)
    kind = click.Choice(spec.choices) if spec.choices else _CLICK_TYPES[spec.kind]
    return click.option(spec.flag, spec.name, type=kind, default=None, metavar=spec.metavar, help=spec.help)


def _train_options(func: Any) -> Any:
    for spec in reversed(option_specs()):
        func = _option(spec)(func)
    return func


@click.command("train")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="YAML file with any of these options (dashes or underscores); flags override it.",
)
@_train_options
@click.pass_context
def train_command(ctx: click.Context, config_file: str | None, **options: Any) -> int:
    """Fine-tune a causal LM with LoRA (trl SFTTrainer) and leave an analysable run directory:
    console.log, trainer_state.json, wandb/, adapter + tokenizer, run.json.

    \b
    lossdoctor train --model tiny --data examples/data/overfit.jsonl --output-dir runs/overfit
    lossdoctor train --config examples/train_overfit.yaml --output-dir runs/overfit --stop-on warning

    Every run ends with the diagnosis (the verdict and the findings) and the report written to
    <output-dir>/report/ (report.html, report.md, diagnosis.json), also when it was interrupted.

    \b
    Exit codes: 0 completed; 1 stopped by a rule (--stop-on / --stop-on-rule);
    2 bad input; 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM), after saving
    trainer_state.json, run.json and the report.
    """
    from lossdoctor.train.config import build_config
    from lossdoctor.train.recipe import is_main_process, train

    given = {k: v for k, v in options.items() if v is not None and v != ()}  # only the flags given
    config = build_config(config_file, given)
    result = train(config, argv=["lossdoctor", *sys.argv[1:]])
    if is_main_process():  # under torchrun / accelerate launch, once, not once per rank
        click.echo(f"lossdoctor: run {result.status} at step {result.global_step}: {result.run_dir}", err=True)
        if result.summary:  # the last thing a run prints: the diagnosis and where the report is
            click.echo(result.summary)
            for path in result.reports:
                click.echo(f"  report: {path}")
    return result.exit_code


COMMAND = train_command
