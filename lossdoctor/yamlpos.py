"""YAML with positions: ``yaml.compose`` (safe: builds no Python objects from tags) → plain data
whose mappings remember the line/column of every key, so every rule-file error can say file:line:col.

Bounded cost, whatever the file holds: nesting deeper than ``MAX_DEPTH`` is refused while composing (no
RecursionError), an alias-expanded document larger than ``MAX_NODES`` nodes is refused while converting
(billion laughs; a recursive alias is "nested too deeply"), and a key given twice in one mapping is an
error (never "last wins"). Events come from libyaml when it is installed (10x faster than the pure-Python
scanner); composing stays in Python so the limits hold either way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

#: Deepest nesting of mappings/sequences a rule file may have (the default pack needs 5).
MAX_DEPTH = 64
#: Most nodes a document may expand to once aliases are followed (the default pack has ~1,500).
MAX_NODES = 100_000


@lru_cache(maxsize=1)
def _loaders() -> tuple[Any, Any]:
    """(bounded loader, libyaml composer for trusted text or None), built on first use: PyYAML is imported
    only when YAML is actually parsed (the package's own files are usually read from their snapshot,
    lossdoctor/datafiles.py)."""
    import yaml
    from yaml.composer import Composer
    from yaml.resolver import Resolver

    class BoundedComposer(Composer):
        """PyYAML's composer with a depth limit (its recursion would otherwise end in a RecursionError)."""

        _depth = 0

        if TYPE_CHECKING:  # supplied by the parser each loader below mixes in

            def peek_event(self) -> yaml.Event: ...

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    event = self.peek_event()
                    # libyaml's events carry yaml._yaml.Mark, which the stubs do not accept here but which has
                    # the same fields (ComposerError only formats it)
                    raise yaml.composer.ComposerError(
                        None,
                        None,
                        f"nested more than {MAX_DEPTH} levels deep",
                        event.start_mark,  # type: ignore[arg-type]
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    try:
        from yaml._yaml import CParser
    except ImportError:  # no libyaml: the pure-Python scanner and parser

        class PyLoader(BoundedComposer, Resolver, yaml.parser.Parser, yaml.scanner.Scanner, yaml.reader.Reader):
            def __init__(self, stream: str) -> None:
                yaml.reader.Reader.__init__(self, stream)
                yaml.scanner.Scanner.__init__(self)
                yaml.parser.Parser.__init__(self)
                Composer.__init__(self)
                Resolver.__init__(self)

        return PyLoader, None

    class Loader(BoundedComposer, Resolver, CParser):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            Resolver.__init__(self)

    class CLoader(CParser, Resolver):  # libyaml's own composer: trusted text only (no depth limit)
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Resolver.__init__(self)

    return Loader, CLoader


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


@lru_cache(maxsize=1)
def _scalar_loader() -> Any:
    import yaml

    return yaml.SafeLoader("")


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = _scalar_loader()
    return (
        loader.construct_scalar(node)
        if node.tag == "tag:yaml.org,2002:str"
        else loader.construct_object(node, deep=True)
    )


def _at(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _convert(node: yaml.Node, budget: _Budget, depth: int = 0) -> Any:
    import yaml

    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise YamlPosError(f"the document expands to more than {MAX_NODES:,} values (YAML aliases?)", *_at(node))
    if depth > MAX_DEPTH:
        raise YamlPosError(f"nested more than {MAX_DEPTH} levels deep (a recursive alias?)", *_at(node))
    if isinstance(node, yaml.MappingNode):
        out = PosDict()
        out.line, out.column = _at(node)
        for key_node, value_node in node.value:
            key = str(_convert(key_node, budget, depth + 1))
            if key in out.key_pos:
                line, col = _at(key_node)
                raise YamlPosError(f"duplicate key {key!r} (first at line {out.key_pos[key][0]})", line, col)
            out[key] = _convert(value_node, budget, depth + 1)
            out.key_pos[key] = _at(key_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        out_list = PosList()
        out_list.line, out_list.column = _at(node)
        for item in node.value:
            out_list.append(_convert(item, budget, depth + 1))
            out_list.item_pos.append(_at(item))
        return out_list
    assert isinstance(node, yaml.ScalarNode)  # a composed node is a mapping, a sequence or a scalar
    try:
        return _scalar(node)
    except (ValueError, OverflowError) as exc:  # an int past the digit limit, a bad timestamp
        raise YamlPosError(
            f"cannot read value {str(node.value)[:40]!r}: {' '.join(str(exc).split())[:100]}", *_at(node)
        ) from None


class YamlPosError(Exception):
    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def compose(text: str, trusted: bool = False) -> yaml.Node | None:
    """The YAML node graph (no Python objects built), nesting capped at MAX_DEPTH; YamlPosError on any
    problem. Aliases are not expanded here (callers that walk the graph must bound that themselves).

    ``trusted`` text (lossdoctor's own files, never user input) is composed by libyaml's composer when it is
    installed: ~5x faster, but without the depth limit, which only the Python composer can enforce."""
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise YamlPosError("a NUL byte; expected YAML text", line, nul - (text.rfind("\n", 0, nul) + 1) + 1)
    import yaml

    bounded, libyaml = _loaders()
    loader = libyaml(text) if trusted and libyaml is not None else bounded(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc).split())
        return_line = mark.line + 1 if mark else None
        return_col = mark.column + 1 if mark else None
        raise YamlPosError(f"YAML syntax error: {problem}", return_line, return_col) from None
    except yaml.YAMLError as exc:
        raise YamlPosError(f"YAML error: {' '.join(str(exc).split())}", None, None) from None
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose is not None:
            dispose()
    return node


def load(text: str, trusted: bool = False) -> Any:
    """Parse YAML text into PosDict/PosList/scalars. Raises YamlPosError with the position. ``trusted``: as
    for :func:`compose`."""
    node = compose(text, trusted)
    if node is None:
        return None
    return _converted(node)


def _converted(node: yaml.Node) -> Any:
    import yaml

    try:
        return _convert(node, _Budget())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlPosError(
            f"YAML error: {getattr(exc, 'problem', exc)}",
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
        ) from None
