"""TrainConfig: every knob of `lossdoctor train`, built from defaults ← YAML ``--config`` ← command-line flags.

Why one frozen dataclass: the manifest (run.json), the W&B config and the recipe all read the same object,
so what was asked for is what was recorded. YAML keys may use dashes or underscores (``cutoff-len`` or
``cutoff_len``); an unknown key or a value of the wrong type is an error that names file:line.
Relative ``data``/``eval_data``/``rules`` paths in a YAML file are resolved against the YAML file's folder, so an
example config works from any working directory; ``output_dir`` stays relative to where you run the command.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from lossdoctor.errors import TrainError
from lossdoctor.textfile import read_text

#: A train config is a few dozen lines; larger files are refused unread.
MAX_CONFIG_BYTES = 256 * 1024

QUANT_CHOICES: tuple[str, ...] = ("none", "4bit", "8bit")
PRECISION_CHOICES: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")
WANDB_CHOICES: tuple[str, ...] = ("off", "offline", "online")
STOP_ON_CHOICES: tuple[str, ...] = ("never", "error", "warning")
SCHEDULER_CHOICES: tuple[str, ...] = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)

#: LoRA on every linear projection of the blocks (peft's shorthand; excludes the output head)
ALL_LINEAR = "all-linear"


def _opt(
    default: Any,
    help: str = "",
    *,
    metavar: str | None = None,
    choices: tuple[str, ...] = (),  # noqa: A002
    flag: str | None = None,
    shown: str | None = None,
) -> Any:
    """A TrainConfig field with what its command-line option needs: ``help``, ``metavar``, ``choices``, the
    ``flag`` when it is not the field name with dashes, and ``shown`` for a default that reads better in words.
    ``lossdoctor train --help`` is generated from these (``option_specs``), so each default lives here only."""
    return dataclasses.field(
        default=default, metadata={"help": help, "metavar": metavar, "choices": choices, "flag": flag, "shown": shown}
    )


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run. ``data`` and ``output_dir`` are required; the rest has working defaults."""

    data: str = _opt("", "Training rows: chat `messages` or a `text` field.", metavar="JSONL")
    output_dir: str = _opt("", "Run directory (must be new or empty).", metavar="DIR")
    model: str = _opt("tiny", "Hub id, local model dir, or `tiny` (built-in offline model).")
    eval_data: str | None = _opt(None, "Eval rows (instead of --val-ratio).", metavar="JSONL")
    val_ratio: float = _opt(0.1, "Share of --data held out for eval.")
    cutoff_len: int = _opt(256, "Max tokens per example.")
    max_steps: int = _opt(-1, "Optimizer steps; overrides --epochs when > 0.")
    epochs: float = _opt(3.0, "Passes over the data.")
    lr: float = _opt(2e-4, "Peak learning rate.")
    per_device_train_batch_size: int = _opt(1)
    gradient_accumulation_steps: int = _opt(1)
    weight_decay: float = _opt(0.0)
    lora_r: int = _opt(8, "LoRA rank.")
    lora_alpha: int = _opt(16)
    lora_dropout: float = _opt(0.05)
    target_modules: tuple[str, ...] = _opt(
        (), "LoRA target modules (repeat or comma-separate).", metavar="NAMES", shown="all linear projections"
    )
    eval_steps: int = _opt(20)
    save_steps: int | None = _opt(None, shown="= --eval-steps")  # so the best eval checkpoint exists
    logging_steps: int = _opt(10)
    seed: int = _opt(42)
    lr_scheduler: str = _opt("cosine", choices=SCHEDULER_CHOICES)
    warmup_steps: int = _opt(0)
    max_grad_norm: float = _opt(1.0, "Gradient clipping.")
    quant: str = _opt("none", "bitsandbytes quantisation of the base model (CUDA only).", choices=QUANT_CHOICES)
    precision: str = _opt(
        "auto", "auto = bf16 on bf16 GPUs, fp16 on older GPUs, fp32 on CPU.", choices=PRECISION_CHOICES
    )
    wandb: str = _opt("offline", "W&B logging; offline writes <output-dir>/wandb/.", choices=WANDB_CHOICES)
    wandb_project: str = _opt("lossdoctor")
    wandb_entity: str | None = _opt(None)
    run_name: str | None = _opt(None, shown="the output dir's name")
    overwrite: bool = _opt(False, "Replace an existing lossdoctor run directory.")
    stop_on: str = _opt(
        "never",
        "Stop training when a finding at/above this severity fires; keeps the best checkpoint.",
        choices=STOP_ON_CHOICES,
    )
    stop_on_rules: tuple[str, ...] = _opt(
        (), "Stop training when this rule fires (repeatable).", metavar="ID", flag="--stop-on-rule"
    )
    rules: tuple[str, ...] = _opt(
        (), "Extra rule file (repeatable); may extend/override the default pack.", metavar="FILE"
    )
    threads: int = _opt(0, "torch CPU threads (0 = auto: OMP_NUM_THREADS, else 1 for tiny).")

    @property
    def effective_save_steps(self) -> int:
        return self.save_steps if self.save_steps else self.eval_steps

    @property
    def diagnose_live(self) -> bool:
        return self.stop_on != "never" or bool(self.stop_on_rules)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _kind(name: str) -> str:
    """The value kind of a field, from its annotation: int, float, bool, str or multi (a tuple of strings)."""
    hint = _HINTS[name]
    if typing.get_origin(hint) is tuple:
        return "multi"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint  # X | None -> X
    kind = {int: "int", float: "float", bool: "bool", str: "str"}.get(base)
    if kind is None:
        raise TypeError(f"TrainConfig.{name}: annotation {hint!r} has no option kind")
    return kind


_KINDS = {name: _kind(name) for name in _FIELDS}
_CHOICES: dict[str, tuple[str, ...]] = {n: f.metadata["choices"] for n, f in _FIELDS.items() if f.metadata["choices"]}
_TUPLE_FIELDS = tuple(n for n, k in _KINDS.items() if k == "multi")
_INT_FIELDS = tuple(n for n, k in _KINDS.items() if k == "int")
_FLOAT_FIELDS = tuple(n for n, k in _KINDS.items() if k == "float")
_BOOL_FIELDS = tuple(n for n, k in _KINDS.items() if k == "bool")
_NULLABLE_FIELDS = tuple(n for n in _FIELDS if type(None) in typing.get_args(_HINTS[n]))
_PATH_FIELDS = ("data", "eval_data")
#: accepted spellings besides the field names (the hand-written scripts used these)
_KEY_ALIASES = {
    "data_path": "data",
    "learning_rate": "lr",
    "num_train_epochs": "epochs",
    "max_length": "cutoff_len",
    "lora_rank": "lora_r",
    "lr_scheduler_type": "lr_scheduler",
    "stop_on_rule": "stop_on_rules",
    "num_threads": "threads",
}


@dataclass(frozen=True)
class OptionSpec:
    """One ``lossdoctor train`` option, made from a TrainConfig field (commands/train.py turns it into click)."""

    name: str  # the TrainConfig field
    flag: str  # --cutoff-len
    kind: str  # int | float | bool | str | multi
    help: str  # with the default in brackets, e.g. "Max tokens per example. [256]"
    metavar: str | None = None
    choices: tuple[str, ...] = ()


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.metadata["shown"]:
        return str(f.metadata["shown"])
    value = f.default
    if value is None or value == "" or value == () or value is False:
        return ""
    return format(value, "g") if isinstance(value, float) else str(value)


def option_specs() -> tuple[OptionSpec, ...]:
    """Every TrainConfig field as a command-line option, in field order, its default shown from the field."""
    out = []
    for name, f in _FIELDS.items():
        shown = _default_text(f)
        text = " ".join(p for p in (f.metadata["help"], f"[{shown}]" if shown else "") if p)
        out.append(
            OptionSpec(
                name=name,
                flag=f.metadata["flag"] or "--" + name.replace("_", "-"),
                kind=_KINDS[name],
                help=text,
                metavar=f.metadata["metavar"],
                choices=f.metadata["choices"],
            )
        )
    return tuple(out)


def normalise_key(key: str) -> str | None:
    """``cutoff-len`` / ``cutoff_len`` / ``learning_rate`` → field name, or None if unknown."""
    name = str(key).strip().replace("-", "_").lower()
    name = _KEY_ALIASES.get(name, name)
    return name if name in _FIELDS else None


def coerce(name: str, value: Any) -> Any:
    """Check and convert one value; raises ValueError with 'expected ...' wording."""
    if value is None:
        if name in _NULLABLE_FIELDS:
            return None
        raise ValueError(f"{name}: expected a value, got null")
    if name in _TUPLE_FIELDS:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and i for i in items):
            raise ValueError(f"{name}: expected a string or a list of strings")
        if name == "target_modules" and len(items) == 1 and "," in items[0]:
            items = [p.strip() for p in items[0].split(",") if p.strip()]
        return tuple(items)
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if name in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        return value
    if name in _FLOAT_FIELDS:
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{name}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"{name}: expected a string, got {value!r}")
    value = str(value)
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValueError(f"{name}: expected one of {', '.join(_CHOICES[name])}, got {value!r}")
    return value


def load_yaml_config(path: str) -> dict[str, Any]:
    """Read a YAML config file into {field: value}; every problem is a TrainError at file:line."""
    from lossdoctor import yamlpos

    text = read_text(
        path, error=TrainError, what="config file", expected="a YAML file of train options", max_bytes=MAX_CONFIG_BYTES
    )
    try:
        data = yamlpos.load(text)
    except yamlpos.YamlPosError as exc:
        raise TrainError(exc.message, path, exc.line, exc.column) from None
    if data is None:
        return {}
    if not isinstance(data, yamlpos.PosDict):
        raise TrainError("expected a mapping of train options (key: value)", path, 1)
    out: dict[str, Any] = {}
    base = Path(path).resolve().parent
    for key, value in data.items():
        line, col = data.pos(key)
        name = normalise_key(key)
        if name is None:
            raise TrainError(f"unknown key {key!r}; expected one of {', '.join(_FIELDS)}", path, line, col)
        try:
            value = coerce(name, value)
        except ValueError as exc:
            raise TrainError(str(exc), path, line, col) from None
        if name in _PATH_FIELDS and value:
            value = _resolve(base, value)
        elif name == "rules":
            value = tuple(_resolve(base, v) for v in value)
        out[name] = value
    return out


def _resolve(base: Path, value: str) -> str:
    candidate = Path(value).expanduser()
    return str(candidate if candidate.is_absolute() else base / candidate)


def build_config(config_file: str | None, overrides: Mapping[str, Any]) -> TrainConfig:
    """defaults ← YAML file ← flags (``overrides`` holds only the flags actually given)."""
    values: dict[str, Any] = load_yaml_config(config_file) if config_file else {}
    for key, value in overrides.items():
        name = normalise_key(key)
        if name is None:
            raise TrainError(f"unknown option {key!r}")
        try:
            values[name] = coerce(name, value)
        except ValueError as exc:
            raise TrainError(f"--{name.replace('_', '-')}: {exc}") from None
    config = TrainConfig(**values)
    validate(config, config_file)
    return config


def validate(config: TrainConfig, where: str | None = None) -> None:
    """Range checks that need no file access (the data and output dir are checked by the recipe)."""
    problems: list[str] = []
    if not config.data:
        problems.append("--data is required (a JSONL file of chat `messages` or `text` rows)")
    if not config.output_dir:
        problems.append("--output-dir is required")
    positive = (
        "cutoff_len",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "lora_r",
        "lora_alpha",
        "eval_steps",
        "logging_steps",
    )
    for name in positive:
        if getattr(config, name) <= 0:
            problems.append(f"{name} must be > 0, got {getattr(config, name)}")
    if config.save_steps is not None and config.save_steps <= 0:
        problems.append(f"save_steps must be > 0, got {config.save_steps}")
    if config.max_steps <= 0 and config.epochs <= 0:
        problems.append("either max_steps > 0 or epochs > 0 is needed")
    if not 0.0 <= config.val_ratio < 1.0:
        problems.append(f"val_ratio must be in [0, 1), got {config.val_ratio}")
    if config.lr <= 0:
        problems.append(f"lr must be > 0, got {config.lr}")
    if not 0.0 <= config.lora_dropout < 1.0:
        problems.append(f"lora_dropout must be in [0, 1), got {config.lora_dropout}")
    if config.warmup_steps < 0 or config.threads < 0:
        problems.append("warmup_steps and threads must be >= 0")
    if config.stop_on != "never" and config.effective_save_steps % config.eval_steps:
        problems.append(
            "with --stop-on, save_steps must be a multiple of eval_steps (the best eval checkpoint must be saved)"
        )
    if problems:
        extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TrainError(problems[0] + extra, where)
