"""W&B public API reader, the live tail of a history: paged with ``SampledHistoryPage`` in step windows, so each
window holds at most one page of rows.

A page with keys returns only rows holding *every* key, and HF logs train and eval metrics in different rows,
so keys logged in the same rows (the same count) are paged together, groups in parallel. Each key's points are
checked against the count the server gives: a short key is paged again alone at SAFE_PAGE_SIZE, and a key
still short makes the fetch incomplete (analysed, never cached).
"""

from __future__ import annotations

import math
import threading
from functools import partial
from typing import Any

import numpy as np

from lossdoctor.sources._readkit import dig, json_number, to_step
from lossdoctor.sources._wandb_http import FetchError, HttpClient
from lossdoctor.sources._wandb_url import RunRef
from lossdoctor.sources._wandb_workers import Progress, run_parallel

#: Rows per page. wandb's default is 1000; 10000 cuts round trips ~10x. If a server caps pages below this,
#: the per-key count check catches the shortfall and that key is paged again at SAFE_PAGE_SIZE.
PAGE_SIZE = 10_000
SAFE_PAGE_SIZE = 1000
#: Most points one run may bring (memory stays bounded whatever the server announces).
MAX_POINTS = 20_000_000
#: Most step-window pages when the server lists no live steps (servers without parquetHistory).
MAX_PAGES = 20_000
_NONFINITE = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf, "-inf": -math.inf}

SAMPLED_HISTORY_PAGE = """
query SampledHistoryPage($entity: String!, $project: String!, $run: String!, $spec: JSONString!) {
  project(name: $project, entityName: $entity) { run(name: $run) { sampledHistory(specs: [$spec]) } }
}
"""


Points = tuple[str, np.ndarray, np.ndarray, int]  # key, steps, values, points without a usable step


def to_float(value: Any) -> float | None:
    """A history value as float: numbers, and the "NaN"/"Infinity" strings the server sends for non-finite
    values; None for anything else (missing, media, text)."""
    if isinstance(value, str):  # only the server's names of non-finite values, not numbers as text
        return _NONFINITE.get(value.strip().lower())
    return json_number(value)


class Budget:
    """Points collected so far across threads (MAX_POINTS)."""

    def __init__(self) -> None:
        self.points = 0
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        with self.lock:
            self.points += n
            if self.points > MAX_POINTS:
                raise FetchError(
                    f"the history holds more than {MAX_POINTS:,} points of the wanted keys; "
                    f"lossdoctor reads at most that many",
                    "size",
                )


def page_rows(client: HttpClient, ref: RunRef, keys: list[str], lo: int, hi: int, page_size: int) -> list[dict]:
    import json

    spec = json.dumps({"keys": keys, "minStep": lo, "maxStep": hi, "samples": page_size})
    data = client.graphql(
        "SampledHistoryPage",
        SAMPLED_HISTORY_PAGE,
        {"entity": ref.entity, "project": ref.project, "run": ref.run_id, "spec": spec},
    )
    run = dig(data, "project", "run")
    if run is None:
        raise FetchError("SampledHistoryPage: the run is gone (project/run null)", "content")
    pages = run.get("sampledHistory")
    if not isinstance(pages, list) or not pages or not isinstance(pages[0], (list, type(None))):
        raise FetchError("SampledHistoryPage: no sampledHistory list in the answer", "content")
    rows = pages[0] or []
    if len(rows) > page_size:
        raise FetchError(f"SampledHistoryPage: {len(rows):,} rows for a page of {page_size:,}", "content")
    return [r if isinstance(r, dict) else {} for r in rows]


def scan_pages(
    client: HttpClient,
    ref: RunRef,
    group: list[str],
    step_key: str,
    windows: list[tuple[int, int]],
    page_size: int,
    bar: Progress,
    budget: Budget,
) -> list[Points]:
    """Points of ``group`` from rows holding every key of the group, page by page over ``windows``."""
    keys = list(dict.fromkeys(group + ["_step"] + ([] if step_key == "_step" else [step_key])))
    steps: dict[str, list[int]] = {k: [] for k in group}
    values: dict[str, list[float]] = {k: [] for k in group}
    missing = dict.fromkeys(group, 0)
    for lo, hi in windows:
        rows = page_rows(client, ref, keys, lo, hi, page_size)
        added = 0
        for row in rows:
            raw = row.get(step_key)
            step = to_step(raw) if not isinstance(raw, float) or math.isfinite(raw) else None
            for key in group:
                value = to_float(row.get(key))
                if value is None:
                    continue
                added += 1
                if step is None:
                    missing[key] += 1
                    continue
                steps[key].append(step)
                values[key].append(value)
        budget.take(added)
        bar.add(points=added)
    return [(k, np.asarray(steps[k], dtype="int64"), np.asarray(values[k], dtype="float64"), missing[k]) for k in group]


def group_keys(keys: list[str], counts: dict[str, int]) -> list[list[str]]:
    """Keys with the same row count were almost surely logged in the same rows (HF: train/* in train rows,
    eval/* in eval rows): page them together. Unknown counts page alone."""
    groups: dict[object, list[str]] = {}
    for key in keys:
        count = counts.get(key, 0)
        groups.setdefault(count if count else ("alone", key), []).append(key)
    return list(groups.values())


def windows_from_steps(steps: np.ndarray, page_size: int) -> list[tuple[int, int]]:
    """Inclusive step windows holding at most ``page_size`` of the listed steps each."""
    if not len(steps):
        return []
    starts = steps[::page_size]
    ends = steps[np.minimum(np.arange(page_size - 1, len(steps) + page_size - 1, page_size), len(steps) - 1)]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def plan_windows(live_steps: np.ndarray | None, last_step: int | None) -> list[tuple[int, int]]:
    """The step windows of the live tail: from the live steps the server lists, else (servers without
    parquetHistory) every PAGE_SIZE steps up to the history's last step (at most MAX_PAGES)."""
    if live_steps is not None:
        return windows_from_steps(live_steps, PAGE_SIZE)
    if last_step is None or last_step < 0:
        return []
    n_pages = last_step // PAGE_SIZE + 1
    if n_pages > MAX_PAGES:
        raise FetchError(
            f"the server lists no live steps and the history runs to step {last_step:,}: "
            f"{n_pages:,} pages (cap {MAX_PAGES:,})",
            "size",
        )
    return [(lo, min(last_step, lo + PAGE_SIZE - 1)) for lo in range(0, last_step + 1, PAGE_SIZE)]


def fetch_live(
    client: HttpClient,
    ref: RunRef,
    keys: list[str],
    step_key: str,
    counts: dict[str, int],
    expected: dict[str, int],
    live_steps: np.ndarray | None,
    windows: list[tuple[int, int]],
    bar: Progress,
    budget: Budget,
) -> tuple[list[Points], list[str], bool]:
    """(points per key, notes, complete) of the live tail: key groups paged in parallel, a key short of the
    ``expected`` count paged again alone at SAFE_PAGE_SIZE; ``complete`` is False when a key is still short."""
    deadline = client.deadline
    groups = group_keys(keys, counts)
    scanned = run_parallel(
        [partial(scan_pages, client, ref, g, step_key, windows, PAGE_SIZE, bar, budget) for g in groups],
        deadline,
        "history",
    )
    live_points = [p for part in scanned for p in part]
    short = [p[0] for p in live_points if expected.get(p[0], 0) and len(p[1]) + p[3] < expected[p[0]]]
    if short:
        small = (
            windows_from_steps(live_steps, SAFE_PAGE_SIZE)
            if live_steps is not None
            else [
                (lo, min(w[1], lo + SAFE_PAGE_SIZE - 1))
                for w in windows
                for lo in range(w[0], w[1] + 1, SAFE_PAGE_SIZE)
            ]
        )
        again = [
            part[0]
            for part in run_parallel(
                [partial(scan_pages, client, ref, [k], step_key, small, SAFE_PAGE_SIZE, bar, budget) for k in short],
                deadline,
                "history",
            )
        ]
        redone = {p[0]: p for p in again}
        live_points = [redone.get(p[0], p) for p in live_points]
    notes: list[str] = []
    complete = True
    for key, steps, _, missing in live_points:
        if expected.get(key, 0) and len(steps) + missing < expected[key]:
            complete = False
            notes.append(
                f"{key}: {len(steps) + missing:,} of the {expected[key]:,} live points the server counts "
                f"arrived; analysed what arrived (not cached)"
            )
    return live_points, notes, complete
