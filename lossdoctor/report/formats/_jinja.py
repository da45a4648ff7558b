"""Jinja environments for the templated formats (private: not a format)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import jinja2


@cache
def html_env() -> jinja2.Environment:
    """autoescape=True: every string from a run is HTML-escaped unless wrapped in Markup on purpose."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("lossdoctor.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class MdSafe(str):
    """Markdown the renderer wrote itself (not from the run): not escaped again."""


def md_env(escape: Callable[[str], str]) -> jinja2.Environment:
    """Markdown has no autoescape, so ``finalize`` escapes every ``{{ }}`` output that is not MdSafe."""

    def finalize(value: Any) -> Any:
        if isinstance(value, MdSafe):
            return value
        if value is None:
            return ""
        return escape(str(value))

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lossdoctor.report", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["safe_md"] = MdSafe
    return env
