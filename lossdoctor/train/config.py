"""TrainConfig: every knob of `lossdoctor train`, built from defaults ← YAML ``--config`` ← command-line flags.

Why one frozen dataclass: the manifest (run.json), the W&B config and the recipe all read the same object,
so what was asked for is what was recorded. YAML keys may use dashes or underscores (``cutoff-len`` or
``cutoff_len``); an unknown key or a value of the wrong type is an error that names file:line.
Relative ``data``/``eval_data``/``rules`` paths in a YAML file are resolved against the YAML file's folder, so an
example config works from any working directory; ``output_dir`` stays relative to where you run the command.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from lossdoctor.errors import TrainError

QUANT_CHOICES: tuple[str, ...] = ("none", "4bit", "8bit")
PRECISION_CHOICES: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")
WANDB_CHOICES: tuple[str, ...] = ("off", "offline", "online")
STOP_ON_CHOICES: tuple[str, ...] = ("never", "error", "warning")
SCHEDULER_CHOICES: tuple[str, ...] = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                                      "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau",
                                      "cosine_with_min_lr", "warmup_stable_decay")

#: LoRA on every linear projection of the blocks (peft's shorthand; excludes the output head)
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run. ``data`` and ``output_dir`` are required; the rest has working defaults."""

    data: str = ""
    output_dir: str = ""
    model: str = "tiny"
    eval_data: str | None = None
    val_ratio: float = 0.1
    cutoff_len: int = 256
    max_steps: int = -1                 # > 0 overrides epochs
    epochs: float = 3.0
    lr: float = 2e-4
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ()   # () = all linear projections
    eval_steps: int = 20
    save_steps: int | None = None          # None = eval_steps (so the best eval checkpoint exists)
    logging_steps: int = 10
    seed: int = 42
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    quant: str = "none"
    precision: str = "auto"
    wandb: str = "offline"
    wandb_project: str = "lossdoctor"
    wandb_entity: str | None = None
    run_name: str | None = None
    overwrite: bool = False
    stop_on: str = "never"
    stop_on_rules: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    threads: int = 0                       # torch CPU threads; 0 = auto (OMP_NUM_THREADS, else 1 for tiny)

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
_CHOICES: dict[str, tuple[str, ...]] = {"quant": QUANT_CHOICES, "precision": PRECISION_CHOICES,
                                        "wandb": WANDB_CHOICES, "stop_on": STOP_ON_CHOICES,
                                        "lr_scheduler": SCHEDULER_CHOICES}
_TUPLE_FIELDS = ("target_modules", "stop_on_rules", "rules")
_INT_FIELDS = ("cutoff_len", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "lora_r",
               "lora_alpha", "eval_steps", "save_steps", "logging_steps", "seed", "warmup_steps", "threads")
_FLOAT_FIELDS = ("val_ratio", "epochs", "lr", "weight_decay", "lora_dropout", "max_grad_norm")
_BOOL_FIELDS = ("overwrite",)
_PATH_FIELDS = ("data", "eval_data")
#: accepted spellings besides the field names (the hand-written scripts used these)
_KEY_ALIASES = {"data_path": "data", "learning_rate": "lr", "num_train_epochs": "epochs", "max_length": "cutoff_len",
                "lora_rank": "lora_r", "lr_scheduler_type": "lr_scheduler", "stop_on_rule": "stop_on_rules",
                "num_threads": "threads"}


def normalise_key(key: str) -> str | None:
    """``cutoff-len`` / ``cutoff_len`` / ``learning_rate`` → field name, or None if unknown."""
    name = str(key).strip().replace("-", "_").lower()
    name = _KEY_ALIASES.get(name, name)
    return name if name in _FIELDS else None


def coerce(name: str, value: Any) -> Any:
    """Check and convert one value; raises ValueError with 'expected ...' wording."""
    if value is None:
        if name in ("eval_data", "save_steps", "wandb_entity", "run_name"):
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
        if isinstance(value, str):   # YAML 1.1 reads "2e-4" as a string
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

    p = Path(path)
    if not p.is_file():
        raise TrainError("config file not found; expected a YAML file of train options", path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainError(f"cannot read config file ({exc}); expected UTF-8 YAML", path) from None
    try:
        data = yamlpos.load(text)
    except yamlpos.YamlPosError as exc:
        raise TrainError(exc.message, path, exc.line, exc.column) from None
    if data is None:
        return {}
    if not isinstance(data, yamlpos.PosDict):
        raise TrainError("expected a mapping of train options (key: value)", path, 1)
    out: dict[str, Any] = {}
    base = p.resolve().parent
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
    positive = ("cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps", "lora_r", "lora_alpha",
                "eval_steps", "logging_steps")
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
        problems.append("with --stop-on, save_steps must be a multiple of eval_steps (the best eval checkpoint "
                        "must be saved)")
    if problems:
        extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TrainError(problems[0] + extra, where)
