"""Exit codes and the --fail-on gate, in one place (sqlfluff EXIT_*, yamllint level→code). The severity levels
the gate ranks are the model's (lossdoctor/model.py)."""

from __future__ import annotations

EXIT_OK = 0  # nothing at or above --fail-on fired
EXIT_GATE = 1  # a finding at or above --fail-on fired
EXIT_ERROR = 2  # bad input, bad usage, or a rule check that crashed
EXIT_INTERRUPTED = 130  # `train` stopped by Ctrl-C after saving its state (128 + SIGINT, the shell convention)
EXIT_TERMINATED = 143  # `train` stopped by SIGTERM (a scheduler, `kill`) after saving its state (128 + SIGTERM)
#: every code a command may return; anything else is a bug and becomes EXIT_ERROR
EXIT_CODES: tuple[int, ...] = (EXIT_OK, EXIT_GATE, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED)

FAIL_ON_CHOICES: tuple[str, ...] = ("error", "warning", "info", "never")


def gate(severities: list[str] | tuple[str, ...], fail_on: str) -> int:
    """EXIT_GATE when any severity is at or above ``fail_on`` ("never" never gates)."""
    if fail_on == "never":
        return EXIT_OK
    from lossdoctor.model import SEVERITY_RANK  # the model pulls numpy; the CLI imports this module at start

    floor = SEVERITY_RANK[fail_on]
    return EXIT_GATE if any(SEVERITY_RANK[s] >= floor for s in severities) else EXIT_OK
