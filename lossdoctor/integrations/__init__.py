"""Integrations with training frameworks. ``from lossdoctor.integrations import LossDoctorCallback``
(imports transformers; the rest of lossdoctor does not need it)."""

from __future__ import annotations

from typing import Any

__all__ = ["LossDoctorCallback"]


def __getattr__(name: str) -> Any:
    # lazy, so `import lossdoctor.integrations` alone stays cheap
    if name == "LossDoctorCallback":
        from lossdoctor.integrations.callback import LossDoctorCallback

        return LossDoctorCallback
    raise AttributeError(name)
