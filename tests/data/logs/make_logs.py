"""Generate the reader fixtures in this directory from one formula (and write format samples for tests).

    /work/venv/bin/python tests/data/logs/make_logs.py      # rewrites the generated fixtures here

Expected values in the tests come from `formula()` below, never from reading the files back.
Values are multiples of 2**-10 (losses) or 2**-20 (lr) so that float32 (TensorBoard), CSV text and JSON
all hold them exactly and the three tables can be compared for equality.
"""
from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_EVERY, EVAL_EVERY, LAST = 5, 25, 200


def q(x: float, bits: int = 10) -> float:
    return round(x * 2**bits) / 2**bits


def train_loss(step: int) -> float:
    return q(2.0 * 0.98**step + 0.5)


def eval_loss(step: int) -> float:
    return q(1.5 + 0.5 * ((step - 100) / 100) ** 2)      # best at step 100, rising after: overfitting


def learning_rate(step: int) -> float:
    return (LAST - step + 1) / 2**20


def epoch(step: int) -> int:
    return step // 50


def formula() -> list[tuple[int, str, float]]:
    """(step, canonical metric, value): the run every table-like fixture holds."""
    out: list[tuple[int, str, float]] = []
    for step in range(TRAIN_EVERY, LAST + 1, TRAIN_EVERY):
        out += [(step, "train/loss", train_loss(step)), (step, "train/learning_rate", learning_rate(step)),
                (step, "train/epoch", float(epoch(step)))]
        if step % EVAL_EVERY == 0:
            out.append((step, "eval/loss", eval_loss(step)))
    return sorted(out)


# --- table-like formats ------------------------------------------------------------------------------

def write_tensorboard(log_dir: Path) -> None:
    """HF TensorBoardCallback tag names; eval/loss as a new-style scalar tensor (torchtune's encoding)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    for step in range(TRAIN_EVERY, LAST + 1, TRAIN_EVERY):
        writer.add_scalar("train/loss", train_loss(step), global_step=step)
        writer.add_scalar("train/learning_rate", learning_rate(step), global_step=step)
        writer.add_scalar("train/epoch", epoch(step), global_step=step)
        if step % EVAL_EVERY == 0:
            writer.add_scalar("eval/loss", eval_loss(step), global_step=step, new_style=True)
    writer.add_text("args", "not a scalar", 0)
    writer.close()


def lightning_rows() -> list[dict[str, float | int]]:
    """One dict per Lightning log_metrics call: the logger connector adds 'epoch', the writer adds 'step'."""
    rows: list[dict[str, float | int]] = []
    for step in range(TRAIN_EVERY, LAST + 1, TRAIN_EVERY):
        rows.append({"train_loss_step": train_loss(step), "lr-AdamW": learning_rate(step), "epoch": epoch(step),
                     "step": step})
        if step % EVAL_EVERY == 0:
            rows.append({"val_loss": eval_loss(step), "epoch": epoch(step), "step": step})
    return rows


def write_lightning_csv(path: Path) -> None:
    """As lightning_fabric/loggers/csv_logs.py `_ExperimentWriter.save`: header = sorted union of keys,
    csv.DictWriter (missing cells empty), newline=""."""
    rows = lightning_rows()
    keys = sorted(set().union(*rows))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def write_long_csv(path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "metric", "value"])
        for step, metric, value in formula():
            writer.writerow([step, metric, repr(value)])


def write_jsonl(path: Path) -> None:
    """HF-style keys, one object per log call, as a metrics.jsonl callback would write them."""
    with path.open("w") as fh:
        for step in range(TRAIN_EVERY, LAST + 1, TRAIN_EVERY):
            fh.write(json.dumps({"loss": train_loss(step), "learning_rate": learning_rate(step),
                                 "epoch": epoch(step), "step": step}) + "\n")
            if step % EVAL_EVERY == 0:
                fh.write(json.dumps({"eval_loss": eval_loss(step), "epoch": epoch(step), "step": step}) + "\n")


# --- text logs -----------------------------------------------------------------------------------------

def keyvalue_line(step: int, rank_offset: float = 0.0) -> str:
    return (f"[2025-12-02 11:11:{step % 60:02d}] step {step} | loss: {train_loss(step) + rank_offset} "
            f"| lr: {learning_rate(step)}")


def ddp_glued_log() -> str:
    """Two ranks printing every step ([rank0]:/[rank1]: prefixes, rank 1 values differ by +1), one step printed
    twice by rank 0, and two lines where both ranks' records were glued together."""
    lines = ["[rank0]: total files: 1[rank1]: total files: 1"]
    for step in range(10, 101, 10):
        r0 = f"[rank0]: {keyvalue_line(step)}"
        r1 = f"[rank1]: {keyvalue_line(step, 1.0)}"
        if step in (40, 70):
            lines.append(r0 + r1)               # glued: one physical line, two records
        elif step == 50:
            lines += [r1, r0, r0]               # rank 1 first, then rank 0 twice
        else:
            lines += [r0, r1]
    return "\n".join(lines) + "\n"


GLUED_STEPS = (40, 70)


def plain_log() -> str:
    return "".join(keyvalue_line(step) + "\n" for step in range(10, 101, 10))


def cp949_log() -> bytes:
    head = "학습 시작: 로그 분석 테스트\n"
    body = "".join(f"스텝 정보 step={s} loss={train_loss(s)} lr={learning_rate(s)}\n" for s in range(10, 101, 10))
    return (head + body).encode("cp949")


def undecodable_log() -> bytes:
    """UTF-8 lines with 5 stray bytes that are not UTF-8 (a console that mixed encodings)."""
    data = plain_log().encode("utf-8")
    lines = data.split(b"\n")
    lines[2] = lines[2] + b" \xff\xfe\xfa"
    lines[5] = b"\x80\x81" + lines[5]
    return b"\n".join(lines)


UNDECODABLE_BYTES = 5


def torchtune_disk_log() -> str:
    """As torchtune DiskLogger.log_dict writes: f"Step {step} | " + f"{name}:{data} " per item + "\\n";
    grad_norm is a 0-d tensor (torch formats it as its item), val_loss comes from validate() on its own line."""
    import torch

    out = io.StringIO()
    for step in range(1, 41):
        payload = {"loss": train_loss(step), "lr": learning_rate(step),
                   "tokens_per_second_per_gpu": 1000.0 + step, "grad_norm": torch.tensor(0.5 + step / 64)}
        out.write(f"Step {step} | ")
        for name, data in payload.items():
            out.write(f"{name}:{data} ")
        out.write("\n")
        if step % 10 == 0:
            out.write(f"Step {step} | ")
            out.write(f"val_loss:{eval_loss(step)} ")
            out.write("\n")
    return out.getvalue()


def torchtune_pbar_log() -> str:
    """Real tqdm output of torchtune's progress bar description f"{epoch}|{step}|Loss: {loss}"."""
    from tqdm import tqdm

    out = io.StringIO()
    pbar = tqdm(total=30, file=out, ncols=80, mininterval=0, ascii=False)
    for step in range(1, 31):
        pbar.update(1)
        pbar.set_description(f"{1 + (step - 1) // 15}|{step}|Loss: {train_loss(step)}")
    pbar.close()
    return out.getvalue()


def main() -> None:
    (HERE / "ddp_glued.log").write_text(ddp_glued_log(), encoding="utf-8")
    (HERE / "utf16_powershell.log").write_bytes(plain_log().replace("\n", "\r\n").encode("utf-16"))
    (HERE / "cp949_console.log").write_bytes(cp949_log())
    (HERE / "undecodable.log").write_bytes(undecodable_log())
    (HERE / "torchtune_disk.log").write_text(torchtune_disk_log(), encoding="utf-8")
    (HERE / "torchtune_pbar.log").write_text(torchtune_pbar_log(), encoding="utf-8")
    rng = random.Random(4)
    (HERE / "random.bin").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    write_lightning_csv(HERE / "lightning_metrics.csv")
    write_long_csv(HERE / "long_metrics.csv")
    write_jsonl(HERE / "metrics.jsonl")


if __name__ == "__main__":
    sys.exit(main())
