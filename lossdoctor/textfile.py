"""Read a file from disk with one-line located errors: the one way every module opens a file it was handed.

``read_side_file`` is for optional files next to the one analysed: None instead of an error.
``read_bytes`` refuses a missing file, a directory, an unreadable file and (with ``max_bytes``) one larger than
the bound, each as one error naming the file; ``read_text`` also decodes strictly, naming the line and byte of
the first undecodable one. The error class is the caller's (``SourceError`` for logs and data, ``RuleFileError``
for rule files, ``TrainError`` for train configs), so the CLI reports each with its usual exit code.

Readers of logs decode leniently (``sources.text.decode_bytes``): they take ``read_bytes`` and decode themselves.
"""

from __future__ import annotations

from pathlib import Path

from lossdoctor.errors import LossdoctorError, SourceError


def size_text(n: int) -> str:
    """``512 KB``, ``4 MB``, ``100 bytes``: a bound as a person reads it."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KB"
    return f"{n} bytes"


def _tail(expected: str) -> str:
    return f"; expected {expected}" if expected else ""


def read_bytes(
    path: str | Path,
    location: str | None = None,
    *,
    error: type[LossdoctorError] = SourceError,
    what: str = "",
    expected: str = "",
    max_bytes: int | None = None,
) -> bytes:
    """The file's bytes. ``what`` names the file in messages ("rule file"), ``expected`` says what it should be
    ("a YAML rule file"), ``location`` is how errors name it (default: the path). Raises ``error`` located at it."""
    p = Path(path)
    where = location if location is not None else str(path)
    noun = f"{what} " if what else ""
    try:
        if p.is_dir():
            raise error(f"is a directory{_tail(expected)}", where)
        with p.open("rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{noun}not found{_tail(expected)}", where) from None
    except OSError as exc:
        raise error(f"cannot read {noun}".rstrip() + f": {exc.strerror or exc}", where) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"larger than {size_text(max_bytes)}{_tail(expected)}", where)
    return data


#: the bound on a small side file read by ``read_side_file`` unless the caller gives its own
SIDE_FILE_BYTES = 1 << 20


def read_side_file(path: str | Path, max_bytes: int | None = SIDE_FILE_BYTES) -> bytes | None:
    """The bytes of an optional file next to the one analysed (a run's config, metadata, results, a cache
    entry), or None when it is missing, a directory, unreadable or larger than ``max_bytes`` (``None``: no
    bound). Its absence is no error: the reader goes on without it and may say so in a note."""
    try:
        return read_bytes(path, max_bytes=max_bytes)
    except LossdoctorError:
        return None


def decode(
    data: bytes,
    location: str,
    *,
    error: type[LossdoctorError] = SourceError,
    expected: str = "",
    encoding: str = "utf-8-sig",
) -> str:
    """``data`` decoded strictly; an undecodable byte is an ``error`` naming its line and byte offset."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        name = "UTF-8" if encoding.replace("-sig", "").lower() in ("utf-8", "utf8") else encoding
        raise error(f"not {name} text (line {line}, byte {exc.start}){_tail(expected)}", location) from None


def read_text(
    path: str | Path,
    location: str | None = None,
    *,
    error: type[LossdoctorError] = SourceError,
    what: str = "",
    expected: str = "",
    max_bytes: int | None = None,
    encoding: str = "utf-8-sig",
) -> str:
    """The file as text (a UTF-8 BOM dropped): ``read_bytes`` then ``decode``, every failure one located line."""
    where = location if location is not None else str(path)
    data = read_bytes(path, where, error=error, what=what, expected=expected, max_bytes=max_bytes)
    return decode(data, where, error=error, expected=expected, encoding=encoding)
