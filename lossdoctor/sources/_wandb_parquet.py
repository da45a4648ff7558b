"""W&B public API reader, the exported part of a history: like wandb 0.31's ``scan_history``, read from the server's
Parquet exports (``parquetHistory``: the files' URLs and the live steps not yet exported), downloaded in parallel
under the deadline and decoded with pyarrow, only the columns asked for, sizes checked from the file's metadata
before anything is decoded."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from lossdoctor.sources._readkit import dig, to_step
from lossdoctor.sources._wandb_http import FetchError, HttpClient
from lossdoctor.sources._wandb_paging import MAX_POINTS, Budget, Points
from lossdoctor.sources._wandb_url import RunRef
from lossdoctor.sources._wandb_workers import Progress, run_parallel

PARQUET_HISTORY = """
query RunParquetHistory($entity: String!, $project: String!, $runName: String!, $liveKeys: [String!]!) {
  project(name: $project, entityName: $entity) {
    run(name: $runName) { parquetHistory(liveKeys: $liveKeys) { parquetUrls liveData } }
  }
}
"""


def parquet_points(path: Path, keys: list[str], step_key: str, first_live: int) -> list[Points]:
    """Points of ``keys`` from one exported history file (only the needed columns decoded; sizes checked
    from the file's metadata before anything is decoded)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        if "_step" not in names:
            raise FetchError("an exported history file has no _step column", "content")
        cols = sorted({"_step", step_key} | (set(keys) & names))
        meta = pf.metadata
        if meta.num_rows > MAX_POINTS:
            raise FetchError(f"an exported history file holds {meta.num_rows:,} rows (cap {MAX_POINTS:,})", "size")
        wanted_idx = [i for i, n in enumerate(pf.schema_arrow.names) if n in cols]
        raw_size = sum(
            meta.row_group(g).column(i).total_uncompressed_size for g in range(meta.num_row_groups) for i in wanted_idx
        )
        if raw_size > 16 * MAX_POINTS:
            raise FetchError(f"an exported history file's columns decode to {raw_size / 1e6:,.0f} MB", "size")
        table = pf.read(columns=cols)
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise FetchError(
            f"an exported history file is not readable Parquet ({type(exc).__name__})", "content"
        ) from None

    def floats(name: str) -> np.ndarray:
        col = table.column(name)
        try:
            return col.to_numpy(zero_copy_only=False).astype("float64")
        except (TypeError, ValueError):
            raise FetchError(f"exported column {name!r} is not numeric", "content") from None

    step_col = floats("_step")
    axis = (
        floats(step_key) if step_key in names else (step_col if step_key == "_step" else np.full(len(step_col), np.nan))
    )
    before_live = step_col < first_live
    out = []
    for key in keys:
        if key not in names:
            continue
        present = ~table.column(key).is_null().to_numpy(zero_copy_only=False) & before_live
        try:
            values = floats(key)[present]
        except FetchError:
            continue  # a text/media column: no points
        steps = axis[present]
        ok = np.isfinite(steps) & (np.abs(steps) < 2.0**63)
        out.append((key, steps[ok].astype("int64"), values[ok], int((~ok).sum())))
    return out


def fetch_exports(
    client: HttpClient, ref: RunRef, keys: list[str], step_key: str, bar: Progress, budget: Budget
) -> tuple[list[Points], np.ndarray | None]:
    """(points of ``keys`` from the exports, the live steps the server lists; None for a server without
    exports or a broken answer: then everything is paged by windows)."""
    deadline = client.deadline
    exported: list[Points] = []
    live_steps: np.ndarray | None = None
    first_live = 2**62
    try:
        data = client.graphql(
            "RunParquetHistory",
            PARQUET_HISTORY,
            {"entity": ref.entity, "project": ref.project, "runName": ref.run_id, "liveKeys": ["_step"]},
        )
        hist = dig(data, "project", "run", "parquetHistory")
    except FetchError as exc:
        if exc.kind in ("dns", "network", "timeout", "cancelled") or exc.status in (401, 403):
            raise
        hist = None  # a server without exports (or a broken answer): page everything by windows
    if isinstance(hist, dict):
        urls = [u for u in (hist.get("parquetUrls") or []) if isinstance(u, str) and u]
        live = hist.get("liveData") or []
        steps_list = [to_step(r.get("_step")) for r in live if isinstance(r, dict)] if isinstance(live, list) else []
        live_steps = np.unique(np.asarray([s for s in steps_list if s is not None], dtype="int64"))
        if len(live_steps):
            first_live = int(live_steps[0])
        if urls:
            with tempfile.TemporaryDirectory(prefix="lossdoctor-wandb-") as tmp:
                files = [Path(tmp) / f"part-{i}.parquet" for i in range(len(urls))]
                run_parallel([partial(client.download, u, f) for u, f in zip(urls, files)], deadline, "exports")
                for f in files:
                    deadline.check("decoding exports")
                    part = parquet_points(f, keys, step_key, first_live)
                    budget.take(sum(len(p[1]) + p[3] for p in part))
                    exported.extend(part)
                    bar.add(points=sum(len(p[1]) for p in part))
    return exported, live_steps
