"""User-defined log line formats (``--log-format FILE``): a small YAML file, strict, with file:line errors.

Example::

    name: my-trainer                      # optional
    description: lines from train.py      # optional
    pattern: 'it=(?P<step>\\d+) loss=(?P<loss>\\S+) val=(?P<val>\\S+)'
    step: step                            # the named group holding the step
    metrics:                              # named group -> canonical metric name
      loss: train/loss
      val: eval/loss

Safety. The pattern is compiled with Python ``re`` and never evaluated as code. Backtracking is bounded by
two measures, chosen over a per-line timeout (the stdlib ``re`` has none, and threads/signals per line are
slow and not portable):
1. at load, a *nested unbounded quantifier* — a ``*``/``+``/``{n,}`` inside a group that is itself repeated
   (``(a+)+``, ``(\\w+\\s?)*``) — is rejected: that is the shape of exponential backtracking;
2. at read, lines longer than 4000 characters are skipped and counted (``_readkit.MAX_LINE_CHARS``), which
   bounds the remaining polynomial cases (``.*.*x``).
Every problem in the file is collected; the error names the first with file:line (and how many more).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lossdoctor.errors import SourceError
from lossdoctor.metrics.names import canonicalise
from lossdoctor.textfile import read_text
from lossdoctor.yamlpos import YamlPosError, compose

if TYPE_CHECKING:
    import yaml

if TYPE_CHECKING or sys.version_info < (3, 11):  # typeshed has stubs under the old names only
    import sre_constants as _sre_c
    import sre_parse as _sre_p
else:  # Python >= 3.11: the old names still work but warn on import
    from re import _constants as _sre_c
    from re import _parser as _sre_p

KEYS = ("name", "description", "pattern", "step", "metrics")
_REPEATS = tuple(getattr(_sre_c, n) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(_sre_c, n))
_ATOMIC_GROUP = getattr(_sre_c, "ATOMIC_GROUP", None)  # Python >= 3.11


@dataclass(frozen=True)
class LogFormat:
    """A validated format: the compiled pattern, its step group, and (group, canonical metric) pairs."""

    path: str
    name: str
    description: str
    pattern: re.Pattern[str]
    step_group: str
    metrics: tuple[tuple[str, str], ...]


def nested_quantifier(pattern: str) -> bool:
    """True when an unbounded quantifier sits inside a repeated group (exponential backtracking risk)."""

    def walk(items: Any, in_repeat: bool) -> bool:
        for op, av in items:
            if op in _REPEATS:
                _lo, hi, sub = av
                unbounded = hi == _sre_c.MAXREPEAT
                if in_repeat and unbounded:
                    return True
                if walk(sub, in_repeat or hi == _sre_c.MAXREPEAT or hi > 1):
                    return True
            elif op == _sre_c.SUBPATTERN:
                if walk(av[-1], in_repeat):
                    return True
            elif op == _sre_c.BRANCH:
                if any(walk(branch, in_repeat) for branch in av[1]):
                    return True
            elif op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
                if walk(av[1], in_repeat):
                    return True
            elif _ATOMIC_GROUP is not None and op == _ATOMIC_GROUP:
                if walk(av, in_repeat):
                    return True
            elif op == _sre_c.GROUPREF_EXISTS:
                if walk(av[1], in_repeat) or (av[2] is not None and walk(av[2], in_repeat)):
                    return True
        return False

    return walk(_sre_p.parse(pattern), False)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


#: A format file is a few lines; anything larger is refused unread.
MAX_FORMAT_BYTES = 64 * 1024


def load_log_format(path: str | Path) -> LogFormat:
    """Read and validate a format file. Raises SourceError(location=file, line=…) on any problem."""
    import yaml  # a --log-format file: PyYAML only when one is given

    location = str(path)
    text = read_text(
        path, location, what="log format file", expected="a YAML log format file", max_bytes=MAX_FORMAT_BYTES
    )

    try:
        root = compose(text)  # nodes with marks; builds no objects from tags; nesting bounded
    except YamlPosError as exc:
        raise SourceError(exc.message, location, line=exc.line) from None
    if not isinstance(root, yaml.MappingNode):
        raise SourceError(
            "expected a mapping with keys pattern, step, metrics (and optional name, description)",
            location,
            line=_line(root) if root is not None else 1,
        )

    problems: list[tuple[int, str]] = []
    fields: dict[str, yaml.Node] = {}
    for key_node, value_node in root.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key not in KEYS:
            problems.append((_line(key_node), f"unknown key {key!r}; expected one of {', '.join(KEYS)}"))
            continue
        if key in fields:
            problems.append((_line(key_node), f"duplicate key {key!r}"))
        fields[key] = value_node

    def scalar(key: str, required: bool) -> tuple[str | None, int]:
        node = fields.get(key)
        if node is None:
            if required:
                problems.append((_line(root), f"missing required key {key!r}"))
            return None, _line(root)
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            problems.append((_line(node), f"{key!r} must be a non-empty string"))
            return None, _line(node)
        return str(node.value), _line(node)

    name, _ = scalar("name", False)
    description, _ = scalar("description", False)
    pattern_text, pattern_line = scalar("pattern", True)
    step_group, step_line = scalar("step", True)

    compiled: re.Pattern[str] | None = None
    if pattern_text is not None:
        try:
            compiled = re.compile(pattern_text)
        except re.error as exc:
            problems.append((pattern_line, f"pattern is not a valid regular expression: {exc}"))
        else:
            if nested_quantifier(pattern_text):
                problems.append(
                    (
                        pattern_line,
                        "pattern has a nested unbounded quantifier such as (a+)+ or (\\w+ )*, "
                        "which can backtrack exponentially; rewrite it without repeating a repeated group",
                    )
                )
            if not compiled.groupindex:
                problems.append(
                    (pattern_line, "pattern has no named groups; expected (?P<step>...) and one per metric")
                )

    if compiled is not None and step_group is not None and step_group not in compiled.groupindex:
        problems.append(
            (
                step_line,
                f"step group {step_group!r} is not a named group of the pattern "
                f"(groups: {', '.join(compiled.groupindex) or 'none'})",
            )
        )

    metrics: list[tuple[str, str]] = []
    node = fields.get("metrics")
    if node is None:
        problems.append((_line(root), "missing required key 'metrics' (named group -> canonical metric name)"))
    elif not isinstance(node, yaml.MappingNode) or not node.value:
        problems.append(
            (
                _line(node),
                "'metrics' must be a non-empty mapping of named group -> metric name, e.g. {loss: train/loss}",
            )
        )
    else:
        for key_node, value_node in node.value:
            group = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(group, str):
                problems.append((_line(key_node), "metric keys must be group names"))
                continue
            if not isinstance(value_node, yaml.ScalarNode):
                problems.append((_line(value_node), f"metric name for group {group!r} must be a string"))
                continue
            target = value_node.value or group
            if compiled is not None and group not in compiled.groupindex:
                problems.append((_line(key_node), f"metrics: {group!r} is not a named group of the pattern"))
                continue
            if group == step_group:
                problems.append((_line(key_node), f"metrics: {group!r} is the step group"))
                continue
            metrics.append((group, canonicalise(str(target))))

    if problems:
        problems.sort()
        line, message = problems[0]
        more = f" (and {len(problems) - 1} more problem(s) in this file)" if len(problems) > 1 else ""
        raise SourceError(f"log format: {message}{more}", location, line=line)
    assert compiled is not None and step_group is not None
    return LogFormat(
        path=location,
        name=name or Path(path).stem,
        description=description or "",
        pattern=compiled,
        step_group=step_group,
        metrics=tuple(metrics),
    )
