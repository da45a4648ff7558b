"""The run's objective (supervised LM, preference, online RL, reward model, classification, speech), told from its
metric names and config by the signs in objectives.yaml (data); this module only reads and applies them.

Why it matters: a rule is only meaningful for some objectives. GRPO's loss is beta x KL (0.0 at the start, by
design) and a DPO loss starts at ln 2 with one-batch spikes; the supervised "loss not decreasing" and "plateau"
rules would call both broken. Rules name the objectives they judge; the engine skips the others.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lossdoctor import datafiles
from lossdoctor.errors import UsageError
from lossdoctor.model import Objective, Run

#: the word a rule file uses for "every objective"
ANY = "any"
_SPEC_KEYS = frozenset(
    {"id", "title", "aliases", "metrics", "min_metrics", "signature_metrics", "unless_metrics", "config", "needs"}
)


@dataclass(frozen=True)
class ObjectiveSpec:
    """One training objective of objectives.yaml: its names and the metrics that reveal it."""

    id: str
    title: str
    aliases: tuple[str, ...]
    metrics: tuple[str, ...]
    min_metrics: int
    unless_metrics: tuple[str, ...]
    config: tuple[tuple[str, tuple[str, ...] | None], ...]  # key, value globs (None = any value)
    needs: tuple[str, ...] = ()  # metrics a run of this objective is judged on (any one will do) ...
    needs_caveat: str = ""  # ... and what a healthy verdict says when none was logged
    signature_metrics: tuple[str, ...] = ()  # metrics only this objective logs: one alone is enough


@dataclass(frozen=True)
class ObjectiveTable:
    """Every objective lossdoctor knows, and the one assumed when no metric reveals another."""

    default: str
    specs: tuple[ObjectiveSpec, ...]

    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.specs)

    def get(self, objective_id: str) -> ObjectiveSpec:
        return next(s for s in self.specs if s.id == objective_id)

    def alias_of(self, name: str) -> str | None:
        """The objective id a name or alias stands for (case-insensitive); None when unknown."""
        key = name.strip().lower()
        for spec in self.specs:
            if key == spec.id or key in spec.aliases:
                return spec.id
        return None


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuntimeError(f"objectives.yaml: {where}: expected a list of strings")
    return tuple(value)


def parse_table(data: Any) -> ObjectiveTable:
    """objectives.yaml (parsed) → ObjectiveTable. A broken shipped table is a bug, hence RuntimeError."""
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("objectives"), list):
        raise RuntimeError("objectives.yaml: expected version: 1 and a list of objectives")
    specs = []
    for item in data["objectives"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or set(item) - _SPEC_KEYS:
            raise RuntimeError(f"objectives.yaml: bad objective entry {item!r}")
        config: list[tuple[str, tuple[str, ...] | None]] = []
        for key, values in (item.get("config") or {}).items():
            config.append((str(key), None if values == ANY else _strs(values, f"{item['id']}.config.{key}")))
        needs = item.get("needs") or {}
        if not isinstance(needs, dict) or set(needs) - {"metrics", "caveat"}:
            raise RuntimeError(f"objectives.yaml: {item['id']}.needs: expected {{metrics, caveat}}")
        specs.append(
            ObjectiveSpec(
                id=item["id"],
                title=str(item.get("title", item["id"])),
                aliases=tuple(a.lower() for a in _strs(item.get("aliases"), f"{item['id']}.aliases")),
                metrics=_strs(item.get("metrics"), f"{item['id']}.metrics"),
                min_metrics=int(item.get("min_metrics", 1)),
                unless_metrics=_strs(item.get("unless_metrics"), f"{item['id']}.unless_metrics"),
                config=tuple(config),
                needs=_strs(needs.get("metrics"), f"{item['id']}.needs.metrics"),
                needs_caveat=str(needs.get("caveat", "")),
                signature_metrics=_strs(item.get("signature_metrics"), f"{item['id']}.signature_metrics"),
            )
        )
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids) or data.get("default") not in ids or ANY in ids:
        raise RuntimeError("objectives.yaml: ids must be unique, not 'any', and include the default")
    return ObjectiveTable(default=str(data["default"]), specs=tuple(specs))


@lru_cache(maxsize=1)
def objective_table() -> ObjectiveTable:
    return parse_table(datafiles.read("metrics/objectives.yaml")[1])  # the package's own file (its snapshot)


def _globs_hit(patterns: Iterable[str], names: tuple[str, ...]) -> list[str]:
    """The names matched by the patterns, in pattern order (the table lists the telling signs first)."""
    out: list[str] = []
    for p in patterns:
        out.extend(n for n in names if fnmatch.fnmatchcase(n, p) and n not in out)
    return out


def _config_hits(spec: ObjectiveSpec, config: Mapping[str, Any]) -> list[str]:
    hits = []
    for key, values in spec.config:
        for full, value in sorted(config.items(), key=lambda kv: str(kv[0])):
            if str(full).rsplit(".", 1)[-1] != key or value is None:
                continue
            if values is None:
                hits.append(f"config {full}")
                continue
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                text = str(item).strip().lower()
                if any(fnmatch.fnmatchcase(text, v.lower()) for v in values):
                    hits.append(f"config {full}={item}")
                    break
    return hits


def detect(run: Run, table: ObjectiveTable | None = None) -> Objective:
    """The first objective (in table order) whose signs the run shows; the table's default when none does."""
    table = table or objective_table()
    names = run.metric_names()
    for spec in table.specs:
        if spec.id == table.default and not spec.metrics and not spec.config:
            continue
        if spec.unless_metrics and _globs_hit(spec.unless_metrics, names):
            continue
        metric_hits = _globs_hit(spec.metrics, names) if spec.metrics else []
        signature_hits = _globs_hit(spec.signature_metrics, names) if spec.signature_metrics else []
        config_hits = _config_hits(spec, run.config)
        if config_hits or signature_hits or (spec.metrics and len(metric_hits) >= spec.min_metrics):
            metric_hits = list(dict.fromkeys([*signature_hits, *metric_hits]))
            evidence = tuple([f"metric {m}" for m in metric_hits] + config_hits)
            return Objective(id=spec.id, title=spec.title, how="detected", evidence=evidence)
    default = table.get(table.default)
    return Objective(id=default.id, title=default.title, how="default")


def resolve(name: str, table: ObjectiveTable | None = None) -> Objective:
    """``--objective NAME`` → Objective; an unknown name is a UsageError listing the known ones."""
    table = table or objective_table()
    found = table.alias_of(name)
    if found is None:
        known = ", ".join(f"{s.id} ({', '.join(s.aliases)})" if s.aliases else s.id for s in table.specs)
        raise UsageError(f"--objective: unknown objective {name!r}; expected one of {known}")
    spec = table.get(found)
    given_as = name.strip().lower()
    return Objective(id=spec.id, title=spec.title, how="given", given_as="" if given_as == spec.id else given_as)


def missing_caveat(run: Run, objective: Objective, table: ObjectiveTable | None = None) -> str:
    """What a healthy verdict must add because none of the metrics this objective is judged on was logged
    ("" when one was, or when the objective names none)."""
    table = table or objective_table()
    if objective.id not in table.ids():
        return ""
    spec = table.get(objective.id)
    if not spec.needs or _globs_hit(spec.needs, run.metric_names()):
        return ""
    return spec.needs_caveat


def judged_on(run: Run, objective: Objective, table: ObjectiveTable | None = None) -> tuple[str, ...]:
    """The metrics a run of this objective is judged on that the run logged (its ``needs``, in table order)."""
    table = table or objective_table()
    if objective.id not in table.ids():
        return ()
    return tuple(_globs_hit(table.get(objective.id).needs, run.metric_names()))


def describe(objective: Objective) -> str:
    """One line for reports: ``rl - online reinforcement learning (...) (detected: train/reward, train/kl)``."""
    table = objective_table()
    title = objective.title or (table.get(objective.id).title if objective.id in table.ids() else "")
    head = f"{objective.id} - {title}" if title else objective.id
    if objective.how == "given":
        return head + (f" (set by --objective {objective.given_as})" if objective.given_as else " (set by --objective)")
    if objective.how == "detected":
        signs = [e.split(" ", 1)[1] for e in objective.evidence]
        shown = ", ".join(signs[:4]) + (f" +{len(signs) - 4} more" if len(signs) > 4 else "")
        return f"{head} (detected from {shown})"
    return f"{head} (the default: no other objective's signs in the metric names or config)"
