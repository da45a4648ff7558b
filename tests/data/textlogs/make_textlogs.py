"""Write the generic text-log fixtures of this directory that are made from documented formats.

    .venv/bin/python tests/data/textlogs/make_textlogs.py      # rewrites the written fixtures here

Each file is written with the print statements of the tool it imitates (quoted in README.md with the source
they come from), from one formula: `train_loss`, `eval_loss` (best at step 100, rising after: overfitting),
`learning_rate`. The tests take expected values from these functions (rounded as each format prints them),
never from reading the files back. The real public logs here (llmc_main.log, megatron_bigscience_n4.out) are
cut from their repositories, not written by this script.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAST, TRAIN_EVERY, EVAL_EVERY = 200, 10, 50
BOLD, END, GREEN, RED = "\x1b[1m", "\x1b[0m", "\x1b[92m", "\x1b[91m"


def train_loss(step: int) -> float:
    return 2.0 * 0.985 ** step + 0.5


def eval_loss(step: int) -> float:
    return 1.4 + 0.6 * ((step - 100) / 100) ** 2


def learning_rate(step: int) -> float:
    return 2e-4 * (1 - step / (LAST + 1))


def train_steps() -> range:
    return range(TRAIN_EVERY, LAST + 1, TRAIN_EVERY)


def eval_steps() -> range:
    return range(EVAL_EVERY, LAST + 1, EVAL_EVERY)


def mlx_lora() -> str:
    """mlx-lm `mlx_lm/tuner/trainer.py` train(): the val report (at it == 1, every steps_per_eval and the last
    iteration, printed before that iteration's train report) and the train report every steps_per_report."""
    lines = ["Loading pretrained model", "Loading datasets", "Training",
             "Trainable parameters: 0.071% (5.243M/7241.732M)", f"Starting training..., iters: {LAST}"]
    trained = 0
    for it in range(1, LAST + 1):
        if it == 1 or it % EVAL_EVERY == 0:
            lines.append(f"Iter {it}: Val loss {eval_loss(it):.3f}, Val took {4.9 + it / 1000:.3f}s")
        if it % TRAIN_EVERY == 0:
            trained += 8000
            lines.append(f"Iter {it}: Train loss {train_loss(it):.3f}, Learning Rate {learning_rate(it):.3e}, "
                         f"It/sec {3.1:.3f}, Tokens/sec {800.0:.3f}, Trained Tokens {trained}, Peak mem {5.1:.3f} GB")
        if it % 100 == 0:
            lines.append(f"Iter {it}: Saved adapter weights to adapters/adapters.safetensors and "
                         f"adapters/{it:07d}_adapters.safetensors.")
    lines.append("Saved final weights to adapters/adapters.safetensors.")
    return "\n".join(lines) + "\n"


def nanogpt_bpc() -> str:
    """nanoGPT train.py's two print statements as character-level forks print them, with a unit after the
    number (`step {n}: train loss {x:.4f} BPC, val loss {y:.4f} BPC`, `iter {n}: loss {x:.4f} BPC, time
    {dt*1000:.2f}ms, mfu {mfu*100:.2f}%`)."""
    lines = ["Overriding config with config/train_enwik8_char.py:", "number of parameters: 10.65M"]
    for step in range(0, LAST + 1, TRAIN_EVERY):
        if step % EVAL_EVERY == 0:
            lines.append(f"step {step}: train loss {train_loss(step) - 0.05:.4f} BPC, val loss {eval_loss(step):.4f} BPC")
        mfu = -100.0 if step < 50 else 9.0
        lines.append(f"iter {step}: loss {train_loss(step):.4f} BPC, time {260.0:.2f}ms, mfu {mfu:.2f}%")
    return "\n".join(lines) + "\n"


def slurm_json() -> str:
    """A SLURM .out of a custom trainer that prints one JSON object per log call (json.dumps(record)) among
    srun banners, warnings and a traceback-free shutdown; eval records nested ({"eval": {"loss": ...}})."""
    lines = ["srun: job 4242 queued and waiting for resources", "srun: job 4242 has been allocated resources",
             "/opt/venv/lib/python3.11/site-packages/torch/utils/data/dataloader.py:558: UserWarning: This "
             "DataLoader will create 8 worker processes in total.", "loading shards: 100%|##########| 4/4"]
    for step in train_steps():
        lines.append(json.dumps({"step": step, "loss": round(train_loss(step), 4), "lr": learning_rate(step),
                                 "grad_norm": 0.5 + step / 400, "tokens": 4096 * step}))
        if step % EVAL_EVERY == 0:
            lines.append(f"[eval] step {step} done")
            lines.append(json.dumps({"step": step, "eval": {"loss": round(eval_loss(step), 4), "ppl": 4.1}}))
    lines.append("srun: error: node17: task 0: Exited with exit code 0")
    return "\n".join(lines) + "\n"


def plain_steps() -> str:
    """The plainest custom loop: print(f"step {step} loss {loss:.4f} lr {lr:.2e}") and an eval line."""
    lines = ["Starting training"]
    for step in train_steps():
        lines.append(f"step {step} loss {train_loss(step):.4f} lr {learning_rate(step):.2e}")
        if step % EVAL_EVERY == 0:
            lines.append(f"step {step} val_loss {eval_loss(step):.4f}")
    return "\n".join(lines) + "\n"


def coqui_trainer() -> str:
    """coqui-ai/Trainer `trainer/logging/console_logger.py` (MPL-2.0), as a TTS fine-tuning prints it:
    print_epoch_start ` > EPOCH: e/E`, print_train_start ` > TRAINING (time)`, print_train_step
    `   --> TIME: t -- STEP: s/S -- GLOBAL_STEP: g` then one `     | > key: value  (avg)` per loss,
    print_eval_start ` > EVALUATION`, print_epoch_end `  --> EVAL PERFORMANCE` then
    `     | > avg_key:{colour} value {end}({sign}diff)`, with tcolors.BOLD around the headers."""
    lines = [" > Training Environment:", " | > Backend: Torch", " | > Num. of GPUs: 1", " | > Torch seed: 1"]
    steps_per_epoch, global_step, old = 100, 0, None
    for epoch in range(LAST // steps_per_epoch):
        lines += ["", f"{BOLD} > EPOCH: {epoch}/{LAST // steps_per_epoch}{END}", "",
                  f"{BOLD} > TRAINING (2025-08-19 14:{22 + epoch}:52) {END}"]
        for s in range(0, steps_per_epoch, 25):
            global_step = epoch * steps_per_epoch + s
            lines += ["", f"{BOLD}   --> TIME: 2025-08-19 14:{22 + epoch}:56 -- STEP: {s}/{steps_per_epoch} -- "
                          f"GLOBAL_STEP: {global_step}{END}",
                      f"     | > loss_text_ce: {0.2 + global_step / 1000}  ({0.21})",
                      f"     | > loss_mel_ce: {4.0 + train_loss(global_step)}  ({4.4})",
                      f"     | > loss: {train_loss(global_step)}  ({2.1})",
                      f"     | > current_lr: {learning_rate(global_step)} ",
                      f"     | > step_time: 0.1687  (0.1479287660121917)"]
        end_step = (epoch + 1) * steps_per_epoch
        value = eval_loss(end_step)
        diff = 0 if old is None else value - old
        colour = "" if old is None else (GREEN if diff < 0 else RED)
        sign = "" if diff < 0 else "+"
        lines += [" > Filtering invalid eval samples!!", " > Total eval samples after filtering: 996", "",
                  f"{BOLD} > EVALUATION {END}", "", "", f"  {BOLD}--> EVAL PERFORMANCE{END}",
                  f"     | > avg_loader_time:{colour} 0.0399 {END}({sign}0)",
                  f"     | > avg_loss:{colour} {value} {END}({sign}{diff})", ""]
        old = value
    return "\n".join(lines) + "\n"


def coqui_eval_steps() -> list[tuple[int, float]]:
    """(step the eval block is read at, value): the last GLOBAL_STEP header above each eval block."""
    return [(epoch * 100 + 75, eval_loss((epoch + 1) * 100)) for epoch in range(LAST // 100)]


def coqui_train_steps() -> range:
    return range(0, LAST, 25)


WRITERS = {
    "mlx_lora.log": (mlx_lora, "mlx-lm (mlx_lm/tuner/trainer.py)"),
    "nanogpt_bpc.log": (nanogpt_bpc, "nanoGPT (train.py, character-level fork with BPC units)"),
    "slurm_json.out": (slurm_json, "a custom trainer printing json.dumps(record) under srun"),
    "plain_steps.log": (plain_steps, "a plain custom loop"),
    "coqui_trainer.log": (coqui_trainer, "coqui-ai/Trainer (trainer/logging/console_logger.py)"),
}


def header(name: str, tool: str) -> str:
    return (f"# {name}: written by tests/data/textlogs/make_textlogs.py with the print statements of {tool}; "
            "not a captured log\n")


def main() -> int:
    for name, (writer, tool) in WRITERS.items():
        (HERE / name).write_text(header(name, tool) + writer(), encoding="utf-8", newline="")
        print(f"wrote {HERE / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
