"""One exception family. Each error carries where it happened; the CLI prints ``str(err)`` as one line."""

from __future__ import annotations


class LossdoctorError(Exception):
    """Base class. ``location`` is a file (optionally ``file:line[:col]``) or a URL."""

    def __init__(
        self, message: str, location: str | None = None, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.line = line
        self.column = column

    def where(self) -> str:
        if not self.location:
            return ""
        parts = [str(self.location)]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        where = self.where()
        text = " ".join(self.message.split())  # always one line
        return f"{where}: {text}" if where else text


class SourceError(LossdoctorError):
    """A run could not be read: missing file, unknown kind, malformed content, unreachable URL."""


class RuleFileError(LossdoctorError):
    """A rule file is invalid. ``problems`` holds every error found, each already located."""

    def __init__(
        self,
        message: str,
        location: str | None = None,
        line: int | None = None,
        column: int | None = None,
        problems: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, location, line, column)
        self.problems = problems

    def __str__(self) -> str:
        if len(self.problems) > 1:
            return f"{self.problems[0]} (and {len(self.problems) - 1} more error(s); run 'lossdoctor rules validate')"
        if self.problems:
            return self.problems[0]
        return super().__str__()


class UsageError(LossdoctorError):
    """Bad command-line usage that click itself cannot catch."""


class TrainError(LossdoctorError):
    """`lossdoctor train` cannot start or continue (bad data, no CUDA for --quant, unreachable model)."""


#: What the command was doing when an unexpected exception escaped (set by ``doing``); the CLI's
#: last-resort handler names it so a crash report says which input triggered it.
_DOING: list[str] = []


class doing:  # noqa: N801 - used as a context manager: ``with doing("reading", path):``
    """Mark what is being done (``"reading"``, ``"writing reports for"``, ...) with which file or URL."""

    def __init__(self, what: str, location: str) -> None:
        self.text = f"{what} {location}"

    def __enter__(self) -> None:
        _DOING.append(self.text)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not isinstance(exc, LossdoctorError) and not hasattr(exc, "_lossdoctor_doing"):
            try:
                exc._lossdoctor_doing = self.text  # type: ignore[attr-defined]  # tagging any exception type
            except (AttributeError, TypeError):
                pass
        _DOING.pop()


def doing_text(exc: BaseException) -> str:
    """What was being done when ``exc`` escaped ("" when unknown)."""
    return getattr(exc, "_lossdoctor_doing", None) or (_DOING[-1] if _DOING else "")
