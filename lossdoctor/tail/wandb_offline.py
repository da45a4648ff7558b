"""Follow a live local W&B run (``wandb/latest-run``, ``wandb/run-*/``, ``wandb/offline-run-*/`` or the
``.wandb`` file itself) as wandb writes its transaction log.

Per poll only the appended bytes are framed (the 32 KiB-block, 7-byte-chunk framing of
``sources._wandb_records``): complete chunks are consumed, a chunk or record still being written waits for the next
poll, and a damaged chunk (bad checksum or length) is skipped to the next block as LevelDB does. History records give
points (step: ``train/global_step`` when the row has it, as HF logs it, else ``_step``); config records
feed the rules that read the config; the exit record ends the run."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.sources._wandb_records import (
    BLOCK,
    CHUNK_HEADER,
    FILE_HEADER_LEN,
    FIRST,
    FULL,
    LAST,
    MIDDLE,
    chunk_crc,
    decode,
    has_magic,
    record_class,
)
from lossdoctor.sources.wandb_offline import _apply_updates, flatten, history_values, locate
from lossdoctor.tail import FileFollower, Update

_CHUNK = struct.Struct("<IHB")
STEP_KEYS = ("train/global_step", "_step")


@dataclass
class WandbTail:
    path: Path
    kind: str = "wandb-offline"
    step_source: str = "train/global_step"
    config: dict[str, Any] = field(default_factory=dict)
    follower: FileFollower = field(init=False)
    buf: bytearray = field(default_factory=bytearray)
    pos: int = 0  # absolute file offset of buf[0]
    record: bytearray | None = None
    damaged: int = 0
    _cls: Any = None
    _raw_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.follower = FileFollower(self.path)

    def _records(self) -> list[bytes]:
        """Complete record payloads framed from buf; consumed bytes are dropped from buf."""
        out: list[bytes] = []
        data, i = self.buf, 0
        if self.pos == 0:
            if len(data) < FILE_HEADER_LEN:
                return out
            if not has_magic(bytes(data[:4])):
                raise ValueError("not a W&B transaction log")
            i = FILE_HEADER_LEN
        while True:
            at = self.pos + i
            left = BLOCK - at % BLOCK
            if left < CHUNK_HEADER:
                if len(data) - i < left:
                    break
                i += left
                continue
            if len(data) - i < CHUNK_HEADER:
                break
            crc, length, ctype = _CHUNK.unpack_from(data, i)
            if crc == 0 and length == 0 and ctype == 0:
                break  # zero-filled space not written yet
            if CHUNK_HEADER + length > left or ctype not in (FULL, FIRST, MIDDLE, LAST):
                self.damaged += 1
                skip = left
                if len(data) - i < skip:
                    break
                i += skip
                self.record = None
                continue
            if len(data) - i < CHUNK_HEADER + length:
                break  # the chunk is still being written
            payload = bytes(data[i + CHUNK_HEADER : i + CHUNK_HEADER + length])
            i += CHUNK_HEADER + length
            if chunk_crc(ctype, payload) != crc:
                self.damaged += 1
                self.record = None
                continue
            if ctype == FULL:
                out.append(payload)
                self.record = None
            elif ctype == FIRST:
                self.record = bytearray(payload)
            elif self.record is not None:
                self.record += payload
                if ctype == LAST:
                    out.append(bytes(self.record))
                    self.record = None
        del data[:i]
        self.pos += i
        return out

    def poll(self, now: float) -> Update:
        out = Update()
        data = self.follower.read()
        if self.follower.restarted:
            self.buf, self.pos, self.record = bytearray(), 0, None
            out.notes.append(f"{self.path}: the file was truncated or replaced; following it from its start")
        if not data:
            return out
        self.buf += data
        if self._cls is None:
            self._cls = record_class()
        for payload in self._records():
            rec = decode(payload, self._cls)
            if rec is None:
                continue
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                row, _ = history_values(rec.history)  # media and non-numbers skipped, as the reader does
                if "_step" not in row and rec.history.HasField("step"):
                    row["_step"] = float(rec.history.step.num)
                key = next((k for k in STEP_KEYS if k in row), None)
                if key is None:
                    continue
                step = int(row[key])
                for name, value in row.items():
                    if not name.startswith("_") and name not in STEP_KEYS:
                        out.points.append((step, name, value))
            elif kind in ("run", "config"):
                updates = rec.run.config.update if kind == "run" else rec.config.update
                removes = [] if kind == "run" else rec.config.remove
                _apply_updates(self._raw_config, updates, removes)
                self.config = flatten(self._raw_config)
            elif kind == "exit":
                out.ended = f"W&B exit record (exit code {int(rec.exit.exit_code)})"
        out.backlog = self.follower.backlog
        return out

    def close(self) -> None:
        self.follower.close()


class WandbTailer:
    kinds = ("wandb-offline",)

    def open(self, path: Path, location: str) -> WandbTail:
        files = [path] if path.is_file() else locate(path, all_runs=False)
        if not files:
            raise SourceError("no .wandb file to follow (expected a W&B run dir or wandb/ dir)", location)
        return WandbTail(files[-1])


TAILER = WandbTailer()
