"""Make the executed-notebook fixtures in this directory by running them in a real Jupyter kernel.

    .venv/bin/python tests/data/notebooks/make_notebooks.py            # rewrite every fixture
    .venv/bin/python tests/data/notebooks/make_notebooks.py tiny_sft   # one of them

Nothing is mocked: each notebook is built here (nbformat), executed by ``nbclient`` in an ``ipykernel`` kernel
running this interpreter, and saved with its outputs, exactly as Jupyter would save it. In a kernel the HF
Trainer picks ``NotebookProgressCallback``, so the HTML progress table, its ``[N/M ..., Epoch e/E]`` header and
the ``display_id`` updates are what today's transformers writes. The model is the tiny random-init Qwen2 of
``tests/tinytrain.py`` (word-level tokenizer trained on the spot, generated text, CPU, seeded).

Fixtures:

- ``tiny_sft.ipynb``: one trl ``SFTTrainer`` run (30 steps, train loss every 5, eval every 10, so the table has
  Step / Training Loss / Validation Loss and trl's eval metric columns), then ``trainer.evaluate()`` (a
  table of its own), ``trainer.state.log_history`` (a ``text/plain`` repr), a PNG plot of the loss (an image
  the reader must skip) and the log dicts printed as JSON lines (a stream output).
- ``runs.ipynb``: four training cells: an ``eval_strategy="epoch"`` run (Epoch table), a run with no
  evaluation (Step / Training Loss only), a run a callback crashes at step 12 (the cell errors; its table
  stops at 12 of 30), and an overfitting run with a high learning rate (the last one).
- ``live_callback.ipynb``: one run with ``LossDoctorCallback`` added: the callback's single inline display,
  updated in place, is in the saved output (the callback test checks it).

The expected values the tests use come from these settings (steps, cadences, totals), not from the outputs.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
TIMEOUT_S = 600

SETUP = '''\
import os, tempfile
os.environ.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled")
import torch
torch.set_num_threads(1)
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, TrainerCallback
from trl import SFTConfig, SFTTrainer

WORDS = ["alpha", "beta", "gamma", "delta", "loss", "step", "model", "data", "train", "eval"]

def texts(n, offset):
    return [" ".join(WORDS[((i + offset) * j + j) % len(WORDS)] for j in range(1, 9)) for i in range(n)]

train_texts, eval_texts = texts(64, 0), texts(8, 100)
tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.train_from_iterator(train_texts + eval_texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<eos>"]))
tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
OUT = tempfile.mkdtemp(prefix="nb-fixture-")

def sft(seed=1234, **overrides):
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=None, tie_word_embeddings=True)
    settings = dict(output_dir=OUT, max_steps=30, logging_steps=5, eval_strategy="steps", eval_steps=10,
                    save_strategy="no", per_device_train_batch_size=4, per_device_eval_batch_size=4,
                    learning_rate=3e-3, report_to=[], use_cpu=True, seed=seed, max_length=32,
                    dataloader_num_workers=0, disable_tqdm=False)
    settings.update(overrides)
    return SFTTrainer(model=Qwen2ForCausalLM(config), args=SFTConfig(**settings), processing_class=tokenizer,
                      train_dataset=Dataset.from_dict({"text": train_texts}),
                      eval_dataset=Dataset.from_dict({"text": eval_texts}))
'''

TINY_SFT = [
    ("markdown", "# Tiny SFT run\nA 30-step trl SFTTrainer run of a random-init Qwen2 (fixture for lossdoctor)."),
    ("code", SETUP),
    ("code", "trainer = sft()\ntrainer.train()"),
    ("code", "trainer.evaluate()"),
    ("code", "trainer.state.log_history"),
    ("code", '''\
import matplotlib.pyplot as plt
from IPython.display import display
rows = [r for r in trainer.state.log_history if "loss" in r]
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
display(fig)
plt.close(fig)'''),
    ("code", "import json\nfor row in trainer.state.log_history:\n    print(json.dumps(row))"),
]

CRASH = '''\
class Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 12:
            raise RuntimeError("simulated crash at step 12")

trainer = sft(seed=7)
trainer.add_callback(Crash())
trainer.train()'''

RUNS = [
    ("markdown", "# Several runs in one notebook"),
    ("code", SETUP),
    ("code", "trainer = sft(seed=1, eval_strategy='epoch', max_steps=-1, num_train_epochs=3, logging_steps=4)\n"
             "trainer.train()"),
    ("code", "trainer = sft(seed=2, eval_strategy='no', logging_steps=5)\ntrainer.train()"),
    ("code", CRASH),
    ("code", "trainer = sft(seed=3, learning_rate=3e-2, max_steps=40)\ntrainer.train()"),
]

LIVE = [
    ("code", SETUP),
    ("code", "from lossdoctor.integrations import LossDoctorCallback\n"
             "trainer = sft(learning_rate=3e-2, max_steps=40)\n"
             "doctor = LossDoctorCallback()\n"
             "trainer.add_callback(doctor)\n"
             "trainer.train()"),
    ("code", "doctor.last_diagnosis.verdict"),
]

NOTEBOOKS = {"tiny_sft": TINY_SFT, "runs": RUNS, "live_callback": LIVE}


def build(cells: list[tuple[str, str]]):  # noqa: ANN201 - nbformat.NotebookNode
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                for kind, src in cells]
    return nb


def execute(cells: list[tuple[str, str]], cwd: Path):  # noqa: ANN201 - nbformat.NotebookNode
    """Run the notebook in a fresh kernel of this interpreter; a cell that raises is kept with its error."""
    from nbclient import NotebookClient

    nb = build(cells)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def write(name: str, out_dir: Path = HERE) -> Path:
    import nbformat

    nb = execute(NOTEBOOKS[name], out_dir)
    path = out_dir / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(NOTEBOOKS)
    for name in wanted:
        if name not in NOTEBOOKS:
            sys.exit(f"unknown notebook {name!r}; one of {', '.join(NOTEBOOKS)}")
        print(write(name))
