"""run.json: what was run, on what, with which versions, and how it ended.

Why: a run directory is analysed later, often by someone else. The manifest says which flags and data
(sha256) produced it and whether it completed, was interrupted (Ctrl-C), failed, or was stopped by a rule;
`lossdoctor analyze` can then say "interrupted" instead of guessing. Written atomically at start
(status "running") and rewritten at the end.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from lossdoctor.atomic import atomic_write_bytes

SCHEMA_VERSION = 1
STATUSES: tuple[str, ...] = ("running", "completed", "interrupted", "failed", "stopped-by-rule")
PACKAGES: tuple[str, ...] = (
    "lossdoctor",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "wandb",
    "bitsandbytes",
)
MANIFEST_NAME = "run.json"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def base_manifest(config: Mapping[str, Any], argv: list[str], data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "lossdoctor train",
        "status": "running",
        "exit_code": None,
        "started": now_iso(),
        "ended": None,
        "argv": list(argv),
        "config": dict(config),
        "data": dict(data),
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": None,
        "precision": None,
        "world_size": int(os.environ.get("WORLD_SIZE", "1") or 1),
        "global_step": None,
        "best_checkpoint": None,
        "best_metric": None,
        "stopped_by": None,
        "error": None,
        "findings": [],
    }


def write_manifest(out_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """Atomic write (temp file + rename): a reader never sees half a manifest."""
    target = Path(out_dir) / MANIFEST_NAME
    text = json.dumps(manifest, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    atomic_write_bytes(target, text.encode("utf-8"))
    return target
