"""A real, tiny trl SFT run on CPU, used to capture a genuine HF console log next to its trainer_state.json.

Why: the console reader must agree with what the Trainer itself records. Nothing here is mocked: a Qwen2
model is built from a small config with random weights, a word-level tokenizer is trained on the spot with
`tokenizers`, the dataset is generated text, and trl's SFTTrainer trains for MAX_STEPS steps.

    /work/venv/bin/python tests/tinytrain.py OUT_DIR        # writes OUT_DIR/console.log + OUT_DIR/out/...

The console log is the child's stdout and stderr captured into one file (unbuffered, as a terminal or
``python train.py 2>&1 | tee log`` with PYTHONUNBUFFERED=1 sees it), so tqdm redraws and the printed log
dicts interleave as they do for users. Kept minimal and self-contained; `lossdoctor train` is elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_STEPS = 30
LOGGING_STEPS = 5
EVAL_STEPS = 10
SAVE_STEPS = 15
SEED = 1234


@dataclass(frozen=True)
class TinyRun:
    root: Path
    console_log: Path
    output_dir: Path  # holds trainer_state.json (save_state) and checkpoint-15/, checkpoint-30/

    @property
    def trainer_state(self) -> Path:
        return self.output_dir / "trainer_state.json"


def _texts(n: int, offset: int) -> list[str]:
    words = ["alpha", "beta", "gamma", "delta", "loss", "step", "model", "data", "train", "eval"]
    out = []
    for i in range(n):
        k = i + offset
        out.append(" ".join(words[(k * j + j) % len(words)] for j in range(1, 9)))
    return out


def train(out_dir: Path, report_to: tuple[str, ...] = ()) -> None:
    """The child process: train and save. Imports the heavy stack lazily (only here). `report_to` names the
    Trainer's trackers (e.g. trackio, mlflow: their stores go where TRACKIO_DIR / MLFLOW_TRACKING_URI say)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(1)
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer

    train_texts, eval_texts = _texts(64, 0), _texts(8, 100)
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        train_texts + eval_texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<eos>"])
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(SEED)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    args = SFTConfig(
        output_dir=str(out_dir),
        max_steps=MAX_STEPS,
        logging_steps=LOGGING_STEPS,
        eval_strategy="steps",
        eval_steps=EVAL_STEPS,
        save_strategy="steps",
        save_steps=SAVE_STEPS,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=3e-3,
        report_to=list(report_to),
        use_cpu=True,
        seed=SEED,
        max_length=32,
        dataloader_num_workers=0,
        save_only_model=True,
        disable_tqdm=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"text": train_texts}),
        eval_dataset=Dataset.from_dict({"text": eval_texts}),
    )
    trainer.train()
    trainer.save_state()


def run_tiny_training(
    root: Path, timeout: float = 300, report_to: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> TinyRun:
    """Train in a child process; its stdout and stderr go to one file, in the order they were written.
    `report_to` and `env` (added to the child's environment) let a test send the run to a local tracker."""
    root.mkdir(parents=True, exist_ok=True)
    log = root / "console.log"
    out = root / "out"
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_MODE="disabled",
        COLUMNS="100",
        **(env or {}),
    )
    extra = ["--report-to", ",".join(report_to)] if report_to else []
    with log.open("wb") as fh:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(out), *extra],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"tiny training failed ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
    return TinyRun(root=root, console_log=log, output_dir=out)


_CACHE: dict[str, TinyRun] = {}


def tiny_run_once(root: Path) -> TinyRun:
    """One training per test session, shared by every test module that asks (session fixtures call this)."""
    if "run" not in _CACHE:
        _CACHE["run"] = run_tiny_training(root)
    return _CACHE["run"]


if __name__ == "__main__":
    if len(sys.argv) in (3, 5) and sys.argv[1] == "--child":
        train(Path(sys.argv[2]), tuple(sys.argv[4].split(",")) if len(sys.argv) == 5 else ())
    elif len(sys.argv) == 2:
        print(run_tiny_training(Path(sys.argv[1])))
    else:
        sys.exit("usage: tinytrain.py OUT_DIR")
