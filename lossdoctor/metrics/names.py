"""Canonical metric names: the alias table lives in aliases.yaml (data), this module only reads it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from lossdoctor import datafiles

_SEP = re.compile(r"[\s\-\.]+")
#: Metric names longer than this are shortened (a damaged log can glue megabytes into one key; every
#: report, plot and rule would carry it). The shortened name keeps a hash of the whole one: two different
#: long names stay two metrics.
MAX_NAME_CHARS = 200


def bounded_name(raw: str) -> str:
    """``raw`` when at most MAX_NAME_CHARS long, else its first 160 characters + "..." + a hash of it."""
    if len(raw) <= MAX_NAME_CHARS:
        return raw
    import hashlib

    digest = hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{raw[:160]}...{digest}"


def normalise_key(raw: str) -> str:
    """Lower-case, trim, and fold spaces/dashes/dots into '_' (keeps '/')."""
    text = raw.strip().lower()
    parts = [(_SEP.sub("_", p.strip())).strip("_") for p in text.split("/")]
    return "/".join(parts)


@lru_cache(maxsize=1)
def _alias_data() -> dict:
    return datafiles.read("metrics/aliases.yaml")[1]  # the package's own data file, parsed once (its snapshot)


@lru_cache(maxsize=1)
def alias_table() -> dict[str, str]:
    """normalised raw name → canonical name."""
    data = _alias_data()
    table: dict[str, str] = {}
    for canonical, aliases in data["canonical"].items():
        table[normalise_key(canonical)] = canonical
        for alias in aliases:
            table.setdefault(normalise_key(str(alias)), canonical)
    for name in data.get("trainer_split") or ():  # NAME, train/NAME -> train/NAME; eval_NAME, eval/NAME -> eval/NAME
        base = normalise_key(str(name))
        for split, raws in (("train", (base, f"train/{base}")), ("eval", (f"eval_{base}", f"eval/{base}"))):
            for raw in raws:
                table.setdefault(normalise_key(raw), f"{split}/{base}")
    return table


@lru_cache(maxsize=4096)
def canonicalise(raw: str) -> str:
    """Canonical name for a raw metric name; unknown names keep their (normalised) own name."""
    key = normalise_key(bounded_name(raw))
    return alias_table().get(key, key)


def bounded_names(raw_names: Iterable[str]) -> np.ndarray:
    """An object array of the names with ``bounded_name`` applied (hashing the distinct names only)."""
    import pandas as pd

    raw = np.asarray(list(raw_names) if not isinstance(raw_names, np.ndarray) else raw_names, dtype="object")
    if raw.size == 0:
        return raw
    codes, uniq = pd.factorize(raw)
    if all(len(str(u)) <= MAX_NAME_CHARS for u in uniq):
        return raw
    return np.asarray([bounded_name(str(u)) for u in uniq], dtype="object")[codes]


def canonicalise_many(raw_names: Iterable[str]) -> np.ndarray:
    raw = np.asarray(list(raw_names) if not isinstance(raw_names, np.ndarray) else raw_names, dtype="object")
    if raw.size == 0:
        return raw
    # factorize hashes the objects; np.unique(raw.astype(str)) made a fixed-width array as wide as the
    # longest name times the number of names (one 3 MB key among 182 names: 2 GB)
    import pandas as pd

    codes, uniq = pd.factorize(np.asarray([str(r) for r in raw], dtype="object"))
    mapped = np.asarray([canonicalise(u) for u in uniq], dtype="object")
    return mapped[codes]


def canonical_names() -> tuple[str, ...]:
    return tuple(sorted(set(alias_table().values())))


@lru_cache(maxsize=1)
def notebook_table() -> tuple[dict[str, str], str, frozenset[str]]:
    """The HF notebook progress table's columns (aliases.yaml ``notebook_table``): (header → log key for the
    listed headers, the pattern for the others, the cell texts that mean "not logged")."""
    data = _alias_data()
    table = {str(k): str(v) for k, v in data["notebook_table"].items()}
    other = table.pop("*")
    return table, other, frozenset(str(v) for v in data["notebook_table_missing"])
