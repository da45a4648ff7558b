"""The hf-console reader's compiled matcher (lossdoctor/_cscan.c) against the regex it replaces.

The regex (``_hf_scan._match_regex``) is the reference: on random logs, cut anywhere, in every width of str
(Latin-1, UCS-2 bar blocks, UCS-4 emoji), with Unicode digits in bar counters, both give the same matches,
values bit for bit, the same parsed mask and the same bars. A number written plainly is converted in C;
anything else is handed to ``float()``: each gives what ``float()`` gives.
"""

from __future__ import annotations

import math
import random
import shutil
import struct
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from lossdoctor.sources import _hf_scan

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from consolekit import random_console, scan_fields  # noqa: E402

compiled = pytest.mark.skipif(_hf_scan._cscan is None, reason="the compiled matcher is not built here")


def test_the_compiled_parts_are_built_where_a_compiler_is() -> None:
    """setup.py builds them as optional (a machine with no C compiler or no Python headers still installs);
    where both are found, a failed build would quietly cost the speed, so they must be there."""
    from lossdoctor.rules import rolling

    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) here")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        pytest.skip("no Python headers (Python.h) here")
    assert _hf_scan._cscan is not None
    assert rolling._cmedian is not None


def _fields(m: _hf_scan._Matches | None) -> object:
    if m is None:
        return None
    return (
        m.rows,
        m.dom_rows.tolist(),
        [struct.pack("<d", x) if not math.isnan(x) else "nan" for x in m.dom_values.ravel().tolist()],
        None if m.dom_ok is None else m.dom_ok.tolist(),
        m.after_n.tolist(),
        m.after_total.tolist(),
        m.others,
    )


def _both(text: str, keys: tuple[str, ...], quoted: tuple[bool, ...]) -> tuple[object, object]:
    regex = _hf_scan._template_regex(keys, quoted)
    return (
        _fields(_hf_scan._match_compiled(text, keys, quoted)),
        _fields(_hf_scan._match_regex(regex, text, len(keys))),
    )


_WIDE = ["é", "█", "▌", "😀", "\ufffd", "٣", "߁"]


def _widen(rng: random.Random, text: str) -> str:
    """Characters of every str width spliced in (into bars, values, counters and between lines), and the
    characters the matchers stop at."""
    out = []
    for piece in text.split("|"):
        out.append(piece)
        if rng.random() < 0.05:
            out.append(rng.choice(_WIDE))
    joined = "|".join(out)
    # where the matchers decide: values, and a bar's percent sign and counters
    spots = [i + 3 for i in range(len(joined)) if joined.startswith("': ", i)]
    spots += [i for i in range(len(joined)) if joined[i] in "%/["]
    for _ in range(rng.randint(0, 30)):  # a character the matchers stop at, anywhere, and at those spots
        at = rng.randrange(len(joined) + 1)
        if spots and rng.random() < 0.5:
            at = max(0, min(len(joined), rng.choice(spots) + rng.randint(-2, 4)))
        joined = (
            joined[:at]
            + rng.choice(["{", "}", "'", ",", "\r", "\n", ": ", "\x1b[A", '"', "%", "|", "{'", " ", "/"])
            + joined[at:]
        )
    if rng.random() < 0.5:  # a counter in Arabic-Indic digits (\d matches them; int() reads them)
        joined = joined.replace("| 1", "| ١", 3).replace("/100 ", "/١٠٠ ", 2)
    return joined


@compiled
@pytest.mark.parametrize("first", [0, 25, 50])
def test_compiled_matcher_equals_the_regex_on_random_logs(first: int) -> None:
    layouts = [
        (("loss", "grad_norm", "epoch"), (True, True, True)),
        (("loss", "grad_norm", "epoch"), (False, True, True)),
        (("loss", "grad_norm", "epoch"), (True, False, False)),
        (("eval_loss", "eval_runtime", "epoch"), (True, True, True)),
        (("loss",), (True,)),
    ]
    for seed in range(first, first + 25):
        rng = random.Random(seed)
        text = random_console(rng, rng.randint(20, 600)).decode("utf-8", errors="replace")
        if rng.random() < 0.8:
            text = _widen(rng, text)
        for keys, quoted in layouts:
            a = rng.randrange(len(text) + 1)
            b = rng.randrange(a, len(text) + 1)
            for piece in (text, text[a:b]):
                got, want = _both(piece, keys, quoted)
                assert got == want, (seed, keys, quoted, a, b)


def _scanned_both_ways(
    path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, object], dict[str, object]]:
    """(scan_file's result with the compiled matcher, without it), as plain values."""
    with_c = scan_fields(_hf_scan.scan_file(path, chunk_bytes=chunk))
    with monkeypatch.context() as m:
        m.setattr(_hf_scan, "_cscan", None)
        return with_c, scan_fields(_hf_scan.scan_file(path, chunk_bytes=chunk))


@compiled
def test_a_whole_scan_is_the_same_with_and_without_the_compiled_matcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through scan_file (layout learning, template switches, chunk lookaheads): both matchers, one result."""
    for seed in range(12):
        rng = random.Random(1000 + seed)
        path = tmp_path / f"r{seed}.log"
        path.write_bytes(random_console(rng, rng.randint(200, 3000)))
        with_c, without = _scanned_both_ways(path, rng.randint(300, 6000), monkeypatch)
        assert with_c == without, seed
        assert with_c["kind"], seed  # the log had dicts


def _number_strings(rng: random.Random) -> list[str]:
    digits = "0123456789"
    out = [
        "0",
        "-0",
        "+0.0",
        ".5",
        "5.",
        "-.5e-3",
        "1e22",
        "1e23",
        "9007199254740992",
        "9007199254740993",
        "123456789012345678901234567890",
        "0.1",
        "2.5e-308",
        "1e-400",
        "1e400",
        "-1E+05",
        "00000.000012",
    ]
    for _ in range(3000):
        sig = "".join(rng.choice(digits) for _ in range(rng.randint(1, 22)))
        dot = rng.randint(0, len(sig))
        s = rng.choice(["", "-", "+"]) + sig[:dot] + rng.choice([".", ""]) + sig[dot:]
        if rng.random() < 0.5:
            s += rng.choice("eE") + rng.choice(["", "-", "+"]) + str(rng.randint(0, 40 if rng.random() < 0.9 else 400))
        out.append(s)
        out.append(repr(rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)))
        out.append(f"{rng.random() * 10 ** rng.randint(-8, 8):.4g}")
    for _ in range(20_000):  # repr'd floats (17 digits, as transformers 4 prints grad_norm), every magnitude
        out.append(repr(rng.random() * 10 ** rng.randint(-24, 24)))
    for k in range(54, 64):  # integers halfway between two doubles, and next to halfway
        for delta in (-1, 0, 1):
            out.append(str(2**k + 2 ** (k - 53) + delta))
    return out


@compiled
def test_values_are_what_float_reads() -> None:
    """Plain numbers converted in C, the rest (nan, inf, blanks, underscores, non-ASCII digits, empty, junk)
    by float(): every value is float()'s, bit for bit, and a value float() refuses is marked unparsed."""
    rng = random.Random(7)
    odd = ["nan", "-inf", "Infinity", " 2.5", "1_000", "٣.٥", "", ".", "e5", "1e", "+", "--1", "0x10", "1.5x", "١"]
    values = _number_strings(rng) + odd
    text = "".join(f"{{'loss': '{v}'}}\n" for v in values)
    got = _hf_scan._match_compiled(text, ("loss",), (True,))
    assert got is not None and got.rows == len(values)
    for i, v in enumerate(values):
        try:
            want = float(v)
        except ValueError:
            assert got.dom_ok is not None and not got.dom_ok[i, 0], v
            continue
        assert got.dom_ok is None or got.dom_ok[i, 0], v
        x = float(got.dom_values[i, 0])
        assert struct.pack("<d", x) == struct.pack("<d", want) or (math.isnan(x) and math.isnan(want)), v
    got_re, want_re = _both(text, ("loss",), (True,))
    assert got_re == want_re


@compiled
def test_bars_and_redraws_as_the_regex_reads_them() -> None:
    """The optional bar after a dict: CRLF, 64 redraws but not 65, 3 percent digits but not 4, 18 counter
    digits but not 19, a missing or doubled blank, a bar with no bracket, a bar in UCS-4 text, a doubled or
    missing sign."""
    d = "{'loss': '1.5'}"
    bar = " 50%|##| {n}/{t} ["
    cases = [
        d + "\r\n" + bar.format(n=5, t=10),
        d + "\n" + "\x1b[A" * 64 + bar.format(n=6, t=10),
        d + "\n" + "\r" * 65 + bar.format(n=7, t=10),
        d + "\n 1000%|##| 8/10 [",
        d + "\n" + bar.format(n="9" * 18, t="9" * 18),
        d + "\n" + bar.format(n="9" * 19, t=10),
        d + "\n 50%|##|11/12 [",
        d + "\n 50%|##| 11/12 ",
        d + "\r" + bar.format(n=3, t=4),
        "😀" + d + "\n\t 5%|😀| 13/14 [",
        d + "\n 50%|#\n#| 1/2 [",
        d + "\n 50%%|#| 1/2 [",
        d + "\n 50|#| 1/2 [",
        d + "\n 50%|#| 1//2 [",
        d + "\n 50%|#| 1/2 x[",
        d + "\n 50%|#|  1/2 [",
    ]
    for case in cases:
        got, want = _both(case, ("loss",), (True,))
        assert got == want, repr(case)
    found = _hf_scan._match_compiled(cases[0] + cases[4], ("loss",), (True,))
    assert found is not None
    assert found.after_n.tolist() == [5, 10**18 - 1]


def test_without_the_compiled_matcher_values_are_float_s_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The regex path's value-by-value fallback reads each value on its own: '1_000' is float()'s 1000 whether
    or not another value of the block fails (it was parse_number's refusal only when one did)."""
    keys, quoted = ("loss",), (True,)
    regex = _hf_scan._template_regex(keys, quoted)
    alone = _hf_scan._match_regex(regex, "{'loss': '1_000'}\n", 1)
    with_bad = _hf_scan._match_regex(regex, "{'loss': '1_000'}\n{'loss': 'x'}\n", 1)
    assert alone is not None and with_bad is not None
    assert alone.dom_values[0, 0] == with_bad.dom_values[0, 0] == 1000.0
    assert with_bad.dom_ok is not None and with_bad.dom_ok[:, 0].tolist() == [True, False]
    assert np.isnan(with_bad.dom_values[1, 0])


def _utf8_edge_bytes(rng: random.Random, n: int) -> bytes:
    """Bytes that exercise every branch of a UTF-8 decoder: lead bytes of each length, their special second
    byte ranges (E0, ED, F0, F4), stray continuations, bytes never valid, U+FFFD itself, ASCII runs."""
    pieces = [b"\xef\xbf\xbd", "█".encode(), "😀".encode(), "é".encode(), b"wandb:", b"wandb", b":"]
    out = bytearray()
    while len(out) < n:
        r = rng.random()
        if r < 0.3:
            out += rng.choice(pieces)
        elif r < 0.5:
            out += bytes(rng.choice(b"abc {}':\n\r0123456789") for _ in range(rng.randint(1, 12)))
        else:
            out.append(
                rng.choice(
                    [
                        0x80,
                        0x8F,
                        0x90,
                        0x9F,
                        0xA0,
                        0xBF,
                        0xC0,
                        0xC1,
                        0xC2,
                        0xDF,
                        0xE0,
                        0xE1,
                        0xEC,
                        0xED,
                        0xEE,
                        0xEF,
                        0xF0,
                        0xF1,
                        0xF3,
                        0xF4,
                        0xF5,
                        0xFF,
                        rng.randrange(256),
                    ]
                )
            )
    return bytes(out)


@compiled
def test_text_facts_count_what_decoding_replaces() -> None:
    """U+FFFD after decoding with errors="replace" (one per ill-formed maximal subpart, as Python's decoder
    gives them, plus those written in the text), and whether "wandb:" occurs, from the bytes alone."""
    assert _hf_scan._cscan is not None
    rng = random.Random(11)
    for _ in range(3000):
        data = _utf8_edge_bytes(rng, rng.choice([rng.randint(0, 40), rng.randint(40, 400)]))
        count, wandb = _hf_scan._cscan.text_facts(data)
        assert count == data.decode("utf-8", errors="replace").count("\ufffd"), data
        assert wandb == (b"wandb:" in data), data


@compiled
def test_bytes_are_matched_as_their_decoded_text() -> None:
    """The UTF-8 matcher on undecodable bytes, wide characters and Unicode digits (bars, values, bodies) gives
    what the matchers give on the text decoded with errors="replace"."""
    keys_sets = [
        (("loss", "grad_norm", "epoch"), (True, True, True)),
        (("loss", "grad_norm", "epoch"), (False, True, True)),
    ]
    for seed in range(120):
        rng = random.Random(seed)
        text = _widen(rng, random_console(rng, rng.randint(20, 300)).decode("utf-8", errors="replace"))
        data = bytearray(text.encode("utf-8"))
        for _ in range(rng.randint(0, 20)):  # undecodable bytes anywhere
            at = rng.randrange(len(data) + 1)
            data[at:at] = _utf8_edge_bytes(rng, rng.randint(1, 3))
        decoded = bytes(data).decode("utf-8", errors="replace")
        for keys, quoted in keys_sets:
            got = _fields(_hf_scan._match_compiled(bytes(data), keys, quoted))
            assert got == _fields(_hf_scan._match_compiled(decoded, keys, quoted)), seed
            assert got == _both(decoded, keys, quoted)[1], seed


def _decoded_chunks(chunks) -> list[tuple[str, str, int]]:
    return [
        (a.decode("utf-8", errors="replace"), b.decode("utf-8", errors="replace"), n)
        if isinstance(a, bytes)
        else (a, b, n)
        for a, b, n in chunks
    ]


def test_utf8_chunks_decode_to_the_text_chunks() -> None:
    """Undecoded chunks (iter_utf8_chunks) decode to the text chunks (iter_text_chunks), read for read: line
    breaks, lookaheads cut before a dict, a BOM, pieces with a following line, and lines with no break for 64
    chunks given up at the same place, a character cut by the read held back as the text decoder holds it."""
    import io

    from lossdoctor.sources.text import iter_text_chunks, iter_utf8_chunks

    for seed in range(300):
        rng = random.Random(seed)
        lines = []
        for _ in range(rng.randint(0, 40)):
            r = rng.random()
            if r < 0.1:  # an endless line: no break for many chunks, multi-byte characters across reads
                lines.append("█" * rng.randint(50, 400) + "{'loss': '1'}" + "é" * rng.randint(0, 300))
            else:
                lines.append(rng.choice(["{'loss': '1.5'}", " 5%|█| 1/2 [", "x", "", "😀{'a'"]) * rng.randint(1, 4))
        data = "\n".join(lines).encode("utf-8") + (b"\n" if rng.random() < 0.5 else b"")
        data = bytes(_utf8_edge_bytes(rng, 2)) + data if rng.random() < 0.3 else data
        bom = rng.random() < 0.3
        if bom:
            data = b"\xef\xbb\xbf" + data
        chunk = rng.randint(1, 64)
        limit = rng.choice([None, rng.randint(0, len(data) + 1)])
        after = rng.choice([b"", b" 7%|#| 3/9 [x{'loss'", "é".encode()[:1]])
        enc = "utf-8-sig" if bom else "utf-8"
        want = list(iter_text_chunks(io.BytesIO(data), enc, chunk, limit, after.decode("utf-8", errors="replace")))
        got = _decoded_chunks(iter_utf8_chunks(io.BytesIO(data), chunk, limit, after, bom=bom))
        assert got == want, seed


@compiled
def test_other_encodings_and_undecodable_keys_match_as_the_regex(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UTF-16 log (PowerShell's ``>``) is decoded and matched as text by the compiled matcher; a log whose
    common dict has a key with an undecodable byte (U+FFFD in the key) is matched as text too: both as the
    regex path reads them."""
    rng = random.Random(3)
    body = random_console(rng, 800).decode("utf-8", errors="replace")
    odd = "".join(f"{{'lo\udcffss': '{i / 7:.4g}', 'epoch': '{i}'}}\n" for i in range(300))
    cases = {
        "u16.log": ("\ufeff" + body).encode("utf-16-le"),
        "badkey.log": odd.encode("utf-8", errors="surrogateescape") + body.encode("utf-8"),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with_c, without = _scanned_both_ways(path, 5000, monkeypatch)
        assert with_c == without, name
        assert len(with_c["kind"]) > 100, name


@compiled
def test_a_str_with_surrogate_keys_is_matched_as_the_regex_matches_it() -> None:
    """A str text never needs its keys in UTF-8 (a lone surrogate, which has none, is matched like any
    character)."""
    text = "{'\ud800': 1}\n{'\ud800': '2'}"
    for quoted in ((False,), (True,)):
        got, want = _both(text, ("\ud800",), quoted)
        assert got == want and got is not None
