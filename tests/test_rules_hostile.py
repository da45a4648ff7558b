"""Hostile rule files: each is rejected by `rules validate` (and by `analyze --rules`) with one located
line, in bounded time and memory; `analyze` accepts nothing `rules validate` refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossdoctor.rules import template
from lossdoctor.rules.packs import validate_files

RULE = (
    "version: 1\nrules:\n  - id: x\n    severity: error\n    title: X\n"
    "    when: {{check: threshold, series: train/loss, op: '>', value: {value}}}\n    message: '{message}'\n"
)


def _laughs(levels: int = 9) -> str:
    lines = ["version: 1", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(levels):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\nrules: []\n"


HOSTILE = {
    "billion-laughs": (_laughs(), "expands to more than"),
    "flow-nesting-1000": ("version: 1\nrules: " + "[" * 1000 + "]" * 1000 + "\n", "nesting depth"),
    "flow-nesting-100k": ("version: 1\nrules: " + "[" * 100_000 + "]" * 100_000 + "\n", "nesting depth"),
    "block-nesting": ("version: 1\nrules:\n" + "".join("  " * i + "- \n" for i in range(1, 300)), "levels deep"),
    "recursive-alias": ("version: 1\nrules: &r [*r]\n", "recursive alias"),
    "recursive-map-alias": ("version: 1\nx: &m {a: *m}\nrules: []\n", "recursive alias"),
    "duplicate-key": (
        RULE.format(value="1.0", message="m") + "    severity: warning\n",
        "duplicate key 'severity' (first at line 4)",
    ),
    "nan-threshold": (RULE.format(value=".nan", message="m"), "value: expected a number, got nan"),
    "inf-threshold": (RULE.format(value="-.inf", message="m"), "value: expected a number, got -inf"),
    "1e999-threshold": (RULE.format(value="1e999", message="m"), "value: expected a number"),
    "inf-param": (
        RULE.format(value="'${max}'", message="m").replace("    when", "    params: {max: .inf}\n    when"),
        "param 'max': expected a finite number",
    ),
    "format-width": (RULE.format(value="1.0", message="{evidence.value:>999999999}"), "width/precision above"),
    "format-precision": (RULE.format(value="1.0", message="{evidence.value:.999999999f}"), "width/precision above"),
    "nul-byte": ("version: 1\x00\nrules: []\n", "a NUL byte"),
    "5000-digit-int": (RULE.format(value="1" * 5000, message="m"), "Exceeds the limit"),
    "huge-for": (RULE.format(value="1.0", message="m") + "    for: 99999999999999999999999 points\n", "for: expected"),
    "huge-file": ("version: 1\n# " + "x" * (1024 * 1024) + "\nrules: []\n", "larger than 512 KB"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_rule_file_is_one_located_error(tmp_path: Path, name: str) -> None:
    text, needle = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    problems = validate_files((str(path),))
    assert problems, name
    assert all("\n" not in p for p in problems)
    assert problems[0].startswith(str(path)) and needle in problems[0], problems[0]
    if name not in ("huge-file",):
        assert problems[0].startswith(f"{path}:"), problems[0]  # file:line


def test_hostile_rule_files_cost_bounded_time_and_memory(tmp_path: Path) -> None:
    """All hostile files through the real CLI in one child process: each rejection ≤ 1 s of CPU time
    inside the process and the whole child ≤ 200 MB peak RSS (VmHWM: ru_maxrss would include the forking
    parent's size)."""
    for name, (text, _) in HOSTILE.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    code = (
        "import sys, time\n"
        "from lossdoctor.rules.packs import validate_files\n"
        "def hwm():\n"
        "    return next(int(ln.split()[1]) // 1024 for ln in open('/proc/self/status') if ln.startswith('VmHWM:'))\n"
        "worst = 0.0\n"
        "for path in sys.argv[1:]:\n"
        "    t = time.process_time(); assert validate_files((path,)); worst = max(worst, time.process_time() - t)\n"
        "print(worst, hwm())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *sorted(str(p) for p in tmp_path.glob("*.yaml"))],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    worst_s, rss_mb = out.stdout.split()
    assert float(worst_s) <= 1.0 and int(rss_mb) <= 200, out.stdout


def test_analyze_refuses_what_validate_refuses(tmp_path: Path) -> None:
    """`analyze --rules` goes through the same checks: exit 2 with the same first line, before reading."""
    from lossdoctor import cli

    path = tmp_path / "laughs.yaml"
    path.write_text(HOSTILE["billion-laughs"][0], encoding="utf-8")
    log = tmp_path / "m.jsonl"
    log.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze", str(log), "--rules", str(path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()


def test_template_render_caps_specs_even_unvalidated() -> None:
    assert template.render("{evidence.v:>999999999}", {"v": 1.5}, {}) == "1.5"
    assert template.render("{evidence.v:.3f}", {"v": 1.5}, {}) == "1.500"


def test_default_pack_and_ordinary_rules_still_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        RULE.format(value="3.0", message="loss {evidence.value:>10.3f} at {evidence.step}") + "    for: 2 points\n",
        encoding="utf-8",
    )
    assert validate_files((str(path),)) == []


def test_the_builtin_pack_reads_the_same_through_either_composer() -> None:
    """The package's own pack is composed by libyaml (trusted text); user files by the bounded Python composer.
    Both give the same data with the same positions, so a problem in either is reported at the same place."""
    from lossdoctor import yamlpos
    from lossdoctor.rules.packs import builtin_pack_text

    def shape(value):  # data with every position it carries
        if isinstance(value, yamlpos.PosDict):
            return ("map", value.line, value.column, tuple((k, value.key_pos[k], shape(v)) for k, v in value.items()))
        if isinstance(value, yamlpos.PosList):
            return ("seq", value.line, value.column, tuple(value.item_pos), tuple(shape(v) for v in value))
        return (type(value).__name__, value)

    text, _ = builtin_pack_text("default")
    assert shape(yamlpos.load(text, trusted=True)) == shape(yamlpos.load(text))
    # user text never takes the unbounded path: the depth limit holds
    with pytest.raises(yamlpos.YamlPosError, match="levels deep"):
        yamlpos.load("a:\n" + "".join("  " * i + "- \n" for i in range(1, 300)))
