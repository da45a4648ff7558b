"""Find rule packs, apply ``extends`` and ``overrides`` (yamllint style), and hand the engine a RuleSet."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lossdoctor import datafiles
from lossdoctor.errors import RuleFileError
from lossdoctor.rules.schema import Override, Rule, RuleFile, parse_rule_data, parse_rule_text, resolve_condition
from lossdoctor.textfile import read_text

BUILTIN_PACKS = ("default",)


@dataclass(frozen=True)
class RuleSet:
    """The enabled rules of every loaded pack and file, in order, with where they came from."""

    rules: tuple[Rule, ...]  # enabled rules, in pack order
    sources: tuple[str, ...]  # files the rules came from
    disabled: tuple[str, ...] = ()

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def builtin_pack_text(name: str) -> tuple[str, str]:
    """(text, display path) of a built-in pack."""
    return (datafiles.ROOT / _builtin_relpath(name)).read_text(encoding="utf-8"), _builtin_display(name)


def _builtin_relpath(name: str) -> str:
    return f"rules/packs/{name}.yaml"


def _builtin_display(name: str) -> str:
    return f"<builtin>/rules/{name}.yaml"


#: Rule files larger than this are refused unread (the default pack is ~14 KB).
MAX_RULE_FILE_BYTES = 512 * 1024


def read_rule_file(path: str) -> str:
    return read_text(
        path, error=RuleFileError, what="rule file", expected="a YAML rule file", max_bytes=MAX_RULE_FILE_BYTES
    )


def parse_file(path: str) -> tuple[RuleFile | None, list[str]]:
    return parse_rule_text(read_rule_file(path), path)


def _builtin(name: str) -> RuleFile:
    _, data = datafiles.read(_builtin_relpath(name))  # the package's own file: parsed once, kept in a snapshot
    parsed, problems = parse_rule_data(data, _builtin_display(name))
    if problems or parsed is None:  # a broken built-in pack is a bug, not bad input
        raise RuntimeError("built-in rule pack is invalid: " + "; ".join(problems))
    return parsed


def _apply_override(rule: Rule, entry: Override, problems: list[str], path: str) -> Rule:
    changes: dict[str, Any] = {}
    if entry.severity is not None:
        changes["severity"] = entry.severity
    if entry.enabled is not None:
        changes["enabled"] = entry.enabled
    if entry.objectives is not None:
        changes["objectives"] = entry.objectives
    if entry.persist is not None:
        changes["for_count"], changes["for_unit"] = entry.persist
    if entry.params is not None:
        new_params = dict(rule.params)
        for key, value in entry.params.items():
            if key not in rule.params:
                line, col = entry.params_pos.get(key, entry.pos)
                problems.append(
                    f'{path}:{line}:{col}: rule "{rule.id}": unknown param {key!r}; '
                    f"expected one of {', '.join(sorted(rule.params)) or '(none)'}"
                )
                continue
            new_params[key] = value
        changes["params"] = new_params
        # resolve the condition again with the new params (a param of the wrong type is an error here)
        changes["when"], errors = resolve_condition(rule.when, new_params)
        line, col = entry.pos
        problems.extend(f'{path}:{line}:{col}: rule "{rule.id}": {err}' for _, err in errors)
    return replace(rule, **changes)


def load_rules(extra_files: tuple[str, ...] | list[str] = (), include_default: bool = True) -> RuleSet:
    """Default pack (unless excluded) + user files in order; later files override earlier rules by id.
    Raises RuleFileError carrying every problem of every file."""
    ordered: dict[str, Rule] = {}
    sources: list[str] = []
    problems: list[str] = []
    packs_loaded: set[str] = set()

    def add_pack(name: str, where: str) -> None:
        if name in packs_loaded:
            return
        if name not in BUILTIN_PACKS:
            problems.append(f"{where}: extends: unknown pack {name!r}; expected one of {', '.join(BUILTIN_PACKS)}")
            return
        pack = _builtin(name)
        packs_loaded.add(name)
        sources.append(pack.path)
        for rule in pack.rules:
            ordered[rule.id] = rule

    if include_default:
        add_pack("default", "<builtin>")
    for path in extra_files:
        try:
            parsed, file_problems = parse_file(path)
        except RuleFileError as exc:
            problems.append(str(exc))
            continue
        problems.extend(file_problems)
        if parsed is None:
            continue
        sources.append(path)
        for name in parsed.extends:
            add_pack(name, path)
        for rule in parsed.rules:
            ordered[rule.id] = rule
        for rid, entry in parsed.overrides.items():
            if rid not in ordered:
                line, col = entry.pos
                problems.append(
                    f"{path}:{line}:{col}: overrides: unknown rule {rid!r}; known rules: "
                    f"{', '.join(ordered) or '(none)'}"
                )
                continue
            ordered[rid] = _apply_override(ordered[rid], entry, problems, path)
    if problems:
        first = problems[0]
        raise RuleFileError(first, problems=tuple(problems))
    enabled = tuple(r for r in ordered.values() if r.enabled)
    disabled = tuple(r.id for r in ordered.values() if not r.enabled)
    return RuleSet(rules=enabled, sources=tuple(sources), disabled=disabled)


def validate_files(paths: tuple[str, ...]) -> list[str]:
    """Every problem in the given files (and their extends/overrides); [] when all are valid."""
    try:
        load_rules(paths, include_default=True)
    except RuleFileError as exc:
        return list(exc.problems) or [str(exc)]
    return []
