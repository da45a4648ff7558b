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
from pathlib import Path

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._readkit import Collector, make_run, read_bytes, split_step_epoch_names
from lossdoctor.sources.base import ReadOptions, Target

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
    out: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 12:
            return out, f"truncated record at byte {pos} (file still being written?); read up to there"
        header = data[pos:pos + 8]
        (length,) = struct.unpack_from("<Q", data, pos)
        (crc,) = struct.unpack_from("<I", data, pos + 8)
        if masked_crc32c(header) != crc:
            return out, f"bad record framing at byte {pos}; read up to there"
        start = pos + 12
        if start + length + 4 > end:
            return out, f"truncated record at byte {pos} (file still being written?); read up to there"
        out.append(data[start:start + length])
        pos = start + length + 4
    return out, None


_DTYPES = {1: "<f", 2: "<d", 3: "<i", 9: "<q", 19: "<e"}   # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64, DT_HALF


def _tensor_scalar(tensor: object) -> float | None:
    t = tensor  # a TensorProto
    if len(t.tensor_shape.dim):  # type: ignore[attr-defined]
        return None
    for name in ("float_val", "double_val", "int_val", "int64_val"):
        vals = getattr(t, name)
        if len(vals):
            return float(vals[0])
    fmt = _DTYPES.get(int(t.dtype))  # type: ignore[attr-defined]
    content = t.tensor_content  # type: ignore[attr-defined]
    if fmt and len(content) == struct.calcsize(fmt):
        return float(struct.unpack(fmt, content)[0])
    if int(t.dtype) == 19 and len(t.half_val):  # type: ignore[attr-defined]
        return float(struct.unpack("<e", struct.pack("<H", t.half_val[0]))[0])  # type: ignore[attr-defined]
    return None


VALIDATION_DIRS = ("validation", "val", "eval")


def _val_tag(tag: str) -> str:
    return "val_" + (tag[len("epoch_"):] if tag.startswith("epoch_") else tag)


def read_event_file(path: Path, location: str, points: Collector, notes: list[str], validation: bool = False) -> int:
    """Add the scalars of one event file to `points`; returns how many were read."""
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        raise SourceError(INSTALL_HINT, location) from None
    from google.protobuf.message import DecodeError

    records, problem = iter_records(read_bytes(path, location))
    if problem:
        notes.append(f"{path.name}: {problem}")
    if not records and problem:
        raise SourceError(f"not a TensorBoard event file ({problem})", location)
    plugins: dict[str, str] = {}
    bad = n = 0
    event = event_pb2.Event()
    for payload in records:
        try:
            event.ParseFromString(payload)
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
            points.add(int(event.step), _val_tag(value.tag) if validation else value.tag, number,
                       wall_time=event.wall_time)
            n += 1
    if bad:
        notes.append(f"{path.name}: {bad} record(s) that are not Event protobufs skipped")
    return n


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
        validation = {p.parent / "train": p for p in groups
                      if p.name.lower() in VALIDATION_DIRS and p.parent / "train" in groups}
        runs: list[Run] = []
        for parent, group in sorted(groups.items()):
            if parent in validation.values():
                continue                                   # read into its train/ sibling's run
            points = Collector()
            notes: list[str] = []
            for f in sorted(group):
                read_event_file(f, str(f), points, notes)
            if parent in validation:
                val_dir = validation[parent]
                for f in sorted(groups[val_dir]):
                    read_event_file(f, str(f), points, notes, validation=True)
                notes.append(f"Keras layout: {val_dir.name}/ read into this run as val_<tag> "
                             "(its epoch_loss is the eval loss)")
            if not len(points):
                continue
            overrides = split_step_epoch_names(sorted(set(points.raws)))
            if overrides:
                points.metrics = [overrides.get(r, m) for r, m in zip(points.raws, points.metrics)]
            frame, more = points.frame()
            if len(group) > 1:
                notes.insert(0, f"{len(group)} event files in {parent.name} merged (a restarted run); "
                                "the later value kept per step")
            if target.is_dir:
                rel = parent.relative_to(target.path)
                name = target.path.name if str(rel) == "." else f"{target.path.name}/{rel.as_posix()}"
                location = str(parent)
            else:
                name, location = parent.name or target.path.stem, target.location
            runs.append(make_run(target, self.kind, frame, notes + more, name=name, location=location,
                                 summary=points.summary))
        if not runs:
            raise SourceError("no scalar summaries in the event file(s)", target.location)
        return runs


SOURCE = TensorBoardSource()
