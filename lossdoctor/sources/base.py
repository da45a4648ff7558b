"""The Source protocol and what readers receive. A reader is one module in lossdoctor/sources/
that defines a module-level ``SOURCE`` object; the registry discovers it (no switch to edit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from lossdoctor.model import Run

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class ReadOptions:
    """Options a reader may honour; readers ignore the ones that do not concern them."""

    source_kind: str | None = None  # --source-kind: skip detection
    all_runs: bool = False  # --all: every run under a parent dir (W&B)
    refresh: bool = False  # --refresh: refetch a cached W&B run
    offline: bool = False  # --offline: never touch the network
    timeout: float = 60.0  # --timeout: total time budget for network reads, seconds
    log_format: str | None = None  # --log-format FILE: user-defined line format
    cache_dir: str | None = None  # override of the per-user cache dir
    progress: bool = False  # show a progress bar on long fetches
    metric_roles: tuple[tuple[str, str], ...] = ()  # --metric ROLE=NAME: (canonical, series name) overrides
    jobs: int = 0  # --jobs: processes that may scan one big log (0: the reader's choice, else the usable cores)

    def workers(self, auto: int | None = None) -> int:
        """Worker processes a reader may use for one big file: ``jobs``; when 0, the reader's ``auto`` or else
        the usable cores."""
        if self.jobs > 0:
            return self.jobs
        if auto is not None:
            return auto
        from lossdoctor.workers import usable_cpus

        return usable_cpus()


@dataclass(frozen=True)
class Target:
    """What the user pointed at: a file, a directory, or something that is not a local path (a URL)."""

    location: str
    path: Path | None
    is_dir: bool = False
    head: bytes = b""  # first HEAD_BYTES of a file; b"" otherwise

    @property
    def is_file(self) -> bool:
        return self.path is not None and not self.is_dir

    def head_text(self) -> str:
        """The head decoded leniently (UTF-8 / UTF-16 by BOM), for sniffing only."""
        from lossdoctor.sources.text import decode_bytes

        return decode_bytes(self.head)[0]


@runtime_checkable
class Source(Protocol):
    kind: str  # e.g. "hf-console"
    description: str  # one line for `lossdoctor sources` and error messages
    example: str  # an example line or path
    specificity: int  # tie-break when two readers claim a file with the same confidence
    max_confidence: float  # the most sniff() ever returns: detection does not ask a reader that cannot win

    def sniff(self, target: Target) -> float:
        """0.0 (not mine) … 1.0 (certainly mine). Must be cheap and never raise."""

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        """Read the target; raise SourceError (with location) on bad input."""
