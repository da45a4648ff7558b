"""`lossdoctor train`: LoRA fine-tuning (trl SFTTrainer + peft) that leaves a run directory lossdoctor can read.

Every flag may also be given in a YAML ``--config`` file (same names, dashes or underscores); flags win.
No torch import happens until the command runs.
"""
from __future__ import annotations

import sys
from typing import Any

import click

from lossdoctor.train.config import (PRECISION_CHOICES, QUANT_CHOICES, SCHEDULER_CHOICES, STOP_ON_CHOICES,
                                     WANDB_CHOICES)

_MULTI = ("target_modules", "stop_on_rules", "rules")


@click.command("train")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="YAML file with any of these options (dashes or underscores); flags override it.")
@click.option("--model", default=None, help="Hub id, local model dir, or `tiny` (built-in offline model). [tiny]")
@click.option("--data", default=None, metavar="JSONL", help="Training rows: chat `messages` or a `text` field.")
@click.option("--output-dir", default=None, metavar="DIR", help="Run directory (must be new or empty).")
@click.option("--eval-data", default=None, metavar="JSONL", help="Eval rows (instead of --val-ratio).")
@click.option("--val-ratio", type=float, default=None, help="Share of --data held out for eval. [0.1]")
@click.option("--cutoff-len", type=int, default=None, help="Max tokens per example. [256]")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps; overrides --epochs when > 0.")
@click.option("--epochs", type=float, default=None, help="Passes over the data. [3]")
@click.option("--lr", type=float, default=None, help="Peak learning rate. [2e-4]")
@click.option("--per-device-train-batch-size", type=int, default=None, help="[1]")
@click.option("--gradient-accumulation-steps", type=int, default=None, help="[1]")
@click.option("--weight-decay", type=float, default=None, help="[0.0]")
@click.option("--lora-r", type=int, default=None, help="LoRA rank. [8]")
@click.option("--lora-alpha", type=int, default=None, help="[16]")
@click.option("--lora-dropout", type=float, default=None, help="[0.05]")
@click.option("--target-modules", multiple=True, metavar="NAMES",
              help="LoRA target modules (repeat or comma-separate). [all linear projections]")
@click.option("--eval-steps", type=int, default=None, help="[20]")
@click.option("--save-steps", type=int, default=None, help="[= --eval-steps]")
@click.option("--logging-steps", type=int, default=None, help="[10]")
@click.option("--seed", type=int, default=None, help="[42]")
@click.option("--lr-scheduler", type=click.Choice(SCHEDULER_CHOICES), default=None, help="[cosine]")
@click.option("--warmup-steps", type=int, default=None, help="[0]")
@click.option("--max-grad-norm", type=float, default=None, help="Gradient clipping. [1.0]")
@click.option("--quant", type=click.Choice(QUANT_CHOICES), default=None,
              help="bitsandbytes quantisation of the base model (CUDA only). [none]")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default=None,
              help="auto = bf16 on bf16 GPUs, fp16 on older GPUs, fp32 on CPU. [auto]")
@click.option("--wandb", type=click.Choice(WANDB_CHOICES), default=None,
              help="W&B logging; offline writes <output-dir>/wandb/. [offline]")
@click.option("--wandb-project", default=None, help="[lossdoctor]")
@click.option("--wandb-entity", default=None)
@click.option("--run-name", default=None, help="[the output dir's name]")
@click.option("--threads", type=int, default=None, help="torch CPU threads (0 = auto). [0]")
@click.option("--overwrite", is_flag=True, default=None, help="Replace an existing lossdoctor run directory.")
@click.option("--stop-on", type=click.Choice(STOP_ON_CHOICES), default=None,
              help="Stop training when a finding at/above this severity fires; keeps the best checkpoint. [never]")
@click.option("--stop-on-rule", "stop_on_rules", multiple=True, metavar="ID",
              help="Stop training when this rule fires (repeatable).")
@click.option("--rules", "rules", multiple=True, metavar="FILE", help="Extra rule file (repeatable).")
@click.pass_context
def train_command(ctx: click.Context, config_file: str | None, **options: Any) -> int:
    """Fine-tune a causal LM with LoRA (trl SFTTrainer) and leave an analysable run directory:
    console.log, trainer_state.json, wandb/, adapter + tokenizer, run.json.

    \b
    lossdoctor train --model tiny --data examples/data/overfit.jsonl --output-dir runs/overfit
    lossdoctor train --config examples/train_overfit.yaml --output-dir runs/overfit --stop-on warning

    Every run ends with the diagnosis (the verdict and the findings) and the report written to
    <output-dir>/report/ (report.html, report.md, diagnosis.json), also when it was interrupted.

    \b
    Exit codes: 0 completed; 1 stopped by a rule (--stop-on / --stop-on-rule);
    2 bad input; 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM), after saving
    trainer_state.json, run.json and the report.
    """
    from lossdoctor.train.config import build_config
    from lossdoctor.train.recipe import is_main_process, train

    given = {k: v for k, v in options.items() if v is not None and not (k in _MULTI and v == ())}
    config = build_config(config_file, given)
    result = train(config, argv=["lossdoctor", *sys.argv[1:]])
    if is_main_process():   # under torchrun / accelerate launch, once, not once per rank
        click.echo(f"lossdoctor: run {result.status} at step {result.global_step}: {result.run_dir}", err=True)
        if result.summary:   # the last thing a run prints: the diagnosis and where the report is
            click.echo(result.summary)
            for path in result.reports:
                click.echo(f"  report: {path}")
    return result.exit_code


COMMAND = train_command
