"""TensorBoard event files (HF ``logging_dir``, Lightning ``lightning_logs/version_N``, torchtune).

Why this design. TensorBoard's own ``EventFileLoader`` works without TensorFlow (through its
``tensorflow_stub``), but it costs ~140 ms of imports, logs a "TensorFlow not found" warning path,
hides framing problems (a truncated last record of a run that is still writing) and still leaves the
scalar/tensor decoding to us. So the framing is read here — TFRecord: uint64 length, masked CRC-32C of
the length, payload, masked CRC-32C of the payload — and only the payload (an ``Event`` protobuf) is
decoded with ``tensorboard.compat.proto.event_pb2`` (pure protobuf, ~40 ms import, no TensorFlow).
The length CRC is checked on every record (8 bytes: cheap in Python), the payload CRC is not (a pure-Python
CRC over every byte would dominate the read); a payload that fails to parse is skipped and counted.
The protobuf module comes from the ``tensorboard`` package: ``pip install 'lossdoctor[tensorboard]'``.

Speed (800,000 events in well under a second): the record chain is walked in one tight loop (offsets only),
the length CRCs are checked for all records at once in numpy, and the dominant payload, an ``Event`` holding
wall_time, step and one ``simple_value`` (what ``add_scalar`` writes), is decoded column-wise from the raw bytes
(the field tags and varints at their offsets, vectorised over the records). A record that does not match that
layout exactly is parsed by the protobuf module, one by one, as before.

Keras' TensorBoard callback writes one run as two directories, ``train/`` and ``validation/``, with the same
tags (``epoch_loss``): a ``validation`` (or ``val``/``eval``) directory beside a ``train`` one is read into that
run, its tags as ``val_<tag>`` (``epoch_loss`` becomes ``val_loss``), so the held-out curve is the eval loss.

Scalars come in two encodings: ``simple_value`` (HF TensorBoardCallback, ``add_scalar`` default) and a
0-d tensor with plugin ``scalars`` (``add_scalar(new_style=True)``, torchtune; the plugin metadata is only
written with a tag's first value). Both are read; strings, images, histograms are ignored.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lossdoctor.errors import SourceError
from lossdoctor.metrics.names import canonicalise
from lossdoctor.model import Run
from lossdoctor.sources._readkit import make_run, split_step_epoch_names
from lossdoctor.sources.base import ReadOptions, Target
from lossdoctor.tidy import Coded, tidy_points

EVENT_GLOB = "events.out.tfevents.*"
INSTALL_HINT = "reading TensorBoard event files needs the tensorboard package: pip install 'lossdoctor[tensorboard]'"
_MAX_DIR_DEPTH = 4


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def looks_like_event_file(head: bytes) -> bool:
    """The first record's length CRC matches: the TFRecord magic, in effect."""
    if len(head) < 12:
        return False
    (crc,) = struct.unpack_from("<I", head, 8)
    return masked_crc32c(head[:8]) == crc


def iter_records(data: bytes) -> tuple[list[bytes], str | None]:
    """Payloads of a TFRecord file, and a note if the framing broke (truncated or corrupt tail)."""
    offsets, lengths, _, problem = record_offsets(data, eof=True)
    return [data[o : o + n] for o, n in zip(offsets.tolist(), lengths.tolist())], problem


_U64 = struct.Struct("<Q").unpack_from
#: event files are read in blocks of about this many bytes (memory stays flat whatever the file size)
BLOCK_BYTES = 1 << 20


def record_offsets(data: bytes, eof: bool, base: int = 0) -> tuple[np.ndarray, np.ndarray, int, str | None]:
    """(payload offsets, payload lengths, bytes consumed, note if the framing broke) of the complete TFRecord
    records in ``data`` (``base``: its offset in the file, for the notes). The chain of lengths is walked in
    one loop, then every length CRC checked at once (numpy); records from the first bad header on are dropped,
    as a truncated tail is. Without ``eof`` a record cut by the end of ``data`` is left for the next block."""
    offsets: list[int] = []
    pos, end = 0, len(data)
    problem: str | None = None
    append = offsets.append
    while pos < end:
        if end - pos < 12:
            if eof:
                problem = f"truncated record at byte {base + pos} (file still being written?); read up to there"
            break
        start = pos + 12
        stop = start + _U64(data, pos)[0] + 4
        if stop > end:
            (crc,) = struct.unpack_from("<I", data, pos + 8)
            if masked_crc32c(data[pos : pos + 8]) != crc:
                problem = f"bad record framing at byte {base + pos}; read up to there"
            elif eof:
                problem = f"truncated record at byte {base + pos} (file still being written?); read up to there"
            break
        append(start)
        pos = stop
    starts = np.asarray(offsets, dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(starts):
        heads = starts - 12
        crc = np.full(len(starts), 0xFFFFFFFF, dtype=np.uint32)
        for k in range(8):
            crc = _CRC_TABLE[(crc ^ buf[heads + k]) & 0xFF] ^ (crc >> np.uint32(8))
        crc ^= np.uint32(0xFFFFFFFF)
        masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)
        stored = _gather_le(buf, heads + 8, 4).astype(np.uint32)
        bad = np.flatnonzero(masked != stored)
        if len(bad):
            first = int(bad[0])
            problem = f"bad record framing at byte {base + int(heads[first])}; read up to there"
            starts = starts[:first]
            pos = int(heads[first])
    lengths = _gather_le(buf, starts - 12, 8).astype(np.int64) if len(starts) else np.zeros(0, dtype=np.int64)
    return starts, lengths, pos, problem


_CRC_TABLE = np.asarray(_TABLE, dtype=np.uint32)


def _gather_le(buf: np.ndarray, at: np.ndarray, size: int) -> np.ndarray:
    """Little-endian unsigned integers of ``size`` bytes at each offset (uint64)."""
    out = np.zeros(len(at), dtype=np.uint64)
    for k in range(size):
        out |= buf[at + k].astype(np.uint64) << np.uint64(8 * k)
    return out


def _varint(buf: np.ndarray, at: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, length in bytes) of the protobuf varint at each offset; ``ok`` is cleared where none fits."""
    last = len(buf) - 1
    value = np.zeros(len(at), dtype=np.uint64)
    length = np.zeros(len(at), dtype=np.int64)
    going = ok.copy()
    for k in range(10):
        b = buf[np.minimum(at + k, last)]
        value |= np.where(going, (b & 0x7F).astype(np.uint64) << np.uint64(7 * k), np.uint64(0))
        length += going
        going &= (b & 0x80) != 0
    ok &= ~going  # still going after 10 bytes: not a varint
    return value, length


def _fast_scalars(data: bytes, offsets: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Decode, column-wise, the records laid out as ``Event{wall_time, [step], summary{value{tag,
    simple_value}}}`` and nothing else; ``ok`` marks them (the rest are for the protobuf module)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    last = len(buf) - 1
    n = len(offsets)

    def at(i: np.ndarray) -> np.ndarray:
        return buf[np.minimum(i, last)]

    p = offsets
    ok = (lengths >= 20) & (at(p) == 0x09)
    wall = _gather_le(buf, np.minimum(p + 1, last - 8), 8).view(np.float64)
    has_step = at(p + 9) == 0x10
    step_raw, step_len = _varint(buf, p + 10, ok & has_step)
    step = np.where(has_step, step_raw, np.uint64(0)).view(np.int64)
    q = np.where(has_step, p + 10 + step_len, p + 9)
    ok &= at(q) == 0x2A
    s_len, s_n = _varint(buf, q + 1, ok)
    q2 = q + 1 + s_n
    ok &= at(q2) == 0x0A
    v_len, v_n = _varint(buf, q2 + 1, ok)
    q3 = q2 + 1 + v_n
    ok &= at(q3) == 0x0A
    t_len, t_n = _varint(buf, q3 + 1, ok)
    tag_at = q3 + 1 + t_n
    t_len = t_len.astype(np.int64)
    val_at = tag_at + t_len
    ok &= at(val_at) == 0x15
    end = val_at + 5
    ok &= (end == p + lengths) & (q2 + s_len.astype(np.int64) == end) & (q3 + v_len.astype(np.int64) == end)
    value = _gather_le(buf, np.minimum(val_at + 1, last - 4), 4).astype(np.uint32).view(np.float32)
    return {
        "ok": ok,
        "wall": wall,
        "step": step,
        "tag_at": tag_at,
        "tag_len": t_len,
        "value": value.astype(np.float64),
        "n": np.asarray(n),
    }


_DTYPES = {1: "<f", 2: "<d", 3: "<i", 9: "<q", 19: "<e"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64, DT_HALF


def _tensor_scalar(t: Any) -> float | None:
    """The value of a scalar TensorProto (protobuf: no stubs, attributes read as Any), else None."""
    if len(t.tensor_shape.dim):
        return None
    for name in ("float_val", "double_val", "int_val", "int64_val"):
        vals = getattr(t, name)
        if len(vals):
            return float(vals[0])
    fmt = _DTYPES.get(int(t.dtype))
    content = t.tensor_content
    if fmt and len(content) == struct.calcsize(fmt):
        return float(struct.unpack(fmt, content)[0])
    if int(t.dtype) == 19 and len(t.half_val):
        return float(struct.unpack("<e", struct.pack("<H", t.half_val[0]))[0])
    return None


VALIDATION_DIRS = ("validation", "val", "eval")


def _val_tag(tag: str) -> str:
    return "val_" + (tag[len("epoch_") :] if tag.startswith("epoch_") else tag)


#: What a chunk column is replaced with once copied out (the copy then holds the only reference to the data).
_FREED = np.empty(0)


@dataclass
class _Points:
    """Scalars read so far: per tag (a code into ``names``), numpy chunks of (step, value, wall time) in file
    order."""

    names: dict[str, int] = field(default_factory=dict)
    chunks: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=dict)
    validation: bool = False  # reading a Keras validation/ dir: tags as val_<tag>

    def __len__(self) -> int:
        return int(sum(len(c[1]) for parts in self.chunks.values() for c in parts))

    def code(self, tag: str) -> int:
        if self.validation:
            tag = _val_tag(tag)
        found = self.names.get(tag)
        if found is None:
            found = self.names[tag] = len(self.names)
        return found

    def add(self, steps: np.ndarray, codes: np.ndarray, values: np.ndarray, walls: np.ndarray) -> None:
        if not len(codes):
            return
        if bool((codes == codes[0]).all()):
            groups = [(int(codes[0]), slice(None))]
        else:
            groups = [(int(c), codes == c) for c in np.unique(codes)]
        for code, sel in groups:
            self.chunks.setdefault(code, []).append((steps[sel], values[sel], walls[sel]))

    def columns(self, canonical: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(steps, tag codes, values, wall times), tags in the order of their canonical names (then first seen),
        each tag's points in file order: for step-ordered logs that is the table's own (metric, step) order, so
        the tidy constructor has nothing to reorder. Chunks are moved into preallocated columns one column at a
        time (the memory of the points, not twice it)."""
        tags = sorted(self.chunks, key=lambda c: (canonical[c], c))
        total = len(self)
        codes = np.empty(total, dtype=np.int32)
        out = [np.empty(total, dtype=np.int64), np.empty(total, dtype=np.float64), np.empty(total, dtype=np.float64)]
        for col in range(3):
            pos = 0
            for tag in tags:
                parts = self.chunks[tag]
                for i, part in enumerate(parts):
                    k = len(part[col])
                    out[col][pos : pos + k] = part[col]
                    if col == 0:
                        codes[pos : pos + k] = tag
                    rest = list(part)
                    rest[col] = _FREED  # freed as copied
                    parts[i] = (rest[0], rest[1], rest[2])
                    pos += k
        self.chunks = {}
        return out[0], codes, out[1], out[2]


def read_event_file(path: Path, location: str, points: _Points, notes: list[str], validation: bool = False) -> int:
    """Add the scalars of one event file to `points`, reading it block by block; returns how many were read.
    ``validation``: the file is in a Keras ``validation/`` dir (its tags become ``val_<tag>``)."""
    points.validation = validation
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
    n_read = n_bad = records = 0
    problem: str | None = None
    plugins: dict[str, str] = {}
    with fh:
        data, base = b"", 0
        while True:
            try:
                more = fh.read(BLOCK_BYTES)
            except OSError as exc:
                raise SourceError(f"cannot read: {exc.strerror or exc}", location) from None
            eof = not more
            data = data + more if data else more
            offsets, lengths, used, problem = record_offsets(data, eof, base)
            records += len(offsets)
            if len(offsets):
                got, bad = _block_scalars(data, offsets, lengths, points, plugins, location)
                n_read, n_bad = n_read + got, n_bad + bad
            if eof or problem:
                break
            data, base = data[used:], base + used
    if problem:
        notes.append(f"{path.name}: {problem}")
    if not records and problem:
        raise SourceError(f"not a TensorBoard event file ({problem})", location)
    if n_bad:
        notes.append(f"{path.name}: {n_bad} record(s) that are not Event protobufs skipped")
    return n_read


def _block_scalars(
    data: bytes, offsets: np.ndarray, lengths: np.ndarray, points: _Points, plugins: dict[str, str], location: str
) -> tuple[int, int]:
    """The scalars of one block's records into ``points`` (file order): the fast column-wise decoding where
    the layout allows, the protobuf module for the other records."""
    fast = _fast_scalars(data, offsets, lengths)
    ok = fast["ok"]
    # tags of the fast records: one slice per record, decoded once per distinct tag
    by_bytes: dict[bytes, int] = {}
    codes_list = []
    for a, n in zip(fast["tag_at"][ok].tolist(), fast["tag_len"][ok].tolist()):
        raw = data[a : a + n]
        code = by_bytes.get(raw)
        if code is None:
            code = by_bytes[raw] = points.code(raw.decode("utf-8", errors="replace"))
        codes_list.append(code)
    cols = [
        np.flatnonzero(ok),
        fast["step"][ok],
        np.asarray(codes_list, dtype=np.int32),
        fast["value"][ok],
        fast["wall"][ok],
    ]
    del fast
    slow = np.flatnonzero(~ok)
    n_bad = 0
    if len(slow):
        extra, n_bad = _protobuf_scalars(data, offsets[slow], lengths[slow], slow, points, plugins, location)
        if extra is not None:
            cols = [np.concatenate((c, e.astype(c.dtype))) for c, e in zip(cols, extra)]
            order = np.argsort(cols[0], kind="stable")  # back in file order
            cols = [c[order] for c in cols]
    _, steps, codes, values, walls = cols
    points.add(steps.astype(np.int64, copy=False), codes, values, walls)
    return int(len(values)), n_bad


def _protobuf_scalars(
    data: bytes,
    offsets: np.ndarray,
    lengths: np.ndarray,
    records: np.ndarray,
    points: _Points,
    plugins: dict[str, str],
    location: str,
) -> tuple[list[np.ndarray] | None, int]:
    """Scalars of the records the fast path did not take, parsed by the protobuf module (columns: record
    index, step, tag code, value, wall time), and how many records were not Events."""
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        raise SourceError(INSTALL_HINT, location) from None
    from google.protobuf.message import DecodeError

    bad = 0
    out: list[tuple[int, int, int, float, float]] = []
    event = event_pb2.Event()
    for rec, start, length in zip(records.tolist(), offsets.tolist(), lengths.tolist()):
        try:
            event.ParseFromString(data[start : start + length])
        except DecodeError:
            bad += 1
            continue
        if event.WhichOneof("what") != "summary":
            continue
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name:
                plugins[value.tag] = value.metadata.plugin_data.plugin_name
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = value.simple_value
            elif kind == "tensor" and plugins.get(value.tag, "scalars") == "scalars":
                number = _tensor_scalar(value.tensor)
            else:
                continue
            if number is None:
                continue
            out.append((rec, int(event.step), points.code(value.tag), float(number), float(event.wall_time)))
    if not out:
        return None, bad
    rec_c, step_c, code_c, val_c, wall_c = zip(*out)
    return [
        np.asarray(rec_c, dtype=np.int64),
        np.asarray(step_c, dtype=np.int64),
        np.asarray(code_c, dtype=np.int64),
        np.asarray(val_c, dtype=np.float64),
        np.asarray(wall_c, dtype=np.float64),
    ], bad


def find_event_files(root: Path, limit_depth: int = _MAX_DIR_DEPTH, first_only: bool = False) -> list[Path]:
    """Event files under `root`, at most `limit_depth` levels down, sorted (bounded walk: sniffers use it)."""
    found: list[Path] = []
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).parts) - base_depth
        if depth >= limit_depth:
            dirnames[:] = []
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("events.out.tfevents."):
                found.append(Path(dirpath) / fname)
                if first_only:
                    return found
    return sorted(found)


class TensorBoardSource:
    kind = "tensorboard"
    description = "TensorBoard event files (events.out.tfevents.*) or a directory holding them"
    example = "runs/Dec02_11-11-37_host/events.out.tfevents.1733137897.host.12345.0"
    specificity = 30
    max_confidence = 1.0  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        if target.is_dir and target.path is not None:
            return 0.6 if find_event_files(target.path, first_only=True) else 0.0
        if not target.is_file:
            return 0.0
        if looks_like_event_file(target.head):
            return 1.0
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if target.path is None:
            raise SourceError("expected an event file or a directory of them", target.location)
        if target.is_dir:
            files = find_event_files(target.path)
            if not files:
                raise SourceError(f"no {EVENT_GLOB} files in this directory", target.location)
        else:
            files = [target.path]
        groups: dict[Path, list[Path]] = {}
        for f in files:
            groups.setdefault(f.parent, []).append(f)
        validation = {
            p.parent / "train": p for p in groups if p.name.lower() in VALIDATION_DIRS and p.parent / "train" in groups
        }
        runs: list[Run] = []
        for parent, group in sorted(groups.items()):
            if parent in validation.values():
                continue  # read into its train/ sibling's run
            points = _Points()
            notes: list[str] = []
            for f in sorted(group):
                read_event_file(f, str(f), points, notes)
            if parent in validation:
                val_dir = validation[parent]
                for f in sorted(groups[val_dir]):
                    read_event_file(f, str(f), points, notes, validation=True)
                notes.append(
                    f"Keras layout: {val_dir.name}/ read into this run as val_<tag> (its epoch_loss is the eval loss)"
                )
            if not len(points):
                continue
            names = list(points.names)
            overrides = split_step_epoch_names(sorted(names))
            canonical = [overrides.get(n) or canonicalise(n) for n in names]
            steps, codes, values, walls = points.columns(canonical)
            table = tidy_points(
                steps,
                Coded(codes, names),
                values,
                wall_time=walls,
                canonical_codes=[overrides.get(n) for n in names] if overrides else None,
            )
            del steps, codes, values, walls
            frame, more = table.frame, list(table.notes)
            if len(group) > 1:
                notes.insert(
                    0,
                    f"{len(group)} event files in {parent.name} merged (a restarted run); "
                    "the later value kept per step",
                )
            if target.is_dir:
                rel = parent.relative_to(target.path)
                name = target.path.name if str(rel) == "." else f"{target.path.name}/{rel.as_posix()}"
                location = str(parent)
            else:
                name, location = parent.name or target.path.stem, target.location
            runs.append(
                make_run(
                    target, self.kind, frame, notes + more, name=name, location=location, summary=dict(table.summary)
                )
            )
        if not runs:
            raise SourceError("no scalar summaries in the event file(s)", target.location)
        return runs


SOURCE = TensorBoardSource()
