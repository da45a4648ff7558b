"""Per-user cache of runs fetched from the W&B API: one Parquet file (the tidy metric table) plus a JSON
sidecar (name, state, config, summary, provenance) per run.

Why: a finished run never changes, and a long history costs minutes to page through; re-analysing it
(new rules, another report format) should cost a file read. Keyed by API host, entity, project and run id,
so two servers never share entries. Nothing that identifies the user's credentials is ever written: the
key is not part of the Run, and entries are written atomically (temp file + rename) so a killed fetch
never leaves half an entry behind. Only complete fetches are stored (the reader checks every key's count
against the server's), never a run without points, and the sidecar records the table's point count so a
table and sidecar from two different writes are not a hit.

Location: ``ReadOptions.cache_dir``, else ``$LOSSDOCTOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/lossdoctor/wandb``
(``~/.cache/lossdoctor/wandb``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lossdoctor.atomic import atomic_write
from lossdoctor.model import Provenance, Run
from lossdoctor.sources._wandb_url import RunRef
from lossdoctor.table import MetricTable
from lossdoctor.textfile import read_side_file

SCHEMA = 1


def default_cache_dir() -> Path:
    env = os.environ.get("LOSSDOCTOR_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "lossdoctor" / "wandb"


def _safe(part: str) -> str:
    return quote(part, safe="-_.") or "_"


def _jsonable(value: Any) -> Any:
    """JSON with NaN/inf kept as the tokens Python's json reads back; unknown objects as their str()."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "item"):  # numpy scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


@dataclass(frozen=True)
class CacheEntry:
    run: Run
    fetched_at: float


class RunCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()

    def paths(self, ref: RunRef) -> tuple[Path, Path]:
        host = ref.api_base.split("://", 1)[-1]
        folder = self.root / _safe(host) / _safe(ref.entity) / _safe(ref.project)
        stem = _safe(ref.run_id)
        return folder / f"{stem}.parquet", folder / f"{stem}.json"

    def load(self, ref: RunRef, location: str) -> CacheEntry | None:
        """The cached run, or None when absent or unreadable (a broken entry is refetched, not fatal)."""
        table, meta_path = self.paths(ref)
        if not table.is_file() or not meta_path.is_file():
            return None
        try:
            raw = read_side_file(meta_path)
            if raw is None:
                return None
            meta = json.loads(raw.decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
                return None
            frame = read_table(table)
        except (OSError, ValueError, ImportError, KeyError, TypeError, RecursionError):
            return None
        if frame.empty or not isinstance(meta.get("provenance", {}), dict):
            return None  # an empty entry (written by an older version from an empty answer) is no hit
        if meta.get("points") != len(frame):
            return None  # table and sidecar from different writes (or an older schema): refetch
        prov = meta.get("provenance", {})
        run = Run(
            name=meta.get("name", ref.run_id),
            provenance=Provenance(
                kind=prov.get("kind", "wandb-api"),
                location=location,
                step_source=prov.get("step_source", "_step"),
                notes=tuple(prov.get("notes", ())),
            ),
            metrics=frame,
            config=meta.get("config", {}),
            summary=meta.get("summary", {}),
            state=meta.get("state", "unknown"),
            created=meta.get("created"),
            tags=tuple(meta.get("tags", ())),
        )
        return CacheEntry(run=run, fetched_at=float(meta.get("fetched_at", 0.0)))

    def store(self, ref: RunRef, run: Run) -> None:
        """Write both files atomically; a failure to cache never fails the analysis (best effort). The caller
        stores only complete fetches; a run without points is never stored."""
        if run.metrics.empty:
            return
        table, meta_path = self.paths(ref)
        meta = {
            "schema": SCHEMA,
            "api_base": ref.api_base,
            "entity": ref.entity,
            "project": ref.project,
            "run_id": ref.run_id,
            "name": run.name,
            "state": run.state,
            "created": run.created,
            "tags": list(run.tags),
            "config": _jsonable(dict(run.config)),
            "summary": _jsonable(dict(run.summary)),
            "provenance": {
                "kind": run.provenance.kind,
                "step_source": run.provenance.step_source,
                "notes": list(run.provenance.notes),
            },
            "fetched_at": time.time(),
            "points": int(len(run.metrics)),
        }
        try:
            table.parent.mkdir(parents=True, exist_ok=True)
            metrics = run.metrics
            atomic_write(table, lambda p: write_table(metrics, p))
            text = json.dumps(meta, sort_keys=True, indent=1)
            atomic_write(meta_path, lambda p: Path(p).write_text(text, encoding="utf-8"))
        except (OSError, ValueError, ImportError):
            pass


def write_table(table: MetricTable, path: str | Path) -> None:
    """The tidy table as Parquet (step, metric, value, raw_name; the names dictionary-encoded): pyarrow
    directly, never one Python object per point."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def names(codes: Any, values: tuple[str, ...]) -> Any:
        return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), pa.array(list(values), pa.string()))

    pq.write_table(
        pa.table(
            {
                "step": pa.array(table.step),
                "metric": names(table.metric_codes, table.metric_names),
                "value": pa.array(table.value),
                "raw_name": names(table.raw_codes, table.raw_names),
            }
        ),
        str(path),
    )


def read_table(path: str | Path) -> MetricTable:
    """A table written by :func:`write_table` (or any Parquet file with those four columns)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = pq.read_table(str(path), columns=["step", "metric", "value", "raw_name"])

    def coded(name: str) -> tuple[Any, list[str]]:
        col = data.column(name)
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        col = col.unify_dictionaries()
        if not col.num_chunks:
            return np.zeros(0, dtype=np.int64), []
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in col.chunks])
        return codes.astype(np.int64, copy=False), [str(x) for x in col.chunk(0).dictionary.to_pylist()]

    m_codes, m_names = coded("metric")
    r_codes, r_names = coded("raw_name")
    order = sorted(range(len(m_names)), key=lambda i: m_names[i])
    remap = np.empty(len(m_names), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return MetricTable.build(
        data.column("step").to_numpy().astype(np.int64, copy=False),
        remap[m_codes] if len(m_codes) else m_codes,
        [m_names[i] for i in order],
        data.column("value").to_numpy().astype(np.float64, copy=False),
        r_codes,
        r_names,
    ).compact()
