"""The package's own YAML data files (the built-in rule packs, metric aliases and roles, objectives), read
through a snapshot of their parsed content.

Why: parsing them is the same work on every run, and importing PyYAML plus composing ~60 KB of YAML is ~15-20 ms
of a ~0.25 s analysis. ``datafiles.json`` (next to this module) holds each file's parsed content, positions
included, under a CRC-32 of its text. A read takes the file's text (a user may have edited an installed copy),
and uses the snapshot only when the checksum matches; otherwise it parses the YAML, so the snapshot can be
stale or missing without ever being wrong. ``python -m lossdoctor.datafiles`` rewrites it; a test fails while
it is stale, so the shipped package keeps the fast path.

The snapshot is data (JSON), never code; the YAML files stay the one source of truth.
"""

from __future__ import annotations

import json
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from lossdoctor.yamlpos import PosDict, PosList, load

ROOT = Path(__file__).resolve().parent
SNAPSHOT = ROOT / "datafiles.json"
#: the package's data files (paths relative to the package), rule packs included
PATTERNS = ("rules/packs/*.yaml", "metrics/*.yaml")


def data_files() -> list[str]:
    """Every data file the snapshot covers, sorted."""
    return sorted(str(p.relative_to(ROOT)) for pattern in PATTERNS for p in ROOT.glob(pattern))


def _checksum(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _parse(text: str) -> Any:
    """YAML → PosDict / PosList / scalars (the package's own text: libyaml composes it)."""
    return load(text, trusted=True)


def read(relpath: str) -> tuple[str, Any]:
    """(text, parsed content with positions) of one of the package's data files."""
    text = (ROOT / relpath).read_text(encoding="utf-8")
    entry = _snapshot().get(relpath)
    if entry is not None and entry[0] == _checksum(text):
        return text, _decode(entry[1])
    return text, _parse(text)


@lru_cache(maxsize=1)
def _snapshot() -> dict[str, list[Any]]:
    try:
        raw = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


# Encoding: a mapping is ["m", line, column, [[key, line, column, value], ...]], a list ["l", line, column,
# [[line, column, item], ...]], any other value ["s", value] (JSON keeps YAML's scalars: str, int, float, bool,
# null; a float that is not finite is written as JSON's Infinity/NaN, which json reads back).


def _encode(value: Any) -> list[Any]:
    if isinstance(value, PosDict):
        items = [[k, *value.key_pos[k], _encode(v)] for k, v in value.items()]
        return ["m", value.line, value.column, items]
    if isinstance(value, PosList):
        return ["l", value.line, value.column, [[*pos, _encode(v)] for pos, v in zip(value.item_pos, value)]]
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise TypeError(f"a data file holds a {type(value).__name__}, which the snapshot cannot keep")
    return ["s", value]


def _decode(node: list[Any]) -> Any:
    tag = node[0]
    if tag == "m":
        out = PosDict()
        out.line, out.column = node[1], node[2]
        for key, line, column, value in node[3]:
            out[key] = _decode(value)
            out.key_pos[key] = (line, column)
        return out
    if tag == "l":
        items = PosList()
        items.line, items.column = node[1], node[2]
        for line, column, value in node[3]:
            items.append(_decode(value))
            items.item_pos.append((line, column))
        return items
    return node[1]


def snapshot_text() -> str:
    """The snapshot of the data files as they are now (deterministic: sorted, one file per line)."""
    lines = []
    for relpath in data_files():
        text = (ROOT / relpath).read_text(encoding="utf-8")
        entry = [_checksum(text), _encode(_parse(text))]
        lines.append(f"{json.dumps(relpath)}: {json.dumps(entry, ensure_ascii=False, separators=(',', ':'))}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> None:
    SNAPSHOT.write_text(snapshot_text(), encoding="utf-8")
    print(f"wrote {SNAPSHOT} ({len(data_files())} files)")


if __name__ == "__main__":
    main()
