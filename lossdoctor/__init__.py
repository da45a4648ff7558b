"""lossdoctor: diagnose LLM fine-tuning runs (overfitting, divergence, NaN, plateaus) offline.

Public API::

    from lossdoctor import load_run, analyze
    run = load_run("trainer_state.json")
    diagnosis = analyze(run)
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_run", "analyze"]


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
