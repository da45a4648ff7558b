"""lossdoctor: diagnose LLM fine-tuning runs (overfitting, divergence, NaN, plateaus) offline.

Public API::

    from lossdoctor import load_run, analyze, diagnose
    run = load_run("trainer_state.json")
    diagnosis = analyze(run)
    diagnosis = diagnose(trainer)          # or a path, a notebook, a W&B run; shows itself in a notebook
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_run", "analyze", "diagnose"]


def load_run(location: str, **kwargs):  # noqa: ANN201 - re-exported
    """Read one run from a path or URL (auto-detected source kind)."""
    from lossdoctor.sources import read_runs
    from lossdoctor.sources.base import ReadOptions

    runs = read_runs(location, ReadOptions(**kwargs))
    return runs[0]


def analyze(run, rule_files: tuple[str, ...] = ()):  # noqa: ANN001, ANN201
    """Apply the default rule pack (plus ``rule_files``) to ``run`` and return a Diagnosis."""
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.rules.packs import load_rules

    return diagnose(run, load_rules(rule_files))


def diagnose(obj, rule_files: tuple[str, ...] = (), **read_options):  # noqa: ANN001, ANN003, ANN201
    """The Diagnosis of a run, from what you have in hand:

    - a transformers ``Trainer`` (its ``state.log_history``), a ``TrainerState``, or a log_history list;
    - a path or URL: a run dir, a log file, ``trainer_state.json``, a notebook (``nb.ipynb``,
      ``nb.ipynb#cell-12``), a W&B run URL or ``entity/project/runs/id``;
    - a ``Run``.

    In a notebook the result shows itself (verdict, findings, what to do, plots). ``read_options`` are
    ``ReadOptions`` fields (``offline=True``, ``source_kind=...``). transformers is never imported here: a
    Trainer is read through its attributes.
    """
    import os

    from lossdoctor.model import Run

    if isinstance(obj, Run):
        run = obj
    elif isinstance(obj, (str, os.PathLike)):
        run = load_run(os.fspath(obj), **read_options)
    else:
        run = _run_from_trainer(obj)
    return analyze(run, rule_files)


def _run_from_trainer(obj):  # noqa: ANN001, ANN202
    """A Run from a Trainer / TrainerState / log_history list (duck-typed: no transformers import)."""
    from lossdoctor.sources.trainer_state import state_to_run

    if isinstance(obj, (list, tuple)):
        state, history, args = None, list(obj), None
    else:
        state = getattr(obj, "state", obj)
        history = getattr(state, "log_history", None)
        args = getattr(obj, "args", None)
        if not isinstance(history, list):
            raise TypeError(
                f"lossdoctor.diagnose: expected a Trainer, a TrainerState, a log_history list, a path "
                f"or a W&B run; got {type(obj).__name__}"
            )
    data = {"log_history": history}
    for key in ("global_step", "max_steps", "num_train_epochs", "logging_steps", "eval_steps", "epoch"):
        value = getattr(state, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            data[key] = value
    location = str(getattr(args, "output_dir", None) or ("Trainer" if state is not None else "log_history"))
    name = str(getattr(args, "run_name", None) or location)
    return state_to_run(data, location, name)
