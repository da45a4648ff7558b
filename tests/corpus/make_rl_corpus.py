"""Make the preference and RL cases of the labelled corpus: tests/corpus/gen-dpo-*/ and gen-grpo-*/, by real trl
``DPOTrainer`` and ``GRPOTrainer`` runs on a tiny random-init Qwen2 model, on CPU, nothing mocked.

Why: lossdoctor judges a run by its objective. A GRPO run's loss is beta x KL (0.0 at the start, by design) and
a DPO run's loss starts at ln 2; the supervised-loss rules must stay silent on both, and the preference and RL
rules must find what these trainers' own metrics show (reward margins, chosen log-probs, reward, reward_std,
frac_reward_zero_std, KL, entropy, completion lengths). Each case keeps the run's ``trainer_state.json`` (and,
for one case of each trainer, ``console.log``: stdout + stderr of the training process) plus a ``label.yaml``.

The model and data: a word-level tokenizer over a dozen words (so an end-of-sequence token is likely enough that
completion lengths vary) and a 2-layer Qwen2 network, seeded, one torch thread, in a child process per case.
- DPO: prompts "pick: w1 w2", chosen "good wK", rejected "bad wK" (a rule a model can learn and carry to unseen
  pairs); the overfitting regime flips a share of the (few) training pairs, so that after learning the rule the
  policy memorises the flipped pairs, and the held-out margins fall back.
- GRPO: prompts of random words; toy reward functions: the share of the word "alpha" in the completion (learnable),
  a constant (no learning signal), minus or plus the completion length (length collapse / pinned at the maximum),
  and a learnable reward at a far too high learning rate with a KL penalty (KL blow-up, entropy collapse).

The labels never come from lossdoctor: they come from the regime set up plus an independent check of the recorded
numbers (``judge``: the definitions in tests/corpus/README.md applied to ``log_history``); a case whose numbers
do not show what its regime was meant to produce is labelled by its numbers and reported.

    .venv/bin/python tests/corpus/make_rl_corpus.py              # every case (about 5-8 min on 2 CPU cores)
    .venv/bin/python tests/corpus/make_rl_corpus.py --only grpo-healthy
    .venv/bin/python tests/corpus/make_rl_corpus.py --list
    .venv/bin/python tests/corpus/make_rl_corpus.py --relabel    # re-judge the saved runs, no training
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPT = "tests/corpus/make_rl_corpus.py"
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "iota")
SPECIALS = ("<unk>", "<pad>", "<eos>")
MARKERS = ("pick", "good", "bad", "say", ":")


@dataclass(frozen=True)
class Case:
    trainer: str  # dpo | grpo
    regime: str
    n: int = 1
    steps: int = 40
    lr: float = 1e-3
    batch: int = 8
    logging_steps: int = 2
    eval_steps: int = 0  # 0 = no eval set
    seed: int = 1
    # DPO
    pairs: int = 64
    eval_pairs: int = 32
    flip: float = 0.0  # share of the words whose training pairs have chosen/rejected swapped
    eval_noisy_words: bool = False  # held-out pairs only for those words (with the true labels)
    epochs: float = 0.0  # > 0: train by epochs instead of steps
    beta: float = 0.1
    # GRPO
    reward: str = "alpha"  # alpha | constant | short | long
    generations: int = 4
    max_completion: int = 12
    kl_beta: float = 0.0
    console: bool = False
    expect: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"gen-{self.trainer}-{self.regime}-{self.n}"


CASES: tuple[Case, ...] = (
    Case("dpo", "healthy", 1, steps=40, lr=2e-3, eval_steps=8, console=True, expect=("healthy",)),
    Case("dpo", "healthy", 2, steps=48, lr=1e-3, seed=2, eval_steps=8, expect=("healthy",)),
    Case(
        "dpo",
        "overfit",
        1,
        pairs=32,
        flip=0.2,
        eval_noisy_words=True,
        epochs=16,
        lr=5e-3,
        batch=8,
        eval_steps=4,
        expect=("overfitting",),
    ),
    Case(
        "dpo",
        "displacement",
        1,
        pairs=32,
        flip=0.3,
        epochs=12,
        lr=1e-2,
        batch=8,
        eval_steps=4,
        expect=("likelihood-displacement",),
    ),
    Case("dpo", "not-learning", 1, steps=40, lr=1e-7, eval_steps=8, expect=("not-learning",)),
    Case("grpo", "healthy", 1, steps=30, lr=2e-3, console=True, expect=("healthy",)),
    Case("grpo", "healthy", 2, steps=30, lr=2e-3, seed=2, kl_beta=0.04, expect=("healthy",)),
    Case("grpo", "no-signal", 1, steps=30, lr=5e-3, reward="constant", expect=("no-learning-signal",)),
    Case("grpo", "length-collapse", 1, steps=40, lr=1e-2, reward="short", expect=("length-collapse",)),
    Case("grpo", "length-max", 1, steps=40, lr=1e-2, reward="long", expect=("length-pinned",)),
    Case("grpo", "kl-blowup", 1, steps=40, lr=5e-2, kl_beta=0.04, expect=("kl-blowup",)),
)


# ------------------------------------------------------------------------------------------------ the child
def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + MARKERS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")


def _model(tokenizer: Any, seed: int, where: Path) -> str:
    """A random-init Qwen2 model saved to ``where``; the trainers load the policy (and the reference the
    KL term or DPO needs) from that path, as they would a downloaded model."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
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
    Qwen2ForCausalLM(config).save_pretrained(where)
    tokenizer.save_pretrained(where)
    return str(where)


def dpo_rows(n: int, seed: int, flip: float, keys: tuple[str, ...] = WORDS) -> list[dict[str, str]]:
    """Pairs "good K" (chosen) vs "bad K" for K drawn from ``keys``; with ``flip``, the pairs whose K is one of
    the first flip x 10 words are swapped (label noise tied to a word, which a model can memorise)."""
    rng = random.Random(seed)
    flipped = set(WORDS[: round(flip * len(WORDS))])
    rows = []
    for _ in range(n):
        a, b, k = rng.choice(WORDS), rng.choice(WORDS), rng.choice(keys)
        good, bad = f" good {k}", f" bad {k}"
        swap = k in flipped
        rows.append({"prompt": f"pick : {a} {b}", "chosen": bad if swap else good, "rejected": good if swap else bad})
    return rows


def _common_args(case: Case, out: Path) -> dict[str, Any]:
    return dict(
        output_dir=str(out),
        learning_rate=case.lr,
        logging_steps=case.logging_steps,
        per_device_train_batch_size=case.batch,
        report_to=[],
        use_cpu=True,
        seed=case.seed,
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=False,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        **({"num_train_epochs": case.epochs} if case.epochs else {"max_steps": case.steps}),
        **(
            {"eval_strategy": "steps", "eval_steps": case.eval_steps, "per_device_eval_batch_size": 16}
            if case.eval_steps
            else {}
        ),
    )


def train_dpo(case: Case, out: Path) -> None:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer = _tokenizer()
    model = _model(tokenizer, case.seed, out.parent / "init")
    args = DPOConfig(beta=case.beta, max_length=16, **_common_args(case, out))
    train = Dataset.from_list(dpo_rows(case.pairs, 100 + case.seed, case.flip))
    # held-out pairs with the true labels; in the overfitting regime only for the words whose training pairs
    # were swapped: the rule the policy learns first helps there, the swapped pairs it memorises later hurt
    keys = WORDS[: round(case.flip * len(WORDS))] if case.eval_noisy_words else WORDS
    evals = Dataset.from_list(dpo_rows(case.eval_pairs, 900 + case.seed, 0.0, keys)) if case.eval_steps else None
    trainer = DPOTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=train, eval_dataset=evals)
    trainer.train()
    trainer.save_state()


def _reward(kind: str) -> Any:
    def alpha(completions: list[str], **_: Any) -> list[float]:
        return [c.split().count("alpha") / max(1, len(c.split())) for c in completions]

    def constant(completions: list[str], **_: Any) -> list[float]:
        return [1.0 for _ in completions]

    def short(completions: list[str], **_: Any) -> list[float]:
        return [-float(len(c.split())) for c in completions]

    def long(completions: list[str], **_: Any) -> list[float]:
        return [float(len(c.split())) for c in completions]

    return {"alpha": alpha, "constant": constant, "short": short, "long": long}[kind]


def train_grpo(case: Case, out: Path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = _tokenizer()
    model = _model(tokenizer, case.seed, out.parent / "init")
    rng = random.Random(500 + case.seed)
    prompts = [f"say : {rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(256)]
    args = GRPOConfig(
        num_generations=case.generations,
        max_completion_length=case.max_completion,
        beta=case.kl_beta,
        temperature=1.0,
        **_common_args(case, out),
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=_reward(case.reward),
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
    )
    trainer.train()
    trainer.save_state()


def child(case_json: str, out: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    case = Case(**{k: tuple(v) if k == "expect" else v for k, v in json.loads(case_json).items()})
    (train_dpo if case.trainer == "dpo" else train_grpo)(case, Path(out))


# ---------------------------------------------------------------------------------------------- the judge
def _series(history: list[dict[str, Any]], key: str) -> list[float]:
    return [float(e[key]) for e in history if key in e and isinstance(e[key], (int, float))]


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _stretches(values: list[float], k: int) -> list[float]:
    return [_med(values[i : i + k]) for i in range(len(values) - k + 1)]


def _noise(values: list[float]) -> float:
    """Batch-to-batch noise: robust spread of consecutive differences (1.4826 x MAD / sqrt 2)."""
    d = [b - a for a, b in zip(values, values[1:])]
    if len(d) < 2:
        return 0.0
    m = _med(d)
    return 1.4826 * _med([abs(x - m) for x in d]) / 2**0.5


def judge(history: list[dict[str, Any]], case: Case) -> tuple[list[str], str]:
    """Verdicts from the recorded numbers alone (the definitions of tests/corpus/README.md), and why."""
    found: list[str] = []
    why: list[str] = []
    if case.trainer == "dpo":
        loss = _series(history, "loss")
        k = max(3, len(loss) // 5)
        head, lowest = _med(loss[:k]), min(_stretches(loss[k:], k))
        why.append(f"loss {head:.4f} -> lowest stretch {lowest:.4f}")
        if lowest > 0.95 * head:
            found.append("not-learning")
        chosen, margins = _series(history, "rewards/chosen"), _series(history, "rewards/margins")
        c_fall = _med(chosen[:k]) - _med(chosen[-k:])
        m_rise = _med(margins[-k:]) - _med(margins[:k])
        why.append(
            f"chosen reward {_med(chosen[:k]):.3f} -> {_med(chosen[-k:]):.3f}, "
            f"margin {_med(margins[:k]):.3f} -> {_med(margins[-k:]):.3f}"
        )
        if c_fall > 0 and c_fall >= 3 * _noise(chosen) and m_rise > 0 and m_rise >= 3 * _noise(margins):
            found.append("likelihood-displacement")
        ev = _series(history, "eval_rewards/margins")
        acc = _series(history, "rewards/accuracies")
        if len(ev) >= 3:
            best = max(ev)
            why.append(
                f"eval margins best {best:.3f} at eval {ev.index(best) + 1}/{len(ev)}, last {ev[-1]:.3f}; "
                f"train accuracy median over the second half {_med(acc[len(acc) // 2 :]):.2f}"
            )
            fell = [v <= best - 0.1 * abs(best) for v in ev[ev.index(best) + 1 :]]
            if len(fell) >= 2 and fell[-1] and fell[-2] and _med(acc[len(acc) // 2 :]) >= 0.95:
                found.append("overfitting")
    else:
        reward = _series(history, "reward")
        k = max(3, len(reward) // 5)
        stretches = _stretches(reward, k)
        head, best, tail = stretches[0], max(stretches[k:] or stretches[-1:]), stretches[-1]
        noise = _noise(reward)
        why.append(f"reward {head:.3f} -> best {best:.3f} -> last {tail:.3f} (noise {noise:.3f})")
        if best - head <= noise:
            found.append("not-learning")
        top = max(stretches[: max(1, len(stretches) - k)])
        if top - tail > 0 and top - tail >= 3 * noise:
            found.append("reward-falling")
        zero = _series(history, "frac_reward_zero_std")
        second = zero[len(zero) // 2 :]
        if second and sum(v >= 0.9 for v in second) >= 0.8 * len(second):
            found.append("no-learning-signal")
            why.append(f"frac_reward_zero_std median {_med(second):.2f} over the second half")
        length = _series(history, "completions/mean_length")
        if length:
            three = _stretches(length, 3)
            why.append(f"mean completion length {three[0]:.1f} -> max {max(three):.1f} -> {three[-1]:.1f}")
            if three[-1] <= 0.5 * max(three) and three[-2] <= 0.5 * max(three):
                found.append("length-collapse")
        clipped = _series(history, "completions/clipped_ratio")
        second = clipped[len(clipped) // 2 :]
        if second:
            why.append(f"clipped_ratio median {_med(second):.2f} over the second half")
            if sum(v >= 0.9 for v in second) >= 0.8 * len(second):
                found.append("length-pinned")
        entropy = _series(history, "entropy")
        if entropy:
            three = _stretches(entropy, 3)
            why.append(f"entropy {three[0]:.3f} -> {three[-1]:.3f}")
            if three[-1] <= 0.1 * max(three) and three[-2] <= 0.1 * max(three):
                found.append("entropy-collapse")
        kl = _series(history, "kl")
        if kl:
            why.append(f"kl max {max(kl):.3f}, last {kl[-1]:.3f}")
            if any(all(v > 1.0 for v in kl[i : i + 3]) for i in range(len(kl) - 2)):
                found.append("kl-blowup")
    return (found or ["healthy"]), "; ".join(why)


# ------------------------------------------------------------------------------------------------- driver
def write_label(case: Case, target: Path, history: list[dict[str, Any]]) -> str:
    verdicts, why = judge(history, case)
    settings = " ".join(f"{k}={v}" for k, v in asdict(case).items() if k not in ("expect", "console"))
    label = {
        "source": "generated",
        "origin": f"{SCRIPT} --only {case.name} {settings}",
        "objective": "preference" if case.trainer == "dpo" else "rl",
        "verdicts": verdicts,
        "why": f"trl {'DPOTrainer' if case.trainer == 'dpo' else 'GRPOTrainer'} regime {case.regime} "
        f"(meant to show: {', '.join(case.expect)}). Recorded: {why}.",
    }
    if case.eval_steps:
        label["eval_interval"] = case.eval_steps
    lines = [f"{k}: {json.dumps(v)}" for k, v in label.items()]
    (target / "label.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    note = "" if set(verdicts) == set(case.expect) else f"  (meant {list(case.expect)})"
    return f"{case.name}: {verdicts}{note} - {why}"


def make(case: Case, timeout: float = 900, root: Path = HERE) -> str:
    target = root / case.name
    with tempfile.TemporaryDirectory(prefix="ld-rl-") as tmp:
        out = Path(tmp) / "out"
        log = Path(tmp) / "console.log"
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            HF_HUB_OFFLINE="1",
            OMP_NUM_THREADS="1",
            TOKENIZERS_PARALLELISM="false",
            WANDB_MODE="disabled",
            COLUMNS="100",
        )
        with log.open("wb") as fh:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(asdict(case)), str(out)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"{case.name} failed:\n{log.read_text(errors='replace')[-3000:]}")
        state = json.loads((out / "trainer_state.json").read_text())
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copy(out / "trainer_state.json", target / "trainer_state.json")
        if case.console:
            shutil.copy(log, target / "console.log")
    return write_label(case, target, state["log_history"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="case name or regime substring (repeatable)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--relabel", action="store_true", help="re-judge the saved cases without training")
    opts = parser.parse_args()
    cases = [c for c in CASES if not opts.only or any(o in c.name for o in opts.only)]
    for case in cases:
        if opts.list:
            print(case.name, asdict(case))
            continue
        if opts.relabel:
            state = json.loads((HERE / case.name / "trainer_state.json").read_text())
            print(write_label(case, HERE / case.name, state["log_history"]), flush=True)
            continue
        print(make(case), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
