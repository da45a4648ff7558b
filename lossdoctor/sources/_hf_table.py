"""HF console logs, the table: the scanned log dicts' values as columns for the one tidy-table constructor."""

from __future__ import annotations

import numpy as np

from lossdoctor.sources._hf_scan import SUMMARY, TRAIN, Group, ScanResult
from lossdoctor.table import MetricTable


def points_table(scan: ScanResult, steps: np.ndarray) -> tuple[MetricTable | None, list[str]]:
    """The tidy table, through the one constructor (:func:`lossdoctor.tidy.tidy_points`, given the values
    column-wise with coded names). A repeated (step, metric) keeps the last dict's value.

    Memory (a million dicts are ~7 million points): the columns are allocated once and filled key by key, the
    keys in the order of their canonical names and each key's points in printed order, which is the table's
    own (metric, step) order when the steps rise; each group's value table is dropped once copied. Only a key
    printed in dicts of several layouts is put back in printed order (an argsort over its own points)."""
    from lossdoctor.metrics.names import canonicalise
    from lossdoctor.tidy import Coded, tidy_points

    groups = [g for _, g in sorted(scan.groups.items(), key=lambda kv: kv[0]) if g.kind != SUMMARY]
    raw_names: list[str] = []
    # (group, column, raw code, count) of every key's points
    pieces: list[tuple[Group, int, int, int]] = []
    for group in groups:
        parts = group.parts()
        if not parts:
            continue
        counts = sum(p[2].sum(axis=0) for p in parts)
        for k, key in enumerate(group.keys):
            if key == "epoch" and group.kind != TRAIN:
                continue  # an eval dict's epoch repeats the train dict's
            if not counts[k]:
                continue
            if key not in raw_names:
                raw_names.append(key)
            pieces.append((group, k, raw_names.index(key), int(counts[k])))
    if not pieces:
        return None, []
    canonical = [canonicalise(r) for r in raw_names]
    rank = sorted(range(len(raw_names)), key=lambda c: (canonical[c], c))
    # codes renumbered in canonical order (the tidy constructor then takes them as the metric codes as they are)
    new_code = {old: new for new, old in enumerate(rank)}
    raw_names = [raw_names[c] for c in rank]
    canonical = [canonical[c] for c in rank]
    pieces = sorted(((g, k, new_code[c], n) for g, k, c, n in pieces), key=lambda p: p[2])  # stable per key
    total = sum(p[3] for p in pieces)
    out_steps = np.empty(total, dtype=np.int64)
    out_vals = np.empty(total, dtype=np.float64)
    out_codes = np.empty(total, dtype=np.int16 if len(raw_names) < 2**15 else np.int32)
    slices: dict[int, list[tuple[int, int]]] = {}
    pos = 0
    where: dict[tuple[int, int], int] = {}
    for group, k, code, count in pieces:
        where[(id(group), k)] = pos
        slices.setdefault(code, []).append((pos, pos + count))
        pos += count
    mixed = {code for code, s in slices.items() if len(s) > 1}
    shared = len(set(canonical)) < len(canonical)  # two keys for one metric: ties follow print order
    ordinals = np.empty(total, dtype=np.int64) if mixed or shared else None
    for group in groups:
        fill = {k: where[(id(group), k)] for k in range(len(group.keys)) if (id(group), k) in where}
        group.flush()
        while group.idx_parts:  # block by block, each dropped once copied
            idx, vals, ok = group.idx_parts.pop(0), group.val_parts.pop(0), group.ok_parts.pop(0)
            st = steps[idx]
            for k, start in fill.items():
                sel = slice(None) if ok is None else ok[:, k]
                part_st = st[sel]
                count = len(part_st)
                out_steps[start : start + count] = part_st
                out_vals[start : start + count] = vals[:, k][sel]
                out_codes[start : start + count] = raw_names.index(group.keys[k])
                if ordinals is not None:
                    ordinals[start : start + count] = idx[sel]
                fill[k] = start + count
            del idx, vals, ok, st
    if ordinals is not None:  # allocated whenever a key is mixed
        for code in mixed:  # a key printed by dicts of several layouts: back in printed order
            a, b = slices[code][0][0], slices[code][-1][1]
            order = np.argsort(ordinals[a:b], kind="stable")
            out_steps[a:b] = out_steps[a:b][order]
            out_vals[a:b] = out_vals[a:b][order]
            ordinals[a:b] = ordinals[a:b][order]
    table = tidy_points(out_steps, Coded(out_codes, raw_names), out_vals, written=ordinals if shared else None)
    return table.frame, list(table.notes)
