"""Check kinds: a closed set, one module each, discovered like the sources (a module-level ``CHECK``).

A check looks at a Run and returns a :class:`CheckResult`: a boolean *mask* over a *clock* (the steps
at which the condition was evaluated, causally: the value at step s uses only data up to s), plus an
``evidence_at(index)`` function giving the numbers a message needs at a clock index. Global checks
(``scope="global"``) decide once for the whole run and broadcast over any clock.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lossdoctor.plugins import discover
from lossdoctor.rules import rolling

if TYPE_CHECKING:  # the model is not imported just to validate a rule file
    from lossdoctor.model import Run


#: The parameter types a check kind may declare (``rules.schema.coerce_arg`` reads a rule file's value by it):
#: a closed set, so a rule file argument is always checked by a known rule.
PARAM_TYPES: frozenset[str] = frozenset(
    {"series", "series_list", "names", "number", "fraction", "int", "bool", "choice", "window", "str"}
)


class CheckDeclarationError(TypeError):
    """A check kind declares itself wrongly (a bug in lossdoctor or a plugin, never bad user input)."""


@dataclass(frozen=True)
class Param:
    """One parameter of a check kind: its type (one of PARAM_TYPES), whether it is required, its default and a
    doc line. An unknown type is refused when the Param is made, that is when its check kind is imported."""

    type: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise CheckDeclarationError(
                f"unknown parameter type {self.type!r}; expected one of {', '.join(sorted(PARAM_TYPES))}"
            )
        if self.type == "choice" and not self.choices:
            raise CheckDeclarationError("a 'choice' parameter needs its choices")


@dataclass(frozen=True)
class CheckResult:
    """Where a check holds on its clock of steps, with the evidence at each step."""

    clock: np.ndarray  # int64 steps, sorted
    mask: np.ndarray  # bool, same length
    evidence_at: Callable[[int], dict[str, Any]]  # clock index → evidence
    series: tuple[str, ...] = ()
    scope: str = "points"  # "points" | "global"
    onset_at: Callable[[int], int | None] | None = None  # clock index → onset step (e.g. the turn of eval loss)


class Check(Protocol):
    kind: str
    doc: str
    params: Mapping[str, Param]
    evidence_keys: frozenset[str]

    def evaluate(self, run: Run, args: Mapping[str, Any]) -> CheckResult: ...


@lru_cache(maxsize=1)
def registry() -> dict[str, Check]:
    """kind → check, discovered from the modules of this package (sorted by kind), each validated as it
    registers (:func:`validate_check`)."""
    return discover(__name__, "CHECK", "check kinds", lambda check: (check.kind,), validate=validate_check)


_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def validate_check(check: Any) -> Check:
    """``check`` if it declares itself as a check kind must: a lower-case ``kind``, ``params`` mapping names to
    :class:`Param` (of a known type), ``evidence_keys`` a frozenset of names, an ``evaluate`` method. Called when
    the registry takes a check kind in; a wrong declaration raises CheckDeclarationError naming the kind."""
    kind = getattr(check, "kind", None)
    who = f"check kind {kind!r} ({type(check).__module__})"
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise CheckDeclarationError(f"{who}: kind must be a lower-case name like 'spike'")
    params = getattr(check, "params", None)
    if not isinstance(params, Mapping):
        raise CheckDeclarationError(f"{who}: params must be a mapping of name -> Param")
    for name, param in params.items():
        if not isinstance(name, str) or not isinstance(param, Param):
            raise CheckDeclarationError(f"{who}: parameter {name!r} must be a Param")
        if param.type not in PARAM_TYPES:  # a Param whose type was changed after it was made
            raise CheckDeclarationError(
                f"{who}: parameter {name!r} has unknown type {param.type!r}; expected one "
                f"of {', '.join(sorted(PARAM_TYPES))}"
            )
    keys = getattr(check, "evidence_keys", None)
    if not isinstance(keys, frozenset) or not all(isinstance(k, str) and k for k in keys):
        raise CheckDeclarationError(f"{who}: evidence_keys must be a frozenset of names")
    if not callable(getattr(check, "evaluate", None)):
        raise CheckDeclarationError(f"{who}: has no evaluate(run, args) method")
    return check


def declared_evidence(check: Check, result: CheckResult) -> CheckResult:
    """``result`` whose ``evidence_at`` refuses a key the check did not declare in ``evidence_keys`` (the rule
    file validator promised a template only the declared keys): a check kind's bug, reported as a crash."""
    allowed = check.evidence_keys
    inner = result.evidence_at

    def evidence_at(i: int) -> dict[str, Any]:
        evidence = inner(i)
        extra = evidence.keys() - allowed
        if extra:
            raise CheckDeclarationError(
                f"check kind {check.kind!r} emitted evidence key(s) "
                f"{', '.join(sorted(extra))} it does not declare in evidence_keys"
            )
        return evidence

    return replace(result, evidence_at=evidence_at)


# --- helpers shared by the check kinds ------------------------------------------------------------


def empty_result(series: tuple[str, ...], scope: str = "points") -> CheckResult:
    return CheckResult(np.zeros(0, dtype="int64"), np.zeros(0, dtype=bool), lambda i: {}, series, scope)


def global_result(holds: bool, step: int | None, evidence: dict[str, Any], series: tuple[str, ...]) -> CheckResult:
    clock = np.asarray([step if step is not None else 0], dtype="int64")
    return CheckResult(clock, np.asarray([bool(holds)]), lambda i: dict(evidence), series, "global")


def resolve_series(run: Run, pattern: str) -> tuple[str, ...]:
    """Canonical names matching a name or a glob ("eval/*loss"), sorted."""
    if any(ch in pattern for ch in "*?["):
        return tuple(n for n in run.metric_names() if fnmatch.fnmatchcase(n, pattern))
    return (pattern,) if run.has(pattern) else ()


def arrays(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray]:
    s = run.series(metric)
    return s.index, s.values


def sorted_unique(*arrays_: np.ndarray) -> np.ndarray:
    """Union of integer step arrays, sorted (a sort + diff: numpy 2's hash-based np.unique is much slower on
    large step arrays)."""
    if not arrays_:
        return np.zeros(0, dtype="int64")
    c = np.sort(np.concatenate(arrays_).astype("int64", copy=False), kind="stable")
    if len(c) < 2:
        return c
    return c[np.r_[True, c[1:] != c[:-1]]]


def finite_points(
    run: Run, pattern: str, window: Mapping[str, Any] | None = None
) -> tuple[str | None, np.ndarray, np.ndarray]:
    """(metric, steps, values) of the first series matching ``pattern``, cut to ``window`` and to its finite
    points; (None, empty, empty) when the run has no such series."""
    names = resolve_series(run, pattern)
    if not names:
        return None, np.zeros(0, dtype="int64"), np.zeros(0)
    steps, values = arrays(run, names[0])
    start = window_start_index(steps, window)
    steps, values = steps[start:], values[start:]
    ok = np.isfinite(values)
    return names[0], steps[ok], values[ok]


def asof(clock: np.ndarray, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values sampled at clock steps, as of (last value at or before); NaN before the first step."""
    out = np.full(len(clock), np.nan)
    if len(steps) == 0:
        return out
    idx = np.searchsorted(steps, clock, side="right") - 1
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average (alpha = 2/(span+1)) that skips non-finite values: they neither count nor
    break it, and the average is carried over them; NaN before the first finite value (a prefix scan in
    numpy: :func:`lossdoctor.rules.rolling.ema`)."""
    return rolling.ema(values, int(span))


#: windows longer than this use the block-median approximation of rolling_median
EXACT_MEDIAN_WINDOW = 2048
MEDIAN_BLOCKS = 32


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Causal rolling median over the last ``window`` points (robust to single spikes); non-finite values
    are skipped. NaN before the first finite value.

    Windows longer than EXACT_MEDIAN_WINDOW points (a 5% window over a million logs) use a median of block
    medians: the run is cut into blocks of window/32 points, and point i gets the median of the medians of
    the last 32 blocks completed at or before i (still causal; it lags by at most one block). Exact rolling
    medians cost O(n log window) and took seconds at that size; this is O(n)."""
    values = np.asarray(values, dtype="float64")
    if window <= 1 or len(values) == 0:
        return values.copy()
    finite = np.where(np.isfinite(values), values, np.nan)
    if window <= EXACT_MEDIAN_WINDOW or len(values) < 2 * window:
        return rolling.ffill(rolling.trailing_medians(finite, window))
    block = window // MEDIAN_BLOCKS
    n_blocks = len(values) // block
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        medians = rolling.row_medians(finite[: n_blocks * block].reshape(n_blocks, block))
    over_blocks = rolling.ffill(rolling.trailing_medians(medians, MEDIAN_BLOCKS))
    out = np.empty(len(values))
    head = rolling.ffill(rolling.trailing_medians(finite[:block], block))  # before the first full block
    out[: block - 1] = head[: block - 1]
    done = (np.arange(block - 1, len(values)) + 1) // block - 1  # last block complete at i
    out[block - 1 :] = over_blocks[np.minimum(done, n_blocks - 1)]
    return out


def smooth(values: np.ndarray, kind: str, span: int) -> np.ndarray:
    """EMA (``kind="ema"``) or causal rolling median (``"median"``) over ``span`` points."""
    return rolling_median(values, int(span)) if kind == "median" else ema(values, int(span))


def final_run_only(mask: np.ndarray) -> np.ndarray:
    """Keep only the run of True values that reaches the last index (a condition that still holds at the
    end, i.e. did not recover)."""
    out = np.zeros_like(mask)
    if len(mask) == 0 or not mask[-1]:
        return out
    falses = np.flatnonzero(~mask)
    out[(int(falses[-1]) + 1 if len(falses) else 0) :] = True
    return out


def running_best(values: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """(running best value, index of it) for 'min' or 'max', ignoring non-finite values."""
    v = np.where(np.isfinite(values), values, np.inf if direction == "min" else -np.inf)
    best = np.minimum.accumulate(v) if direction == "min" else np.maximum.accumulate(v)
    n = len(v)
    is_new = np.r_[True, best[1:] != best[:-1]] if n else np.zeros(0, dtype=bool)
    pos = np.where(is_new, np.arange(n), 0)
    idx = np.maximum.accumulate(pos) if n else pos
    return best, idx


def config_value(run: Run, keys: list[str] | tuple[str, ...]) -> tuple[Any, str | None]:
    """The first of ``keys`` present in the run's config (flat dotted keys, e.g. ``max_grad_norm`` or
    ``trainer.max_steps``), as (value, key); (None, None) when none is."""
    for key in keys or ():
        if key in run.config and run.config[key] is not None:
            return run.config[key], key
    return None, None


def config_number(run: Run, keys: list[str] | tuple[str, ...]) -> tuple[float | None, str | None]:
    value, key = config_value(run, keys)
    try:
        num = float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):  # a 400-digit integer is no usable setting
        num = None
    return (num, key) if num is not None and np.isfinite(num) else (None, None)


def fmt_float(x: float) -> float:
    return float(x) if x is not None else float("nan")


OPS: dict[str, np.ufunc] = {  # comparisons: an array or a number against the bound
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


def window_start_index(steps: np.ndarray, window: Mapping[str, Any] | None) -> int:
    """First index inside a {last: N points|steps} window (0 = whole series)."""
    if not window or len(steps) == 0:
        return 0
    last = window.get("last")
    if last is None:
        return 0
    count, unit = last
    if unit == "%":
        return max(0, len(steps) - max(1, int(round(len(steps) * float(count) / 100.0))))
    if unit in ("points", "evals", "logs"):
        return max(0, len(steps) - int(count))
    return int(np.searchsorted(steps, steps[-1] - int(count), side="left"))


def noop_evidence(_: int) -> dict[str, Any]:
    return {}


__all__ = [
    "Param",
    "CheckResult",
    "Check",
    "registry",
    "empty_result",
    "global_result",
    "resolve_series",
    "arrays",
    "sorted_unique",
    "finite_points",
    "asof",
    "config_value",
    "config_number",
    "ema",
    "rolling_median",
    "smooth",
    "final_run_only",
    "running_best",
    "OPS",
    "window_start_index",
    "field",
]
