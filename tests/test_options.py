"""Shared CLI options are declared once (lossdoctor/commands/_options.py) and mean the same in every command."""

from __future__ import annotations

import re
from pathlib import Path

import click

from lossdoctor.cli import group as main

COMMANDS = Path(__file__).resolve().parent.parent / "lossdoctor" / "commands"
SHARED = ("--rules", "--no-default-rules", "--source-kind", "--metric", "--quiet", "--log-format", "--offline")


def _commands(group: click.Group, ctx: click.Context) -> list[click.Command]:
    out: list[click.Command] = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        out.extend(_commands(cmd, ctx) if isinstance(cmd, click.Group) else [cmd])
    return out


def test_each_shared_option_is_declared_once() -> None:
    for flag in SHARED:
        where = [
            p.name
            for p in sorted(COMMANDS.glob("*.py"))
            for _ in re.finditer(rf'click\.option\(\s*"{re.escape(flag)}"', p.read_text(encoding="utf-8"))
        ]
        assert where == ["_options.py"], (flag, where)


def test_shared_options_agree_across_commands() -> None:
    ctx = click.Context(main)
    seen: dict[str, tuple] = {}
    for cmd in _commands(main, ctx):
        for param in cmd.params:
            if not isinstance(param, click.Option) or not set(param.opts) & set(SHARED):
                continue
            shape = (tuple(param.opts), param.multiple, param.is_flag, param.metavar)
            assert seen.setdefault(param.opts[0], shape) == shape, (cmd.name, param.opts[0])
    assert {"--rules", "--source-kind", "--metric", "--quiet"} <= set(seen)


def test_train_options_are_generated_from_trainconfig(monkeypatch) -> None:
    import dataclasses

    from lossdoctor.commands import train as train_cmd
    from lossdoctor.train import config as train_config
    from lossdoctor.train.config import TrainConfig

    options = {p.name: p for p in train_cmd.train_command.params if isinstance(p, click.Option)}
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(options) == set(fields) | {"config_file"}
    defaults = TrainConfig()
    assert options["cutoff_len"].help.endswith(f"[{defaults.cutoff_len}]")
    assert options["model"].help.endswith(f"[{defaults.model}]")
    assert options["lr_scheduler"].type.choices == train_config.SCHEDULER_CHOICES
    assert options["stop_on_rules"].opts == ["--stop-on-rule"] and options["stop_on_rules"].multiple
    assert options["overwrite"].is_flag

    seen: dict = {}
    monkeypatch.setattr(train_config, "validate", lambda config, where=None: None)
    import lossdoctor.train.recipe as recipe

    def fake_train(config, argv=None):  # stop before any training: only the parsed config matters here
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(recipe, "train", fake_train)
    from click.testing import CliRunner

    CliRunner().invoke(
        train_cmd.train_command,
        [
            "--data",
            "d.jsonl",
            "--output-dir",
            "o",
            "--cutoff-len",
            "7",
            "--lr",
            "0.5",
            "--overwrite",
            "--stop-on-rule",
            "a",
            "--stop-on-rule",
            "b",
            "--quant",
            "8bit",
        ],
    )
    got = seen["config"]
    assert (got.cutoff_len, got.lr, got.overwrite, got.stop_on_rules, got.quant) == (7, 0.5, True, ("a", "b"), "8bit")
    assert got.epochs == defaults.epochs and got.rules == ()
