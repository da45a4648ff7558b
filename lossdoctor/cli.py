"""The `lossdoctor` command group. The one place that catches LossdoctorError: one line on stderr, exit 2.

It is also the last resort: any other exception (a bug, or an input no reader foresaw) becomes one line
``lossdoctor: internal error: <type>: <msg> (while reading FILE); please report`` and exit 2, so exit 1
only ever means "a finding fired". ``--debug`` shows the traceback as well. Everything printed here goes
through ``safetext.visible``: a file name or run name cannot send escape sequences to the terminal.
"""

from __future__ import annotations

import gc
import io
import os
import sys
import warnings

import click

from lossdoctor import __version__
from lossdoctor.commands import LazyGroup
from lossdoctor.errors import LossdoctorError, doing_text
from lossdoctor.exitcodes import EXIT_CODES, EXIT_ERROR, EXIT_INTERRUPTED
from lossdoctor.safetext import visible

_STATE = {"debug": False}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lossdoctor")
@click.option("--debug", is_flag=True, help="On an internal error, print the Python traceback too.")
def group(debug: bool) -> None:
    """Diagnose LLM fine-tuning runs: overfitting, divergence, NaN, plateaus.

    \b
    lossdoctor analyze trainer_state.json
    lossdoctor analyze https://wandb.ai/ENTITY/PROJECT/runs/ID --fail-on warning
    lossdoctor train --model tiny --data examples/data/overfit.jsonl --output-dir runs/overfit
    """
    _STATE["debug"] = debug
    if debug:
        warnings.simplefilter("default")


def _err(line: str) -> None:
    click.echo(visible(line), err=True)


def internal_error_line(exc: BaseException) -> str:
    """The one line for an exception nothing else caught."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    where = doing_text(exc)
    while_ = f" (while {where})" if where else ""
    return f"lossdoctor: internal error: {type(exc).__name__}: {text or '(no message)'}{while_}; please report"


#: numpy's BLAS starts one thread per core when it is imported (~60 ms of CPU on a 2-core machine), but
#: lossdoctor's array work is element-wise and never calls BLAS; ``train`` does its math in torch, whose BLAS
#: (MKL) and threads this variable does not touch. A value the user set is kept.
_ENV_DEFAULTS = {"OPENBLAS_NUM_THREADS": "1"}
#: A command allocates a few hundred thousand objects that live until it exits (modules, classes, the rule
#: pack, the run's table); with the default thresholds (700, 10, 10) the cyclic collector walks them again and
#: again. Collections are made rarer, not stopped (memory stays bounded); at exit the survivors are frozen, so
#: the interpreter's final collections skip them. Together ~30-50 ms of CPU off a small analysis (~0.2 s).
_GC_THRESHOLDS = (50_000, 20, 20)


def run(argv: list[str] | None = None) -> None:
    """The ``lossdoctor`` executable (and ``python -m lossdoctor``): :func:`main` in a process that ends with it,
    so the collector can be tuned for the command and what survives frozen for the exit. (In-process callers,
    tests among them, call :func:`main` and keep their collector as it is.)"""
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        main(argv)
    finally:
        gc.freeze()


def main(argv: list[str] | None = None) -> None:
    for name, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # numpy's overflow/invalid-value warnings on hostile numbers are not for the user (--debug shows them)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    try:
        code = group.main(args=argv, prog_name="lossdoctor", standalone_mode=False)
    except LossdoctorError as err:
        _err(f"lossdoctor: error: {err}")
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort:
        _err("lossdoctor: aborted")
        sys.exit(EXIT_ERROR)
    except click.ClickException as err:
        buf = io.StringIO()
        err.show(file=buf)
        for line in buf.getvalue().splitlines():
            _err(line)
        sys.exit(EXIT_ERROR if err.exit_code != 0 else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("lossdoctor: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except (Exception, MemoryError) as exc:  # noqa: BLE001 - the last resort: never a traceback, never exit 1
        _last_resort(exc)
    # a command's own code: 0/1/2, or 130/143 when `train` was stopped by Ctrl-C/SIGTERM after saving its state
    sys.exit(code if isinstance(code, int) and code in EXIT_CODES else (0 if code is None else EXIT_ERROR))


def _last_resort(exc: BaseException) -> None:
    if _STATE["debug"]:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    _err(internal_error_line(exc))
    sys.exit(EXIT_ERROR)
