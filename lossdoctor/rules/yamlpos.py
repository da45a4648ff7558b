"""YAML with positions: ``yaml.compose`` (safe: builds no Python objects from tags) → plain data
whose mappings remember the line/column of every key, so every rule-file error can say file:line:col."""
from __future__ import annotations

from typing import Any

import yaml


class PosDict(dict):
    """A dict that knows where it and each of its keys stood in the file (1-based)."""

    line: int = 0
    column: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_pos: dict[str, tuple[int, int]] = {}

    def pos(self, key: str | None = None) -> tuple[int, int]:
        if key is not None and key in self.key_pos:
            return self.key_pos[key]
        return (self.line, self.column)


class PosList(list):
    line: int = 0
    column: int = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_pos: list[tuple[int, int]] = []


_SCALAR_LOADER = yaml.SafeLoader("")


def _scalar(node: yaml.ScalarNode) -> Any:
    return _SCALAR_LOADER.construct_scalar(node) if node.tag == "tag:yaml.org,2002:str" else \
        _SCALAR_LOADER.construct_object(node, deep=True)


def _convert(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = PosDict()
        out.line, out.column = node.start_mark.line + 1, node.start_mark.column + 1
        for key_node, value_node in node.value:
            key = _convert(key_node)
            key = str(key)
            out[key] = _convert(value_node)
            out.key_pos[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        out_list = PosList()
        out_list.line, out_list.column = node.start_mark.line + 1, node.start_mark.column + 1
        for item in node.value:
            out_list.append(_convert(item))
            out_list.item_pos.append((item.start_mark.line + 1, item.start_mark.column + 1))
        return out_list
    return _scalar(node)


class YamlPosError(Exception):
    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


#: libyaml's composer where PyYAML was built with it (the default pack parses in ~10 ms instead of ~100 ms);
#: the same nodes, tags and marks as the pure-Python one
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """Parse YAML text into PosDict/PosList/scalars. Raises YamlPosError with the position."""
    try:
        node = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        node = None              # parsed again below by the pure-Python loader, whose messages the errors quote
    else:
        return None if node is None else _converted(node)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        return_line = mark.line + 1 if mark else None
        return_col = mark.column + 1 if mark else None
        raise YamlPosError(f"YAML syntax error: {problem}", return_line, return_col) from None
    except yaml.YAMLError as exc:
        raise YamlPosError(f"YAML error: {exc}", None, None) from None
    if node is None:
        return None
    return _converted(node)


def _converted(node: yaml.Node) -> Any:
    try:
        return _convert(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlPosError(f"YAML error: {getattr(exc, 'problem', exc)}",
                           mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
