"""Make the generated half of the labelled corpus: tests/corpus/gen-<regime>-<n>/, by real training.

What it makes: one directory per case (overfitting by too little data / too many epochs / too high a learning
rate, healthy, noisy-but-healthy, diverging, exploding gradients, NaN, not learning), each holding the final
``trainer_state.json`` of a real run and a ``label.yaml`` that says what the run truly did. A few cases also keep
the run's ``console.log`` (stdout + stderr of the training process, tqdm redraws included) so the console reader
is exercised on the same runs. Nothing else of a run is kept (no checkpoints, adapters, tokenizers, W&B files).

How: every case is a real trl ``SFTTrainer`` run of the ``--model tiny`` network (lossdoctor/train/tiny.py: a
random-init Qwen2 model + a BPE tokenizer trained on the run's own rows) with a LoRA adapter, on CPU, nothing
mocked, in a child process of its own (fresh, seeded, one torch thread: the same case gives the same losses).
The data are generated chat rows (invented countries and capitals, as in examples/make_data.py): every answer is
arbitrary, so a run can only learn the shared template from held-out rows and anything beyond that is
memorisation. The trainer is built here rather than through ``lossdoctor train`` because some cases need knobs
the CLI does not have (a float16 model for the NaN cases, ``logging_nan_inf_filter``) and because of the oracle:

The labels never come from lossdoctor. They come from the regime that was set up plus an independent check of
what this script recorded (see ``judge``). For held-out loss the check uses an **oracle**: a TrainerCallback that,
at each evaluation of the run, also evaluates the model on 200 further rows of the same generator that neither
the training set nor the run's own (often small) eval set contains. onset_step is the step of the oracle's
minimum; a run is ``overfitting`` iff the oracle's last value is >= 1.05 x its minimum while train loss fell. The
oracle curve goes into label.yaml only, never into trainer_state.json.

Rerun (about 10-15 minutes on 2 CPU cores; the cases are independent):

    /work/venv/bin/python tests/corpus/make_corpus.py                     # every case
    /work/venv/bin/python tests/corpus/make_corpus.py --only nan --jobs 2 # one regime, two at a time
    /work/venv/bin/python tests/corpus/make_corpus.py --list              # the cases and their settings

Existing gen-* directories of the selected cases are replaced; the others are left alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ORACLE_ROWS = 200
SCRIPT = "tests/corpus/make_corpus.py"

# --------------------------------------------------------------------------------------------------- the data
# Same generator as examples/make_data.py (copied, so that changing the examples never changes the corpus).
SYLLABLES = (
    "ba",
    "del",
    "fi",
    "gor",
    "ka",
    "lin",
    "mo",
    "nar",
    "pel",
    "qui",
    "ros",
    "sa",
    "tor",
    "ul",
    "ven",
    "wes",
    "xa",
    "yor",
    "zen",
    "tha",
)
SYSTEM = "You are a concise geography assistant."
QUESTIONS = ("What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital of {c}.")
ANSWERS = ("The capital of {c} is {k}.", "{k} is the capital of {c}.")


def _word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def make_rows(n: int, seed: int) -> list[list[dict[str, str]]]:
    """n chat conversations about n distinct invented countries (so train, eval and oracle never share one)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    while len(out) < n:
        country = _word(rng, 3)
        if country in seen:
            continue
        seen.add(country)
        capital = _word(rng, 2)
        out.append(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": rng.choice(QUESTIONS).format(c=country)},
                {"role": "assistant", "content": rng.choice(ANSWERS).format(c=country, k=capital)},
            ]
        )
    return out


# -------------------------------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    regime: str
    n: int
    rows: int  # training rows
    eval_rows: int  # the run's own eval set (0 = no eval)
    epochs: float
    lr: float
    max_steps: int = -1  # > 0 overrides epochs
    batch: int = 4
    scheduler: str = "linear"
    warmup: int = 0
    logging_steps: int = 5
    eval_steps: int = 20
    seed: int = 1
    data_seed: int = 1
    max_grad_norm: float = 1.0  # 0 = no clipping (the Trainer still logs the pre-clip norm)
    lora_r: int = 16
    dtype: str = "fp32"  # fp16: base model cast to float16 (LoRA weights stay float32, peft's default);
    #                              fp16-pure: base model *and* LoRA weights (hence AdamW's state) in float16
    lora_init: str = "default"  # default: B = 0 (peft); gaussian: A and B both random (init_lora_weights=False)
    nan_filter: bool = True  # TrainingArguments.logging_nan_inf_filter (HF default True)
    cutoff: int = 64
    console: bool = False  # keep console.log
    expect: tuple[str, ...] = field(default=())  # what the regime is meant to produce (checked, not trusted)

    @property
    def name(self) -> str:
        return f"gen-{self.regime}-{self.n}"

    def origin(self) -> str:
        parts = [
            f"{SCRIPT} --only {self.name}",
            f"regime={self.regime}",
            f"rows={self.rows}",
            f"eval_rows={self.eval_rows}",
            f"oracle_rows={ORACLE_ROWS if self.eval_rows else 0}",
            f"epochs={self.epochs:g}",
            f"max_steps={self.max_steps}",
            f"lr={self.lr:g}",
            f"batch={self.batch}",
            f"scheduler={self.scheduler}",
            f"warmup={self.warmup}",
            f"logging_steps={self.logging_steps}",
            f"eval_steps={self.eval_steps}",
            f"max_grad_norm={self.max_grad_norm:g}",
            f"lora_r={self.lora_r}",
            f"lora_alpha={2 * self.lora_r}",
            f"cutoff={self.cutoff}",
            f"dtype={self.dtype}",
            f"lora_init={self.lora_init}",
            f"logging_nan_inf_filter={self.nan_filter}",
            f"seed={self.seed}",
            f"data_seed={self.data_seed}",
            "model=tiny",
            "lora_dropout=0",
        ]
        return " ".join(parts)


def _cases() -> list[Case]:
    c: list[Case] = []
    OF = ("overfitting",)
    # too little data for the epochs: the template is learnt in the first epochs, then the answers are memorised
    c += [
        Case(
            "overfit-data",
            1,
            rows=24,
            eval_rows=6,
            epochs=16,
            lr=0.008,
            batch=2,
            logging_steps=2,
            eval_steps=6,
            seed=3,
            data_seed=11,
            expect=OF,
            console=True,
        ),
        Case(
            "overfit-data",
            2,
            rows=32,
            eval_rows=8,
            epochs=12,
            lr=0.008,
            batch=2,
            scheduler="cosine",
            logging_steps=6,
            eval_steps=12,
            seed=5,
            data_seed=12,
            expect=OF,
        ),
        Case(
            "overfit-data",
            3,
            rows=40,
            eval_rows=10,
            epochs=12,
            lr=0.008,
            batch=2,
            logging_steps=4,
            eval_steps=8,
            seed=42,
            data_seed=13,
            expect=OF,
        ),
        Case(
            "overfit-data",
            4,
            rows=48,
            eval_rows=12,
            epochs=20,
            lr=0.008,
            batch=4,
            scheduler="constant",
            logging_steps=5,
            eval_steps=15,
            seed=7,
            data_seed=14,
            expect=OF,
        ),
    ]
    # a moderate data set, far too many epochs
    c += [
        Case(
            "overfit-epochs",
            1,
            rows=120,
            eval_rows=15,
            epochs=30,
            lr=0.004,
            batch=8,
            scheduler="cosine",
            logging_steps=10,
            eval_steps=40,
            seed=2,
            data_seed=21,
            expect=OF,
        ),
        Case(
            "overfit-epochs",
            2,
            rows=100,
            eval_rows=20,
            epochs=25,
            lr=0.005,
            batch=4,
            logging_steps=10,
            eval_steps=25,
            seed=8,
            data_seed=22,
            expect=OF,
            console=True,
        ),
        Case(
            "overfit-epochs",
            3,
            rows=150,
            eval_rows=15,
            epochs=25,
            lr=0.004,
            batch=8,
            scheduler="constant",
            warmup=20,
            logging_steps=20,
            eval_steps=40,
            seed=9,
            data_seed=23,
            expect=OF,
        ),
    ]
    # a learning rate higher than the healthy runs' (0.003-0.006) on a small set: the answers are memorised in a few
    # epochs (much higher, 0.02-0.04, did not memorise at all on this model: train loss stalled near 1)
    c += [
        Case(
            "overfit-lr",
            1,
            rows=48,
            eval_rows=12,
            epochs=8,
            lr=0.02,
            batch=2,
            logging_steps=4,
            eval_steps=8,
            seed=4,
            data_seed=31,
            expect=OF,
        ),
        Case(
            "overfit-lr",
            2,
            rows=40,
            eval_rows=10,
            epochs=8,
            lr=0.015,
            batch=2,
            scheduler="cosine",
            logging_steps=5,
            eval_steps=10,
            seed=6,
            data_seed=32,
            expect=OF,
        ),
        Case(
            "overfit-lr",
            3,
            rows=60,
            eval_rows=15,
            epochs=6,
            lr=0.012,
            batch=2,
            scheduler="constant",
            logging_steps=6,
            eval_steps=12,
            seed=10,
            data_seed=33,
            expect=OF,
        ),
    ]
    HE = ("healthy",)
    # enough data, one or two passes: both losses fall (or eval flattens)
    c += [
        Case(
            "healthy",
            1,
            rows=720,
            eval_rows=80,
            epochs=1,
            lr=0.005,
            batch=8,
            logging_steps=5,
            eval_steps=15,
            seed=42,
            data_seed=41,
            expect=HE,
            console=True,
        ),
        Case(
            "healthy",
            2,
            rows=600,
            eval_rows=60,
            epochs=1,
            lr=0.004,
            batch=8,
            scheduler="cosine",
            warmup=5,
            logging_steps=5,
            eval_steps=10,
            seed=1,
            data_seed=42,
            expect=HE,
        ),
        Case(
            "healthy",
            3,
            rows=800,
            eval_rows=40,
            epochs=1,
            lr=0.003,
            batch=4,
            scheduler="constant",
            logging_steps=10,
            eval_steps=40,
            seed=2,
            data_seed=43,
            expect=HE,
        ),
        Case(
            "healthy",
            4,
            rows=500,
            eval_rows=50,
            epochs=2,
            lr=0.003,
            batch=8,
            logging_steps=4,
            eval_steps=25,
            seed=3,
            data_seed=44,
            expect=HE,
        ),
        Case(
            "healthy",
            5,
            rows=900,
            eval_rows=100,
            epochs=1,
            lr=0.006,
            batch=16,
            scheduler="cosine",
            logging_steps=2,
            eval_steps=8,
            seed=4,
            data_seed=45,
            expect=HE,
        ),
    ]
    # healthy, but batch 1, a log every step and a tiny eval set: noisy curves that are not overfitting
    c += [
        Case(
            "noisy-healthy",
            1,
            rows=300,
            eval_rows=4,
            epochs=1,
            lr=0.002,
            batch=1,
            logging_steps=1,
            eval_steps=5,
            seed=11,
            data_seed=51,
            expect=HE,
            console=True,
        ),
        Case(
            "noisy-healthy",
            2,
            rows=360,
            eval_rows=5,
            epochs=1,
            lr=0.0015,
            batch=1,
            scheduler="cosine",
            logging_steps=1,
            eval_steps=10,
            seed=12,
            data_seed=52,
            expect=HE,
        ),
        Case(
            "noisy-healthy",
            3,
            rows=240,
            eval_rows=3,
            epochs=1,
            lr=0.002,
            batch=1,
            scheduler="constant",
            logging_steps=1,
            eval_steps=6,
            seed=13,
            data_seed=53,
            expect=HE,
        ),
    ]
    # the learning rate warms up to a value far too high, no clipping: train loss first falls, then climbs and
    # stays up
    DV = ("diverging",)
    c += [
        Case(
            "diverging",
            1,
            rows=200,
            eval_rows=20,
            epochs=2,
            lr=0.05,
            batch=4,
            scheduler="constant_with_warmup",
            warmup=40,
            logging_steps=4,
            eval_steps=10,
            max_grad_norm=0,
            seed=21,
            data_seed=61,
            expect=DV,
            console=True,
        ),
        Case(
            "diverging",
            2,
            rows=200,
            eval_rows=20,
            epochs=2,
            lr=0.08,
            batch=4,
            scheduler="constant_with_warmup",
            warmup=30,
            logging_steps=5,
            eval_steps=25,
            max_grad_norm=0,
            seed=22,
            data_seed=62,
            expect=DV,
        ),
        Case(
            "diverging",
            3,
            rows=200,
            eval_rows=20,
            epochs=2,
            lr=0.1,
            batch=4,
            scheduler="linear",
            warmup=100,
            logging_steps=5,
            eval_steps=20,
            max_grad_norm=0,
            seed=23,
            data_seed=63,
            expect=DV,
        ),
        Case(
            "diverging",
            4,
            rows=240,
            eval_rows=0,
            epochs=2,
            lr=0.06,
            batch=4,
            scheduler="constant_with_warmup",
            warmup=40,
            logging_steps=3,
            max_grad_norm=0,
            seed=24,
            data_seed=64,
            expect=DV,
        ),
    ]
    # no clipping + a learning rate far too high: very large gradient norms for several logs
    EX = ("exploding-gradients",)
    c += [
        Case(
            "exploding-grads",
            1,
            rows=200,
            eval_rows=20,
            epochs=2,
            lr=20.0,
            batch=4,
            scheduler="constant_with_warmup",
            warmup=40,
            logging_steps=4,
            eval_steps=20,
            max_grad_norm=0,
            seed=31,
            data_seed=71,
            expect=EX,
        ),
        Case(
            "exploding-grads",
            2,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=20.0,
            batch=4,
            scheduler="constant_with_warmup",
            warmup=30,
            logging_steps=2,
            eval_steps=10,
            max_grad_norm=0,
            dtype="fp16",
            seed=32,
            data_seed=72,
            expect=EX,
        ),
        Case(
            "exploding-grads",
            3,
            rows=200,
            eval_rows=20,
            epochs=2,
            lr=30.0,
            batch=4,
            scheduler="linear",
            warmup=60,
            logging_steps=5,
            eval_steps=25,
            max_grad_norm=0,
            seed=33,
            data_seed=73,
            expect=EX,
        ),
        Case(
            "exploding-grads",
            4,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=20.0,
            batch=2,
            scheduler="cosine",
            warmup=20,
            logging_steps=3,
            eval_steps=15,
            max_grad_norm=0,
            seed=34,
            data_seed=74,
            expect=EX,
        ),
    ]
    # a float16 model *and* adapter trained without mixed precision (no loss scaling, AdamW state in float16):
    # activations overflow / AdamW's eps underflows to 0 and the weights turn NaN part-way through the run
    NF = ("nonfinite",)
    c += [
        Case(
            "nan",
            1,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=0.01,
            batch=4,
            logging_steps=2,
            eval_steps=10,
            max_grad_norm=0,
            dtype="fp16-pure",
            seed=41,
            data_seed=81,
            expect=NF,
            console=True,
        ),
        Case(
            "nan",
            2,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=0.01,
            batch=4,
            logging_steps=2,
            eval_steps=10,
            max_grad_norm=0,
            dtype="fp16-pure",
            lora_init="gaussian",
            nan_filter=False,
            seed=41,
            data_seed=81,
            expect=NF,
        ),
        Case(
            "nan",
            3,
            rows=240,
            eval_rows=20,
            epochs=1,
            lr=0.01,
            batch=4,
            scheduler="cosine",
            logging_steps=5,
            eval_steps=20,
            max_grad_norm=1.0,
            dtype="fp16-pure",
            lora_init="gaussian",
            seed=43,
            data_seed=83,
            expect=NF,
        ),
    ]
    # a learning rate so small nothing moves
    NL = ("not-learning",)
    c += [
        Case(
            "not-learning",
            1,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=1e-7,
            batch=4,
            logging_steps=5,
            eval_steps=10,
            seed=51,
            data_seed=91,
            expect=NL,
        ),
        Case(
            "not-learning",
            2,
            rows=240,
            eval_rows=24,
            epochs=1,
            lr=5e-7,
            batch=4,
            scheduler="cosine",
            logging_steps=3,
            eval_steps=20,
            seed=52,
            data_seed=92,
            expect=NL,
        ),
        Case(
            "not-learning",
            3,
            rows=160,
            eval_rows=0,
            epochs=2,
            lr=1e-6,
            batch=8,
            scheduler="constant",
            logging_steps=2,
            seed=53,
            data_seed=93,
            expect=NL,
            console=True,
        ),
    ]
    # added after the first evaluation, to pass 40 cases and cover what the first 32 lacked: cosine schedules
    # decayed to ~0 (a flat tail that is not a plateau), rarely logged evals, more seeds of each failure
    c += [
        Case(
            "cosine-tail",
            1,
            rows=480,
            eval_rows=48,
            epochs=2,
            lr=0.004,
            batch=8,
            scheduler="cosine",
            logging_steps=4,
            eval_steps=20,
            seed=61,
            data_seed=101,
            expect=HE,
        ),
        Case(
            "cosine-tail",
            2,
            rows=400,
            eval_rows=40,
            epochs=2,
            lr=0.005,
            batch=8,
            scheduler="cosine",
            warmup=10,
            logging_steps=2,
            eval_steps=25,
            seed=62,
            data_seed=102,
            expect=HE,
        ),
        Case(
            "healthy",
            6,
            rows=640,
            eval_rows=64,
            epochs=1,
            lr=0.004,
            batch=8,
            logging_steps=5,
            eval_steps=30,
            seed=5,
            data_seed=46,
            expect=HE,
        ),
        Case(
            "noisy-healthy",
            4,
            rows=280,
            eval_rows=6,
            epochs=1,
            lr=0.002,
            batch=1,
            logging_steps=1,
            eval_steps=20,
            seed=14,
            data_seed=54,
            expect=HE,
        ),
        Case(
            "overfit-data",
            5,
            rows=36,
            eval_rows=9,
            epochs=14,
            lr=0.008,
            batch=2,
            scheduler="cosine",
            logging_steps=3,
            eval_steps=9,
            seed=15,
            data_seed=15,
            expect=OF,
        ),
        Case(
            "overfit-data",
            6,
            rows=28,
            eval_rows=12,
            epochs=18,
            lr=0.006,
            batch=2,
            logging_steps=7,
            eval_steps=14,
            seed=16,
            data_seed=16,
            expect=OF,
        ),
        Case(
            "overfit-epochs",
            4,
            rows=80,
            eval_rows=16,
            epochs=20,
            lr=0.005,
            batch=4,
            logging_steps=10,
            eval_steps=20,
            seed=17,
            data_seed=24,
            expect=OF,
        ),
        Case(
            "diverging",
            5,
            rows=200,
            eval_rows=20,
            epochs=2,
            lr=0.07,
            batch=4,
            scheduler="constant_with_warmup",
            warmup=35,
            logging_steps=5,
            eval_steps=20,
            max_grad_norm=0,
            seed=25,
            data_seed=65,
            expect=DV,
        ),
        Case(
            "exploding-grads",
            5,
            rows=200,
            eval_rows=20,
            epochs=2,
            lr=25.0,
            batch=4,
            scheduler="linear",
            warmup=50,
            logging_steps=4,
            eval_steps=20,
            max_grad_norm=0,
            seed=35,
            data_seed=75,
            expect=EX,
        ),
        Case(
            "nan",
            4,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=0.02,
            batch=4,
            logging_steps=4,
            eval_steps=20,
            max_grad_norm=0,
            dtype="fp16-pure",
            seed=44,
            data_seed=84,
            expect=NF,
        ),
    ]
    # added for issue 12: runs that provably train nothing, and a warm-up longer than the run
    c += [
        Case(
            "dead",
            1,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=1000.0,
            batch=4,
            scheduler="constant",
            logging_steps=4,
            eval_steps=20,
            max_grad_norm=0,
            seed=71,
            data_seed=111,
            expect=NL,
        ),
        Case(
            "dead",
            2,
            rows=240,
            eval_rows=0,
            epochs=1,
            lr=1000.0,
            batch=4,
            scheduler="constant",
            logging_steps=3,
            max_grad_norm=0,
            seed=72,
            data_seed=112,
            expect=NL,
        ),
        Case(
            "lr-zero",
            1,
            rows=200,
            eval_rows=20,
            epochs=1,
            lr=0.0,
            batch=4,
            scheduler="constant",
            logging_steps=4,
            eval_steps=20,
            seed=73,
            data_seed=113,
            expect=NL,
        ),
        Case(
            "warmup-long",
            1,
            rows=400,
            eval_rows=40,
            epochs=1,
            lr=0.005,
            max_steps=50,
            batch=8,
            scheduler="linear",
            warmup=100,
            logging_steps=5,
            eval_steps=10,
            seed=74,
            data_seed=114,
        ),
    ]
    return c


CASES = _cases()


# ------------------------------------------------------------------------------------ the child: one real run
def child(spec_path: Path, work: Path) -> None:
    """Train one case into ``work`` and write oracle.json there. Runs in its own process (see ``run_case``)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(1)
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    from lossdoctor.train.tiny import build_model, build_tokenizer

    case = Case(**{k: tuple(v) if k == "expect" else v for k, v in json.loads(spec_path.read_text()).items()})
    pool = make_rows(ORACLE_ROWS + case.eval_rows + case.rows, case.data_seed)
    oracle_rows = pool[:ORACLE_ROWS] if case.eval_rows else []
    eval_rows = pool[ORACLE_ROWS : ORACLE_ROWS + case.eval_rows]
    train_rows = pool[ORACLE_ROWS + case.eval_rows :]

    set_seed(case.seed)
    tokenizer = build_tokenizer(["\n".join(f"{m['role']}\n{m['content']}" for m in r) for r in train_rows])
    model = build_model(tokenizer, case.cutoff, case.seed)
    if case.dtype in ("fp16", "fp16-pure"):
        model = model.to(torch.float16)

    def texts(rows: list) -> list[str]:
        return [tokenizer.apply_chat_template(r, tokenize=False, add_generation_prompt=False) for r in rows]

    train_ds = Dataset.from_dict({"text": texts(train_rows)})
    # the oracle rows ride along with the eval set through trl's own preprocessing, and are split off again
    # before training, so they are tokenised exactly as the eval rows are
    eval_ds = Dataset.from_dict({"text": texts(eval_rows + oracle_rows)}) if case.eval_rows else None
    args = SFTConfig(
        output_dir=str(work / "out"),
        num_train_epochs=case.epochs,
        max_steps=case.max_steps,
        learning_rate=case.lr,
        per_device_train_batch_size=case.batch,
        per_device_eval_batch_size=case.batch,
        logging_steps=case.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if case.eval_rows else "no",
        eval_steps=case.eval_steps if case.eval_rows else None,
        save_strategy="no",
        lr_scheduler_type=case.scheduler,
        warmup_steps=case.warmup,
        max_grad_norm=case.max_grad_norm,
        logging_nan_inf_filter=case.nan_filter,
        seed=case.seed,
        data_seed=case.seed,
        use_cpu=True,
        report_to=[],
        run_name=case.name,
        max_length=case.cutoff,
        dataset_text_field="text",
        packing=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    lora = LoraConfig(
        r=case.lora_r,
        lora_alpha=2 * case.lora_r,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules="all-linear",
        init_lora_weights=case.lora_init == "default",
    )
    set_seed(case.seed)
    if case.dtype == "fp16-pure":
        # peft would keep the adapter in float32; a pure float16 adapter is what a model loaded in float16 and
        # trained without mixed precision gets
        model = get_peft_model(model, lora, autocast_adapter_dtype=False).to(torch.float16)
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer
        )
    else:
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            peft_config=lora,
        )

    oracle = {"steps": [], "loss": []}
    if case.eval_rows:
        both = trainer.eval_dataset
        trainer.eval_dataset = both.select(range(case.eval_rows))
        oracle_ds = both.select(range(case.eval_rows, case.eval_rows + ORACLE_ROWS)).select_columns(["input_ids"])
        batches = [
            trainer.data_collator([oracle_ds[i] for i in range(s, min(s + 50, ORACLE_ROWS))])
            for s in range(0, ORACLE_ROWS, 50)
        ]

        class Oracle(TrainerCallback):
            """At each evaluation of the run: token-mean loss on the oracle rows (nothing is logged)."""

            def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> Any:
                was_training = model.training
                model.eval()
                total, count = 0.0, 0
                with torch.no_grad():
                    for b in batches:
                        logits = model(input_ids=b["input_ids"], attention_mask=b.get("attention_mask")).logits
                        labels = b["labels"][:, 1:]
                        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                        mask = labels != -100
                        picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                        total += float(-(picked * mask).sum())
                        count += int(mask.sum())
                model.train(was_training)
                oracle["steps"].append(int(state.global_step))
                oracle["loss"].append(total / count)
                return control

        trainer.add_callback(Oracle())
    trainer.train()
    trainer.save_state()
    (work / "oracle.json").write_text(json.dumps(oracle))


# ----------------------------------------------------------------------------------- the parent: run and label
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def judge(state: dict, oracle: dict) -> dict[str, Any]:
    """The verdicts, from the recorded numbers alone (log_history + oracle), by the definitions in README.md."""
    logs = state["log_history"]
    train = [(e["step"], e["loss"]) for e in logs if "loss" in e]
    grads = [(e["step"], e["grad_norm"]) for e in logs if "grad_norm" in e]
    evals = [(e["step"], e["eval_loss"]) for e in logs if "eval_loss" in e]
    bad_steps = [s for s, v in train + grads + evals if not _finite(v)]
    bad_steps += [s for s, v in zip(oracle["steps"], oracle["loss"]) if not _finite(v)]
    first_bad = min(bad_steps) if bad_steps else None
    verdicts: list[str] = []
    facts: dict[str, Any] = {"first_nonfinite_step": first_bad}
    if first_bad is not None:
        verdicts.append("nonfinite")
    big = [s for s, g in grads if isinstance(g, (int, float)) and not math.isnan(g) and g > 100]
    facts["grad_norm_over_100"] = len(big)
    facts["max_finite_grad_norm"] = max((g for _, g in grads if _finite(g)), default=None)
    if len(big) >= 3:
        verdicts.append("exploding-gradients")
    # train losses before anything went non-finite (with the HF NaN filter the later logs are fillers, e.g. 0.0)
    pre = [(s, v) for s, v in train if _finite(v) and (first_bad is None or s < first_bad)]
    diverging = any(v == math.inf for _, v in train)
    if len(pre) >= 3:
        best = min(v for _, v in pre)
        tail = [v for _, v in pre[-max(2, len(pre) // 4) :]]
        facts.update(train_first=pre[0][1], train_best=best, train_tail_mean=sum(tail) / len(tail))
        diverging = diverging or (min(tail) >= 1.3 * best and sum(tail) / len(tail) - best >= 0.5)
    if diverging:
        verdicts.append("diverging")
    out: dict[str, Any] = {}
    o = oracle["loss"]
    if o and all(_finite(v) for v in o):
        # noise-robust reading of the oracle (200 rows still wobble by a few %): the end level is the median of
        # the last 3 oracle points; the onset is the first step within 1% of the minimum (the start of the best
        # basin: stopping there loses < 1%); train "kept falling" compares medians, not single noisy logs
        i_min = min(range(len(o)), key=o.__getitem__)
        o_min = o[i_min]
        end = statistics.median(o[-3:])
        onset_i = next(i for i, v in enumerate(o) if v <= 1.01 * o_min)
        facts.update(
            oracle_first=o[0], oracle_min=o_min, oracle_last=o[-1], oracle_end=end, oracle_rise=end / o_min - 1
        )
        train_fell = len(pre) >= 3 and pre[-1][1] < 0.95 * pre[0][1] and not diverging
        interval = oracle["steps"][1] - oracle["steps"][0] if len(o) > 1 else 1
        min_step = oracle["steps"][i_min]
        around = [v for s, v in pre if abs(s - min_step) <= interval]
        after = [v for s, v in pre if s > min_step]
        tail = after[-max(2, len(pre) // 5) :]
        kept_falling = bool(around) and bool(tail) and statistics.median(tail) < statistics.median(around)
        if end >= 1.05 * o_min and train_fell and kept_falling and first_bad is None:
            verdicts.append("overfitting")
            out["onset_step"] = oracle["steps"][onset_i]
    if not verdicts and len(pre) >= 2:
        last = sum(v for _, v in pre[-2:]) / 2
        facts["train_fall"] = 1 - last / pre[0][1]
        # dead: over the second half of the run no gradient reached the weights (grad_norm 0) and the loss did
        # not move (a uniform output after a huge lr with clipping off: the first log falls to ln V and stays)
        half_g = [g for s, g in grads if s > pre[-1][0] / 2]
        half_t = [v for s, v in pre if s > pre[-1][0] / 2]
        dead = (
            bool(half_g)
            and all(_finite(g) and abs(g) <= 1e-8 for g in half_g)
            and len(half_t) >= 2
            and max(half_t) - min(half_t) <= 0.01 * abs(max(half_t))
        )
        facts["dead"] = dead
        if last > 0.95 * pre[0][1] or dead:
            verdicts.append("not-learning")
    out["verdicts"] = verdicts or ["healthy"]
    out["facts"] = facts
    return out


def _num(x: float) -> str:
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    return f"{x:.4f}"


def _why(case: Case, j: dict) -> str:
    f = j["facts"]
    setup = (
        f"{case.rows} training rows x {case.epochs:g} epochs at lr {case.lr:g} ({case.scheduler}, batch "
        f"{case.batch}, max_grad_norm {case.max_grad_norm:g}{', float16 model' if case.dtype == 'fp16' else ''}"
        f"{', logging_nan_inf_filter off' if not case.nan_filter else ''})."
    )
    seen = []
    if "oracle_min" in f:
        seen.append(
            f"oracle loss {f['oracle_first']:.3f} -> min {f['oracle_min']:.3f} -> end (median of the last 3) "
            f"{f['oracle_end']:.3f} ({f['oracle_rise'] * 100:+.1f}% from its minimum)"
        )
    if "train_first" in f:
        seen.append(
            f"train loss {f['train_first']:.3f} -> best {f['train_best']:.3f} -> tail mean {f['train_tail_mean']:.3f}"
        )
    if f.get("first_nonfinite_step") is not None:
        seen.append(f"first non-finite value at step {f['first_nonfinite_step']}")
    if f.get("grad_norm_over_100"):
        seen.append(f"grad_norm > 100 in {f['grad_norm_over_100']} logs")
    return setup + " Recorded: " + "; ".join(seen) + "."


def write_label(case: Case, j: dict, oracle: dict, path: Path) -> None:
    lines = ["source: generated", f"origin: {json.dumps(case.origin())}", f"verdicts: [{', '.join(j['verdicts'])}]"]
    if "onset_step" in j:
        lines.append(f"onset_step: {j['onset_step']}")
    if case.eval_rows:
        lines.append(f"eval_interval: {case.eval_steps}")
    lines.append(f"why: {json.dumps(_why(case, j))}")
    if oracle["steps"]:
        lines.append(
            f"oracle: {{steps: [{', '.join(map(str, oracle['steps']))}], "
            f"loss: [{', '.join(_num(v) for v in oracle['loss'])}]}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_case(case: Case, keep_work: bool = False) -> tuple[Case, dict, float]:
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix=f"lossdoctor-{case.name}-"))
    try:
        spec = work / "case.json"
        spec.write_text(json.dumps(asdict(case)))
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            HF_HUB_OFFLINE="1",
            OMP_NUM_THREADS="1",
            TOKENIZERS_PARALLELISM="false",
            WANDB_MODE="disabled",
            COLUMNS="100",
            PYTHONPATH=os.pathsep.join(
                [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
            ),
        )
        log = work / "console.log"
        with log.open("wb") as fh:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(spec), str(work)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(work),
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{case.name}: training failed ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}"
            )
        state_file = work / "out" / "trainer_state.json"
        state = json.loads(state_file.read_text())
        oracle = json.loads((work / "oracle.json").read_text())
        j = judge(state, oracle)
        dest = HERE / case.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir()
        shutil.copyfile(state_file, dest / "trainer_state.json")
        if case.console:
            # the temporary paths in the log are this machine's; make them stable
            text = log.read_bytes().replace(str(work).encode(), b"/tmp/" + case.name.encode())
            (dest / "console.log").write_bytes(text)
        write_label(case, j, oracle, dest / "label.yaml")
        return case, j, time.time() - t0
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--only", action="append", default=[], help="a regime (e.g. nan) or a case name (gen-nan-2); repeatable"
    )
    ap.add_argument("--jobs", type=int, default=2, help="cases trained at the same time (default 2)")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary run directories")
    ap.add_argument(
        "--relabel",
        action="store_true",
        help="no training: re-judge the saved cases (trainer_state.json + the oracle in label.yaml)",
    )
    ap.add_argument("--child", nargs=2, metavar=("SPEC", "WORK"), help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.child:
        child(Path(ns.child[0]), Path(ns.child[1]))
        return 0
    cases = [c for c in CASES if not ns.only or c.regime in ns.only or c.name in ns.only]
    if not cases:
        ap.error(f"--only matched no case; regimes: {', '.join(sorted({c.regime for c in CASES}))}")
    if ns.list:
        for c in cases:
            print(c.name, c.origin())
        return 0
    if ns.relabel:
        import yaml

        for case in cases:
            dest = HERE / case.name
            label = yaml.safe_load((dest / "label.yaml").read_text(encoding="utf-8"))
            oracle = label.get("oracle") or {"steps": [], "loss": []}
            state = json.loads((dest / "trainer_state.json").read_text(encoding="utf-8"))
            j = judge(state, oracle)
            before = (label["verdicts"], label.get("onset_step"))
            write_label(case, j, oracle, dest / "label.yaml")
            change = "" if before == (j["verdicts"], j.get("onset_step")) else f"   (was {before[0]} onset={before[1]})"
            print(f"{case.name:24s} {j['verdicts']} onset={j.get('onset_step')}{change}")
        return 0
    t0 = time.time()
    surprises = []
    with ThreadPoolExecutor(max_workers=max(1, ns.jobs)) as pool:
        for case, j, secs in pool.map(lambda c: run_case(c, ns.keep_work), cases):
            mark = "" if set(case.expect) <= set(j["verdicts"]) else f"  (!! expected {list(case.expect)})"
            if mark:
                surprises.append(case.name)
            print(
                f"{case.name:24s} {secs:5.1f}s  {j['verdicts']} onset={j.get('onset_step')}{mark}  "
                f"{json.dumps(j['facts'], default=str)}",
                flush=True,
            )
    print(f"{len(cases)} case(s) in {time.time() - t0:.0f}s; regime not reached in: {surprises or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
