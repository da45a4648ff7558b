"""The `lossdoctor` command group. The one place that catches LossdoctorError: one line on stderr, exit 2."""
from __future__ import annotations

import sys

import click

from lossdoctor import __version__
from lossdoctor.commands import discover
from lossdoctor.errors import LossdoctorError
from lossdoctor.exitcodes import EXIT_ERROR


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lossdoctor")
def group() -> None:
    """Diagnose LLM fine-tuning runs: overfitting, divergence, NaN, plateaus.

    \b
    lossdoctor analyze trainer_state.json
    lossdoctor analyze https://wandb.ai/ENTITY/PROJECT/runs/ID --fail-on warning
    lossdoctor train --model tiny --data examples/data/overfit.jsonl --output-dir runs/overfit
    """


for _command in discover():
    group.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    try:
        code = group.main(args=argv, prog_name="lossdoctor", standalone_mode=False)
    except LossdoctorError as err:
        click.echo(f"lossdoctor: error: {err}", err=True)
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort:
        click.echo("lossdoctor: aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_ERROR if err.exit_code != 0 else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
