"""A restricted formatter for rule messages: only ``{evidence.KEY[:spec]}`` and ``{params.KEY[:spec]}``.
No attribute access, indexing or conversion beyond that; nothing is evaluated. Widths and precisions in a
spec are capped at ``MAX_SPEC_NUMBER`` (``{x:>999999999}`` would otherwise allocate a gigabyte)."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from typing import Any

_FORMATTER = string.Formatter()
NAMESPACES = ("evidence", "params")
#: Largest width or precision a format spec may ask for.
MAX_SPEC_NUMBER = 100
_DIGITS = re.compile(r"\d+")
#: Longest template accepted (a message is a sentence or two).
MAX_TEMPLATE_CHARS = 4000


def spec_too_big(spec: str) -> bool:
    """True when a width or precision in ``spec`` exceeds MAX_SPEC_NUMBER."""
    return any(len(d) > 3 or int(d) > MAX_SPEC_NUMBER for d in _DIGITS.findall(spec))


def scan(template: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """((namespace, key, spec) of each good replacement field, problems of the bad ones)."""
    out: list[tuple[str, str, str]] = []
    problems: list[str] = []
    if len(template) > MAX_TEMPLATE_CHARS:
        return [], [f"longer than {MAX_TEMPLATE_CHARS} characters"]
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        return [], [f"malformed template: {exc}"]
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        parts = name.split(".")
        if conversion:
            problems.append(f"conversion '!{conversion}' is not allowed in {{{name}}}")
        elif len(parts) != 2 or parts[0] not in NAMESPACES or not parts[1].isidentifier():
            problems.append(f"unknown field {{{name}}}: expected {{evidence.NAME}} or {{params.NAME}}")
        elif spec and "{" in spec:
            problems.append(f"nested fields are not allowed in {{{name}:{spec}}}")
        elif spec and spec_too_big(spec):
            problems.append(f"format width/precision above {MAX_SPEC_NUMBER} in {{{name}:{spec}}}")
        else:
            out.append((parts[0], parts[1], spec or ""))
    return out, problems


def fields(template: str) -> list[tuple[str, str, str]]:
    """(namespace, key, spec) for each replacement field; raises ValueError on a malformed or foreign one."""
    out, problems = scan(template)
    if problems:
        raise ValueError(problems[0])
    return out


def _one(value: Any, spec: str) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not math.isfinite(value) and spec:
        return str(value)
    if spec_too_big(spec):
        return str(value)
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        return str(value)


def render(template: str, evidence: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    spaces = {"evidence": evidence, "params": params}
    out: list[str] = []
    for literal, name, spec, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        ns, key = name.split(".", 1)
        out.append(_one(spaces[ns].get(key), spec or ""))
    return " ".join("".join(out).split())
