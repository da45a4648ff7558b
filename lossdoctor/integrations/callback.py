"""LossDoctorCallback: run lossdoctor's rules live, inside a transformers/trl Trainer.

    from lossdoctor.integrations import LossDoctorCallback
    trainer.add_callback(LossDoctorCallback(stop_on="warning"))

On every ``on_log`` the new rows of ``state.log_history`` (only those; earlier rows are never re-read) are
appended to the callback's own step/metric/value columns, a ``Run`` is built from them, and the rule engine
(the same rules and code as ``lossdoctor analyze``) runs over it. Each finding is printed the first time
it fires::

    [lossdoctor] WARNING overfitting @ step 60: eval/loss rose 7.1% from its best ...

If a finding's severity is at or above ``stop_on`` or its rule id is in ``stop_on_rules``, the callback sets
``control.should_training_stop``; the Trainer then stops after the current step (and, with
``load_best_model_at_end=True``, reloads the best checkpoint).

In a notebook (a Jupyter kernel is running), the notices are not printed: the callback shows one inline display
under the cell and updates it in place (findings so far, then the full diagnosis when training ends), so a long
run does not fill the cell with lines. ``inline=False`` keeps printing; outside a kernel nothing changes.

Why on_log and not on_step_end: rules read logged metrics, so nothing can change between logs; evaluating
only when a log arrives keeps the overhead at one engine pass per ``logging_steps``/``eval_steps``.

Why not a ``transformers.TrainerCallback`` subclass: the Trainer only ever calls ``getattr(callback, event)``
on its callbacks, so a class with the same ``on_*`` methods is a callback. Subclassing would import
transformers (and with it peft, bitsandbytes and torch: seconds, and import-time noise on CPU machines) just
to define this class; as it is, importing it costs only lossdoctor's own core. Events this class does not
handle (including ones a future transformers adds) are no-ops, as in ``TrainerCallback``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossdoctor.diagnosis import diagnose
from lossdoctor.metrics.names import canonicalise
from lossdoctor.model import SEVERITY_RANK, Provenance, Run, make_metrics
from lossdoctor.rules.packs import load_rules
from lossdoctor.table import Series

PREFIX = "[lossdoctor]"
#: keys of the trainer's final summary row; its "train_loss" is a run average, not a point on the curve
_SUMMARY_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second"})
_SKIP_KEYS = frozenset({"step", "total_flos"})


@dataclass(frozen=True, eq=False)
class _LiveRun(Run):
    """A Run whose ``series()`` comes from the callback's per-metric columns (already step-ordered), not from
    filtering the tidy frame: the engine asks for ~20 series per pass and pandas filtering dominated its cost."""

    columns: Any = field(default=None, repr=False)

    def series(self, metric: str) -> Series:
        col = self.columns.get(metric) if self.columns is not None else None
        if col is None:
            return super().series(metric)
        steps, values = col
        return Series(np.asarray(steps, dtype="int64"), np.asarray(values, dtype="float64"), metric)


class LossDoctorCallback:
    """Live rule evaluation over ``state.log_history``; can stop training on a finding.

    rules: extra rule files (the default pack is always included unless ``include_default=False``).
    stop_on: "never" | "error" | "warning" | "info" - stop when a finding at or above this severity fires.
    stop_on_rules: rule ids that stop training whatever their severity.
    print_fn: where the one-line notices go (default ``print``; the run's console.log tees it).
    inline: None (default) = in a Jupyter kernel, show one inline display updated in place instead of printing;
        True / False force it on / off.
    max_overhead: share of training wall time the rules may use. A train-loss log that arrives while the
        callback is over budget is ingested but judged at the next log; eval logs and the end of training are
        always judged (that is where overfitting shows and where the best checkpoint is decided).
    """

    def __init__(
        self,
        rules: Iterable[str] = (),
        stop_on: str = "never",
        stop_on_rules: Iterable[str] = (),
        print_fn: Callable[[str], Any] = print,
        include_default: bool = True,
        ruleset: Any = None,
        run_name: str | None = None,
        max_overhead: float = 0.02,
        inline: bool | None = None,
    ) -> None:
        if stop_on != "never" and stop_on not in SEVERITY_RANK:
            raise ValueError(f"stop_on must be 'never' or one of {', '.join(SEVERITY_RANK)}, got {stop_on!r}")
        if ruleset is None:
            ruleset = load_rules(tuple(rules), include_default=include_default)
        self.ruleset = ruleset
        self.stop_on = stop_on
        self.stop_on_rules = frozenset(stop_on_rules)
        unknown = sorted(r for r in self.stop_on_rules if ruleset.get(r) is None)
        if unknown:
            raise ValueError(f"stop_on_rules: unknown rule id(s) {', '.join(unknown)}")
        self.print_fn = print_fn
        self.run_name = run_name
        self.max_overhead = max_overhead
        self.inline = in_notebook() if inline is None else bool(inline)
        #: rules made only of `missing` checks judge an absence, which only the finished run can show
        self.deferred = frozenset(r.id for r in ruleset.rules if _only_missing(r.when))
        self._reset()

    def _reset(self) -> None:
        """Forget every row seen and every finding (a new run, or history replaced on resume)."""
        self._display: Any = None  # the IPython display handle (inline mode)
        self._spent = 0.0  # seconds spent judging
        self._started: float | None = None
        self._seen = 0  # rows of log_history already ingested
        self._steps: list[int] = []
        self._raw: list[str] = []
        self._canon: list[str] = []
        self._values: list[float] = []
        self._canon_cache: dict[str, str] = {}
        #: canonical → (steps, values); None once a row came out of step order
        self._columns: dict[str, tuple[list[int], list[float]] | None] = {}
        self._pending = False  # rows ingested but not judged yet
        self.fired: dict[str, Any] = {}  # rule id → Finding, first firing (insertion order)
        self.fired_at: dict[str, int] = {}  # rule id → global step when it first fired
        self.crashed: list[str] = []
        self.stopped_by: Any = None  # the Finding that stopped training, if any
        self.stopped_at: int | None = None
        self.last_diagnosis: Any = None
        self.evaluations = 0

    # -- ingestion -------------------------------------------------------------------------------------
    def _canonical(self, raw: str) -> str:
        canon = self._canon_cache.get(raw)
        if canon is None:
            canon = self._canon_cache[raw] = canonicalise(raw)
        return canon

    def _ingest(self, rows: list[dict[str, Any]]) -> int:
        added = 0
        for row in rows:
            if _SUMMARY_KEYS.intersection(row):
                continue
            step = row.get("step")
            if not isinstance(step, int):
                continue
            for key, value in row.items():
                if key in _SKIP_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                canon = self._canonical(key)
                self._steps.append(step)
                self._raw.append(key)
                self._canon.append(canon)
                self._values.append(float(value))
                column = self._columns.setdefault(canon, ([], []))
                if column is not None:  # None: fast path dropped, series() filters the tidy frame
                    steps, values = column
                    if steps and steps[-1] == step:  # same metric twice at one step: the last one wins
                        values[-1] = float(value)
                    elif steps and steps[-1] > step:  # out of order (never from the Trainer): drop the fast path
                        self._columns[canon] = None
                    else:
                        steps.append(step)
                        values.append(float(value))
                added += 1
        return added

    def current_run(self, args: Any = None, state_name: str = "running") -> Any:
        """The metrics ingested so far as a lossdoctor ``Run``."""

        frame = make_metrics(self._steps, self._raw, self._values, metrics=self._canon)
        location = str(getattr(args, "output_dir", "") or "trainer")
        name = self.run_name or getattr(args, "run_name", None) or location
        columns = {k: v for k, v in self._columns.items() if v is not None}
        return _LiveRun(
            name=str(name),
            provenance=Provenance(kind="trainer-live", location=location, step_source="logged"),
            metrics=frame,
            state=state_name,
            columns=columns,
        )

    # -- rule evaluation -------------------------------------------------------------------------------
    def _should_stop(self, finding: Any) -> bool:
        if finding.rule_id in self.stop_on_rules:
            return True
        if self.stop_on == "never":
            return False
        return SEVERITY_RANK[finding.severity] >= SEVERITY_RANK[self.stop_on]

    def evaluate(self, args: Any, state: Any, control: Any, final: bool = False) -> None:
        self._pending = False
        t0 = time.perf_counter()
        try:
            self._judge(args, state, control, final, diagnose)
        finally:
            self._spent += time.perf_counter() - t0

    def _notice(self, line: str) -> None:
        if not self.inline:
            self.print_fn(line)

    def _judge(self, args: Any, state: Any, control: Any, final: bool, diagnose: Callable[..., Any]) -> None:
        diag = diagnose(self.current_run(args, "finished" if final else "running"), self.ruleset)
        self.last_diagnosis = diag
        self.evaluations += 1
        for item in diag.crashed_checks:
            if item not in self.crashed:
                self.crashed.append(item)
                self._notice(f"{PREFIX} ERROR rule check crashed: {item}")
        step = int(state.global_step)
        for finding in diag.findings:
            if finding.rule_id in self.fired or (finding.rule_id in self.deferred and not final):
                continue
            self.fired[finding.rule_id] = finding
            self.fired_at[finding.rule_id] = step
            self._notice(f"{PREFIX} {finding.severity.upper()} {finding.rule_id} @ step {step}: {finding.message}")
            if self.stopped_by is None and not final and self._should_stop(finding):
                self.stopped_by, self.stopped_at = finding, step
                control.should_training_stop = True
                self._notice(f"{PREFIX} stopping training at step {step} ({finding.rule_id}, {finding.severity})")
        if self.inline:
            self._show(step, final)

    def _show(self, step: int, final: bool) -> None:
        """Create the inline display on first use, then update that same display (never a new output)."""
        from IPython.display import HTML, display  # a kernel is running: IPython is already imported

        from lossdoctor.report.inline import render_live_html

        if final and self.last_diagnosis is not None:
            html = self.last_diagnosis._repr_html_()
        else:
            fired = [(f, self.fired_at.get(f.rule_id, step)) for f in self.fired.values()]
            html = render_live_html(step, fired, self.crashed, self.stopped_by, self.stopped_at)
        if self._display is None:
            self._display = display(HTML(html), display_id=True)
        else:
            self._display.update(HTML(html))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        history = state.log_history
        if self._seen > len(history):  # history replaced (resumed from a checkpoint): start over
            self._reset()
        new_rows = history[self._seen :]
        self._seen = len(history)
        if self._ingest(new_rows):
            self._pending = True
        if not self._pending:
            return control
        now = time.perf_counter()
        if self._started is None:
            self._started = now
        has_eval = any(k.startswith("eval_") for row in new_rows for k in row)
        within_budget = self._spent <= self.max_overhead * (now - self._started)
        if has_eval or within_budget or self.evaluations == 0:
            self.evaluate(args, state, control)
        return control

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._started = time.perf_counter()
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._ingest(state.log_history[self._seen :])
        self._seen = len(state.log_history)
        self.evaluate(args, state, control, final=True)
        return control

    @property
    def findings(self) -> tuple[Any, ...]:
        return tuple(self.fired.values())

    def __getattr__(self, name: str) -> Any:
        """Every other Trainer event (on_step_end, on_evaluate, ...) is a no-op, as in TrainerCallback."""
        if name.startswith("on_"):
            return _no_event
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (the test transformers and tqdm use). IPython is never imported here: a
    kernel has imported it already."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 - an odd shell is simply not a notebook
        return False


def _no_event(args: Any, state: Any, control: Any, **kwargs: Any) -> None:
    return None


def _only_missing(cond: Any) -> bool:
    if cond.op == "check":
        return cond.kind == "missing"
    return bool(cond.children) and all(_only_missing(c) for c in cond.children)
