"""Parse and validate rule files. Strict: unknown keys, check kinds and params are errors; every error is
collected as ``file:line:col: rule "id": expected …`` before anything is raised (Prometheus rulefmt style)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lossdoctor.metrics.objectives import ANY, objective_table
from lossdoctor.model import SEVERITIES
from lossdoctor.rules import template
from lossdoctor.rules.checks import registry as check_registry
from lossdoctor.yamlpos import PosDict, PosList, YamlPosError, load

ENGINE_EVIDENCE = frozenset({"first_step", "last_step", "fired_step", "held_points", "onset_step"})
TOP_KEYS = {"version", "pack", "description", "extends", "rules", "overrides", "objectives"}
RULE_KEYS = {
    "id",
    "severity",
    "title",
    "description",
    "params",
    "when",
    "for",
    "message",
    "remediation",
    "labels",
    "enabled",
    "objectives",
}
OVERRIDE_KEYS = {"severity", "params", "for", "enabled", "objectives"}
_FOR_RE = re.compile(r"^\s*(\d{1,8})\s*(points?|evals?|steps?)\s*$")
_WINDOW_RE = re.compile(r"^\s*(\d{1,8}(?:\.\d{1,8})?)\s*(%|points?|evals?|steps?|logs?)\s*$")
_REF_RE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
#: Whole-number check arguments (counts, windows) above this are refused: no real rule needs more,
#: and a check must not allocate by a number from a file.
MAX_INT_ARG = 10_000_000


@dataclass(frozen=True)
class Condition:
    """A rule's ``when``: a check with its arguments, or all/any of other conditions."""

    op: str  # "all" | "any" | "check"
    children: tuple[Condition, ...] = ()
    kind: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)  # raw, may hold ${param} references
    line: int = 0
    #: ``args`` with the rule's ${param} references substituted, defaults filled and types coerced: made once
    #: when the rule file is loaded (``resolve_condition``), what the engine hands the check on every evaluation
    resolved: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Rule:
    """One rule of a rule file, validated: its check condition, severity, message and remedies."""

    id: str
    severity: str
    title: str
    description: str
    params: Mapping[str, Any]
    when: Condition
    for_count: int
    for_unit: str
    message: str
    remediation: tuple[str, ...]
    labels: Mapping[str, str]
    origin: str  # file:line
    enabled: bool = True
    #: the objectives the rule judges (lossdoctor/metrics/objectives.yaml); () = every objective. From the
    #: rule's own `objectives:`, else its file's top-level `objectives:`, else every objective (so a rule file
    #: written before objectives existed judges every run, as it did)
    objectives: tuple[str, ...] = ()

    def applies_to(self, objective: str) -> bool:
        return not self.objectives or objective in self.objectives


@dataclass(frozen=True)
class Override:
    """One entry of a rule file's ``overrides:``: what it changes in the rule it names (None = unchanged)."""

    rule_id: str
    origin: str  # file:line
    pos: tuple[int, int]  # line, column of the rule id
    severity: str | None = None
    enabled: bool | None = None
    params: Mapping[str, Any] | None = None
    params_pos: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # param → line, column
    persist: tuple[int, str] | None = None  # `for:` as (count, unit)
    objectives: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RuleFile:
    """One parsed rule file: its rules, the packs it extends and its overrides."""

    path: str
    pack: str
    extends: tuple[str, ...]
    rules: tuple[Rule, ...]
    overrides: Mapping[str, Override]  # rule id → what to change
    objectives: tuple[str, ...] = ()  # the file's default for its rules (() = every objective)


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, pos: tuple[int, int] | None, message: str, rule_id: str | None = None) -> None:
        where = self.path if not pos else f"{self.path}:{pos[0]}:{pos[1]}"
        who = f'rule "{rule_id}": ' if rule_id else ""
        self.items.append(" ".join(f"{where}: {who}{message}".split()))  # always one line


def parse_fraction(value: Any) -> float | None:
    """0.05, "5%", "0.05" → 0.05; None when not a finite number (.nan, .inf, 1e999 are no threshold)."""
    if isinstance(value, bool):
        return None
    out: float | None = None
    if isinstance(value, (int, float)):
        try:
            out = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        text = value.strip()
        try:
            out = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            return None
    return out if out is not None and math.isfinite(out) else None


def parse_for(value: Any) -> tuple[int, str] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, "points") if 1 <= value <= MAX_INT_ARG else None
    if isinstance(value, str):
        m = _FOR_RE.match(value)
        if m and int(m.group(1)) >= 1:
            unit = m.group(2).rstrip("s") + "s"
            return int(m.group(1)), unit
    return None


def parse_window(value: Any) -> dict[str, Any] | None:
    """{last: "5 points" | "200 steps" | "30%"} → {"last": (N, unit)}; None when malformed."""
    if not isinstance(value, dict) or set(value) != {"last"}:
        return None
    spec = value["last"]
    if isinstance(spec, int) and not isinstance(spec, bool):
        return {"last": (spec, "points")} if spec <= MAX_INT_ARG else None
    if isinstance(spec, str):
        m = _WINDOW_RE.match(spec)
        if m:
            unit = m.group(2)
            if unit == "%":
                return {"last": (float(m.group(1)), "%")}
            return {"last": (int(float(m.group(1))), unit.rstrip("s") + "s")}
    return None


def resolve_args(args: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Replace ``${name}`` references by param values (plain substitution, nothing evaluated)."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str):
            m = _REF_RE.match(value)
            if m:
                value = params.get(m.group(1))
        out[key] = value
    return out


def coerce_arg(kind: str, name: str, value: Any) -> tuple[Any, str | None]:
    """(coerced value, error) for a check argument of the registered Param type."""
    spec = check_registry()[kind].params[name]
    t = spec.type
    if t == "series":
        return (value, None) if isinstance(value, str) and value else (None, "expected a metric name")
    if t in ("series_list", "names"):
        if isinstance(value, str) and value:
            return [value], None
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return list(value), None
        return None, "expected a metric name or a list of them"
    if t == "number":
        f = parse_fraction(value) if not isinstance(value, str) or not value.strip().endswith("%") else None
        return (f, None) if f is not None else (None, "expected a number")
    if t == "fraction":
        f = parse_fraction(value)
        return (f, None) if f is not None else (None, "expected a fraction like 0.05 or 5%")
    if t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT_ARG
        return (value, None) if ok else (None, f"expected a whole number from 0 to {MAX_INT_ARG:,}")
    if t == "bool":
        return (value, None) if isinstance(value, bool) else (None, "expected true or false")
    if t == "choice":
        return (value, None) if value in spec.choices else (None, f"expected one of {', '.join(spec.choices)}")
    if t == "window":
        if value is None:
            return None, None
        w = parse_window(value)
        return (w, None) if w else (None, 'expected {last: "N points" | "N steps" | "N%"}')
    return value, None


def check_args(kind: str, raw: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Resolve ${refs}, fill defaults, coerce types; (args, errors-without-position)."""
    spec = check_registry()[kind].params
    resolved = resolve_args(raw, params)
    out: dict[str, Any] = {}
    errors: list[str] = []
    for name, p in spec.items():
        if name in raw:
            ref = _REF_RE.match(raw[name]) if isinstance(raw[name], str) else None
            if ref and ref.group(1) not in params:
                errors.append(f"{name}: {raw[name]} refers to an unknown param")
                continue
            value, err = coerce_arg(kind, name, resolved[name])
            if err:
                errors.append(f"{name}: {err}, got {resolved[name]!r}")
            else:
                out[name] = value
        elif p.required:
            errors.append(f"check {kind!r} needs {name!r}")
        else:
            out[name] = parse_window(p.default) if p.type == "window" and p.default else p.default
    return out, errors


def _parse_condition(
    node: Any,
    pos: tuple[int, int],
    probs: _Problems,
    rid: str | None,
    evidence: set[str],
    kinds_used: list[str],
) -> Condition | None:
    if not isinstance(node, PosDict):
        probs.add(pos, "when: expected a mapping with 'check', 'all' or 'any'", rid)
        return None
    keys = set(node)
    for combinator in ("all", "any"):
        if combinator in node:
            if keys != {combinator}:
                probs.add(node.pos(), f"'{combinator}' must stand alone in its mapping", rid)
                return None
            items = node[combinator]
            if not isinstance(items, PosList) or not items:
                probs.add(node.pos(combinator), f"'{combinator}' expects a non-empty list of conditions", rid)
                return None
            kids = [
                _parse_condition(item, items.item_pos[i], probs, rid, evidence, kinds_used)
                for i, item in enumerate(items)
            ]
            children = tuple(k for k in kids if k is not None)
            if len(children) < len(kids):
                return None
            return Condition(op=combinator, children=children, line=node.pos()[0])
    if "check" not in node:
        probs.add(node.pos(), "expected 'check: KIND' (or 'all'/'any')", rid)
        return None
    kind = node["check"]
    known = check_registry()
    if kind not in known:
        probs.add(node.pos("check"), f"unknown check kind {kind!r}; expected one of {', '.join(known)}", rid)
        return None
    allowed = set(known[kind].params) | {"check"}
    for key in node:
        if key not in allowed:
            probs.add(
                node.pos(key),
                f"unknown parameter {key!r} for check {kind!r}; expected {', '.join(sorted(allowed - {'check'}))}",
                rid,
            )
    evidence.update(known[kind].evidence_keys)
    kinds_used.append(kind)
    args = {k: v for k, v in node.items() if k != "check"}
    return Condition(op="check", kind=kind, args=args, line=node.pos()[0])


def resolve_condition(cond: Condition, params: Mapping[str, Any]) -> tuple[Condition, list[tuple[int, str]]]:
    """``cond`` with every check's arguments resolved against ``params`` (``check_args``), once, at load; and
    the (line, error) of every argument that does not resolve."""
    if cond.op != "check":
        kids: list[Condition] = []
        errors: list[tuple[int, str]] = []
        for child in cond.children:
            kid, more = resolve_condition(child, params)
            kids.append(kid)
            errors.extend(more)
        return replace(cond, children=tuple(kids)), errors
    args, problems = check_args(cond.kind, cond.args, params)
    return replace(cond, resolved=args), [(cond.line, err) for err in problems]


def _parse_params(node: Any, pos: tuple[int, int], probs: _Problems, rid: str | None) -> dict[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, PosDict):
        probs.add(pos, "params: expected a mapping of name: value", rid)
        return {}
    out = {}
    for key, value in node.items():
        if not isinstance(value, (int, float, str, bool)) or isinstance(value, bool):
            probs.add(node.pos(key), f"param {key!r}: expected a number or a string like 5%", rid)
            continue
        if isinstance(value, (int, float)) and parse_fraction(value) is None:
            probs.add(node.pos(key), f"param {key!r}: expected a finite number, got {value!r}", rid)
            continue
        out[key] = value
    return out


def parse_objectives(node: Any, pos: tuple[int, int], probs: _Problems, rid: str | None) -> tuple[str, ...] | None:
    """`objectives: [sft, preference]` or `objectives: any` → ids (() = every objective); None when invalid."""

    table = objective_table()
    items = [node] if isinstance(node, str) else node
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        probs.add(pos, f"objectives: expected a list of objectives ({', '.join(table.ids())}) or '{ANY}'", rid)
        return None
    ids: list[str] = []
    for i, name in enumerate(items):
        where = node.item_pos[i] if isinstance(node, PosList) else pos
        if name == ANY:
            if len(items) > 1:
                probs.add(where, f"objectives: '{ANY}' must stand alone", rid)
                return None
            return ()
        if name not in table.ids():
            alias = table.alias_of(name)
            hint = f" ({name!r} is a kind of {alias!r}: write {alias})" if alias else ""
            probs.add(
                where,
                f"objectives: unknown objective {name!r}; expected {ANY} or one of {', '.join(table.ids())}{hint}",
                rid,
            )
            return None
        if name not in ids:
            ids.append(name)
    return tuple(ids)


def _parse_rule(
    node: Any, pos: tuple[int, int], probs: _Problems, path: str, default_objectives: tuple[str, ...] = ()
) -> Rule | None:
    if not isinstance(node, PosDict):
        probs.add(pos, "each rule must be a mapping")
        return None
    rid = node.get("id")
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        probs.add(node.pos("id") if "id" in node else node.pos(), "id: expected a lower-case id like 'my-rule'")
        rid = None
    for key in node:
        if key not in RULE_KEYS:
            probs.add(node.pos(key), f"unknown key {key!r}; expected one of {', '.join(sorted(RULE_KEYS))}", rid)
    severity = node.get("severity")
    if severity not in SEVERITIES:
        probs.add(
            node.pos("severity") if "severity" in node else node.pos(),
            f"severity: expected one of {', '.join(SEVERITIES)}",
            rid,
        )
    title = node.get("title")
    if not isinstance(title, str) or not title.strip():
        probs.add(node.pos("title") if "title" in node else node.pos(), "title: expected a non-empty string", rid)
    message = node.get("message")
    if not isinstance(message, str) or not message.strip():
        probs.add(node.pos("message") if "message" in node else node.pos(), "message: expected a template string", rid)
        message = ""
    remediation_node = node.get("remediation", [])
    if isinstance(remediation_node, str):
        remediation_node = [remediation_node]
    if not isinstance(remediation_node, list) or not all(isinstance(r, str) for r in remediation_node):
        probs.add(node.pos("remediation"), "remediation: expected a list of strings", rid)
        remediation_node = []
    params = _parse_params(node.get("params"), node.pos("params"), probs, rid)
    evidence: set[str] = set()
    kinds_used: list[str] = []
    if "when" not in node:
        probs.add(node.pos(), "when: missing (the condition)", rid)
        cond = None
    else:
        cond = _parse_condition(node["when"], node.pos("when"), probs, rid, evidence, kinds_used)
    if cond is not None:
        cond, arg_errors = resolve_condition(cond, params)
        for line, err in arg_errors:
            probs.add((line, 1), err, rid)
    for_count, for_unit = 1, "points"
    if "for" in node:
        parsed = parse_for(node["for"])
        if parsed is None:
            probs.add(node.pos("for"), f"for: expected 'N points', 'N evals' or 'N steps', got {node['for']!r}", rid)
        else:
            for_count, for_unit = parsed
    for key, text in [("message", message), *[("remediation", r) for r in remediation_node]]:
        good, bad = template.scan(text)
        for problem in bad:
            probs.add(node.pos(key), f"{key}: {problem}", rid)
        for ns, name, _spec in good:
            if ns == "evidence" and cond is not None and name not in evidence | ENGINE_EVIDENCE:
                probs.add(
                    node.pos(key),
                    f"{key}: {{evidence.{name}}} is not provided by check(s) "
                    f"{', '.join(sorted(set(kinds_used)))}; available: "
                    f"{', '.join(sorted(evidence | ENGINE_EVIDENCE))}",
                    rid,
                )
            if ns == "params" and name not in params:
                probs.add(node.pos(key), f"{key}: {{params.{name}}} is not a param of this rule", rid)
    labels = node.get("labels", {}) or {}
    if not isinstance(labels, dict):
        probs.add(node.pos("labels"), "labels: expected a mapping", rid)
        labels = {}
    enabled = node.get("enabled", True)
    if not isinstance(enabled, bool):
        probs.add(node.pos("enabled"), "enabled: expected true or false", rid)
        enabled = True
    objectives = default_objectives
    if "objectives" in node:
        objectives = parse_objectives(node["objectives"], node.pos("objectives"), probs, rid) or ()
    if rid is None or cond is None or severity not in SEVERITIES or not isinstance(title, str):
        return None
    return Rule(
        id=rid,
        severity=severity,
        title=title.strip(),
        description=str(node.get("description", "") or "").strip(),
        params=params,
        when=cond,
        for_count=for_count,
        for_unit=for_unit,
        message=message.strip(),
        remediation=tuple(r.strip() for r in remediation_node),
        labels={str(k): str(v) for k, v in labels.items()},
        origin=f"{path}:{node.pos()[0]}",
        enabled=enabled,
        objectives=objectives,
    )


def _parse_overrides(node: Any, pos: tuple[int, int], probs: _Problems) -> dict[str, Override]:
    if node is None:
        return {}
    if not isinstance(node, PosDict):
        probs.add(
            pos, "overrides: expected a mapping of rule id → 'disable' or {severity, params, for, enabled, objectives}"
        )
        return {}
    out: dict[str, Override] = {}
    for rid, spec in node.items():
        where = node.pos(rid)
        entry: dict[str, Any] = {}
        if spec in ("disable", "disabled", "off", False):
            entry["enabled"] = False
        elif isinstance(spec, PosDict):
            for key in spec:
                if key not in OVERRIDE_KEYS:
                    probs.add(
                        spec.pos(key),
                        f"unknown override key {key!r}; expected one of {', '.join(sorted(OVERRIDE_KEYS))}",
                        rid,
                    )
            if "severity" in spec:
                if spec["severity"] not in SEVERITIES:
                    probs.add(spec.pos("severity"), f"severity: expected one of {', '.join(SEVERITIES)}", rid)
                else:
                    entry["severity"] = spec["severity"]
            if "params" in spec:
                entry["params"] = _parse_params(spec["params"], spec.pos("params"), probs, rid)
                entry["params_pos"] = (
                    {k: spec["params"].pos(k) for k in entry["params"]} if isinstance(spec["params"], PosDict) else {}
                )
            if "for" in spec:
                parsed = parse_for(spec["for"])
                if parsed is None:
                    probs.add(spec.pos("for"), "for: expected 'N points', 'N evals' or 'N steps'", rid)
                else:
                    entry["persist"] = parsed
            if "objectives" in spec:
                parsed_objectives = parse_objectives(spec["objectives"], spec.pos("objectives"), probs, rid)
                if parsed_objectives is not None:
                    entry["objectives"] = parsed_objectives
            if "enabled" in spec:
                if isinstance(spec["enabled"], bool):
                    entry["enabled"] = spec["enabled"]
                else:
                    probs.add(spec.pos("enabled"), "enabled: expected true or false", rid)
        else:
            probs.add(where, "expected 'disable' or a mapping {severity, params, for, enabled, objectives}", rid)
            continue
        out[str(rid)] = Override(rule_id=str(rid), origin=f"{probs.path}:{where[0]}", pos=where, **entry)
    return out


def parse_rule_text(text: str, path: str) -> tuple[RuleFile | None, list[str]]:
    """Parse one rule file; (RuleFile or None, every problem found)."""
    try:
        data = load(text)
    except YamlPosError as exc:
        probs = _Problems(path)
        probs.add((exc.line, exc.column) if exc.line and exc.column else None, exc.message)
        return None, probs.items
    return parse_rule_data(data, path)


def parse_rule_data(data: Any, path: str) -> tuple[RuleFile | None, list[str]]:
    """A rule file's YAML content (PosDict, as :func:`lossdoctor.yamlpos.load` gives it) → (RuleFile or None,
    every problem found)."""
    probs = _Problems(path)
    if not isinstance(data, PosDict):
        probs.add(None, "expected a mapping with 'version' and 'rules' (or 'extends'/'overrides')")
        return None, probs.items
    for key in data:
        if key not in TOP_KEYS:
            probs.add(data.pos(key), f"unknown top-level key {key!r}; expected one of {', '.join(sorted(TOP_KEYS))}")
    if data.get("version") != 1:
        probs.add(data.pos("version") if "version" in data else data.pos(), "version: expected 1")
    extends = data.get("extends", [])
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        probs.add(data.pos("extends"), "extends: expected a pack name or a list of them")
        extends = []
    file_objectives: tuple[str, ...] = ()
    if "objectives" in data:
        file_objectives = parse_objectives(data["objectives"], data.pos("objectives"), probs, None) or ()
    rules_node = data.get("rules", PosList())
    rules: list[Rule] = []
    if rules_node is None:
        rules_node = PosList()
    if not isinstance(rules_node, PosList):
        probs.add(data.pos("rules"), "rules: expected a list of rules")
    else:
        seen: dict[str, int] = {}
        for i, item in enumerate(rules_node):
            rule = _parse_rule(item, rules_node.item_pos[i], probs, path, file_objectives)
            if rule is None:
                continue
            if rule.id in seen:
                probs.add(rules_node.item_pos[i], f"duplicate rule id (first at line {seen[rule.id]})", rule.id)
                continue
            seen[rule.id] = rules_node.item_pos[i][0]
            rules.append(rule)
    if "rules" not in data and "overrides" not in data and "extends" not in data:
        probs.add(data.pos(), "expected 'rules', 'overrides' or 'extends'")
    overrides = _parse_overrides(data.get("overrides"), data.pos("overrides"), probs)
    pack = str(data.get("pack", "") or "")
    return (
        RuleFile(
            path=path,
            pack=pack,
            extends=tuple(extends),
            rules=tuple(rules),
            overrides=overrides,
            objectives=file_objectives,
        ),
        probs.items,
    )
