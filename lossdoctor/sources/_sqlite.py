"""Reading tracker SQLite files (trackio projects, MLflow's mlflow.db) safely: read-only, bounded, and
never running anything the file defines.

Why a module of its own: both stores need the same guards. The file is opened through a ``mode=ro`` URI
(no write, no journal creation), with ``trusted_schema=OFF`` (no SQL functions from views or triggers in the
file's schema) and ``query_only=ON``; readers only SELECT from tables they name, so no view or trigger the
file defines is used. A damaged, truncated or foreign file becomes one SourceError naming the file.
The leading underscore keeps this module out of the reader registry; ``sqlite3`` itself is imported when a file
is opened (detecting any other kind of file does not pay for it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from lossdoctor.errors import SourceError

if TYPE_CHECKING:
    import sqlite3

MAGIC = b"SQLite format 3\x00"
#: rows read from one table at most (a tracker DB of a long run holds ~1e5-1e6); beyond it, said in a note
MAX_ROWS = 5_000_000


def is_sqlite(head: bytes) -> bool:
    return head[:16] == MAGIC


def _connect(path: Path) -> sqlite3.Connection:
    import sqlite3

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=2.0)
    conn.execute("PRAGMA trusted_schema = OFF")
    conn.execute("PRAGMA query_only = ON")
    return conn


@contextmanager
def open_readonly(path: Path, location: str, what: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection; any SQLite failure inside the block → SourceError naming the file."""
    import sqlite3

    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open as SQLite ({exc}); expected {what}", location) from None
    try:
        yield conn
    except sqlite3.DatabaseError as exc:
        raise SourceError(
            f"unreadable SQLite database ({exc}: damaged or truncated?); expected {what}", location
        ) from None
    finally:
        conn.close()


def schema(conn: sqlite3.Connection) -> dict[str, set[str]]:
    """table name → its column names (tables only: views and triggers are never looked at)."""
    out: dict[str, set[str]] = {}
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for name in names:
        if not isinstance(name, str):
            continue
        quoted = '"' + name.replace('"', '""') + '"'
        out[name] = {str(row[1]) for row in conn.execute(f"PRAGMA table_info({quoted})")}
    return out


def peek_schema(path: Path) -> dict[str, set[str]] | None:
    """The schema of an SQLite file for sniffers; None when it cannot be read. Never raises."""
    import sqlite3

    try:
        conn = _connect(path)
    except (sqlite3.Error, OSError, ValueError):
        return None
    try:
        return schema(conn)
    except (sqlite3.Error, ValueError):
        return None
    finally:
        conn.close()
