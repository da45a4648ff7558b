"""A restricted formatter for rule messages: only ``{evidence.KEY[:spec]}`` and ``{params.KEY[:spec]}``.
No attribute access, indexing or conversion beyond that; nothing is evaluated."""
from __future__ import annotations

import math
import string
from typing import Any, Mapping

_FORMATTER = string.Formatter()
NAMESPACES = ("evidence", "params")


def scan(template: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """((namespace, key, spec) of each good replacement field, problems of the bad ones)."""
    out: list[tuple[str, str, str]] = []
    problems: list[str] = []
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
