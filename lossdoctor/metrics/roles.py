"""Role inference: which series is the train loss, the eval loss, the lr, the grad norm, epoch, tokens,
throughput. The patterns are data (``roles:`` in aliases.yaml); this module only applies them.

Applied to every run a reader returns (``sources.read_runs``): for each role whose canonical name no alias
gave, the first series matching the role's patterns is renamed to it (the raw name is kept); a scale written
in the name (``train/lr(1e-3)``) multiplies the values back; a per-epoch loss is said in a note.
``--metric ROLE=NAME`` (ROLE: ``train_loss`` or ``train/loss`` ...) overrides inference and aliases alike.
Pure: a Run in, a Run out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from lossdoctor.errors import UsageError
from lossdoctor.metrics.names import _alias_data, normalise_key


@dataclass(frozen=True)
class Role:
    """A role a metric can play (train loss, eval loss, lr ...): its canonical name and name patterns."""

    key: str  # train_loss
    canonical: str  # train/loss
    patterns: tuple[re.Pattern[str], ...]
    only_if_unique: bool = False

    @property
    def label(self) -> str:
        return self.key.replace("_", " ")


@dataclass(frozen=True)
class RoleTable:
    """Every role and the name vocabulary role inference uses (roles.yaml)."""

    roles: tuple[Role, ...]
    per_epoch_loss: re.Pattern[str]
    scale_in_name: re.Pattern[str]
    eval_words: frozenset[str]
    not_metrics: frozenset[str]

    def canonical_names(self) -> frozenset[str]:
        return frozenset(r.canonical for r in self.roles)


@lru_cache(maxsize=1)
def role_table() -> RoleTable:
    data = _alias_data()  # aliases.yaml, parsed once for both tables
    roles = tuple(
        Role(
            key=str(key),
            canonical=str(spec["canonical"]),
            patterns=tuple(re.compile(p) for p in spec["patterns"]),
            only_if_unique=bool(spec.get("only_if_unique", False)),
        )
        for key, spec in data["roles"].items()
    )
    return RoleTable(
        roles=roles,
        per_epoch_loss=re.compile(data["per_epoch_loss"]),
        scale_in_name=re.compile(data["scale_in_name"], re.IGNORECASE),
        eval_words=frozenset(str(w).lower() for w in data["eval_words"]),
        not_metrics=frozenset(str(w).lower() for w in data["not_metrics"]),
    )


def role_keys() -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.key for r in role_table().roles if not r.only_if_unique))


def _role_for(name: str) -> Role | None:
    """The role a --metric key names: its key (train_loss), its canonical name (train/loss) or label."""
    wanted = name.strip().lower().replace(" ", "_")
    for role in role_table().roles:
        if role.only_if_unique:
            continue
        if wanted in (role.key, role.canonical.lower(), normalise_key(role.canonical)):
            return role
    return None


def parse_overrides(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``ROLE=NAME`` strings → ((canonical, name), ...); a bad one is a UsageError naming what is accepted."""
    out: list[tuple[str, str]] = []
    for item in items:
        role_name, sep, series = item.partition("=")
        role = _role_for(role_name) if sep else None
        if role is None or not series.strip():
            accepted = ", ".join(f"{r}" for r in role_keys())
            raise UsageError(
                f"--metric {item!r}: expected ROLE=NAME with ROLE one of {accepted} "
                f"(or its canonical name, e.g. train/loss)"
            )
        out.append((role.canonical, series.strip()))
    return tuple(out)


@dataclass(frozen=True)
class Assignment:
    """Which raw metric name(s) took a role in one run, and how the role was decided."""

    role: str  # label: "train loss"
    canonical: str  # train/loss
    raw_names: tuple[str, ...]
    how: str  # "alias" | "inferred" | "--metric"


def describe(table: Any) -> list[Assignment]:
    """What each role is taken from in a finished table (a :class:`lossdoctor.table.MetricTable`; for notes
    and ``sources --explain``)."""
    pairs = table.pairs()
    out = []
    seen: set[str] = set()
    for role in role_table().roles:
        if role.canonical in seen:
            continue
        seen.add(role.canonical)
        raws = tuple(raw for raw, metric, _ in pairs if metric == role.canonical)
        if raws:
            out.append(Assignment(role.key.replace("_", " "), role.canonical, raws, "alias"))
    return out


def roles_note(table: Any) -> str:
    parts = [f"{a.role} <- {', '.join(repr(r) for r in a.raw_names)}" for a in describe(table)]
    return "roles: " + ("; ".join(parts) if parts else "none recognised")


def apply_roles(run: Any, overrides: tuple[tuple[str, str], ...] = ()) -> Any:
    """The run with role inference and ``--metric`` overrides applied to its metric table."""
    frame = run.metrics
    if frame.empty:
        if overrides:
            raise UsageError(f"--metric: {run.provenance.location} has no series to choose from")
        return run
    table = role_table()
    pairs = frame.pairs()
    raw_to_metric: dict[str, str] = {}
    points: dict[str, int] = {}
    for raw, metric, count in pairs:
        raw_to_metric.setdefault(raw, metric)
        points[raw] = count
    new_metric: dict[str, str] = {}  # raw name -> new canonical name
    notes: list[str] = []
    scales: dict[str, float] = {}
    taken = {m for m in raw_to_metric.values()}

    for canonical, wanted in overrides:
        matches = (
            [r for r in raw_to_metric if r == wanted]
            or [r for r in raw_to_metric if normalise_key(r) == normalise_key(wanted)]
            or [r for r, m in raw_to_metric.items() if m == wanted]
        )
        if not matches:
            have = ", ".join(sorted(raw_to_metric)[:20])
            raise UsageError(
                f"--metric {canonical}={wanted}: no series named {wanted!r} in "
                f"{run.provenance.location} (series: {have})"
            )
        for raw, metric in raw_to_metric.items():  # whoever held the role gives it up
            if metric == canonical and raw not in matches:
                new_metric[raw] = normalise_key(raw) if normalise_key(raw) != canonical else f"{canonical}_replaced"
        for raw in matches:
            new_metric[raw] = canonical
        notes.append(f"{canonical} taken from {', '.join(repr(m) for m in matches)} (--metric)")
        taken.add(canonical)

    role_canon = table.canonical_names()
    for role in table.roles:
        if role.canonical in taken:
            continue
        # only series nobody has named yet: a name the alias table or the reader mapped (eval_num_tokens ->
        # eval/num_tokens, a notebook column "Num Tokens" read as an eval metric) keeps that meaning
        free = [
            r
            for r in raw_to_metric
            if r not in new_metric and raw_to_metric[r] not in role_canon and raw_to_metric[r] == normalise_key(r)
        ]
        chosen: str | None = None
        for pattern in role.patterns:
            hits = [r for r in free if pattern.search(normalise_key(r))]
            if role.only_if_unique and len(hits) != 1:
                hits = []
            if hits:
                chosen = max(hits, key=lambda r: (points.get(r, 0), r))
                break
        if chosen is None:
            continue
        new_metric[chosen] = role.canonical
        taken.add(role.canonical)
        how = "the only loss-like series" if role.only_if_unique else "inferred from its name"
        notes.append(f"{role.canonical} taken from {chosen!r} ({how})")
    for raw, canonical in list(new_metric.items()) + [(r, m) for r, m in raw_to_metric.items() if r not in new_metric]:
        if canonical not in role_canon:
            continue
        m = table.scale_in_name.search(raw.strip())
        if m:
            try:
                scale = float(m.group("scale"))
            except ValueError:
                continue
            if scale > 0 and scale != 1.0:
                scales[raw] = scale
                notes.append(f"{raw!r} is logged divided by {m.group('scale')}: values multiplied back")
        if canonical in ("train/loss", "eval/loss") and table.per_epoch_loss.search(normalise_key(raw)):
            notes.append(f"{canonical} ({raw!r}) is one value per epoch (a per-epoch mean or sum), not a per-step loss")
    if not new_metric and not scales and not notes:
        return run
    out = frame
    if new_metric or scales:
        out = _renamed(frame, new_metric, scales, notes)
    prov = replace(run.provenance, notes=tuple(run.provenance.notes) + tuple(notes))
    return replace(run, metrics=out, provenance=prov)


def _renamed(table: Any, new_metric: dict[str, str], scales: dict[str, float], notes: list[str]) -> Any:
    """The table with series renamed (raw name -> canonical) and scaled (raw name -> factor); points renamed
    onto an existing (step, metric) drop the earlier row (the last kept, as the tidy constructor does)."""
    from lossdoctor.tidy import retidy

    raw_names, metric_names = table.raw_names, table.metric_names
    n_m = max(len(metric_names), 1)
    pair = table.raw_codes.astype(np.int64) * n_m + table.metric_codes
    used = np.flatnonzero(np.bincount(pair, minlength=len(raw_names) * n_m))
    new_name = [new_metric.get(raw_names[int(p) // n_m], metric_names[int(p) % n_m]) for p in used]
    names = sorted(set(new_name))
    code_of_pair = np.zeros(len(raw_names) * n_m, dtype=np.int64)
    code_of_pair[used] = [names.index(n) for n in new_name]
    codes = code_of_pair[pair]
    value = table.value
    if scales:
        factor = np.asarray([scales.get(r, 1.0) for r in raw_names], dtype=np.float64)
        value = value * factor[table.raw_codes]
    out = retidy(table, metric_codes=codes, metric_names=names, value=value).frame
    if len(out) < len(table):
        notes.append(
            f"{len(table) - len(out)} point(s) of series renamed onto an existing one dropped "
            "(same step; the last kept)"
        )
    return out
