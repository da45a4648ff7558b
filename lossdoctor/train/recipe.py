"""`lossdoctor train`: check → set up → train → save, around trl's SFTTrainer with a peft LoRA adapter.

Why this order: everything that can be wrong with the input (data rows, rule files, --quant without CUDA,
an unreachable model id, a non-empty output dir) is checked *before* the run directory is created, so bad
input leaves nothing half-written. Once the run directory exists, every way out (completed, Ctrl-C,
stopped by a rule, crash) leaves a valid ``trainer_state.json`` and a ``run.json`` saying how it ended.

Heavy imports (torch, transformers, trl, peft, datasets) happen inside functions only.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lossdoctor.diagnosis import diagnose
from lossdoctor.errors import LossdoctorError, TrainError
from lossdoctor.exitcodes import EXIT_GATE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED
from lossdoctor.integrations.callback import LossDoctorCallback
from lossdoctor.report import render_terminal, write_reports
from lossdoctor.rules.packs import load_rules
from lossdoctor.sources.trainer_state import state_to_run
from lossdoctor.train.config import ALL_LINEAR, TrainConfig
from lossdoctor.train.console import ConsoleTee
from lossdoctor.train.data import DataFile, plain_texts, read_jsonl, render_text, split
from lossdoctor.train.manifest import MANIFEST_NAME, base_manifest, now_iso, write_manifest
from lossdoctor.train.quiet import captured_output
from lossdoctor.train.tiny import build_model, build_tokenizer

INSTALL_HINT = "pip install 'lossdoctor[train]'"
REPORT_FORMATS = ("html", "md", "json")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    status: str  # completed | interrupted | failed | stopped-by-rule
    exit_code: int
    global_step: int
    summary: str = ""  # the diagnosis of the run as the terminal shows it ("" if none was made)
    reports: tuple[Path, ...] = ()  # the report files written (report/report.html, ...)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so both end the run the same way."""


class _SigtermAsInterrupt:
    """While active, SIGTERM raises _Terminated in the main thread (the trainer's loop), like Ctrl-C does."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.fired = False

    def __enter__(self) -> _SigtermAsInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():

            def handler(signum: int, frame: Any) -> None:
                self.fired = True
                raise _Terminated()

            self.previous = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def is_main_process() -> bool:
    """Rank 0 of a torchrun / accelerate launch (or a single process): the only one that writes files.

    The launchers set RANK (global rank) in every worker before Python starts, so this works before
    torch.distributed is initialised; accelerate's PartialState().is_main_process agrees once it is."""
    rank = os.environ.get("RANK", "").strip()
    return rank in ("", "0")


def resolve_precision(precision: str, cuda: bool, bf16_supported: bool) -> str:
    """auto → bf16 on CUDA with bf16, fp16 on older CUDA, fp32 on CPU. Explicit fp16 needs CUDA."""
    if precision == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if bf16_supported else "fp16"
    if precision == "fp16" and not cuda:
        raise TrainError("--precision fp16 needs a CUDA GPU (mixed precision); use --precision fp32 or bf16")
    if precision == "bf16" and cuda and not bf16_supported:
        raise TrainError("--precision bf16 is not supported by this GPU; use --precision fp16 or auto")
    return precision


def check_quant(quant: str, cuda: bool) -> None:
    if quant == "none":
        return
    if not cuda:
        raise TrainError(f"--quant {quant} needs a CUDA GPU (bitsandbytes); use --quant none")

    with captured_output() as captured:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            found = False
        else:
            found = True
    if captured.text.strip():
        IMPORT_OUTPUT.append(captured.text)
    if not found:
        raise TrainError(f"--quant {quant} needs bitsandbytes: pip install 'lossdoctor[train,quant]'")


#: what the training stack printed while it was imported (recorded in run.json, never shown)
IMPORT_OUTPUT: list[str] = []


def import_stack() -> None:
    """Import what training uses, with whatever the packages print at import kept out of the terminal
    (see train/quiet.py); fail early with one line when the training extra is not installed."""

    with captured_output() as captured:
        try:
            import datasets  # noqa: F401
            import peft  # noqa: F401
            import torch  # noqa: F401
            import transformers  # noqa: F401
            import trl  # noqa: F401
            from peft import LoraConfig  # noqa: F401
            from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401
            from trl import SFTConfig, SFTTrainer  # noqa: F401
        except ImportError as exc:
            missing = exc.name or str(exc)
        else:
            missing = ""
    if captured.text.strip():
        IMPORT_OUTPUT.append(captured.text)
    if missing:
        raise TrainError(f"the training stack is not installed ({missing}); {INSTALL_HINT}")


def check_model(model: str) -> None:
    """A hub id must be loadable (offline: from the HF cache) before the run dir is created."""
    if model == "tiny" or Path(model).expanduser().is_dir():
        return
    if Path(model).expanduser().exists():
        raise TrainError("is a file; expected a model directory, a hub id, or `tiny`", model)
    from transformers import AutoConfig

    try:
        with captured_output():  # hub/cache warnings before the one-line error
            AutoConfig.from_pretrained(model)
    except Exception as exc:  # noqa: BLE001 - hub/network/cache errors come in many types
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get(
            "TRANSFORMERS_OFFLINE", ""
        ).lower() in ("1", "true", "yes")
        why = (
            "not in the local HF cache and HF_HUB_OFFLINE is set"
            if offline
            else f"cannot be reached ({type(exc).__name__})"
        )
        raise TrainError(f"model {why}; pass a local model directory or use --model tiny", model) from None


def prepare_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty directory; with --overwrite, replace it only if it is a lossdoctor run dir."""
    if _check_output_dir(out, overwrite):
        shutil.rmtree(out)


def _check_output_dir(out: Path, overwrite: bool) -> bool:
    """True when ``out`` is an old run dir to delete (--overwrite); TrainError when it may not be used."""
    if out.exists() and not out.is_dir():
        raise TrainError("exists and is not a directory; expected a new or empty output directory", str(out))
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise TrainError(
                "output directory exists and is not empty; pass --overwrite or another --output-dir", str(out)
            )
        if not (out / MANIFEST_NAME).is_file():
            raise TrainError(
                "--overwrite replaces only a lossdoctor run directory (with run.json); this one "
                "has none, so it is left alone",
                str(out),
            )
        return True
    return False


@dataclass(frozen=True)
class Checked:
    """What the checks found; passed on so nothing is read twice."""

    train_rows: list
    eval_rows: list
    data: DataFile
    eval_data: DataFile | None
    ruleset: Any
    cuda: bool
    precision: str


def check_all(config: TrainConfig) -> Checked:
    """Every input check, in the order a person would fix them. Writes nothing."""
    data = read_jsonl(config.data)
    eval_data = read_jsonl(config.eval_data) if config.eval_data else None
    if eval_data is not None:
        train_rows, eval_rows = list(data.examples), list(eval_data.examples)
    else:
        train_rows, eval_rows = split(data.examples, config.val_ratio, config.seed)
    ruleset = None
    if config.diagnose_live or config.rules:
        ruleset = load_rules(tuple(config.rules))
        unknown = sorted(r for r in config.stop_on_rules if ruleset.get(r) is None)
        if unknown:
            known = ", ".join(r.id for r in ruleset.rules)
            raise TrainError(f"--stop-on-rule: unknown rule id(s) {', '.join(unknown)}; expected one of {known}")
    if config.diagnose_live and not eval_rows:
        raise TrainError("--stop-on needs an eval set (--val-ratio > 0 or --eval-data) to keep the best checkpoint")
    if is_main_process():  # the other ranks would see rank 0's fresh files
        _check_output_dir(Path(config.output_dir), config.overwrite)
    import_stack()
    import torch

    cuda = torch.cuda.is_available()
    check_quant(config.quant, cuda)
    precision = resolve_precision(config.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    check_model(config.model)
    if is_main_process():
        prepare_output_dir(Path(config.output_dir), config.overwrite)  # the only deletion, after every check
    return Checked(train_rows, eval_rows, data, eval_data, ruleset, cuda, precision)


def _threads(config: TrainConfig) -> int:
    if config.threads:
        return config.threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    # a tiny model is fastest on one core; a real one uses what the machine has
    return 1 if config.model == "tiny" else max(1, os.cpu_count() or 1)


def load_model_and_tokenizer(config: TrainConfig, checked: Checked, out: Path) -> tuple[Any, Any]:
    import torch

    if config.model == "tiny":
        tokenizer = build_tokenizer(plain_texts(checked.train_rows))
        model = build_model(tokenizer, config.cutoff_len, config.seed)
        base_dir = out / "tiny-base"
        if is_main_process():  # the adapter needs its random base to be usable later
            model.save_pretrained(base_dir)
            tokenizer.save_pretrained(base_dir)
        model.config._name_or_path = str(base_dir.resolve())
        return model, tokenizer

    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[checked.precision]
    tokenizer = AutoTokenizer.from_pretrained(config.model, use_fast=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.quant != "none":
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        if config.quant == "4bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        # one full copy per process (DDP): each rank puts the model on its own GPU
        kwargs["device_map"] = {"": PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
    if config.quant != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    return model, tokenizer


def sft_args(config: TrainConfig, checked: Checked, has_eval: bool, out: Path) -> Any:
    from trl import SFTConfig

    live = config.diagnose_live
    eval_strategy = "steps" if has_eval else "no"
    kwargs: dict[str, Any] = dict(
        output_dir=str(out),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        learning_rate=config.lr,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=config.eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=config.effective_save_steps,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        bf16=checked.precision == "bf16",
        fp16=checked.precision == "fp16",
        use_cpu=not checked.cuda,
        report_to=[] if config.wandb == "off" else ["wandb"],
        run_name=config.run_name or out.name,
        max_length=config.cutoff_len,
        dataset_text_field="text",
        packing=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
        save_only_model=False,
    )
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(SFTConfig)}:
        # trl turns gradient checkpointing on by default under the name transformers 5 deprecates (and warns
        # about on every run); the same setting, named as the installed transformers wants it
        kwargs["activation_checkpointing"] = True
    if live:
        # keep the best eval checkpoint: the Trainer reloads it at the end, and save_total_limit never drops it
        kwargs.update(
            load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False, save_total_limit=2
        )
    return SFTConfig(**kwargs)


def _setup_wandb_env(config: TrainConfig, out: Path) -> None:
    if config.wandb == "off":
        return
    os.environ["WANDB_MODE"] = config.wandb
    os.environ["WANDB_DIR"] = str(out.resolve())
    os.environ["WANDB_PROJECT"] = config.wandb_project
    if config.wandb_entity:
        os.environ["WANDB_ENTITY"] = config.wandb_entity
    os.environ.setdefault("WANDB_SILENT", "false")
    os.environ.setdefault("WANDB_LOG_MODEL", "false")


def _finish_wandb(exit_code: int) -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        try:
            wandb.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001 - never lose the run dir over the W&B upload
            print(f"lossdoctor: warning: wandb.finish failed: {exc}", file=sys.stderr)


def _finite(value: Any) -> Any:
    import math

    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def train(config: TrainConfig, argv: list[str] | None = None) -> TrainResult:
    """Check the input, then train. TrainError/SourceError before anything is written; afterwards the run dir
    always ends with trainer_state.json + run.json (status completed / interrupted / stopped-by-rule / failed)."""
    checked = check_all(config)
    out = Path(config.output_dir)
    main = is_main_process()
    # a deprecation inside the training stack (peft/trl asking transformers' old name), not in anything the
    # user wrote: it says nothing they can act on, on every run
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    out.mkdir(parents=True, exist_ok=True)

    data_info = {
        "train": {"path": checked.data.path, "sha256": checked.data.sha256, "rows": len(checked.data.examples)},
        "eval": (
            {
                "path": checked.eval_data.path,
                "sha256": checked.eval_data.sha256,
                "rows": len(checked.eval_data.examples),
            }
            if checked.eval_data
            else None
        ),
        "train_rows": len(checked.train_rows),
        "eval_rows": len(checked.eval_rows),
        "split": "eval_data" if checked.eval_data else f"val_ratio={config.val_ratio} seed={config.seed}",
    }
    manifest = base_manifest(config.to_dict(), list(argv if argv is not None else sys.argv), data_info)
    manifest["device"] = "cuda" if checked.cuda else "cpu"
    manifest["precision"] = checked.precision
    if IMPORT_OUTPUT:
        manifest["import_output"] = "".join(IMPORT_OUTPUT)
    tee = ConsoleTee(out / "console.log") if main else None
    if tee is not None:
        write_manifest(out, manifest)
        tee.__enter__()
    trainer = None
    live_cb = None
    status, exit_code = "failed", 1
    report: tuple[str, tuple[Path, ...]] = ("", ())
    sigterm = _SigtermAsInterrupt()
    try:
        with sigterm:
            trainer, live_cb = _build_trainer(config, checked, out)
            try:
                trainer.train()
                if live_cb is not None and live_cb.stopped_by is not None:
                    status, exit_code = "stopped-by-rule", EXIT_GATE
                else:
                    status, exit_code = "completed", EXIT_OK
            except KeyboardInterrupt as exc:
                status = "interrupted"
                exit_code = EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
                how = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
                print(
                    f"\nlossdoctor: {how} at step {trainer.state.global_step}; saving trainer state",
                    file=sys.stderr,
                    flush=True,
                )
            _save_outputs(trainer, out, status, main)
            if main:
                report = _write_report(live_cb, trainer, out, status, config, checked)
    except KeyboardInterrupt as exc:  # during setup or saving
        status = "interrupted"
        exit_code = EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
        if trainer is not None:
            trainer.save_state()
    except BaseException as exc:
        status = "failed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        if trainer is not None and main:
            try:
                trainer.save_state()
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        raise
    finally:
        _finish_wandb(exit_code if status != "failed" else 1)
        if main:
            manifest.update(status=status, exit_code=exit_code if status != "failed" else None, ended=now_iso())
            if trainer is not None:
                st = trainer.state
                manifest["global_step"] = int(st.global_step)
                if st.best_model_checkpoint:
                    manifest["best_checkpoint"] = os.path.relpath(st.best_model_checkpoint, out)
                manifest["best_metric"] = _finite(st.best_metric)
            if live_cb is not None:
                manifest["findings"] = [
                    {
                        "rule_id": f.rule_id,
                        "severity": f.severity,
                        "step": live_cb.fired_at[f.rule_id],
                        "message": f.message,
                    }
                    for f in live_cb.findings
                ]
                if live_cb.stopped_by is not None:
                    manifest["stopped_by"] = {
                        "rule_id": live_cb.stopped_by.rule_id,
                        "severity": live_cb.stopped_by.severity,
                        "step": live_cb.stopped_at,
                    }
            if tee is not None:
                tee.close()
            write_manifest(out, manifest)
    return TrainResult(
        run_dir=out,
        status=status,
        exit_code=exit_code,
        global_step=int(trainer.state.global_step) if trainer is not None else 0,
        summary=report[0],
        reports=report[1],
    )


def _build_trainer(config: TrainConfig, checked: Checked, out: Path) -> tuple[Any, Any]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(_threads(config))
    _setup_wandb_env(config, out)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import SFTTrainer

    from lossdoctor.train.callbacks import ExtraMetricsCallback

    set_seed(config.seed)
    model, tokenizer = load_model_and_tokenizer(config, checked, out)
    train_ds = Dataset.from_dict({"text": [render_text(r, tokenizer) for r in checked.train_rows]})
    eval_ds = (
        Dataset.from_dict({"text": [render_text(r, tokenizer) for r in checked.eval_rows]})
        if checked.eval_rows
        else None
    )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=list(config.target_modules) if config.target_modules else ALL_LINEAR,
    )
    args = sft_args(config, checked, eval_ds is not None, out)
    set_seed(config.seed)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora,
    )
    # first, so the printer, W&B and the live rules all see eval_perplexity / train_tokens_per_second
    trainer.callback_handler.callbacks.insert(0, ExtraMetricsCallback())
    live_cb = None
    if config.diagnose_live:
        main = is_main_process()
        distributed = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
        # every rank holds the same (gathered) log_history and must reach the same stop decision at the same
        # step, so under a launcher the time-based budget (which differs per rank) is off: judge every log
        live_cb = LossDoctorCallback(
            stop_on=config.stop_on,
            stop_on_rules=config.stop_on_rules,
            print_fn=(lambda line: print(line, flush=True)) if main else (lambda line: None),
            ruleset=checked.ruleset,
            run_name=config.run_name or out.name,
            max_overhead=float("inf") if distributed else 0.02,
        )
        # duck-typed on purpose (no transformers import in lossdoctor.integrations); the stubs want a TrainerCallback
        trainer.add_callback(live_cb)  # type: ignore[arg-type]
    return trainer, live_cb


def _save_outputs(trainer: Any, out: Path, status: str, main: bool) -> None:
    """trainer_state.json at the root (always), then the adapter + tokenizer (the best one with --stop-on).

    save_state/save_model are called on every rank: they write on rank 0 only, and under FSDP/DeepSpeed
    ZeRO-3 save_model must run on all ranks to gather the sharded weights."""
    trainer.save_state()
    trainer.save_model(str(out))
    if main:
        trainer.processing_class.save_pretrained(str(out))


def _write_report(
    live_cb: Any, trainer: Any, out: Path, status: str, config: TrainConfig, checked: Checked
) -> tuple[str, tuple[Path, ...]]:
    """The diagnosis of the whole run (every run, with or without --stop-on), written with analyze's report
    writer to ``<run dir>/report/``; returns (terminal summary, report files). A report that cannot be made
    never loses the run: the error is printed and the run dir stays as it is."""

    state_name = {"completed": "finished", "stopped-by-rule": "finished"}.get(status, "interrupted")
    try:
        if live_cb is not None:
            # ingest rows logged after the last on_log (none normally) and judge the finished run
            live_cb._ingest(trainer.state.log_history[live_cb._seen :])
            live_cb._seen = len(trainer.state.log_history)
            run, ruleset = live_cb.current_run(trainer.args, state_name), live_cb.ruleset
        else:
            import dataclasses

            state = {
                "log_history": list(trainer.state.log_history),
                "global_step": int(trainer.state.global_step),
                "max_steps": int(trainer.state.max_steps),
            }
            run = state_to_run(state, str(out / "trainer_state.json"), config.run_name or out.name)
            run = dataclasses.replace(run, state=state_name)
            ruleset = checked.ruleset if checked.ruleset is not None else load_rules(tuple(config.rules))
        diag = diagnose(run, ruleset)
        written = write_reports(diag, REPORT_FORMATS, out / "report")
    except (LossdoctorError, OSError, ValueError) as exc:
        print(f"lossdoctor: warning: no report written: {exc}", file=sys.stderr, flush=True)
        return "", ()
    return render_terminal(diag, color=False), tuple(written)


def run_training(config: TrainConfig) -> Path:
    """Train and return the run directory (for tests and scripts; see run.json for how it ended)."""
    return train(config).run_dir
