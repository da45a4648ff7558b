"""Readers: one module per log format, each with a module-level ``SOURCE`` (adding a reader is adding a file).

The registry, detection and reading live in :mod:`lossdoctor.sources._registry`; this package is their public
face. Private modules (``_x.py``) are helpers shared by the readers, never readers themselves.
"""

from __future__ import annotations

from lossdoctor.sources._registry import (
    MIN_CONFIDENCE,
    detect,
    kinds_text,
    make_target,
    read_runs,
    read_text_runs,
    registry,
)
from lossdoctor.sources.base import ReadOptions, Source, Target

__all__ = [
    "registry",
    "detect",
    "read_runs",
    "read_text_runs",
    "make_target",
    "kinds_text",
    "MIN_CONFIDENCE",
    "ReadOptions",
    "Target",
    "Source",
]
