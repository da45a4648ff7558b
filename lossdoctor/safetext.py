"""Text from a run (names, paths, messages) made safe for a terminal: control characters made visible.

Why: a run name, a file name or a log line may carry ESC/BEL/OSC sequences that rewrite the user's
terminal (title, clipboard, hyperlinks) even through a pipe that is later ``cat``-ed. Every line lossdoctor
prints that holds such text goes through ``visible``; reports use their own escaping on top.
"""

from __future__ import annotations

import re

#: C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides that reorder or
#: split what a terminal shows.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def visible(text: object) -> str:
    """``text`` on one line with every control character shown as ``\\xNN`` (tab and newline too)."""
    return CONTROL.sub(_escape, str(text))


def blank(text: object) -> str:
    """``text`` on one line with control characters turned into spaces and runs of space collapsed."""
    return " ".join(CONTROL.sub(" ", str(text)).split())
