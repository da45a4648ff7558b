"""Training data: a JSONL file of rows with chat ``messages`` (role/content dicts) or a ``text`` string.

Why strict here: a malformed row found after the model is loaded wastes minutes; every row is checked before
anything is created, and the error names file:line. No torch/datasets imports (cheap to call from the CLI).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

from lossdoctor.errors import SourceError
from lossdoctor.textfile import decode, read_bytes

#: A fine-tuning data file is read whole (and hashed for the manifest); larger ones are refused unread.
MAX_DATA_BYTES = 1 << 30

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Example:
    """One row: either ``messages`` (tuple of (role, content)) or ``text``."""

    line: int
    messages: tuple[tuple[str, str], ...] = ()
    text: str | None = None


@dataclass(frozen=True)
class DataFile:
    path: str
    sha256: str
    examples: tuple[Example, ...]


def _row(obj: Any, path: str, line: int) -> Example:
    if not isinstance(obj, dict):
        raise SourceError(f"expected a JSON object per line, got {type(obj).__name__}", path, line)
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise SourceError("`messages` must be a non-empty list of {role, content} objects", path, line)
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise SourceError(f"messages[{i}]: expected an object with string `role` and `content`", path, line)
            if m["role"] not in ROLES:
                raise SourceError(
                    f"messages[{i}]: unknown role {m['role']!r}; expected one of {', '.join(ROLES)}", path, line
                )
            out.append((m["role"], m["content"]))
        return Example(line=line, messages=tuple(out))
    if "text" in obj:
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            raise SourceError("`text` must be a non-empty string", path, line)
        return Example(line=line, text=obj["text"])
    raise SourceError("row has neither `messages` (chat) nor `text`; expected one of them", path, line)


def read_jsonl(path: str) -> DataFile:
    """Read and check every row; SourceError (file:line) on the first bad one."""
    expected = "a JSONL file of `messages` or `text` rows"
    raw = read_bytes(path, what="data file", expected=expected, max_bytes=MAX_DATA_BYTES)
    text = decode(raw, path, expected=expected)
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(
                f"malformed JSON ({exc.msg} at column {exc.colno}); expected one JSON object per line", path, number
            ) from None
        examples.append(_row(obj, path, number))
    if not examples:
        raise SourceError("no rows; expected a JSONL file of `messages` or `text` rows", path)
    return DataFile(path=str(path), sha256=hashlib.sha256(raw).hexdigest(), examples=tuple(examples))


def split(examples: tuple[Example, ...], val_ratio: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministic shuffle-split (seeded): same data + seed → same split on every machine."""
    if val_ratio <= 0:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(examples) * val_ratio))
    if n_val >= len(examples):
        raise SourceError(
            f"{len(examples)} row(s) cannot be split with val_ratio {val_ratio}; "
            "expected at least 2 rows or --eval-data"
        )
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [examples[i] for i in train], [examples[i] for i in val]


def render_text(example: Example, tokenizer: Any) -> str:
    """Chat rows go through the tokenizer's chat template (as the seed scripts did); text rows pass through."""
    if example.text is not None:
        return example.text
    messages = [{"role": r, "content": c} for r, c in example.messages]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def plain_texts(examples: list[Example]) -> list[str]:
    """Raw strings (contents joined) for training the tiny tokenizer before a chat template exists."""
    out = []
    for ex in examples:
        out.append(ex.text if ex.text is not None else "\n".join(f"{r}\n{c}" for r, c in ex.messages))
    return out
