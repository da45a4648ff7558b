"""Make the scenario suite: tests/scenarios/<name>/ (a small training log + label.yaml) for every situation the
peer diagnosis tools test themselves on, written as data from a seeded formula.

The situations come from reading the peers' public test suites, demo generators and docs (trainproof, losslint,
trainspotter, runmedic, finetune-doctor; none of their code is used here) and the fault-injection gallery
trainproof ships (18 real QLoRA runs of Qwen2.5-3B: six configurations x three seeds); each scenario's
``origin`` names the test or document it re-creates. The logs are written here from formulas whose shape is
the situation (a NaN at step k, a loss that rises past its best, an eval loss that turns, ...), in the format
that peer used for it (trainer_state.json, CSV, JSONL, TensorBoard through torch's real SummaryWriter, HF console
text, plain text, Coqui TTS text, a Lightning metrics.csv). The label follows from the construction (the
definitions in tests/corpus/README.md applied to what was written), never from running a tool.

    .venv/bin/python tests/scenarios/make_scenarios.py             # rewrite every scenario (a few seconds)
    .venv/bin/python tests/scenarios/make_scenarios.py --only gal-  # the ones whose name starts so
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAN = float("nan")
INF = float("inf")

Row = dict[str, Any]
Fn = Callable[[int], float]


# --- curves ------------------------------------------------------------------------------------------------


def decay(start: float, end: float, n: int, k: float = 4.0) -> Fn:
    """An exponential approach from `start` (step 0) to `end`, over n steps (k time constants)."""
    return lambda s: end + (start - end) * math.exp(-k * s / n)


def noisy(f: Fn, rng: random.Random, sd: float, rel: bool = False) -> Fn:
    return lambda s: f(s) * (1 + rng.gauss(0, sd)) if rel else f(s) + rng.gauss(0, sd)


def warm_linear(peak: float, n: int, warm: int) -> Fn:
    """HF's linear schedule: warm-up to `peak` over `warm` steps, then linear to 0 at step n."""
    return lambda s: peak * s / warm if s < warm else peak * max(0.0, (n - s) / max(1, n - warm))


def warm_cosine(peak: float, n: int, warm: int) -> Fn:
    return lambda s: (
        peak * s / warm if s < warm else peak * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, n - warm)))
    )


def const(v: float) -> Fn:
    return lambda s: v


# --- a run -------------------------------------------------------------------------------------------------


@dataclass
class Run:
    train: list[Row]  # HF log_history-style train entries (step, loss, grad_norm, ...)
    evals: list[Row] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # trainer_state top-level keys + 'summary': bool


def r4(x: float) -> float:
    return x if not math.isfinite(x) else round(x, 6)


def make_run(
    n: int,
    every: int,
    loss: Fn | None,
    grad: Fn | None = None,
    lr: Fn | None = None,
    eval_every: int = 0,
    eval_loss: Fn | None = None,
    epochs: float = 1.0,
    extra: Callable[[int], dict[str, Any]] | None = None,
    eval_extra: Callable[[int], dict[str, Any]] | None = None,
    first: int | None = None,
    **meta: Any,
) -> Run:
    train = []
    for s in range(first if first is not None else every, n + 1, every):
        e: Row = {"epoch": round(epochs * s / n, 4)}
        if grad is not None:
            e["grad_norm"] = r4(grad(s))
        if lr is not None:
            e["learning_rate"] = float(f"{lr(s):.6g}")
        if loss is not None:
            e["loss"] = r4(loss(s))
        e["step"] = s
        if extra:
            e.update(extra(s))
        if len(e) > 2:  # an eval-only log has no train entries
            train.append(e)
    evals = []
    if eval_every:
        for s in range(eval_every, n + 1, eval_every):
            e = {"epoch": round(epochs * s / n, 4)}
            if eval_loss is not None:
                e["eval_loss"] = r4(eval_loss(s))
            e.update({"eval_runtime": 4.1, "eval_samples_per_second": 48.7, "eval_steps_per_second": 6.1, "step": s})
            if eval_extra:
                e.update(eval_extra(s))
            evals.append(e)
    meta.setdefault("max_steps", n)
    meta.setdefault("global_step", n)
    meta.setdefault("logging_steps", every)
    meta.setdefault("eval_steps", eval_every or None)
    meta.setdefault("num_train_epochs", max(1, math.ceil(epochs)))
    return Run(train, evals, meta)


# --- writers: one per format -------------------------------------------------------------------------------


def _rows(run: Run) -> list[Row]:
    return sorted(run.train + run.evals, key=lambda e: (e["step"], any(k.startswith("eval_") for k in e)))


def _jnum(x: Any) -> Any:
    return x


def w_state(run: Run, d: Path) -> None:
    """trainer_state.json as HF Trainer writes it (TrainerState.save_to_json)."""
    m = dict(run.meta)
    history = _rows(run)
    if m.pop("summary", True):
        losses = [e["loss"] for e in run.train if isinstance(e.get("loss"), float) and math.isfinite(e["loss"])]
        history.append(
            {
                "epoch": history[-1]["epoch"],
                "step": m["global_step"],
                "total_flos": 2.1e15,
                "train_loss": sum(losses) / max(1, len(losses)),
                "train_runtime": 812.4,
                "train_samples_per_second": 5.9,
                "train_steps_per_second": 0.37,
            }
        )
    should_stop = m.pop("should_training_stop", True)
    state = {
        "best_global_step": m.pop("best_global_step", None),
        "best_metric": m.pop("best_metric", None),
        "best_model_checkpoint": m.pop("best_model_checkpoint", None),
        "epoch": history[-1]["epoch"],
        "eval_steps": m.pop("eval_steps"),
        "global_step": m.pop("global_step"),
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": m.pop("logging_steps"),
        "max_steps": m.pop("max_steps"),
        "num_input_tokens_seen": 0,
        "num_train_epochs": m.pop("num_train_epochs"),
        "save_steps": 500,
        "stateful_callbacks": {
            "TrainerControl": {
                "args": {
                    "should_epoch_stop": False,
                    "should_evaluate": False,
                    "should_log": False,
                    "should_save": True,
                    "should_training_stop": should_stop,
                },
                "attributes": {},
            }
        },
        "total_flos": 2.1e15,
        "train_batch_size": m.pop("train_batch_size", 4),
        "trial_name": None,
        "trial_params": None,
    }
    state.update(m)
    (d / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")


def _flat(run: Run, names: dict[str, str] | None) -> tuple[list[str], list[Row]]:
    names = names or {}
    rows: dict[int, Row] = {}
    for e in _rows(run):
        r = rows.setdefault(e["step"], {"step": e["step"]})
        for k, v in e.items():
            if k in ("step", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"):
                continue
            r[names.get(k, k)] = v
    cols: list[str] = ["step"]
    for r in rows.values():
        cols += [k for k in r if k not in cols]
    return cols, list(rows.values())


def _num(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == INF else ("-inf" if v == -INF else f"{v:.6g}"))
    return str(v)


def w_csv(
    run: Run,
    d: Path,
    name: str = "metrics.csv",
    names: dict[str, str] | None = None,
    sep: str = ",",
    decimal: str = ".",
    bom: bool = False,
) -> None:
    cols, rows = _flat(run, names)
    if "epoch" in cols:
        cols.remove("epoch")
    lines = [sep.join((names or {}).get("step", "step") if c == "step" else c for c in cols)]
    for r in rows:
        lines.append(sep.join(_num(r[c]).replace(".", decimal) if c in r else "" for c in cols))
    (d / name).write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


def _json_value(v: Any) -> Any:
    return v


def w_jsonl(
    run: Run,
    d: Path,
    name: str = "metrics.jsonl",
    names: dict[str, str] | None = None,
    junk_after_first: str | None = None,
) -> None:
    lines = []
    for e in _rows(run):
        e = {
            (names or {}).get(k, k): v
            for k, v in e.items()
            if k not in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
        }
        lines.append(json.dumps(e))  # NaN / Infinity as Python's json writes them (what most loggers do)
        if junk_after_first is not None and len(lines) == 1:
            lines.append(junk_after_first)
    (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


TB_NAMES = {
    "loss": "train/loss",
    "grad_norm": "train/grad_norm",
    "learning_rate": "train/learning_rate",
    "epoch": "train/epoch",
    "eval_loss": "eval/loss",
}


def w_tb(
    run: Run,
    d: Path,
    names: dict[str, str] | None = None,
    sub: Callable[[str], str] | None = None,
    sessions: list[tuple[int, int]] | None = None,
) -> None:
    """TensorBoard event files written by torch's SummaryWriter (HF's TensorBoardCallback names by default).
    `sub(tag)` puts a tag's events in a subdirectory (Keras' train/ and validation/); `sessions` writes one
    event file per (first_step, last_step) range, as a resumed run leaves."""
    from unittest import mock

    from torch.utils.tensorboard import SummaryWriter

    clock = mock.patch("time.time", return_value=1.7e9)  # the file-version event's time: same bytes each run
    clock.start()
    try:
        _write_tb(run, d, {**TB_NAMES, **(names or {})}, sub, sessions, SummaryWriter)
    finally:
        clock.stop()
    # fixed file names, so a rerun rewrites the same files
    for k, f in enumerate(sorted((d / "tb").rglob("events.out.tfevents.*"))):
        f.rename(f.parent / f"events.out.tfevents.{1700000000 + k}.scenario.{k}")


def _write_tb(
    run: Run,
    d: Path,
    names: dict[str, str],
    sub: Callable[[str], str] | None,
    sessions: list[tuple[int, int]] | None,
    SummaryWriter: Any,
) -> None:
    ranges = sessions or [(-1, 10**12)]
    for i, (lo, hi) in enumerate(ranges):
        writers: dict[str, Any] = {}
        for e in _rows(run):
            if not lo <= e["step"] <= hi:
                continue
            for k, v in e.items():
                if k == "step" or k not in names or names[k] == "-" or (k == "epoch" and "loss" not in e):
                    continue
                tag = names[k]
                where = sub(tag) if sub else ""
                if where not in writers:
                    writers[where] = SummaryWriter(
                        log_dir=str(d / "tb" / where) if where else str(d / "tb"), filename_suffix=f".s{i}"
                    )
                writers[where].add_scalar(tag.split("|")[0], v, e["step"], walltime=1.7e9 + 60 * e["step"] + i)
        for w in writers.values():
            w.close()


def _py(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == INF else repr(v))
    return repr(v)


def w_console(run: Run, d: Path, name: str = "train.log", strings: bool = False) -> None:
    """The HF Trainer / trl console: a dict per log call among tqdm redraws, the summary dict at the end."""
    out = [
        "***** Running training *****",
        f"  Num examples = {run.meta['max_steps'] * 4}",
        f"  Total optimization steps = {run.meta['max_steps']}",
    ]
    n = run.meta["max_steps"]
    for e in _rows(run):
        s = e["step"]
        out.append(f"\r {int(100 * s / n):3d}%|{'#' * (s * 20 // n):<20}| {s}/{n} [00:{s % 60:02d}<00:10, 1.5it/s]")
        body = {k: v for k, v in e.items() if k != "step"}
        if strings:
            out.append("{" + ", ".join(f"'{k}': '{_num(v)}'" for k, v in body.items()) + "}")
        else:
            out.append("{" + ", ".join(f"'{k}': {_py(v)}" for k, v in body.items()) + "}")
    losses = [e["loss"] for e in run.train if "loss" in e and math.isfinite(e["loss"])]
    out.append(
        "{'train_runtime': 812.4, 'train_samples_per_second': 5.9, 'train_steps_per_second': 0.37, "
        f"'train_loss': {sum(losses) / max(1, len(losses))!r}, 'epoch': {run.train[-1]['epoch']}}}"
    )
    (d / name).write_text("\n".join(out) + "\n", encoding="utf-8")


def w_text(run: Run, d: Path, name: str = "train.log") -> None:
    """Plain `step N loss X lr Y` lines of a hand-written loop; eval as `step N val_loss X`."""
    out = ["starting training"]
    for e in _rows(run):
        if "eval_loss" in e:
            out.append(f"step {e['step']} val_loss {_num(e['eval_loss'])}")
            continue
        parts = [f"step {e['step']}", f"loss {_num(e['loss'])}"]
        if "learning_rate" in e:
            parts.append(f"lr {e['learning_rate']:.3e}")
        if "grad_norm" in e:
            parts.append(f"grad_norm {_num(e['grad_norm'])}")
        out.append(" ".join(parts))
    out.append("done")
    (d / name).write_text("\n".join(out) + "\n", encoding="utf-8")


def w_coqui(run: Run, d: Path, name: str = "trainer_0_log.txt", per_epoch: int = 100) -> None:
    """The Coqui TTS Trainer console (coqui-ai/Trainer's console_logger print format)."""
    out = [" > Training Environment:", " | > Backend: Torch", " | > Num. of GPUs: 1", ""]
    evals = {e["step"]: e for e in run.evals}
    epoch = -1
    for e in run.train:
        g = e["step"]
        if g // per_epoch != epoch:
            epoch = g // per_epoch
            out += [
                "",
                f"\x1b[1m > EPOCH: {epoch}/{run.meta['max_steps'] // per_epoch}\x1b[0m",
                "",
                "\x1b[1m > TRAINING (2026-02-10 14:22:52) \x1b[0m",
                "",
            ]
        out += [
            f"\x1b[1m   --> TIME: 2026-02-10 14:22:56 -- STEP: {g % per_epoch}/{per_epoch} -- GLOBAL_STEP: {g}\x1b[0m",
            f"     | > loss: {_num(e['loss'])}  ({_num(e['loss'])})",
        ]
        if "learning_rate" in e:
            out.append(f"     | > current_lr: {e['learning_rate']} ")
        if "grad_norm" in e:
            out.append(f"     | > grad_norm: {_num(e['grad_norm'])}  ({_num(e['grad_norm'])})")
        out += ["     | > step_time: 0.1687  (0.1479)", ""]
        if g in evals:
            out += [
                "\x1b[1m > EVALUATION \x1b[0m",
                "",
                "",
                "  \x1b[1m--> EVAL PERFORMANCE\x1b[0m",
                "     | > avg_loader_time: 0.0399 \x1b[0m(+0)",
                f"     | > avg_loss: {_num(evals[g]['eval_loss'])} \x1b[0m(+0)",
                "",
            ]
    (d / name).write_text("\n".join(out) + "\n", encoding="utf-8")


def w_lightning(run: Run, d: Path) -> None:
    """PyTorch Lightning CSVLogger metrics.csv: sparse rows, `train_loss_step`, `val_loss`, `lr-AdamW`."""
    w_csv(
        run,
        d,
        names={
            "loss": "train_loss_step",
            "eval_loss": "val_loss",
            "learning_rate": "lr-AdamW/pg1",
            "grad_norm": "grad_norm",
        },
    )


WRITERS: dict[str, Callable[..., None]] = {
    "state": w_state,
    "csv": w_csv,
    "jsonl": w_jsonl,
    "tb": w_tb,
    "console": w_console,
    "text": w_text,
    "coqui": w_coqui,
    "lightning": w_lightning,
}


# --- the scenarios -----------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    fmt: str
    run: Run
    verdicts: list[str]
    why: str
    origin: str
    objective: str | None = None
    onset_step: int | None = None
    eval_interval: int | None = None
    opts: dict[str, Any] = field(default_factory=dict)


TP = "trainproof 0.22.0 (MIT)"
LL = "losslint 0.4.1 (MIT)"
TS = "trainspotter 0.2.6 (MIT)"
RM = "runmedic 0.1.1 (MIT)"
FD = "finetune-doctor 0.2.2 (Apache-2.0)"
GAL = "trainproof examples/gallery (MIT; 18 real QLoRA runs, Qwen2.5-3B, 300 steps, logging_steps 5)"
I21 = "lossdoctor issue 21 (a user's scenario list)"
I12 = "lossdoctor issue 12 (signatures of real public runs)"


def gallery(out: list[Scenario]) -> None:
    """Formula re-creations of the 18 runs of trainproof's fault-injection gallery: the shape, levels and
    schedule of each configuration (read from its trainer_state.json), a fresh seeded noise per seed."""
    n, every = 300, 5
    for seed in (42, 43, 44):
        rng = random.Random(seed)
        cos = warm_cosine(2e-4, n, 20)
        tag = f"s{seed}"
        # healthy: loss 1.5 -> 0.95 with batch noise ~0.06, grad_norm ~0.4
        run = make_run(n, every, noisy(decay(1.5, 1.0, n, 3), rng, 0.06), noisy(const(0.45), rng, 0.08), cos)
        out.append(
            Scenario(
                f"gal-healthy-{tag}",
                "state",
                run,
                ["healthy"],
                "QLoRA SFT, lr 2e-4 cosine with 20 warm-up steps: loss 1.5 -> ~1.0 with batch noise "
                "0.06, grad_norm ~0.45, no eval set. Healthy by construction.",
                f"{GAL}: healthy/{'' if seed == 42 else f'seed{seed}/'}trainer_state.json",
            )
        )
        # lr_hot: lr x100; the loss jumps from 1.4 to 20-30 in the first 20 steps, falls back to ~7.5 and stays
        hot = warm_cosine(2e-2, n, 20)
        spikes = {
            42: {10: 672.0, 25: 761.0},
            43: {10: 292.0, 15: 121.0},
            44: {15: 36.0, 140: 40902.0, 145: 9000.0, 150: 850.0},
        }[seed]

        def hot_loss(s: int, rng: random.Random = rng) -> float:
            if s <= 5:
                return 1.4
            if s <= 20:
                return 1.4 + 23 * (s - 5) / 15
            return 7.5 + 17 * math.exp(-(s - 20) / 25) + rng.gauss(0, 0.12)

        run = make_run(n, every, hot_loss, lambda s, sp=spikes, rng=rng: sp.get(s, abs(rng.gauss(0.5, 0.15))), hot)
        verdicts = ["diverging"] + (["exploding-gradients"] if sum(v > 100 for v in spikes.values()) >= 3 else [])
        out.append(
            Scenario(
                f"gal-lr-hot-{tag}",
                "state",
                run,
                verdicts,
                f"lr 2e-2 (100x): loss 1.4 at the first log jumps to ~24 by step 20, falls back and "
                f"settles at ~7.5 (5x its best, +6 nats) to the end; grad_norm ~0.5 with "
                f"{len(spikes)} isolated spikes ({', '.join(f'{v:g} at {k}' for k, v in spikes.items())}). "
                f"Diverging{' and exploding gradients (>= 3 logs above 100)' if len(verdicts) > 1 else ''}.",
                f"{GAL}: lr_hot",
            )
        )
        # fp16_nan: fp16, hot lr, no clipping: inf grad norms early, the loss climbs to ~7.3 and stays
        infs = {42: (20, 30), 43: (45,), 44: (20,)}[seed]

        def fp_loss(s: int, rng: random.Random = rng) -> float:
            if s <= 15:
                return 1.4 - 0.02 * s + rng.gauss(0, 0.05)
            return 7.3 - 5.9 * math.exp(-(s - 15) / 12) + rng.gauss(0, 0.1)

        run = make_run(
            n,
            every,
            fp_loss,
            lambda s, infs=infs, rng=rng: (
                INF if s in infs else (80.0 if s == infs[0] + 5 else abs(rng.gauss(1.3, 0.3)))
            ),
            warm_cosine(1e-2, n, 20),
        )
        out.append(
            Scenario(
                f"gal-fp16-nan-{tag}",
                "state",
                run,
                ["diverging", "nonfinite"],
                f"fp16, lr 1e-2, no clipping: grad_norm inf at step(s) {', '.join(map(str, infs))}; the loss "
                "climbs from its best ~1.1 to ~7.3 by step 80 and stays there (the scaler absorbed the "
                "NaN, the run diverged instead). Diverging, non-finite.",
                f"{GAL}: fp16_nan",
            )
        )
        # bad_labels: labels shuffled per sequence: the loss starts at ~18.9 nats/token (above ln V = 11.93 for
        # Qwen2.5's 151,646 tokens) and bottoms out at ~5.6, where the healthy recipe ends at ~0.95
        run = make_run(
            n, every, noisy(decay(18.9, 5.7, n, 12), rng, 0.08), noisy(decay(14, 1.1, n, 10), rng, 0.15), cos
        )
        out.append(
            Scenario(
                f"gal-bad-labels-{tag}",
                "state",
                run,
                ["implausible-loss"],
                "labels shuffled per sequence: loss 18.9 -> 5.7 nats/token (it starts worse than a "
                "uniform guess over any real vocabulary, ln 262,144 = 12.5, and ends 6x above what the "
                "same recipe with correct labels reaches). No model that is learning its task shows this "
                "level; the curve alone looks like fast learning.",
                f"{GAL}: bad_labels",
            )
        )
        # lr_zero: learning rate 0 at every step: the loss only wobbles around 1.5
        run = make_run(n, every, noisy(const(1.5), rng, 0.09), noisy(const(0.7), rng, 0.2), const(0.0))
        out.append(
            Scenario(
                f"gal-lr-zero-{tag}",
                "state",
                run,
                ["not-learning"],
                "learning_rate 0.0 at every log: the loss wobbles around 1.5 (noise 0.09) and never "
                "falls. Not learning.",
                f"{GAL}: lr_zero",
            )
        )
        # overfit: 64 samples, many epochs, held-out eval every 15 steps
        ev = {42: 30, 43: 30, 44: 30}[seed]
        run = make_run(
            n,
            every,
            noisy(decay(1.4, 0.03, n, 9), rng, 0.01),
            noisy(const(0.4), rng, 0.08),
            warm_cosine(2e-4, n, 10),
            eval_every=15,
            eval_loss=lambda s, rng=rng: (
                (1.37 - 0.12 * s / 30 if s <= 30 else 3.78 - 2.53 * math.exp(-(s - 30) / 60)) + rng.gauss(0, 0.01)
            ),
            epochs=75.0,
        )
        out.append(
            Scenario(
                f"gal-overfit-{tag}",
                "state",
                run,
                ["overfitting"],
                "64 training samples, 75 epochs: train loss 1.4 -> 0.03 while the held-out eval loss "
                "falls to 1.25 at step 30 and climbs to ~3.7 by the end. Overfitting from step 30.",
                f"{GAL}: overfit",
                onset_step=ev,
                eval_interval=15,
            )
        )


def trainproof(out: list[Scenario]) -> None:
    rng = random.Random(101)
    n = 200
    lin = warm_linear(1e-4, n, 10)
    healthy = decay(2.3, 1.2, n)

    def S(name: str, fmt: str, run: Run, v: list[str], why: str, origin: str, **kw: Any) -> None:
        out.append(Scenario(name, fmt, run, v, why, f"{TP}: {origin}", **kw))

    S(
        "tp-healthy-jsonl",
        "jsonl",
        make_run(n, 2, noisy(healthy, rng, 0.03), noisy(const(1.0), rng, 0.1), lin),
        ["healthy"],
        "loss 2.3 -> 1.2 (noise 0.03), grad_norm ~1, linear lr: healthy.",
        "tests/test_epoch.py::test_epoch_healthy (fixtures/healthy.jsonl)",
    )
    S(
        "tp-diverging-jsonl",
        "jsonl",
        make_run(
            n,
            2,
            lambda s: (2.3 - 0.8 * s / 80 if s <= 80 else 1.5 + 3.0 * (s - 80) / 120) + rng.gauss(0, 0.03),
            noisy(const(1.5), rng, 0.2),
            const(1e-3),
        ),
        ["diverging"],
        "loss falls 2.3 -> 1.5 by step 80, then rises steadily to 4.5 at the end (3x its best, +3): diverging.",
        "tests/test_epoch.py::test_epoch_diverging (fixtures/diverging.jsonl)",
    )
    S(
        "tp-nan-jsonl",
        "jsonl",
        make_run(n, 2, lambda s: NAN if s >= 120 else healthy(s) + rng.gauss(0, 0.03), noisy(const(1), rng, 0.1), lin),
        ["nonfinite"],
        "a healthy loss until step 118, NaN at every log from step 120 on: non-finite.",
        "tests/test_epoch.py::test_epoch_nan (fixtures/nan.jsonl)",
    )
    S(
        "tp-partial-nan-jsonl",
        "jsonl",
        make_run(
            n,
            2,
            lambda s: NAN if s in (90, 92, 140) else healthy(s) + rng.gauss(0, 0.03),
            noisy(const(1), rng, 0.1),
            lin,
        ),
        ["nonfinite"],
        "NaN loss at three logs (steps 90, 92, 140) of an otherwise healthy run: non-finite (a NaN "
        "loss is never a skipped fp16 step; the loss itself was NaN).",
        "tests/test_v021_nan_grad.py::test_partial_nan_still_fails",
    )
    S(
        "tp-flat-jsonl",
        "jsonl",
        make_run(n, 2, lambda s: 2.302 + rng.gauss(0, 0.001), noisy(const(0.8), rng, 0.05), lin),
        ["not-learning"],
        "loss 2.302 +- 0.001 at every log for 200 steps: flat, not learning.",
        "tests/test_epoch.py::test_epoch_flat (fixtures/flat.jsonl)",
    )
    S(
        "tp-dead-noisy-jsonl",
        "jsonl",
        make_run(n, 2, noisy(const(2.3), rng, 0.12), noisy(const(0.8), rng, 0.1), lin),
        ["not-learning"],
        "loss noisy around 2.3 (sd 0.12) with no trend from first to last log: not learning.",
        "tests/test_epoch.py::test_epoch_dead_noisy (fixtures/dead_noisy.jsonl)",
    )
    S(
        "tp-zero-grad-stuck-jsonl",
        "jsonl",
        make_run(n, 2, lambda s: 6.9078 + rng.gauss(0, 0.0005), const(0.0), lin),
        ["not-learning"],
        "grad_norm 0.0 at every log and the loss stuck at 6.908 (ln 1000): a severed graph, not learning.",
        "tests/test_v013_checks.py::test_zero_grad_still_fires_when_loss_is_stuck",
    )
    S(
        "tp-zero-grad-loss-improved-jsonl",
        "jsonl",
        make_run(n, 2, noisy(decay(3.0, 0.36, n, 5), rng, 0.02), const(0.0), lin),
        ["healthy"],
        "grad_norm logged as exactly 0.0 at every log (an engine that logs 0 where it did not compute "
        "it) while the loss falls 3.0 -> 0.36 (-88%): the model is learning. Healthy.",
        "tests/test_v013_checks.py::test_zero_grad_not_reported_when_loss_improved",
    )
    S(
        "tp-zero-loss-jsonl",
        "jsonl",
        make_run(n, 2, const(0.0), const(0.0), lin),
        ["not-learning"],
        "loss exactly 0.0 from the first log to the last (all labels masked): nothing scored, not learning.",
        "tests/test_v0111_degenerate.py::test_all_zero_loss_is_a_finding_not_a_pass (fixtures/zero_loss.jsonl)",
    )
    S(
        "tp-zero-tail-jsonl",
        "jsonl",
        make_run(
            n,
            2,
            lambda s: 0.0 if s > 140 else healthy(s) + rng.gauss(0, 0.03),
            lambda s: 0.0 if s > 140 else abs(rng.gauss(1, 0.1)),
            lin,
        ),
        ["not-learning"],
        "a healthy loss to step 140, then exactly 0.0 (and grad_norm 0.0) at every log of the last "
        "30%: the loss collapsed to zero, nothing is scored any more. Not learning.",
        "tests/test_v0111_degenerate.py::test_property_positive_then_dead_never_passes",
    )
    S(
        "tp-total-zero-lr-csv",
        "csv",
        make_run(n, 2, noisy(const(1.9), rng, 0.05), noisy(const(0.6), rng, 0.05), const(0.0)),
        ["not-learning"],
        "learning_rate 0.0 at every log (a scheduler misconfigured to 0): loss ~1.9 throughout. Not learning.",
        "tests/test_epoch.py::test_epoch_total_zero_lr_is_fatal",
    )
    st = lambda s: 0.42 + abs(rng.gauss(0, 0.02)) if s <= 120 else 4.8 + abs(rng.gauss(0, 0.2))
    S(
        "tp-step-time-cliff-jsonl",
        "jsonl",
        make_run(
            n,
            2,
            noisy(healthy, rng, 0.03),
            noisy(const(1), rng, 0.1),
            lin,
            extra=lambda s: {"step_time": round(st(s), 4)},
        ),
        ["slowdown"],
        "a healthy loss, but step_time 0.42 s to step 120 and ~4.8 s (11x) from there to the end: a "
        "step-time cliff (loader stall, swapping).",
        "tests/test_epoch.py::test_epoch_step_time_cliff",
    )
    S(
        "tp-loader-stall-jsonl",
        "jsonl",
        make_run(
            n,
            2,
            noisy(healthy, rng, 0.03),
            noisy(const(1), rng, 0.1),
            lin,
            extra=lambda s: {
                "loader_time": round(0.02 if s <= 100 else 6.0 + rng.random(), 4),
                "step_time": round(0.45 if s <= 100 else 6.4 + rng.random(), 4),
            },
        ),
        ["slowdown"],
        "loader_time 0.02 s then ~6.5 s per step from step 100 on, step_time 0.45 s -> ~6.9 s (15x): "
        "the data loader stalls. A slowdown.",
        "tests/test_epoch.py::test_epoch_loader_stall",
    )
    S(
        "tp-eval-only-jsonl",
        "jsonl",
        make_run(n, 20, None, eval_every=20, eval_loss=noisy(decay(2.5, 1.4, n), rng, 0.01)),
        ["healthy"],
        "only eval_loss is logged (10 evals), falling 2.3 -> 1.5: healthy.",
        "tests/test_v080_features.py::test_eval_loss_only",
    )
    S(
        "tp-four-points-jsonl",
        "jsonl",
        make_run(40, 10, lambda s: [0, 2.0, 1.9, 1.85, 1.8][s // 10], const(1.0), const(1e-4)),
        ["healthy"],
        "four logs, 2.0, 1.9, 1.85, 1.8: a short healthy run.",
        "tests/test_v0x_corrections.py::test_four_point_log_not_checked",
    )
    S(
        "tp-three-evals-state",
        "state",
        make_run(
            60,
            5,
            noisy(decay(2.0, 1.3, 60), rng, 0.02),
            noisy(const(1), rng, 0.1),
            warm_linear(1e-4, 60, 5),
            eval_every=20,
            eval_loss=decay(2.1, 1.5, 60),
        ),
        ["healthy"],
        "12 train logs falling 2.0 -> 1.4, three evals falling: healthy.",
        "tests/test_v0x_corrections.py::test_less_than_4_eval_points",
    )
    S(
        "tp-nan-grad-warmup-state",
        "state",
        make_run(
            n,
            2,
            noisy(healthy, rng, 0.03),
            lambda s: NAN if s <= 6 else abs(rng.gauss(1.0, 0.1)),
            lin,
            eval_every=50,
            eval_loss=decay(2.4, 1.3, n),
        ),
        ["healthy"],
        "grad_norm NaN at the first three logs (the fp16 loss scaler calibrating; those steps were "
        "skipped), normal from there; the loss and eval loss fall throughout. Healthy.",
        "tests/test_v021_nan_grad.py::test_nan_grad_group_reports_as_checked_not_skipped",
    )
    S(
        "tp-nan-grad-persistent-state",
        "state",
        make_run(
            n,
            2,
            lambda s: healthy(s) + rng.gauss(0, 0.03) if s <= 150 else healthy(s) + 0.2 * (s - 150),
            lambda s: abs(rng.gauss(1.0, 0.1)) if s <= 150 else NAN,
            lin,
        ),
        ["nonfinite", "diverging"],
        "grad_norm NaN at every log from step 152 on (25% of the run) and the loss climbs "
        "from 1.2 to 11 over that stretch: persistent non-finite gradients and a diverging loss.",
        "tests/test_v021_nan_grad.py::test_property_non_finite_gradient_never_passes",
    )
    S(
        "tp-csv-text-columns",
        "csv",
        make_run(
            n,
            4,
            noisy(healthy, rng, 0.03),
            noisy(const(1), rng, 0.1),
            lin,
            extra=lambda s: {"run_name": "qlora-a", "timestamp": f"2026-02-10T14:{s // 60:02d}:{s % 60:02d}"},
        ),
        ["healthy"],
        "a healthy run in CSV with two text columns (run name, ISO time): healthy.",
        "tests/test_epoch.py::test_epoch_csv_with_text_columns",
    )
    S(
        "tp-tfevents-healthy",
        "tb",
        make_run(
            n, 2, noisy(healthy, rng, 0.03), noisy(const(1), rng, 0.1), lin, eval_every=40, eval_loss=decay(2.4, 1.3, n)
        ),
        ["healthy"],
        "a healthy run written by SummaryWriter under HF's tag names: healthy.",
        "tests/test_v014_tfevents.py::test_cli_reads_tfevents_end_to_end",
    )
    S(
        "tp-tfevents-diverging",
        "tb",
        make_run(
            n,
            2,
            lambda s: 2.0 * math.exp(s / 60) / (1 + s / 300) + rng.gauss(0, 0.02),
            noisy(const(3), rng, 0.3),
            const(5e-3),
        ),
        ["diverging", "not-learning"],
        "loss grows from 2.0 (its lowest) to ~16 over 200 steps in TensorBoard: "
        "diverging, and not learning (it never got below where it started).",
        "tests/test_v014_tfevents.py::test_format_autodetected_as_tfevents",
    )
    S(
        "tp-coqui-healthy",
        "coqui",
        make_run(
            1000,
            25,
            noisy(decay(2.5, 0.9, 1000), rng, 0.04),
            None,
            warm_linear(2e-4, 1000, 50),
            eval_every=100,
            eval_loss=noisy(decay(2.6, 1.1, 1000), rng, 0.01),
        ),
        ["healthy"],
        "a Coqui TTS Trainer log: loss 2.5 -> 0.9, eval avg_loss falling at every epoch: healthy.",
        "tests/test_adapters.py::test_coqui_adapter (fixtures/coqui_trainer_slice.txt)",
    )
    S(
        "tp-coqui-eval-improves",
        "coqui",
        make_run(
            1000,
            25,
            lambda s: (2.4 - 1.3 * s / 300 if s < 300 else 1.1 + 0.9 * (s - 300) / 700) + rng.gauss(0, 0.05),
            None,
            const(1e-4),
            eval_every=100,
            eval_loss=noisy(decay(4.8, 2.6, 1000, 2.5), rng, 0.005),
        ),
        ["healthy"],
        "Coqui: the per-micro-batch train display loss ends 1.8x above its minimum, but the held-out "
        "avg_loss improves at every one of the 10 evals (4.6 -> 2.8): the model is learning (trainproof's own "
        "correction of its xtts_diverged verdict). Healthy.",
        "README.md 'Correction (2026-09-21)' (examples/real_world/xtts_diverged)",
    )
    S(
        "tp-coqui-diverging",
        "coqui",
        make_run(
            1000,
            25,
            lambda s: (2.4 - 1.4 * s / 300 if s < 300 else 1.0 + 3.0 * (s - 300) / 700) + rng.gauss(0, 0.05),
            None,
            const(1e-3),
            eval_every=100,
            eval_loss=lambda s: 2.5 - 1.2 * s / 300 if s <= 300 else 1.3 + 3.2 * (s - 300) / 700,
        ),
        ["diverging"],
        "Coqui: loss falls to 1.0 by step 300, then rises to 4.0; eval avg_loss rises with it (1.3 -> 4.5): diverging.",
        "tests/test_golden_gallery.py::test_real_world_verdict_is_locked",
    )
    S(
        "tp-dead-after-positive-jsonl",
        "jsonl",
        make_run(
            n, 2, lambda s: healthy(s) if s <= 60 else 6.2383, lambda s: abs(rng.gauss(1, 0.1)) if s <= 60 else 0.0, lin
        ),
        ["diverging", "not-learning"],
        "a falling loss to 1.53 at step 60, then exactly 6.2383 (ln 512: a uniform "
        "guess) with grad_norm 0.0 for the remaining 70%: the run died (nothing trained over the second half: not "
        "learning) at 4x its best loss (diverging).",
        "tests/test_v0111_degenerate.py::test_property_positive_then_dead_never_passes",
    )


def losslint(out: list[Scenario]) -> None:
    rng = random.Random(202)

    def S(name: str, fmt: str, run: Run, v: list[str], why: str, origin: str, **kw: Any) -> None:
        out.append(Scenario(name, fmt, run, v, why, f"{LL}: {origin}", **kw))

    ev = {5 + 6 * k: 1.9 * 0.9**k for k in range(10)}
    S(
        "ll-healthy-csv",
        "csv",
        make_run(590, 10, lambda s: 2.0 * 0.96 ** (s / 10) + 0.02, None, None, first=0, eval_every=0),
        ["healthy"],
        "60 rows of loss 2.0 x 0.96^i + 0.02: healthy.",
        "losslint demo (healthy.csv)",
    )
    out[-1].run.evals = [{"step": (5 + 6 * k) * 10, "eval_loss": round(v, 6)} for k, v in enumerate(ev.values())]
    S(
        "ll-nan-jsonl",
        "jsonl",
        make_run(39, 1, lambda s: NAN if s == 30 else 1.8 * 0.95**s, first=0),
        ["nonfinite"],
        "40 steps of 1.8 x 0.95^i with NaN at step 30: non-finite.",
        "losslint demo (nan.jsonl)",
    )
    S(
        "ll-diverging-csv",
        "csv",
        make_run(390, 10, lambda s: 1.0 + 0.003 * s, first=0),
        ["diverging", "not-learning"],
        "loss rising linearly 1.0 -> 2.17 over 40 rows, never below its start: diverging "
        "(+117%, +1.17), and not learning (it never got 5% below where it started).",
        "losslint demo (diverging.csv)",
    )
    S(
        "ll-spike-jsonl",
        "jsonl",
        make_run(29, 1, lambda s: 25.0 if s == 15 else 1.5 * 0.97**s, first=0),
        ["healthy"],
        "loss 1.5 x 0.97^i with one log of 25.0 at step 15, back on the curve at the next: one spike, "
        "recovered. Healthy.",
        "losslint demo (spike.jsonl)",
    )
    ll = make_run(49, 1, lambda s: 2.0 * 0.95**s, first=0, lr=const(1e-3))
    ll.evals = [
        {"step": 7 if s == 40 else s, "eval_loss": round(1.9 * 0.93**k if k < 8 else [1.2, 1.35, 1.55, 1.8][k - 8], 6)}
        for k, s in enumerate(range(4, 49, 4))
    ]
    S(
        "ll-overfit-state",
        "state",
        ll,
        ["overfitting"],
        "train loss 2.0 x 0.95^i over 50 steps; eval every 4 steps falls 1.9 -> 1.06 at step 32 then rises 1.2, 1.35, "
        "1.55, 1.8 (+70%) to the end; one eval entry is mislogged with step 7. Overfitting from step 32.",
        "losslint demo (trainer_state.json)",
        onset_step=32,
        eval_interval=4,
    )
    tbr = make_run(39, 1, lambda s: NAN if s == 30 else 1.8 * 0.95**s, first=0)
    tbr.evals = [{"step": s, "eval_loss": round(1.9 * 0.93 ** (s // 6), 6)} for s in range(0, 40, 6)]
    S(
        "ll-tb-nan",
        "tb",
        tbr,
        ["nonfinite"],
        "TensorBoard: train/loss 1.8 x 0.95^i with NaN at step 30, an eval curve falling: non-finite.",
        "losslint demo (events.out.tfevents.*-losslint-demo)",
        opts={"names": {"eval_loss": "Loss/val"}},
    )
    base = decay(2.2, 1.1, 400)
    res = make_run(400, 5, noisy(base, rng, 0.02), noisy(const(0.9), rng, 0.05), warm_linear(2e-4, 400, 20))
    extra_rows = [dict(e, loss=round(e["loss"] + rng.gauss(0, 0.02), 6)) for e in res.train if 200 <= e["step"] <= 250]
    res.train = [e for e in res.train if e["step"] <= 250] + extra_rows + [e for e in res.train if e["step"] > 250]
    S(
        "ll-resumed-repeats-jsonl",
        "jsonl",
        res,
        ["healthy"],
        "a run resumed from its step-200 checkpoint after a crash at 250: steps 200-250 appear twice (the second "
        "time with fresh batch noise); the loss falls 2.2 -> 1.1 throughout. Healthy.",
        "README 'step bugs' (step_backtrack, duplicate steps)",
    )
    S(
        "ll-overfit-onset-csv",
        "csv",
        make_run(
            1000,
            10,
            noisy(decay(2.4, 0.6, 1000), rng, 0.02),
            None,
            const(1e-4),
            eval_every=50,
            eval_loss=lambda s: (
                (2.5 - 0.9 * s / 400 if s <= 400 else 1.6 + 0.5 * (s - 400) / 600) + rng.gauss(0, 0.005)
            ),
        ),
        ["overfitting"],
        "train 2.4 -> 0.6; eval every 50 steps falls to 1.6 at step 400 and rises steadily to 2.1 "
        "(+31%) by step 1000. Overfitting from step 400.",
        "README 'overfitting onset'",
        onset_step=400,
        eval_interval=50,
    )
    S(
        "ll-plateau-csv",
        "csv",
        make_run(
            1000,
            10,
            lambda s: max(1.05, 2.4 - 1.35 * s / 300) + rng.gauss(0, 0.01),
            None,
            const(1e-4),
            eval_every=100,
            eval_loss=lambda s: max(1.2, 2.5 - 1.3 * s / 300) + rng.gauss(0, 0.003),
        ),
        ["healthy"],
        "loss falls 2.4 -> 1.05 by step 300 and stays there (converged) for the remaining 70%, eval "
        "loss the same: a plateau after convergence, healthy.",
        "README 'plateau'",
    )


def trainspotter(out: list[Scenario]) -> None:
    rng = random.Random(303)

    def S(name: str, fmt: str, run: Run, v: list[str], why: str, origin: str, **kw: Any) -> None:
        out.append(Scenario(name, fmt, run, v, why, f"{TS}: {origin}", **kw))

    n = 600
    S(
        "ts-divergence-csv",
        "csv",
        make_run(
            n,
            5,
            lambda s: (2.2 - 0.9 * s / 300 if s <= 300 else 1.3 * math.exp((s - 300) / 110)) + rng.gauss(0, 0.02),
            noisy(const(1.2), rng, 0.1),
            const(3e-3),
        ),
        ["diverging"],
        "loss falls to 1.3 at step 300, then grows exponentially to ~20 by step 600: diverging.",
        "examples/divergence.csv (README)",
    )
    spikes = {150: 6.5, 330: 7.0, 470: 5.8}
    S(
        "ts-spikes-recovered-csv",
        "csv",
        make_run(
            n,
            5,
            lambda s: spikes.get(s, decay(2.2, 1.0, n)(s) + rng.gauss(0, 0.02)),
            noisy(const(1.0), rng, 0.1),
            warm_cosine(2e-4, n, 30),
        ),
        ["healthy"],
        "a healthy falling loss with three one-log spikes (5.8-7.0, at steps 150, 330, 470), each back "
        "on the curve at the next log: healthy.",
        "detectors/spikes.py (README 'loss spikes')",
    )
    S(
        "ts-overfit-csv",
        "csv",
        make_run(
            n,
            5,
            noisy(decay(2.2, 0.4, n), rng, 0.02),
            None,
            const(1e-4),
            eval_every=30,
            eval_loss=lambda s: (
                (2.3 - 0.8 * s / 240 if s <= 240 else 1.5 + 0.45 * (s - 240) / 360) + rng.gauss(0, 0.004)
            ),
        ),
        ["overfitting"],
        "train 2.2 -> 0.4; eval falls to 1.5 at step 240 then rises to 1.95 (+30%): overfitting from step 240.",
        "README 'overfitting onset'",
        onset_step=240,
        eval_interval=30,
    )
    S(
        "ts-coarse-warmup-csv",
        "csv",
        make_run(
            200, 5, noisy(decay(2.0, 1.1, 200), rng, 0.02), noisy(const(1.0), rng, 0.1), warm_linear(5e-5, 200, 20)
        ),
        ["healthy"],
        "transformers' example: a 20-step warm-up logged every 5 steps (each logged interval covers 25% "
        "of the lr range), then linear decay; loss falls. Healthy.",
        "CHANGELOG 0.1.1 (lr_schedule discontinuity)",
    )
    S(
        "ts-eval-noise-csv",
        "csv",
        make_run(
            n,
            5,
            noisy(decay(2.2, 1.2, n), rng, 0.02),
            None,
            const(1e-4),
            eval_every=30,
            eval_loss=lambda s: decay(2.3, 1.4, n)(s) * (1 + 0.03 * (1 if (s // 30) % 2 else -1)) + rng.gauss(0, 0.01),
        ),
        ["healthy"],
        "eval loss on a small eval set: it zig-zags +-3% from one eval to the next around a falling "
        "trend (2.3 -> 1.4), ending on an up-tick: noise, not a turn. Healthy.",
        "detectors/eval_noise.py",
    )
    S(
        "ts-csv-bom",
        "csv",
        make_run(n, 5, noisy(decay(2.2, 1.0, n), rng, 0.02), noisy(const(1.0), rng, 0.1), const(1e-4)),
        ["healthy"],
        "a healthy run saved as Excel's 'CSV UTF-8' (byte-order mark before `step`): healthy.",
        "CHANGELOG 0.2.2 (CSV with a byte-order mark)",
        opts={"bom": True},
    )
    S(
        "ts-csv-semicolon-diverging",
        "csv",
        make_run(
            n,
            5,
            lambda s: (2.2 - 0.9 * s / 200 if s <= 200 else 1.3 + 4.0 * (s - 200) / 400) + rng.gauss(0, 0.02),
            None,
            const(3e-3),
        ),
        ["diverging"],
        "a diverging run (1.3 at step 200 -> 5.3 at the end) saved with semicolons and decimal "
        "commas, as a spreadsheet does where the decimal mark is a comma: diverging.",
        "CHANGELOG 0.2.2 (semicolons and decimal commas)",
        opts={"sep": ";", "decimal": ","},
    )
    wb = make_run(
        n, 5, lambda s: (2.2 - 0.9 * s / 200 if s <= 200 else 1.3 + 3.0 * (s - 200) / 400) + rng.gauss(0, 0.02)
    )
    for e in wb.train:
        e["loss__MIN"] = round(e["loss"] - 0.05, 6)
        e["loss__MAX"] = round(e["loss"] + 0.05, 6)
        e.pop("epoch")
    S(
        "ts-wandb-export-csv",
        "csv",
        wb,
        ["diverging"],
        "a W&B chart export (`Step`, `run-7 - train/loss` and its __MIN/__MAX band columns) of a run whose loss "
        "falls to 1.3 and climbs to 4.3: diverging.",
        "CHANGELOG 0.2.0 (W&B chart exports)",
        opts={
            "name": "wandb_export_2026-02-10.csv",
            "names": {
                "step": "Step",
                "loss": "run-7 - train/loss",
                "loss__MIN": "run-7 - train/loss__MIN",
                "loss__MAX": "run-7 - train/loss__MAX",
            },
        },
    )
    S(
        "ts-lightning-overfit",
        "lightning",
        make_run(
            n,
            5,
            noisy(decay(2.3, 0.3, n), rng, 0.02),
            None,
            warm_cosine(2e-4, n, 20),
            eval_every=60,
            eval_loss=lambda s: 2.2 - 0.6 * s / 180 if s <= 180 else 1.6 + 0.6 * (s - 180) / 420,
        ),
        ["overfitting"],
        "Lightning CSVLogger metrics.csv (train_loss_step, val_loss, lr-AdamW/pg1, sparse rows): "
        "train 2.3 -> 0.3, val falls to 1.6 at step 180 and rises to 2.2 (+37%). Overfitting from step 180.",
        "CHANGELOG 0.2.0 (Lightning train_loss_step, lr-AdamW)",
        onset_step=180,
        eval_interval=60,
    )
    ker = make_run(
        20,
        1,
        lambda s: 0.9 * 0.82**s + 0.02,
        None,
        None,
        first=0,
        eval_every=1,
        eval_loss=lambda s: 0.6 * 0.8**s + 0.25 if s <= 6 else 0.31 + 0.035 * (s - 6),
    )
    S(
        "ts-keras-tb-overfit",
        "tb",
        ker,
        ["overfitting"],
        "Keras' TensorBoard callback: train/ and validation/ directories, each with `epoch_loss`; train falls "
        "0.92 -> 0.03 over 20 epochs, validation falls to 0.41 at epoch 6 then rises to 0.80. Overfitting from "
        "epoch 6.",
        "CHANGELOG 0.2.0 (Keras train/ and validation/ logdirs)",
        onset_step=6,
        eval_interval=1,
        opts={"names": {"loss": "epoch_loss", "eval_loss": "epoch_loss|val", "epoch": "-"}, "sub": "keras"},
    )
    S(
        "ts-tb-resumed",
        "tb",
        make_run(
            n,
            5,
            noisy(decay(2.2, 1.0, n), rng, 0.02),
            noisy(const(1.0), rng, 0.1),
            warm_cosine(2e-4, n, 20),
            eval_every=100,
            eval_loss=decay(2.3, 1.2, n),
        ),
        ["healthy"],
        "a run resumed from its step-300 checkpoint after a crash at 360: two event files, the second "
        "starting at 300 (below where the first ended); loss falls throughout. Healthy.",
        "CHANGELOG 0.2.0 (a resumed run's second event file)",
        opts={"sessions": [(0, 360), (300, n)]},
    )
    S(
        "ts-throughput-drop-jsonl",
        "jsonl",
        make_run(
            n,
            5,
            noisy(decay(2.2, 1.0, n), rng, 0.02),
            noisy(const(1.0), rng, 0.1),
            const(1e-4),
            extra=lambda s: {
                "train/samples_per_second": round((48 if s <= 300 else 3.9) * (1 + rng.gauss(0, 0.03)), 3)
            },
        ),
        ["slowdown"],
        "samples/s ~48 to step 300 and ~3.9 (12x slower) from there: a throughput regression; the loss is healthy.",
        "detectors/throughput.py (README 'throughput regressions')",
    )
    S(
        "ts-csv-nan-step-row",
        "csv",
        make_run(n, 5, noisy(decay(2.2, 1.0, n), rng, 0.02), noisy(const(1.0), rng, 0.1), const(1e-4)),
        ["healthy"],
        "a healthy CSV with one row whose step is `nan` (skipped): healthy.",
        "CHANGELOG 0.1.3 (a step that isn't a number)",
        opts={"nan_step_row": True},
    )


def runmedic(out: list[Scenario]) -> None:
    rng = random.Random(404)
    n = 300

    def S(name: str, fmt: str, run: Run, v: list[str], why: str, origin: str, **kw: Any) -> None:
        out.append(Scenario(name, fmt, run, v, why, f"{RM}: {origin}", **kw))

    S(
        "rm-nan-after-exploding-text",
        "text",
        make_run(
            n,
            5,
            lambda s: decay(2.2, 1.4, n)(s) if s < 150 else (1.4 * math.exp((s - 150) / 15) if s < 230 else NAN),
            lambda s: 1.0 if s < 150 else (20 * math.exp((s - 150) / 15) if s < 230 else NAN),
            const(1e-3),
        ),
        ["diverging", "nonfinite", "exploding-gradients"],
        "plain `step N loss X lr Y grad_norm G` lines: the loss grows exponentially from step 150 (1.4 -> ~280 by "
        "step 225), grad_norm with it (> 100 from step 180), then NaN from step 230: diverging, exploding "
        "gradients, non-finite.",
        "tests/test_checks.py::test_nan_after_exploding_loss",
    )
    S(
        "rm-nan-from-first-step-text",
        "text",
        make_run(n, 5, const(NAN), const(NAN), const(1e-4)),
        ["nonfinite"],
        "loss and grad_norm NaN from the first log: non-finite (a bug in the setup).",
        "tests/test_checks.py::test_nan_from_first_step_is_a_bug",
    )
    S(
        "rm-sudden-nan-text",
        "text",
        make_run(n, 5, lambda s: NAN if s >= 200 else decay(2.2, 1.2, n)(s) + rng.gauss(0, 0.02), None, const(1e-4)),
        ["nonfinite"],
        "a healthy loss, then NaN at every log from step 200 with no lead-up: non-finite.",
        "tests/test_checks.py::test_sudden_nan_without_lead_up",
    )
    S(
        "rm-divergence-text",
        "text",
        make_run(
            n,
            5,
            lambda s: (2.2 - 0.8 * s / 100 if s <= 100 else 1.4 + 2.5 * (s - 100) / 200) + rng.gauss(0, 0.02),
            None,
            const(2e-3),
        ),
        ["diverging"],
        "loss falls to 1.4 at step 100 and climbs to 3.9 at the end: diverging.",
        "tests/test_checks.py::test_divergence",
    )
    S(
        "rm-partial-regression-text",
        "text",
        make_run(
            n,
            5,
            lambda s: (2.2 - 1.2 * s / 150 if s <= 150 else 1.0 + 0.15 * (s - 150) / 150) + rng.gauss(0, 0.01),
            None,
            const(1e-4),
        ),
        ["healthy"],
        "loss falls to 1.0 at step 150, then drifts up to 1.15 (+15%, +0.15): a partial regression, "
        "short of divergence (>= 30% and >= 0.5). Healthy by the corpus definitions.",
        "tests/test_checks.py::test_partial_regression_is_warning_only",
    )
    sp = {100: 8.0, 180: 9.5, 250: 7.0}
    S(
        "rm-spikes-text",
        "text",
        make_run(n, 5, lambda s: sp.get(s, decay(2.2, 1.1, n)(s) + rng.gauss(0, 0.02)), None, const(1e-4)),
        ["healthy"],
        "three one-log loss spikes (7-9.5) on a falling loss, each recovered at the next log: healthy.",
        "tests/test_checks.py::test_spikes",
    )
    S(
        "rm-spikes-no-warmup-text",
        "text",
        make_run(
            n,
            5,
            lambda s: {5: 9.0, 10: 6.5, 15: 4.0}.get(s, decay(2.6, 1.1, n)(s) + rng.gauss(0, 0.02)),
            None,
            const(2e-4),
        ),
        ["healthy"],
        "no warm-up (constant lr from step 0): the first three logs spike (9.0, 6.5, 4.0) before the loss "
        "settles onto a healthy fall: start-up turbulence, healthy.",
        "tests/test_checks.py::test_spikes_blame_missing_warmup",
    )
    S(
        "rm-no-learning-uniform-text",
        "text",
        make_run(n, 5, lambda s: 10.3735 + rng.gauss(0, 0.002), None, const(1e-4)),
        ["not-learning"],
        "loss at 10.37 = ln 32,000 (a uniform guess over the vocabulary) at every log: not learning.",
        "tests/test_checks.py::test_no_learning_and_uniform_prediction",
    )
    S(
        "rm-zero-lr-text",
        "text",
        make_run(n, 5, noisy(const(2.1), rng, 0.05), None, const(0.0)),
        ["not-learning"],
        "lr 0.000e+00 on every line, loss ~2.1 throughout: not learning.",
        "tests/test_checks.py::test_zero_lr",
    )
    S(
        "rm-overfitting-text",
        "text",
        make_run(
            n,
            5,
            noisy(decay(2.2, 0.3, n), rng, 0.02),
            None,
            const(1e-4),
            eval_every=25,
            eval_loss=lambda s: 2.2 - 0.7 * s / 100 if s <= 100 else 1.5 + 0.6 * (s - 100) / 200,
        ),
        ["overfitting"],
        "train 2.2 -> 0.3; val_loss falls to 1.5 at step 100 and rises to 2.1 (+40%): overfitting from step 100.",
        "tests/test_checks.py::test_overfitting",
        onset_step=100,
        eval_interval=25,
    )
    S(
        "rm-val-worse-train-flat-text",
        "text",
        make_run(
            n,
            5,
            lambda s: max(1.0, 2.0 - s / 100) + rng.gauss(0, 0.01),
            None,
            const(1e-4),
            eval_every=25,
            eval_loss=lambda s: max(1.2, 2.1 - 0.9 * s / 100) + (0.024 if s == 300 else 0.0),
        ),
        ["healthy"],
        "train converged at 1.0 by step 100 and flat since; val converged at 1.2 and ticks up 2% at "
        "the last eval: train is not falling, the tick is within noise. Healthy.",
        "tests/test_checks.py::test_val_worse_but_train_flat_is_not_overfitting",
    )
    S(
        "rm-val-below-train-text",
        "text",
        make_run(
            n, 5, noisy(decay(2.4, 1.3, n), rng, 0.02), None, const(1e-4), eval_every=25, eval_loss=decay(2.0, 1.0, n)
        ),
        ["healthy"],
        "val loss below train loss all along (dropout and augmentation on train only), both falling: healthy.",
        "tests/test_checks.py::test_val_below_train",
    )
    gs = {80: 310.0, 160: 420.0, 240: 280.0}
    S(
        "rm-grad-norm-spikes-text",
        "text",
        make_run(
            n, 5, noisy(decay(2.2, 1.1, n), rng, 0.02), lambda s: gs.get(s, abs(rng.gauss(1.0, 0.1))), const(1e-4)
        ),
        ["exploding-gradients"],
        "grad_norm ~1 with three isolated spikes above 100 (310, 420, 280 at steps 80, 160, "
        "240): exploding gradients (>= 3 logs above 100), though the loss rides through.",
        "tests/test_checks.py::test_grad_norm_spikes",
    )
    S(
        "rm-periodic-slow-steps-jsonl",
        "jsonl",
        make_run(
            n,
            5,
            noisy(decay(2.2, 1.1, n), rng, 0.02),
            None,
            const(1e-4),
            extra=lambda s: {"step_time": 4.0 if s % 50 == 0 else round(0.4 + abs(rng.gauss(0, 0.02)), 4)},
        ),
        ["healthy"],
        "step_time 0.4 s, except every 50th step at 4.0 s (a checkpoint save): periodic, not a cliff. Healthy.",
        "tests/test_checks.py::test_periodic_slow_steps",
    )
    S(
        "rm-throughput-slowdown-csv",
        "csv",
        make_run(
            n,
            5,
            noisy(decay(2.2, 1.1, n), rng, 0.02),
            None,
            const(1e-4),
            extra=lambda s: {"tokens_per_second": round(12000 if s <= 150 else 900 + 50 * rng.random(), 1)},
        ),
        ["slowdown"],
        "tokens/s 12,000 to step 150, ~920 (13x slower) from there: a slowdown.",
        "tests/test_checks.py::test_throughput_slowdown",
    )
    S(
        "rm-nan-growing-lr-text",
        "text",
        make_run(
            n,
            5,
            lambda s: NAN if s > 200 else (decay(2.2, 1.3, n)(s) if s < 120 else 1.5 * math.exp((s - 120) / 25)),
            None,
            lambda s: 1e-4 * 1.04**s,
        ),
        ["nonfinite", "diverging"],
        "lr grows 4% per step without bound (a schedule bug, 1e-4 -> 0.36); the loss falls, "
        "then grows from step 120 to ~37 at step 200 and is NaN after: diverging, non-finite.",
        "tests/test_checks.py::test_nan_with_ever_growing_lr",
    )
    S(
        "rm-nanogpt-text-healthy",
        "text",
        make_run(
            2000,
            10,
            noisy(decay(10.9, 3.4, 2000, 3), rng, 0.03),
            None,
            warm_cosine(6e-4, 2000, 100),
            eval_every=250,
            eval_loss=decay(10.9, 3.5, 2000, 3),
        ),
        ["healthy"],
        "from-scratch GPT-2 pre-training (nanoGPT-like): the loss starts at ln 50,257 = 10.8 (a uniform "
        "guess, as a fresh model must) and falls to 3.4; val follows. Healthy.",
        "tests/test_loaders.py::test_text_nanogpt_style",
    )
    S(
        "rm-hf-strings-console",
        "console",
        make_run(
            n,
            10,
            noisy(decay(2.2, 1.1, n), rng, 0.02),
            noisy(const(0.9), rng, 0.05),
            warm_linear(2e-4, n, 20),
            eval_every=100,
            eval_loss=decay(2.3, 1.2, n),
        ),
        ["healthy"],
        "transformers 5 console: every value printed as a string ('loss': '1.234'): healthy.",
        "tests/test_loaders.py::test_text_hf_values_as_strings",
        opts={"strings": True},
    )
    S(
        "rm-lightning-sparse-healthy",
        "lightning",
        make_run(
            n,
            5,
            noisy(decay(2.2, 1.1, n), rng, 0.02),
            None,
            warm_cosine(1e-3, n, 10),
            eval_every=50,
            eval_loss=decay(2.3, 1.2, n),
        ),
        ["healthy"],
        "Lightning metrics.csv with sparse columns (train rows and val rows apart): healthy.",
        "tests/test_loaders.py::test_lightning_csv_with_sparse_columns",
    )


def finetune_doctor(out: list[Scenario]) -> None:
    rng = random.Random(505)
    n = 1000

    def S(name: str, fmt: str, run: Run, v: list[str], why: str, origin: str, **kw: Any) -> None:
        out.append(Scenario(name, fmt, run, v, why, f"{FD}: {origin}", **kw))

    lr = warm_linear(2e-4, n, 30)
    tr = lambda s: 1.8 * math.exp(-3 * s / n) + 0.25 + rng.gauss(0, 0.02)
    gr = lambda s: 0.8 * math.exp(-s / n) + abs(rng.gauss(0, 0.03))
    ev = lambda s: 1.6 * math.exp(-3 * s / n) + 0.45 + rng.gauss(0, 0.004)
    S(
        "fd-healthy-state",
        "state",
        make_run(n, 10, tr, gr, lr, eval_every=100, eval_loss=ev, epochs=3.0),
        ["healthy"],
        "3 epochs, loss 2.05 -> 0.34, eval 2.05 -> 0.53 falling at every eval: healthy.",
        "tests/helpers.py::make_state, tests/test_finetune_doctor.py::test_healthy_run_is_quiet",
    )
    S(
        "fd-eval-jitter-state",
        "state",
        make_run(
            n,
            10,
            tr,
            gr,
            lr,
            eval_every=100,
            epochs=3.0,
            eval_loss=lambda s: max(0.62, 1.6 * math.exp(-6 * s / n) + 0.45) + rng.gauss(0, 0.0005),
        ),
        ["healthy"],
        "eval converges to 0.62 by step 500 and jitters +-0.0005 there to the end: equivalent "
        "checkpoints, not overfitting. Healthy.",
        "tests/test_finetune_doctor.py::test_noise_band_treats_jitter_as_equivalent",
    )
    ov = lambda s: (
        1.6 * math.exp(-3 * min(s, 400) / n) + 0.45 + (0.35 * (s - 400) / n if s > 400 else 0) + rng.gauss(0, 0.004)
    )
    S(
        "fd-overfit-state",
        "state",
        make_run(n, 10, tr, gr, lr, eval_every=100, eval_loss=ov, epochs=3.0),
        ["overfitting"],
        "eval falls to 0.93 at step 400, then rises 0.35 x (s - 400)/1000 to 1.14 (+22%) while train "
        "keeps falling: overfitting from step 400.",
        "tests/test_finetune_doctor.py::test_real_overfitting_is_outside_the_band",
        onset_step=400,
        eval_interval=100,
    )
    acc = lambda s: {"eval_accuracy": round(0.55 + 0.36 * (1 - math.exp(-3 * s / n)), 4)}
    S(
        "fd-metric-disagree-state",
        "state",
        make_run(
            n,
            10,
            tr,
            gr,
            lr,
            eval_every=100,
            eval_loss=ov,
            eval_extra=acc,
            epochs=3.0,
            best_metric=round(0.55 + 0.36 * (1 - math.exp(-3)), 4),
            best_global_step=1000,
            best_model_checkpoint="out/checkpoint-1000",
            metric_for_best_model="eval_accuracy",
            greater_is_better=True,
        ),
        ["healthy"],
        "a classifier: eval loss rises 22% after step 400 while eval_accuracy (metric_for_best_model, "
        "best at step 1000) keeps rising 0.64 -> 0.89: over-confidence, not lost generalisation. Healthy.",
        "tests/test_finetune_doctor.py::test_loss_and_task_metric_disagreeing_is_not_called_overfitting",
        objective="classification",
    )
    acc2 = lambda s: {"eval_accuracy": round(0.62 + 0.26 * s / 400 if s <= 400 else 0.88 - 0.12 * (s - 400) / 600, 4)}
    S(
        "fd-metric-overfit-state",
        "state",
        make_run(
            n,
            10,
            tr,
            gr,
            lr,
            eval_every=100,
            eval_loss=ov,
            eval_extra=acc2,
            epochs=3.0,
            best_metric=0.88,
            best_global_step=400,
            best_model_checkpoint="out/checkpoint-400",
            metric_for_best_model="eval_accuracy",
            greater_is_better=True,
        ),
        ["overfitting"],
        "a classifier whose eval_accuracy (metric_for_best_model) peaks at 0.88 at step 400 and falls "
        "to 0.76 (-14%) by the end while train loss falls and eval loss rises: overfitting from step 400.",
        "tests/test_finetune_doctor.py::test_the_trainers_own_selection_metric_is_recovered_from_best_metric",
        objective="classification",
        onset_step=400,
        eval_interval=100,
    )
    S(
        "fd-no-eval-state",
        "state",
        make_run(n, 10, tr, gr, lr, epochs=3.0),
        ["healthy"],
        "no eval set; loss 2.05 -> 0.34: healthy (overfitting cannot be judged).",
        "tests/test_finetune_doctor.py::test_no_eval_warns_with_concrete_settings",
    )
    S(
        "fd-loss-zero-masked-state",
        "state",
        make_run(n, 10, lambda s: -0.0 if (s // 10) % 3 else 0.0, const(0.0), lr),
        ["not-learning"],
        "loss 0.0 / -0.0 from the first log (every label masked, as a public Gemma fine-tune "
        "logged): nothing scored, not learning.",
        "tests/test_finetune_doctor.py::test_loss_stuck_at_zero_means_masked_labels",
    )
    S(
        "fd-loss-going-up-state",
        "state",
        make_run(
            n,
            10,
            lambda s: 1.2 + 2.0 * s / n + rng.gauss(0, 0.02),
            gr,
            lr,
            eval_every=200,
            eval_loss=lambda s: 1.3 + 2.2 * s / n,
        ),
        ["diverging", "not-learning"],
        "loss rises from 1.2 at the start to 3.2 at the end (never below its start), "
        "eval with it: diverging, and not learning (it never got 5% below where it started).",
        "tests/test_finetune_doctor.py::test_loss_going_up_says_so",
    )
    S(
        "fd-sporadic-fp16-overflow-state",
        "state",
        make_run(
            4000,
            10,
            lambda s: 1.8 * math.exp(-3 * s / 4000) + 0.25 + rng.gauss(0, 0.02),
            lambda s: INF if s in (200, 610) else 0.8 * math.exp(-s / 4000) + abs(rng.gauss(0, 0.03)),
            warm_linear(2e-4, 4000, 100),
            eval_every=400,
            eval_loss=lambda s: 1.6 * math.exp(-3 * s / 4000) + 0.45,
        ),
        ["healthy"],
        "fp16: grad_norm inf at steps 200 and 610 of 4,000 (the loss scaler skipped those steps), the "
        "loss smooth throughout: healthy.",
        "tests/test_finetune_doctor.py::test_sporadic_fp16_overflow_is_not_a_crisis",
    )
    S(
        "fd-persistent-nan-grad-state",
        "state",
        make_run(n, 10, tr, lambda s: NAN if s >= 900 else gr(s), lr, eval_every=100, eval_loss=ev),
        ["nonfinite"],
        "grad_norm NaN at every log from step 900 to the end (11 logs): persistent, non-finite.",
        "tests/test_finetune_doctor.py::test_persistent_nan_gradients_are_critical",
    )
    S(
        "fd-opening-grad-spikes-state",
        "state",
        make_run(
            n,
            10,
            tr,
            lambda s: {10: 300.0, 20: 120.0, 30: 50.0}.get(s, 0.5 + abs(rng.gauss(0, 0.03))),
            lr,
            eval_every=100,
            eval_loss=ev,
        ),
        ["healthy"],
        "grad_norm 300, 120, 50 at the first three logs (warm-up), ~0.5 after: healthy.",
        "tests/test_finetune_doctor.py::test_opening_steps_are_not_spikes",
    )
    S(
        "fd-loss-spikes-state",
        "state",
        make_run(n, 10, lambda s: {400: 5.0, 600: 5.0, 800: 5.0}.get(s, tr(s)), gr, lr, eval_every=100, eval_loss=ev),
        ["healthy"],
        "three one-log loss spikes to 5.0 (steps 400, 600, 800) on a healthy falling loss, each "
        "recovered at the next log; eval falls throughout: healthy.",
        "tests/test_finetune_doctor.py::test_real_loss_spikes_fire",
    )
    S(
        "fd-schedule-ends-zero-state",
        "state",
        make_run(n, 10, tr, gr, lambda s: 2e-4 * (n - s) / n, eval_every=100, eval_loss=ev),
        ["healthy"],
        "linear schedule reaching 0.0 exactly on the last step: healthy.",
        "tests/test_finetune_doctor.py::test_schedule_ending_at_zero_on_the_last_step_is_fine",
    )
    S(
        "fd-dead-tail-state",
        "state",
        make_run(
            n,
            10,
            lambda s: tr(min(s, 700)),
            gr,
            lambda s: 0.0 if s > 700 else lr(s),
            eval_every=100,
            eval_loss=lambda s: 1.6 * math.exp(-3 * min(s, 700) / n) + 0.45,
        ),
        ["not-learning"],
        "learning_rate 0.0 for the last 30% of the run (steps 710-1000; a schedule configured "
        "shorter than the run): nothing trained there, the loss flat. Not learning for that stretch.",
        "tests/test_finetune_doctor.py::test_a_long_dead_tail_is_flagged",
    )
    S(
        "fd-incomplete-state",
        "state",
        make_run(n, 10, tr, gr, lr, eval_every=100, eval_loss=ev, max_steps=4000, should_training_stop=False),
        ["healthy"],
        "a checkpoint's trainer_state: global_step 1,000 of max_steps 4,000, the end-of-training "
        "summary row present, should_training_stop false; the curves healthy so far. Healthy (incomplete).",
        "tests/test_finetune_doctor.py::test_incomplete_run",
    )

    def epoch_loss(s: int, nn: int = 700) -> float:
        e = int(10 * s / nn)
        return 1.95 * 0.8**e + 0.3 + rng.gauss(0, 0.01) - 0.05 * ((10 * s / nn) - e)

    S(
        "fd-epoch-boundary-state",
        "state",
        make_run(700, 10, epoch_loss, gr, warm_linear(2e-4, 700, 20), epochs=10.0),
        ["healthy"],
        "10 epochs: the loss drops in a step at each epoch boundary (the model has seen those "
        "examples) and drifts down within each: the staircase of multi-epoch training. Healthy.",
        "tests/test_finetune_doctor.py::test_loss_jumps_at_every_epoch_boundary_are_not_called_instability",
    )
    S(
        "fd-grpo-zero-loss-state",
        "state",
        make_run(
            n,
            10,
            lambda s: round(0.04 * 0.001 * s / n * 5, 6) if s > 10 else 0.0,
            gr,
            const(1e-6),
            extra=lambda s: {
                "reward": round(0.2 + 0.5 * (1 - math.exp(-3 * s / n)) + rng.gauss(0, 0.02), 4),
                "reward_std": round(0.3 + rng.gauss(0, 0.01), 4),
                "frac_reward_zero_std": round(0.3 + rng.gauss(0, 0.02), 4),
                "kl": round(0.001 * s / n * 5, 6),
                "completions/mean_length": round(180 + rng.gauss(0, 5), 1),
            },
        ),
        ["healthy"],
        "GRPO: loss 0.0 at the start and ~beta x KL after (0 - 2e-4), reward rising 0.2 -> 0.68, "
        "reward_std ~0.3, kl up to 0.005: a healthy RL run (GRPO's loss is not a supervised loss).",
        "tests/test_finetune_doctor.py::test_rl_runs_are_recognised_and_not_misread",
        objective="rl",
    )
    S(
        "fd-dpo-healthy-state",
        "state",
        make_run(
            n,
            10,
            lambda s: 0.6931 * math.exp(-1.2 * s / n) + rng.gauss(0, 0.02),
            gr,
            lr,
            extra=lambda s: {
                "rewards/chosen": round(0.4 * s / n + rng.gauss(0, 0.05), 4),
                "rewards/rejected": round(-1.0 * s / n + rng.gauss(0, 0.05), 4),
                "rewards/margins": round(1.4 * s / n + rng.gauss(0, 0.05), 4),
                "rewards/accuracies": round(min(1.0, 0.5 + 0.35 * s / n + rng.gauss(0, 0.03)), 4),
                "logps/chosen": round(-120 + 8 * s / n + rng.gauss(0, 1), 2),
                "logps/rejected": round(-125 - 20 * s / n + rng.gauss(0, 1), 2),
            },
        ),
        ["healthy"],
        "DPO: loss from ln 2 = 0.693 to 0.21, margins 0 -> 1.4, chosen rewards up, rejected down, "
        "accuracies 0.5 -> 0.85: healthy preference learning.",
        "tests/test_finetune_doctor.py::test_dpo_is_not_mistaken_for_rl",
        objective="preference",
    )


def preference_rl(out: list[Scenario]) -> None:
    """DPO/GRPO situations (issue 21 section 2; finetune-doctor's rl_run / dpo tests); trl's metric names."""
    rng = random.Random(606)
    n = 500

    def dpo(loss: Fn, chosen: Fn, margins: Fn, accs: Fn, every: int = 5, **kw: Any) -> Run:
        return make_run(
            n,
            every,
            loss,
            noisy(const(3.0), rng, 0.3),
            warm_linear(5e-7, n, 25),
            extra=lambda s: {
                "rewards/chosen": round(chosen(s) + rng.gauss(0, 0.03), 4),
                "rewards/rejected": round(chosen(s) - margins(s) + rng.gauss(0, 0.03), 4),
                "rewards/margins": round(margins(s) + rng.gauss(0, 0.03), 4),
                "rewards/accuracies": round(min(1.0, max(0.0, accs(s) + rng.gauss(0, 0.03))), 4),
                "logps/chosen": round(-150 + 10 * chosen(s) + rng.gauss(0, 0.5), 2),
                "logps/rejected": round(-150 + 10 * (chosen(s) - margins(s)) + rng.gauss(0, 0.5), 2),
            },
            **kw,
        )

    sp = {120: 2.9, 285: 3.4, 410: 2.6}
    S = lambda *a, **k: out.append(Scenario(*a, **k))
    S(
        "pref-dpo-spikes-state",
        "state",
        dpo(
            lambda s: sp.get(s, 0.6931 * math.exp(-1.5 * s / n) + abs(rng.gauss(0, 0.03))),
            lambda s: 0.2 * s / n,
            lambda s: 2.0 * s / n,
            lambda s: 0.5 + 0.4 * s / n,
        ),
        ["healthy"],
        "DPO per-step loss from ln 2 = 0.693 falling to 0.16, with three isolated one-batch spikes "
        "(2.6-3.4: a hard batch); margins rise 0 -> 2, accuracies 0.5 -> 0.9: healthy.",
        f"{I21} section 1 (a DPO run called a plateau); {FD}: test_dpo_is_not_mistaken_for_rl",
        objective="preference",
    )
    S(
        "pref-dpo-not-learning-state",
        "state",
        dpo(lambda s: 0.6931 + rng.gauss(0, 0.004), lambda s: 0.0, lambda s: 0.0, lambda s: 0.5),
        ["not-learning"],
        "DPO at lr too low to move anything: loss stays at ln 2 = 0.693, margins ~0, accuracies ~0.5: not learning.",
        f"{I21} section 2 (preference signatures)",
        objective="preference",
    )
    S(
        "pref-dpo-displacement-state",
        "state",
        dpo(
            lambda s: 0.6931 * math.exp(-2 * s / n) + abs(rng.gauss(0, 0.02)),
            lambda s: -3.0 * s / n,
            lambda s: 4.0 * s / n,
            lambda s: 0.5 + 0.45 * s / n,
        ),
        ["likelihood-displacement"],
        "DPO: margins grow 0 -> 4 while rewards/chosen fall 0 -> -3 (the chosen "
        "responses' log-probabilities fall too): likelihood displacement.",
        f"{I21} section 2 (likelihood displacement)",
        objective="preference",
    )

    def grpo(
        reward: Fn,
        kl: Fn,
        length: Fn,
        zero_std: Fn,
        entropy: Fn | None = None,
        clipped: Fn | None = None,
        loss: Fn | None = None,
        reward_sd: float = 0.02,
    ) -> Run:
        def extra(s: int) -> dict[str, Any]:
            e = {
                "reward": round(reward(s) + (rng.gauss(0, reward_sd) if reward_sd else 0.0), 4),
                "reward_std": round(max(0.0, 0.3 * (1 - zero_std(s)) + rng.gauss(0, 0.01)), 4),
                "frac_reward_zero_std": round(min(1.0, max(0.0, zero_std(s) + rng.gauss(0, 0.01))), 4),
                "kl": round(kl(s), 6),
                "completions/mean_length": round(length(s) + rng.gauss(0, 3), 1),
                "completions/clipped_ratio": round(clipped(s) if clipped else 0.02, 4),
            }
            if entropy:
                e["entropy"] = round(entropy(s) + rng.gauss(0, 0.01), 4)
            return e

        return make_run(
            n, 5, loss or (lambda s: round(0.04 * kl(s), 6)), noisy(const(0.3), rng, 0.03), const(1e-6), extra=extra
        )

    S(
        "rl-grpo-healthy-state",
        "state",
        grpo(
            lambda s: 0.1 + 0.6 * (1 - math.exp(-3 * s / n)),
            lambda s: 0.05 * s / n,
            lambda s: 200 - 20 * s / n,
            lambda s: 0.3,
            entropy=lambda s: 1.2 - 0.3 * s / n,
        ),
        ["healthy"],
        "GRPO: loss = 0.04 x kl (0.0 at the start), reward 0.1 -> 0.67, kl up to 0.05, entropy 1.2 -> 0.9, "
        "lengths ~200: healthy.",
        f"{I21} section 1 (a GRPO run with loss 0.0 called not decreasing)",
        objective="rl",
    )
    S(
        "rl-grpo-no-signal-state",
        "state",
        grpo(lambda s: 0.0, lambda s: 0.0, lambda s: 150, lambda s: 0.97, reward_sd=0.0),
        ["no-learning-signal", "not-learning"],
        "GRPO on a task too hard for the model: every group's completions "
        "score 0 (frac_reward_zero_std ~0.97, reward_std ~0), the mean reward is 0.0 at every log, kl 0: no learning "
        "signal, and the reward never rises.",
        f"{I21} section 2 (reward_std -> 0)",
        objective="rl",
    )
    S(
        "rl-grpo-kl-blowup-state",
        "state",
        grpo(
            lambda s: 0.2 + 0.3 * s / n,
            lambda s: 0.02 if s < 250 else 0.02 * math.exp((s - 250) / 50),
            lambda s: 180,
            lambda s: 0.3,
        ),
        ["kl-blowup"],
        "GRPO: kl ~0.02 to step 250, then growing exponentially to ~3 (above 1 nat for the last 25% "
        "of logs); reward still creeping up: KL blow-up.",
        f"{I21} section 2 (KL blowing up)",
        objective="rl",
    )
    S(
        "rl-grpo-reward-falling-state",
        "state",
        grpo(
            lambda s: 0.2 + 0.5 * s / 250 if s <= 250 else 0.7 - 0.5 * (s - 250) / 250,
            lambda s: 0.03,
            lambda s: 180,
            lambda s: 0.3,
        ),
        ["reward-falling"],
        "GRPO: reward rises 0.2 -> 0.7 at step 250, then falls back to 0.2 by the end (25x its "
        "batch noise): reward falling.",
        f"{I21} section 2 (reward falling)",
        objective="rl",
    )
    S(
        "rl-grpo-length-collapse-state",
        "state",
        grpo(lambda s: 0.3 + 0.4 * s / n, lambda s: 0.05, lambda s: 220 * math.exp(-3 * s / n) + 12, lambda s: 0.3),
        ["length-collapse"],
        "GRPO: mean completion length 232 -> 23 tokens (10%) and staying there: length collapse.",
        f"{I21} section 2 (completion length collapsing)",
        objective="rl",
    )
    S(
        "rl-grpo-length-pinned-state",
        "state",
        grpo(
            lambda s: 0.2 + 0.3 * s / n,
            lambda s: 0.05,
            lambda s: min(512, 300 + 400 * s / n),
            lambda s: 0.3,
            clipped=lambda s: min(1.0, 0.05 + 1.9 * s / n),
        ),
        ["length-pinned"],
        "GRPO: completions/clipped_ratio rises to 1.0 by mid-run (every completion hits "
        "max_completion_length 512) and stays: length pinned at the maximum.",
        f"{I21} section 2 (pinned at the maximum)",
        objective="rl",
    )
    S(
        "rl-grpo-entropy-collapse-state",
        "state",
        grpo(
            lambda s: 0.2 + 0.4 * s / n,
            lambda s: 0.05,
            lambda s: 180,
            lambda s: 0.3,
            entropy=lambda s: 1.4 * math.exp(-5 * s / n) + 0.02,
        ),
        ["entropy-collapse"],
        "GRPO: policy entropy 1.42 -> 0.03 (2%) and staying there: entropy collapse.",
        f"{I21} section 2 (entropy collapse)",
        objective="rl",
    )


def issues(out: list[Scenario]) -> None:
    """Situations a user listed (issues 12 and 21), each written from its description."""
    rng = random.Random(707)

    def S(name: str, fmt: str, run: Run, v: list[str], why: str, origin: str, **kw: Any) -> None:
        out.append(Scenario(name, fmt, run, v, why, origin, **kw))

    vals = [10, 8, 9, 11, 15, 25]
    S(
        "short-blowup-jsonl",
        "jsonl",
        make_run(60, 10, lambda s: float(vals[s // 10 - 1]), None, const(1e-3)),
        ["diverging"],
        "six logs: 10, 8, 9, 11, 15, 25: the last three climb to 3x the best: diverging (a 3-point "
        "median would hide it).",
        f"{I21} section 3 (short runs and the last few logs)",
    )
    S(
        "short-evals-rising-state",
        "state",
        make_run(
            60,
            5,
            lambda s: 2.2 - 0.016 * s,
            noisy(const(1), rng, 0.05),
            const(1e-4),
            eval_every=12,
            eval_loss=lambda s: [0, 2.10, 1.95, 2.10, 2.30, 2.50][s // 12],
        ),
        ["overfitting"],
        "12 train logs falling 2.1 -> 1.24; five evals 2.10, 1.95, 2.10, 2.30, 2.50: three rising "
        "in a row to +28% over the best: overfitting from step 24.",
        f"{I21} section 3 (three evals rising in a row)",
        onset_step=24,
        eval_interval=12,
    )
    S(
        "short-healthy-5-jsonl",
        "jsonl",
        make_run(50, 10, lambda s: [0, 2.4, 2.0, 1.8, 1.7, 1.62][s // 10], None, const(1e-4)),
        ["healthy"],
        "five logs, 2.4, 2.0, 1.8, 1.7, 1.62: a short healthy run.",
        f"{I21} section 3",
    )
    S(
        "short-healthy-3-csv",
        "csv",
        make_run(30, 10, lambda s: [0, 2.1, 1.9, 1.8][s // 10], None, const(1e-4)),
        ["healthy"],
        "three logs, 2.1, 1.9, 1.8: a short healthy run.",
        f"{I21} section 3",
    )
    S(
        "short-nan-4-jsonl",
        "jsonl",
        make_run(40, 10, lambda s: [0, 2.1, 1.9, NAN, NAN][s // 10], None, const(1e-4)),
        ["nonfinite"],
        "four logs, 2.1, 1.9, NaN, NaN: non-finite.",
        f"{I21} section 3",
    )
    S(
        "short-loss-up-csv",
        "csv",
        make_run(80, 10, lambda s: [0, 2.0, 1.8, 1.7, 1.9, 2.4, 3.1, 4.0, 5.2][s // 10], None, const(1e-3)),
        ["diverging"],
        "eight logs: 2.0, 1.8, 1.7, 1.9, 2.4, 3.1, 4.0, 5.2: 3x the best by the end: diverging.",
        f"{I21} section 3",
    )
    S(
        "nan-as-zero-state",
        "state",
        make_run(
            300,
            1,
            lambda s: (
                0.0
                if (s > 120 and s % 7 in (0, 3))
                else (decay(2.2, 1.3, 300)(s) + rng.gauss(0, 0.03)) * (6.0 if s > 120 and s % 11 == 5 else 1.0)
            ),
            lambda s: NAN if (s > 120 and s % 7 in (0, 3)) else abs(rng.gauss(1.0, 0.1)),
            warm_linear(2e-4, 300, 10),
        ),
        ["nonfinite"],
        "logging_steps=1: from step 121, exact 0.0 losses at 2 of every 7 steps (HF's "
        "logging_nan_inf_filter writes a NaN step's loss as 0.0; those steps' grad_norm is NaN) between large "
        "loss spikes: the loss went NaN at those steps. Non-finite.",
        f"{I12} (NaN disguised as 0.0)",
    )
    S(
        "eval-improving-train-flat-state",
        "state",
        make_run(
            2000,
            10,
            lambda s: (2.4 - 1.2 * s / 150 if s < 150 else 1.2 - 0.04 * (s - 150) / 1850) + rng.gauss(0, 0.04),
            noisy(const(0.5), rng, 0.05),
            warm_cosine(2e-4, 2000, 60),
            eval_every=200,
            eval_loss=lambda s: 1.25 - 0.034 * s / 2000,
        ),
        ["healthy"],
        "QLoRA: train loss falls fast in the first 150 steps, then only 3% over the rest (noise 0.04); "
        "eval loss improves at every eval (1.25 -> 1.216, -2.7%): a model whose eval keeps improving is learning. "
        "Healthy.",
        f"{I12} ('not learning' while the eval loss improves); blind2 b2-console-qwen3-nohup",
    )
    S(
        "eval-noise-floor-state",
        "state",
        make_run(
            1000,
            10,
            noisy(decay(1.5, 0.004, 1000, 6), rng, 0.001),
            noisy(const(0.3), rng, 0.03),
            warm_linear(1e-4, 1000, 30),
            eval_every=50,
            eval_loss=lambda s: max(0.012, 1.4 * math.exp(-8 * s / 1000)) + (0.004 if (s // 50) % 2 else 0.0),
        ),
        ["healthy"],
        "eval loss near zero: it reaches 0.012 by step 600 and jitters 0.012 / 0.016 from one eval to "
        "the next to the end (+33% relative, +0.004 absolute, the jitter it showed all along): the noise floor, "
        "not overfitting. Healthy.",
        f"{I12} (overfitting at the noise floor)",
    )
    S(
        "overfit-mild-sustained-state",
        "state",
        make_run(
            200,
            5,
            noisy(decay(4.0, 2.9, 200, 3), rng, 0.01),
            noisy(const(1), rng, 0.05),
            const(1e-4),
            eval_every=10,
            eval_loss=lambda s: 3.4 - 0.43 * s / 120 if s <= 120 else 2.97 + 0.0225 * (s - 120) / 10,
        ),
        ["overfitting"],
        "eval falls to 2.970 at step 120, then rises at each of its last 8 evals to 3.150 (+6.1%) "
        "while train keeps falling: mild, sustained overfitting from step 120.",
        f"{I12} (mild, sustained overfitting)",
        onset_step=120,
        eval_interval=10,
    )
    S(
        "dead-run-lnv-state",
        "state",
        make_run(
            200,
            10,
            lambda s: 9.4 if s == 10 else 6.1975,
            lambda s: 12.0 if s == 10 else 0.0,
            const(1000.0),
            eval_every=50,
            eval_loss=const(6.1975),
        ),
        ["not-learning"],
        "lr 1000, no clipping: the first log is 9.4, then the loss is stuck at 6.1975 (ln 491: a "
        "uniform output) with grad_norm 0 for 180 steps: dead. Not learning.",
        f"{I12} (dead runs pass the gate)",
    )
    S(
        "warmup-longer-than-run-state",
        "state",
        make_run(
            50,
            5,
            noisy(decay(2.2, 1.7, 50, 2), rng, 0.02),
            noisy(const(1), rng, 0.1),
            lambda s: 2e-4 * s / 100,
            warmup_steps=100,
        ),
        ["healthy"],
        "warmup_steps 100, 50 steps run: the lr rises at every log to the end (1e-5 -> 1e-4); loss "
        "falls 2.2 -> 1.8. Healthy (worth an info note).",
        f"{I12} (a warm-up longer than the run)",
    )
    S(
        "diverge-past-lnv-state",
        "state",
        make_run(
            400,
            10,
            lambda s: (3.0 - 1.0 * s / 100 if s <= 100 else 2.0 + 11.0 * (s - 100) / 300) + rng.gauss(0, 0.05),
            noisy(const(2), rng, 0.2),
            const(1e-3),
        ),
        ["diverging"],
        "loss falls to 2.0 at step 100, then rises to 13 (above ln 262,144 = 12.5, worse than a uniform "
        "guess) with no NaN: diverging.",
        f"{I12} (divergence without NaN)",
    )
    S(
        "lr-zero-tail-csv",
        "csv",
        make_run(
            500,
            5,
            lambda s: decay(2.3, 1.3, 500)(min(s, 350)) + rng.gauss(0, 0.02),
            noisy(const(0.8), rng, 0.05),
            lambda s: 0.0 if s > 350 else warm_linear(2e-4, 350, 20)(s),
        ),
        ["not-learning"],
        "the schedule was sized for 350 steps of a 500-step run: learning_rate 0 for the last 30%, "
        "the loss flat there. Nothing trained for that stretch.",
        f"{I21} section 4 (the lr at 0 for the last 30%)",
    )
    S(
        "console-jsonl-stray-line",
        "jsonl",
        make_run(300, 5, noisy(decay(2.2, 1.1, 300), rng, 0.02), noisy(const(1), rng, 0.05), const(1e-4)),
        ["healthy"],
        "JSONL whose second line is a stray `wandb: syncing` line: healthy.",
        f"{I21} section 5 (JSONL whose second line is not JSON)",
        opts={"junk_after_first": "wandb: Syncing run qlora-7"},
    )
    S(
        "plain-step-lines-diverging",
        "text",
        make_run(
            300,
            5,
            lambda s: (2.2 - 0.8 * s / 100 if s <= 100 else 1.4 + 3.0 * (s - 100) / 200) + rng.gauss(0, 0.02),
            None,
            const(5e-3),
        ),
        ["diverging"],
        "plain `step N loss X lr Y` lines; the loss falls to 1.4 then climbs to 4.4: diverging.",
        f"{I21} section 5 (plain `step N loss X lr Y` lines)",
    )
    S(
        "lightning-lr-tag-zero",
        "lightning",
        make_run(
            300,
            5,
            noisy(const(2.0), rng, 0.04),
            None,
            const(0.0),
            eval_every=50,
            eval_loss=noisy(const(2.1), rng, 0.005),
        ),
        ["not-learning"],
        "Lightning metrics.csv with `lr-AdamW/pg1` at 0.0 throughout: loss ~2.0 and val ~2.1 flat. Not learning.",
        f"{I21} section 5 (the Lightning lr tag `lr-AdamW/pg1`)",
    )
    S(
        "cls-eval-loss-up-train-down-state",
        "state",
        make_run(
            600,
            10,
            noisy(decay(1.1, 0.05, 600, 5), rng, 0.01),
            noisy(const(0.8), rng, 0.05),
            warm_linear(5e-5, 600, 30),
            eval_every=60,
            eval_loss=lambda s: 0.62 - 0.3 * s / 240 if s <= 240 else 0.32 + 0.085 * (s - 240) / 360 * 1.0,
            eval_extra=lambda s: {"eval_accuracy": round(min(0.95, 0.80 + 0.15 * s / 240) - 0.004 * (s > 240), 4)},
            epochs=10.0,
        ),
        ["overfitting"],
        "an image classifier (ViT), no metric selected (metric_for_best_model unset): train loss "
        "1.1 -> 0.05, eval loss falls to 0.32 at step 240 and rises to 0.405 (+26%) by the last eval while eval "
        "accuracy stops improving (0.95 -> 0.946): overfitting.",
        "tests/corpus-public notebooks/nb-irrigation-vit (classification; eval loss +26% at the last eval)",
        objective="classification",
        onset_step=240,
        eval_interval=60,
    )


def bait(out: list[Scenario]) -> None:
    """Healthy runs with a shape that looks like trouble (false-alarm bait), from the peers' 'must stay quiet'
    tests and the healthy real runs of issue 12."""
    rng = random.Random(808)

    def S(name: str, fmt: str, run: Run, why: str, origin: str, **kw: Any) -> None:
        out.append(Scenario(name, fmt, run, ["healthy"], why, origin, **kw))

    S(
        "bait-mt5-high-start-state",
        "state",
        make_run(
            1000,
            10,
            noisy(decay(26.0, 1.9, 1000, 8), rng, 0.05),
            noisy(decay(40, 1.2, 1000, 8), rng, 0.1),
            warm_linear(5e-4, 1000, 50),
            eval_every=100,
            eval_loss=decay(6.0, 2.0, 1000, 6),
        ),
        "an mT5 fine-tune: the loss starts at 26 nats (confidently wrong sentinel tokens, above ln V) and falls to "
        "1.9 by the end, eval 2.6 -> 2.0: it recovers to a normal LM level. Healthy.",
        f"{I12}/{I21} (above ln V at the start is not a verdict when the loss comes down)",
    )
    S(
        "bait-from-scratch-lnv-state",
        "state",
        make_run(
            3000,
            20,
            noisy(decay(10.83, 3.2, 3000, 3), rng, 0.03),
            noisy(decay(3.0, 0.5, 3000), rng, 0.05),
            warm_cosine(6e-4, 3000, 200),
            eval_every=500,
            eval_loss=decay(10.8, 3.3, 3000, 3),
        ),
        "pre-training from random init: the loss starts at ln 50,257 = 10.8 and falls to 3.2; eval follows: healthy.",
        f"{RM}: test_text_nanogpt_style",
    )
    S(
        "bait-noisy-batch1-state",
        "state",
        make_run(
            400,
            1,
            noisy(decay(2.0, 1.2, 400), rng, 0.35),
            noisy(const(2.0), rng, 0.6),
            warm_linear(2e-4, 400, 20),
            eval_every=50,
            eval_loss=noisy(decay(2.1, 1.4, 400), rng, 0.02),
        ),
        "batch size 1, a log every step: the per-step loss jumps +-0.35 around a trend 2.0 -> 1.2; the eval loss "
        "falls. Healthy.",
        f"{I12} (noisy healthy runs); {TS}: detectors/eval_noise.py",
    )
    S(
        "bait-two-evals-state",
        "state",
        make_run(
            1000,
            10,
            noisy(decay(2.3, 1.2, 1000), rng, 0.02),
            noisy(const(0.9), rng, 0.05),
            warm_linear(2e-4, 1000, 30),
            eval_every=500,
            eval_loss=lambda s: {500: 1.45, 1000: 1.47}[s],
        ),
        "only two evals (1.45, then 1.47: +1.4%) on a healthy train loss: too few to call a turn. Healthy.",
        f"{TP}: tests/test_v0x_corrections.py::test_less_than_4_eval_points",
    )
    S(
        "bait-cosine-tail-state",
        "state",
        make_run(
            1000,
            10,
            lambda s: max(1.02, decay(2.3, 1.0, 1000, 7)(s)) + rng.gauss(0, 0.015),
            noisy(const(0.6), rng, 0.04),
            warm_cosine(2e-4, 1000, 30),
            eval_every=100,
            eval_loss=lambda s: max(1.15, decay(2.4, 1.1, 1000, 7)(s)),
        ),
        "cosine schedule decaying to ~0: the loss is flat over the last 40% because the lr is nearly 0 there, as "
        "scheduled. Healthy.",
        f"{FD}: test_schedule_ending_at_zero_on_the_last_step_is_fine",
    )
    S(
        "bait-constant-lr-state",
        "state",
        make_run(
            500,
            5,
            noisy(decay(2.2, 1.1, 500), rng, 0.02),
            noisy(const(0.9), rng, 0.05),
            const(1e-4),
            eval_every=50,
            eval_loss=decay(2.3, 1.25, 500),
        ),
        "a constant learning rate 1e-4 (no schedule); loss and eval fall: healthy.",
        f"{RM}: test_constant_lr_plateau",
    )
    S(
        "bait-large-stable-grad-state",
        "state",
        make_run(
            500,
            5,
            noisy(decay(2.2, 1.1, 500), rng, 0.02),
            noisy(const(45.0), rng, 6.0),
            warm_linear(1e-4, 500, 20),
            eval_every=50,
            eval_loss=decay(2.3, 1.25, 500),
        ),
        "grad_norm ~45 (never above 70) for the whole run, with a falling loss: a large but stable norm (the model's "
        "scale), not an explosion. Healthy.",
        f"{TS}: detectors/grad_norm.py",
    )
    S(
        "bait-small-grad-converged-state",
        "state",
        make_run(
            800,
            10,
            noisy(decay(1.5, 0.02, 800, 6), rng, 0.002),
            lambda s: 0.8 * math.exp(-6 * s / 800) + 0.004,
            warm_linear(1e-4, 800, 20),
            eval_every=80,
            eval_loss=lambda s: max(0.05, decay(1.4, 0.04, 800, 6)(s)),
        ),
        "a model that converged: grad_norm falls 0.8 -> 0.006 as the loss goes 1.5 -> 0.02: small gradients at a "
        "minimum, not vanishing ones. Healthy.",
        f"{TP}: tests/test_v013_checks.py (zero-grad vs converged)",
    )
    S(
        "bait-late-uptick-state",
        "state",
        make_run(
            600,
            5,
            lambda s: decay(2.2, 1.2, 600)(s) + rng.gauss(0, 0.02) + (0.04 if s > 560 else 0),
            noisy(const(0.9), rng, 0.05),
            warm_linear(2e-4, 600, 20),
            eval_every=60,
            eval_loss=decay(2.3, 1.3, 600),
        ),
        "the last 8 logs sit 0.04 (3%) above the trend: within the batch noise, eval still falling. Healthy.",
        f"{RM}: test_partial_regression_is_warning_only",
    )
    S(
        "bait-spike-10x-state",
        "state",
        make_run(
            600,
            5,
            lambda s: 14.0 if s == 300 else decay(2.2, 1.2, 600)(s) + rng.gauss(0, 0.02),
            lambda s: 38.0 if s == 300 else abs(rng.gauss(0.9, 0.05)),
            warm_linear(2e-4, 600, 20),
            eval_every=60,
            eval_loss=decay(2.3, 1.3, 600),
        ),
        "one log at step 300 with loss 14 (10x) and grad_norm 38, back on the curve at the next log; eval "
        "unaffected: a bad batch, recovered. Healthy.",
        f"{LL}: demo spike.jsonl; {FD}: test_real_loss_spikes_fire",
    )
    S(
        "bait-first-log-nan-grad-state",
        "state",
        make_run(
            400,
            5,
            noisy(decay(2.2, 1.2, 400), rng, 0.02),
            lambda s: NAN if s == 5 else abs(rng.gauss(0.9, 0.05)),
            warm_linear(2e-4, 400, 20),
            eval_every=50,
            eval_loss=decay(2.3, 1.3, 400),
        ),
        "grad_norm NaN at the first log only (the fp16 scaler's first overflow), normal after: healthy.",
        f"{FD}: test_sporadic_fp16_overflow_is_not_a_crisis; {I12}",
    )
    S(
        "bait-mid-inf-grad-state",
        "state",
        make_run(
            600,
            2,
            noisy(decay(2.2, 1.2, 600), rng, 0.02),
            lambda s: INF if s == 322 else abs(rng.gauss(1.1, 0.08)),
            warm_linear(2e-4, 600, 20),
            eval_every=100,
            eval_loss=decay(2.3, 1.3, 600),
        ),
        "a single grad_norm Infinity at step 322 in a smoothly falling loss (a skipped fp16 step): healthy.",
        f"{I12} (one grad_norm: Infinity in the middle)",
    )
    S(
        "bait-easy-task-state",
        "state",
        make_run(
            300,
            5,
            noisy(decay(0.12, 0.01, 300), rng, 0.002),
            noisy(const(0.2), rng, 0.02),
            warm_linear(1e-4, 300, 10),
            eval_every=50,
            eval_loss=decay(0.13, 0.02, 300),
        ),
        "an easy task: the loss starts at 0.12 and falls to 0.01, eval 0.13 -> 0.025: healthy (a low start is not "
        "masked labels).",
        f"{TP}: tests/test_v0111_degenerate.py::test_small_loss_is_convergence_not_collapse",
    )
    S(
        "bait-eval-gap-state",
        "state",
        make_run(
            800,
            10,
            noisy(decay(2.2, 0.9, 800), rng, 0.02),
            noisy(const(0.9), rng, 0.05),
            warm_linear(2e-4, 800, 20),
            eval_every=80,
            eval_loss=lambda s: decay(2.3, 1.7, 800, 3)(s) + (0.006 if (s // 80) % 2 else 0),
        ),
        "eval loss well above train (1.7 vs 0.9: a hard eval set) but still falling, with a +-0.3% jitter: healthy.",
        f"{RM}: test_val_below_train (the other direction)",
    )
    S(
        "bait-eval-last-tick-state",
        "state",
        make_run(
            1000,
            10,
            noisy(decay(2.2, 1.0, 1000), rng, 0.02),
            noisy(const(0.9), rng, 0.05),
            warm_linear(2e-4, 1000, 20),
            eval_every=100,
            eval_loss=lambda s: decay(2.3, 1.3, 1000)(s) + rng.gauss(0, 0.004) + (0.03 if s == 1000 else 0),
        ),
        "eval falls at every eval and ticks up 2% at the last one: one point is not a turn. Healthy.",
        f"{FD}: test_noise_band_treats_jitter_as_equivalent",
    )
    S(
        "bait-speech-wer-state",
        "state",
        make_run(
            4000,
            25,
            noisy(decay(3.0, 0.3, 4000, 5), rng, 0.03),
            noisy(const(4.0), rng, 0.5),
            warm_linear(1e-5, 4000, 500),
            eval_every=500,
            eval_loss=lambda s: 0.6 - 0.2 * s / 2000 if s <= 2000 else 0.4 + 0.05 * (s - 2000) / 2000,
            eval_extra=lambda s: {"eval_wer": round(40 - 22 * (1 - math.exp(-3 * s / 4000)), 3)},
            metric_for_best_model="wer",
            greater_is_better=False,
            best_metric=19.1,
            best_global_step=4000,
            best_model_checkpoint="out/checkpoint-4000",
        ),
        "a Whisper fine-tune selected on WER (greater_is_better false): eval loss turns up 25% after step 2000 while "
        "WER keeps falling to its best at the last eval: over-confidence, not overfitting. Healthy.",
        f"{FD}: test_loss_and_task_metric_disagreeing_is_not_called_overfitting; {I21} section 2",
        objective="speech",
    )
    S(
        "bait-classification-calibration-state",
        "state",
        make_run(
            1000,
            10,
            noisy(decay(0.7, 0.02, 1000, 6), rng, 0.005),
            noisy(const(1.5), rng, 0.2),
            warm_linear(2e-5, 1000, 60),
            eval_every=100,
            eval_loss=lambda s: 0.45 - 0.2 * s / 300 if s <= 300 else 0.25 + 0.0545 * (s - 300) / 700,
            eval_extra=lambda s: {"eval_accuracy": round(0.76 + 0.15 * (1 - math.exp(-3 * s / 1000)), 4)},
            metric_for_best_model="accuracy",
            greater_is_better=True,
            best_metric=0.9025,
            best_global_step=1000,
            best_model_checkpoint="out/checkpoint-1000",
            epochs=5.0,
        ),
        "issue 21's classification run: eval loss +21.8% after step 300 while eval accuracy rises 0.76 -> 0.91, "
        "best_metric on accuracy at step 1000: calibration, not lost generalisation. Healthy.",
        f"{I21} section 2 (overfitting judged on eval loss when the run selected on another metric)",
        objective="classification",
    )
    S(
        "bait-tb-lightning-names",
        "tb",
        make_run(
            600,
            5,
            noisy(decay(2.2, 1.1, 600), rng, 0.02),
            None,
            warm_cosine(1e-3, 600, 20),
            eval_every=60,
            eval_loss=decay(2.3, 1.2, 600),
        ),
        "TensorBoard with Lightning's names (train_loss_step, val_loss, lr-AdamW): healthy.",
        f"{TS}: CHANGELOG 0.2.0 (metric names as tools write them)",
        opts={
            "names": {"loss": "train_loss_step", "eval_loss": "val_loss", "learning_rate": "lr-AdamW", "epoch": "epoch"}
        },
    )
    S(
        "bait-console-healthy",
        "console",
        make_run(
            500,
            10,
            noisy(decay(2.2, 1.1, 500), rng, 0.02),
            noisy(const(0.9), rng, 0.05),
            warm_linear(2e-4, 500, 20),
            eval_every=100,
            eval_loss=decay(2.3, 1.2, 500),
        ),
        "the HF console of a healthy SFTTrainer run (dicts among tqdm redraws): healthy.",
        f"{RM}: test_text_hf_dicts_without_steps",
    )
    S(
        "bait-grpo-kl-rising-state",
        "state",
        make_run(
            500,
            5,
            lambda s: round(0.04 * 0.6 * s / 500, 6),
            noisy(const(0.3), rng, 0.03),
            const(1e-6),
            extra=lambda s: {
                "reward": round(0.1 + 0.5 * s / 500 + rng.gauss(0, 0.02), 4),
                "reward_std": 0.3,
                "frac_reward_zero_std": round(0.25 + rng.gauss(0, 0.01), 4),
                "kl": round(0.6 * s / 500, 5),
                "completions/mean_length": round(200 + rng.gauss(0, 4), 1),
            },
        ),
        "GRPO whose kl grows steadily to 0.6 nats (below 1) while the reward rises 0.1 -> 0.6: the policy moving away "
        "from the reference as it should. Healthy.",
        f"{I21} section 2",
        objective="rl",
    )
    S(
        "bait-dpo-accuracy-1-state",
        "state",
        make_run(
            400,
            5,
            lambda s: 0.6931 * math.exp(-6 * s / 400) + 0.01 + abs(rng.gauss(0, 0.005)),
            noisy(const(2.0), rng, 0.2),
            warm_linear(5e-7, 400, 20),
            eval_every=50,
            eval_loss=lambda s: 0.6931 * math.exp(-3 * s / 400) + 0.2,
            extra=lambda s: {
                "rewards/chosen": round(0.5 * s / 400, 4),
                "rewards/rejected": round(-5 * s / 400, 4),
                "rewards/margins": round(5.5 * s / 400, 4),
                "rewards/accuracies": 1.0 if s > 60 else round(0.5 + s / 120, 4),
            },
            eval_extra=lambda s: {
                "eval_rewards/margins": round(3.0 * s / 400 + 0.1, 4),
                "eval_rewards/accuracies": round(0.6 + 0.3 * s / 400, 4),
            },
        ),
        "DPO on an easy preference set: train reward accuracy hits 1.0 early, but the held-out margins keep rising "
        "to the end: not preference overfitting. Healthy.",
        f"{I21} section 2 (preference overfitting needs the eval margins falling)",
        objective="preference",
    )


def all_scenarios() -> list[Scenario]:
    out: list[Scenario] = []
    for make in (gallery, trainproof, losslint, trainspotter, runmedic, finetune_doctor, preference_rl, issues, bait):
        make(out)
    names = [s.name for s in out]
    dupes = {x for x in names if names.count(x) > 1}
    assert not dupes, dupes
    return out


# --- writing -----------------------------------------------------------------------------------------------


def _label(s: Scenario) -> str:
    def q(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    lines = ["source: scenario", f"origin: {q(s.origin)}", f"verdicts: [{', '.join(s.verdicts)}]"]
    if s.objective:
        lines.append(f"objective: {s.objective}")
    if s.onset_step is not None:
        lines.append(f"onset_step: {s.onset_step}")
    if s.eval_interval is not None:
        lines.append(f"eval_interval: {s.eval_interval}")
    lines.append(f"why: {q(s.why + ' Format: ' + FORMAT_WORDS[s.fmt] + '.')}")
    return "\n".join(lines) + "\n"


FORMAT_WORDS = {
    "state": "trainer_state.json (HF Trainer)",
    "csv": "CSV",
    "jsonl": "JSON lines",
    "tb": "TensorBoard event files (torch SummaryWriter)",
    "console": "HF Trainer console text",
    "text": "plain text lines",
    "coqui": "Coqui TTS Trainer console text",
    "lightning": "Lightning CSVLogger metrics.csv",
}


def write(s: Scenario, root: Path) -> None:
    d = root / s.name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    opts = dict(s.opts)
    if s.fmt == "tb":
        sub = opts.pop("sub", None)
        if sub == "keras":
            opts["sub"] = lambda tag: "validation" if tag.endswith("|val") else "train"
        w_tb(s.run, d, **opts)
    elif s.fmt == "csv":
        nan_row = opts.pop("nan_step_row", False)
        w_csv(s.run, d, **opts)
        if nan_row:
            f = d / opts.get("name", "metrics.csv")
            lines = f.read_text(encoding="utf-8").splitlines()
            cols = lines[0].split(",")
            lines.insert(len(lines) // 2, ",".join("nan" if c == "step" else "0.5" for c in cols))
            f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        WRITERS[s.fmt](s.run, d, **opts)
    (d / "label.yaml").write_text(_label(s), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="write only the scenarios whose name starts with this")
    ap.add_argument("--list", action="store_true", help="print name, format and verdicts, write nothing")
    args = ap.parse_args()
    scenarios = all_scenarios()
    if args.list:
        for s in scenarios:
            print(f"{s.name:44} {s.fmt:9} {','.join(s.verdicts)}")
        print(len(scenarios), "scenarios")
        return
    if not args.only:
        for d in HERE.iterdir():
            if d.is_dir() and (d / "label.yaml").exists():
                shutil.rmtree(d)
    for s in scenarios:
        if not args.only or s.name.startswith(args.only):
            write(s, HERE)
    print(
        f"wrote {sum(1 for s in scenarios if not args.only or s.name.startswith(args.only))} scenario(s) under {HERE}"
    )


if __name__ == "__main__":
    main()
