"""Real W&B offline runs for the tests and the bench, made by the real ``wandb`` package.

Why a child process: ``wandb.init`` keeps process-wide state (a settings singleton, the wandb-core service,
patched stdout); a child keeps all of that out of pytest. Values follow formulas defined here, so tests
compute what they expect instead of copying output:

    train/loss(i) = 3·exp(-i/50)                      at every log call i (global step 2·i with a step metric)
    eval/loss(i)  = 2 + 0.01·i                         every EVAL_EVERY log calls
    train/grad_norm(i) = 1 + (i mod 7)/10
    NaN / inf injected at the log calls listed in the spec

    /work/venv/bin/python tests/make_wandb_runs.py OUT_DIR          # one run, prints its directory
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

EVAL_EVERY = 20
STEP_FACTOR = 2  # with a step metric, log call i is at train/global_step 2·i


def train_loss(i: int) -> float:
    return 3.0 * math.exp(-i / 50)


def eval_loss(i: int) -> float:
    return 2.0 + 0.01 * i


def grad_norm(i: int) -> float:
    return 1.0 + (i % 7) / 10


@dataclass(frozen=True)
class RunSpec:
    """What the child logs. ``exit_code`` None = killed before finish (no exit record)."""

    steps: int = 200
    step_metric: bool = True  # the HF integration's define_metric("*", step_metric="train/global_step")
    nan_at: tuple[int, ...] = (10,)
    inf_at: tuple[int, ...] = (11,)
    media_at: tuple[int, ...] = (5,)
    exit_code: int | None = 0
    name: str = "formula-run"
    entity: str = "test-entity"
    project: str = "test-project"
    tags: tuple[str, ...] = ("tiny", "formula")
    config: dict = field(default_factory=lambda: {"learning_rate": 0.001, "model": {"layers": 2}})
    big_text: bool = False  # log a long string each step (multi-chunk records, block crossings)


def expected_points(spec: RunSpec) -> dict[str, dict[int, float]]:
    """metric → {step: value} that a correct reader must return for this spec."""
    out: dict[str, dict[int, float]] = {"train/loss": {}, "eval/loss": {}, "train/grad_norm": {}}
    for i in range(spec.steps):
        step = i * STEP_FACTOR if spec.step_metric else i
        loss = train_loss(i)
        if i in spec.nan_at:
            loss = math.nan
        out["train/loss"][step] = loss
        out["train/grad_norm"][step] = math.inf if i in spec.inf_at else grad_norm(i)
        if i % EVAL_EVERY == 0:
            out["eval/loss"][step] = eval_loss(i)
    return out


def _child(spec: RunSpec) -> None:
    import wandb

    run = wandb.init(project=spec.project, entity=spec.entity, name=spec.name, tags=list(spec.tags), config=spec.config)
    if spec.step_metric:
        run.define_metric("train/global_step")
        run.define_metric("*", step_metric="train/global_step", step_sync=True)
    for i in range(spec.steps):
        row: dict = {
            "train/loss": math.nan if i in spec.nan_at else train_loss(i),
            "train/grad_norm": math.inf if i in spec.inf_at else grad_norm(i),
        }
        if spec.step_metric:
            row["train/global_step"] = i * STEP_FACTOR
        if i in spec.media_at:
            row["weights"] = wandb.Histogram([1.0, 2.0, 2.5, 3.0])
            row["samples"] = wandb.Table(columns=["text"], data=[["a"], ["b"]])  # media with numbers (nrows, size)
            row["note"] = "text values are skipped"
        if spec.big_text:
            row["blob"] = "x" * 5000
        run.log(row)
        if i % EVAL_EVERY == 0:
            eval_row = {"eval/loss": eval_loss(i)}
            if spec.step_metric:
                eval_row["train/global_step"] = i * STEP_FACTOR
            run.log(eval_row)
    if spec.exit_code is None:
        # die the way a SIGKILLed trainer does: no finish(), so no exit record; wandb-core notices its
        # parent is gone and closes the transaction log with what it has
        sys.stdout.flush()
        os._exit(1)
    run.finish(exit_code=spec.exit_code)


def wandb_env(root: Path) -> dict[str, str]:
    """Environment for a real, isolated, offline wandb child."""
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("WANDB_"):
            del env[key]
    env.update(
        WANDB_MODE="offline",
        WANDB_DIR=str(root),
        WANDB_SILENT="true",
        WANDB_ERROR_REPORTING="false",
        WANDB_CONFIG_DIR=str(root / ".wandb-config"),
        WANDB_CACHE_DIR=str(root / ".wandb-cache"),
        WANDB_DATA_DIR=str(root / ".wandb-data"),
        HOME=str(root),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def make_offline_run(root: Path, spec: RunSpec | None = None, timeout: float = 120) -> Path:
    """Run the child under ``root`` (its WANDB_DIR) and return the new run directory."""
    spec = spec or RunSpec()
    root.mkdir(parents=True, exist_ok=True)
    before = set((root / "wandb").glob("offline-run-*")) if (root / "wandb").is_dir() else set()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(asdict(spec))],
        env=wandb_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    expect_rc = 1 if spec.exit_code is None else 0
    if proc.returncode != expect_rc:
        raise RuntimeError(f"wandb child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    new = sorted(set((root / "wandb").glob("offline-run-*")) - before)
    if len(new) != 1:
        raise RuntimeError(f"expected one new run dir under {root}/wandb, found {new}")
    return new[0]


# -- a real tiny trl SFT run reporting to wandb (offline) ---------------------------------------------


def _train_hf(out_dir: Path) -> None:
    """tests/tinytrain.py's recipe (tiny random Qwen2, word-level tokenizer, trl SFT) with report_to=wandb."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    import tinytrain
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer

    train_texts, eval_texts = tinytrain._texts(64, 0), tinytrain._texts(8, 100)
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        train_texts + eval_texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<eos>"])
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(tinytrain.SEED)
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
        max_steps=20,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=5,
        save_strategy="no",
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=3e-3,
        report_to=["wandb"],
        run_name="tiny-sft",
        use_cpu=True,
        seed=tinytrain.SEED,
        max_length=32,
        dataloader_num_workers=0,
        disable_tqdm=True,
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


def make_hf_wandb_run(root: Path, timeout: float = 300) -> tuple[Path, Path]:
    """(offline run dir, trainer_state.json) of one real tiny trl training that reported to wandb."""
    root.mkdir(parents=True, exist_ok=True)
    env = wandb_env(root)
    env["WANDB_PROJECT"] = "tiny-sft"
    proc = subprocess.run(
        [sys.executable, __file__, "--hf-child", str(root / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tiny training failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    runs = sorted((root / "wandb").glob("offline-run-*"))
    return runs[-1], root / "out" / "trainer_state.json"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        data = json.loads(sys.argv[2])
        data["nan_at"], data["inf_at"], data["media_at"], data["tags"] = (
            tuple(data["nan_at"]),
            tuple(data["inf_at"]),
            tuple(data["media_at"]),
            tuple(data["tags"]),
        )
        _child(RunSpec(**data))
    elif len(sys.argv) == 3 and sys.argv[1] == "--hf-child":
        _train_hf(Path(sys.argv[2]))
    elif len(sys.argv) == 2:
        print(make_offline_run(Path(sys.argv[1])))
    else:
        sys.exit("usage: make_wandb_runs.py OUT_DIR")
