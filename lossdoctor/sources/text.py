"""Text decoding for logs: BOMs, UTF-16 (PowerShell `>`), cp949/GBK consoles, undecodable bytes."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from typing import AnyStr, BinaryIO

from lossdoctor.memory import release

#: Bytes read at a time by the streaming readers (hf-console, big text logs).
CHUNK_BYTES = 4 * 1024 * 1024
#: every this many chunks, free heap memory is handed back to the system (lossdoctor/memory.py)
RELEASE_EVERY = 8

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def guess_encoding(data: bytes) -> str:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    sample = data[:4096]
    # UTF-16 without BOM: every other byte is NUL for ASCII text
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4 and sample[0::2].count(0) < len(sample) // 16:
        return "utf-16-le"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # cut in the middle of a multibyte char
            return "utf-8"
    for name in ("cp949", "gbk"):
        try:
            sample.decode(name)
            return name
        except UnicodeDecodeError:
            continue
    return "utf-8"


def decode_bytes(data: bytes) -> tuple[str, str, bool]:
    """(text, encoding, lossy). Never raises; undecodable bytes become U+FFFD."""
    enc = guess_encoding(data)
    try:
        return data.decode(enc), enc, False
    except UnicodeDecodeError:
        return data.decode(enc, errors="replace"), enc, True


def looks_binary(data: bytes) -> bool:
    """True for content that is not text in any encoding we read (NULs outside UTF-16, control bytes)."""
    if not data:
        return False
    enc = guess_encoding(data)
    if enc.startswith(("utf-16", "utf-32")):
        return False
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    ctrl = sum(1 for b in sample if b < 9 or 13 < b < 27 or 27 < b < 32)
    return ctrl > len(sample) * 0.05


def iter_text_chunks(
    fh: BinaryIO, encoding: str, chunk_bytes: int = CHUNK_BYTES, limit: int | None = None, after: str = ""
) -> Iterator[tuple[str, str, int]]:
    """(text, lookahead, bytes read so far): decoded text in chunks that end at a line break, and the next
    complete line up to its first printed dict (``{'``, which starts every match of the hf-console scan), so a
    dict on a chunk's last line still sees the bar redrawn after it and nothing is matched twice: that line is
    scanned again, whole, as the start of the next chunk. ``limit`` reads at most that many bytes (one piece
    of a file split at line starts); ``after`` is then the line that follows the piece, the last chunk's
    lookahead under the same rule."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return _line_chunks(fh, decoder.decode, lambda text: (text, b""), "\n", "{'", chunk_bytes, limit, after)


def iter_utf8_chunks(
    fh: BinaryIO, chunk_bytes: int = CHUNK_BYTES, limit: int | None = None, after: bytes = b"", bom: bool = False
) -> Iterator[tuple[bytes, bytes, int]]:
    """The chunks of :func:`iter_text_chunks` for UTF-8, left undecoded: decoding each piece with
    ``errors="replace"`` gives that function's text (a chunk ends at a line break, where decoding is in step;
    ``bom``: a UTF-8 BOM at the start is dropped, as the ``utf-8-sig`` decoder does)."""
    head = [b""] if bom else []  # the start while it may still be a BOM, read by read

    def pass_through(data: bytes, final: bool = False) -> bytes:
        if not head:
            return data
        start = head[0] + data
        if len(start) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(start) and not final:
            head[0] = start
            return b""
        head.clear()
        return start[len(codecs.BOM_UTF8) :] if start.startswith(codecs.BOM_UTF8) else start

    return _line_chunks(fh, pass_through, _utf8_held_back, b"\n", b"{'", chunk_bytes, limit, after)


def _utf8_held_back(data: bytes) -> tuple[bytes, bytes]:
    """(complete, held back): the bytes an incremental UTF-8 decoder would hold back at the end of ``data`` (an
    incomplete character) split off, so that giving up a line drops what the text path drops."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    decoder.decode(data[-3:])
    held = decoder.getstate()[0]
    return (data[: len(data) - len(held)], held) if held else (data, b"")


def _line_chunks(
    fh: BinaryIO,
    decode: Callable[..., AnyStr],
    split_held: Callable[[AnyStr], tuple[AnyStr, bytes]],
    newline: AnyStr,
    mark: AnyStr,
    chunk_bytes: int,
    limit: int | None,
    after: AnyStr,
) -> Iterator[tuple[AnyStr, AnyStr, int]]:
    """The chunking of :func:`iter_text_chunks`, for text (``decode`` an incremental decoder) or bytes."""
    rest = newline[:0]
    total = 0
    chunks = 0
    pending = 0  # bytes read since a chunk last went out
    while True:
        if limit is None:
            data = fh.read(chunk_bytes)
        else:
            data = fh.read(min(chunk_bytes, limit - total)) if total < limit else b""
        total += len(data)
        pending += len(data)
        chunks += 1
        if chunks % RELEASE_EVERY == 0:
            release()  # what the last chunks' matches freed goes back to the system, not into the peak
        if not data:
            text = rest + decode(b"", True)
            if text:
                yield text, _before(after, mark), total
            return
        text = rest + decode(data)
        last = text.rfind(newline)
        cut = text.rfind(newline, 0, last) + 1 if last > 0 else 0
        if cut == 0:
            if pending < 64 * chunk_bytes:
                rest = text
                continue
            # no second line break in 64 chunks: the complete lines go out with the start of the line being
            # read as their lookahead, and that line (a run of redraws, or binary) is given up (all but the
            # end of a character cut by the read, which the text path's decoder holds back)
            line, held = split_held(text[last + 1 :])
            if last > 0:
                yield text[: last + 1], _before(line, mark), total
            rest = decode(held)
            pending = 0
            continue
        extra = text[cut : last + 1]
        rest = text[cut:]
        pending = 0
        yield text[:cut], _before(extra, mark), total


def _before(line: AnyStr, mark: AnyStr) -> AnyStr:
    cut = line.find(mark)
    return line if cut < 0 else line[:cut]


def before_dict(line: str) -> str:
    """A lookahead line up to its first printed dict (``{'``): what a match may read past a chunk's end."""
    return _before(line, "{'")
