"""The numbers behind a public run's label: the definitions of tests/corpus/README.md applied mechanically.

    python tests/corpus-public/label_numbers.py FORMAT FILE [--which N] [--metric NAME]

FORMAT is how the series are taken out of FILE: ``state`` (HF trainer_state.json), ``lf`` (LLaMA-Factory
trainer_log.jsonl), ``nbtable`` (the HF Trainer HTML progress table in a notebook's outputs; ``--which`` picks
the table, default the last), ``nbstream`` / ``text`` (``{'loss': ...}`` dicts, MLX ``Iter N: Train loss``,
llm.c ``s:N trl:``, nanoGPT ``step N: train loss X, val loss Y`` lines in a notebook's streams or a text file),
``jsonl`` (one JSON object a line), ``tb`` (a TensorBoard logdir or event file), ``wandb`` (wandb-history.jsonl),
``wandbfile`` (the history records of a binary ``.wandb`` file, or of every one under a run dir; needs ``wandb``).
It prints the figures that go into ``why:`` and the verdicts the definitions give. It never imports lossdoctor:
labels must not come from the tool being measured. The extraction here is deliberately simple and explicit (one
regex or key per format); a case whose numbers need judgement says so in its ``why:``.

Procedure (supervised loss; see tests/corpus-public/README.md for the preference/RL and metric rules):
- ``nonfinite``: any loss or grad_norm point is NaN/inf.
- ``exploding-gradients``: grad_norm > 100 in >= 3 logs.
- ``not-learning``: the lowest median over any stretch of 20 % of the train logs is >= 95 % of the median of
  the first 20 %.
- ``diverging``: the running median (full windows of max(3, ceil(n/20)) logs) ends >= 1.3x and >= 0.5 above the
  best of (its minimum, the median of the first 20 %).
- ``overfitting``: the last eval loss is >= 1.05x the eval minimum (and the minimum is not the last eval),
  while the train median over the last 20 % is below the train median around the eval minimum. With >= 20 evals
  the eval series is first replaced by its full-window running median (w = max(3, ceil(n/10))), so that one
  noisy eval neither makes nor hides the verdict.
"""

from __future__ import annotations

import argparse
import html.parser
import json
import math
import re
import statistics
import sys
from pathlib import Path

Series = list[tuple[float, float]]


def _f(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v


# -- extraction -----------------------------------------------------------------------------------------------


def from_dicts(rows: list[dict], step_keys=("step", "current_steps", "global_step", "_step")) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for i, row in enumerate(rows):
        step = next((_f(row[k]) for k in step_keys if k in row and _f(row[k]) is not None), float(i))
        for k, v in row.items():
            if k in step_keys or isinstance(v, bool):
                continue
            fv = _f(v)
            if fv is not None:
                out.setdefault(k, []).append((step, fv))
    return out


def read_state(path: Path) -> dict[str, Series]:
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [r for r in data["log_history"] if "train_runtime" not in r]
    s = from_dicts(rows)
    meta = {k: data.get(k) for k in ("global_step", "max_steps", "best_metric", "best_model_checkpoint")}
    print("state:", json.dumps(meta))
    return s


def read_jsonl(path: Path) -> dict[str, Series]:
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    rows = [r for r in rows if "train_runtime" not in r]
    return from_dicts(rows)


class _Tables(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _outputs(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for ci, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            yield ci, out


def _join(x) -> str:
    return "".join(x) if isinstance(x, list) else (x or "")


def read_nbtable(path: Path, which: int = -1) -> dict[str, Series]:
    tables = []
    for ci, out in _outputs(path):
        html_text = _join((out.get("data") or {}).get("text/html"))
        if "<table" not in html_text:
            continue
        p = _Tables()
        p.feed(html_text)
        for t in p.tables:
            if t and t[0] and t[0][0] in ("Step", "Epoch") and len(t[0]) > 1:
                tables.append((ci, t))
    print(f"{len(tables)} progress tables: " + ", ".join(f"cell {ci} ({len(t) - 1} rows, {t[0]})" for ci, t in tables))
    ci, t = tables[which]
    head, rows = t[0], t[1:]
    out: dict[str, Series] = {}
    for r in rows:
        step = _f(r[0])
        for name, cell in zip(head[1:], r[1:]):
            v = _f(cell)
            if v is not None and step is not None:
                out.setdefault(name, []).append((step, v))
    return out


def nb_text(path: Path) -> str:
    parts = []
    for _ci, out in _outputs(path):
        if out.get("output_type") == "stream":
            parts.append(_join(out.get("text")))
        else:
            parts.append(_join((out.get("data") or {}).get("text/plain")))
    return "\n".join(parts)


NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf|NaN|Infinity|-Infinity))"


def read_text(text: str) -> dict[str, Series]:
    text = text.replace("\r", "\n")
    out: dict[str, Series] = {}

    def add(k, s, v):
        fv = _f(v)
        if fv is not None:
            out.setdefault(k, []).append((float(s), fv))

    dicts = re.findall(r"\{'loss': [^}]*\}|\{'eval_loss': [^}]*\}", text)
    if dicts:
        for i, d in enumerate(dicts):
            try:
                row = eval(d, {"__builtins__": {}}, {"nan": math.nan, "inf": math.inf})  # noqa: S307 (literal dicts)
            except Exception:
                continue
            for k, v in row.items():
                add(k, i, v)
        return out
    for m in re.finditer(r"Iter (\d+): Train loss " + NUM + r"(?:, Learning Rate " + NUM + ")?", text):
        add("loss", m.group(1), m.group(2))
        if m.group(3):
            add("lr", m.group(1), m.group(3))
    for m in re.finditer(r"Iter (\d+): Val loss " + NUM, text):
        add("eval_loss", m.group(1), m.group(2))
    for m in re.finditer(r"s:(\d+) trl:" + NUM + r"(?: lr:" + NUM + r")?(?: norm:" + NUM + ")?", text):
        add("loss", m.group(1), m.group(2))
        if m.group(4):
            add("grad_norm", m.group(1), m.group(4))
    for m in re.finditer(r"s:(\d+) tel:" + NUM, text):
        add("eval_loss", m.group(1), m.group(2))
    unit = r"(?: ?[A-Za-z%]+)?"
    nano = list(
        re.finditer(
            r"(?i)(?:step|iter) (\d+):? ?(?:\|)? ?train loss:? "
            + NUM
            + unit
            + r",? ?(?:\|)? ?val(?:idation)? loss:? "
            + NUM,
            text,
        )
    )
    iters = list(re.finditer(r"(?i)iter (\d+): loss " + NUM, text))
    for m in nano:
        add("eval_train_loss" if iters else "loss", m.group(1), m.group(2))
        add("eval_loss", m.group(1), m.group(3))
    for m in iters:
        add("loss", m.group(1), m.group(2))
    for m in re.finditer(r"\(Step (\d+)\): Train loss " + NUM + r", Val loss " + NUM, text):
        add("loss", m.group(1), m.group(2))
        add("eval_loss", m.group(1), m.group(3))
    return out


def read_tb(path: Path) -> dict[str, Series]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = [path] if path.is_file() else sorted(path.rglob("*tfevents*"))
    out: dict[str, Series] = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def read_wandb_file(path: Path) -> dict[str, Series]:
    """History records of a .wandb file (LevelDB-log framing: 7-byte header, 32 KiB blocks; protobuf Records)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    files = [path] if path.is_file() else sorted(path.rglob("*.wandb"))
    rows = []
    for f in files:
        data, pos, buf = f.read_bytes(), 7, b""
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            if left < 7:
                pos += left
                continue
            _crc, ln, typ = struct.unpack("<IHB", data[pos : pos + 7])
            pos += 7
            if typ == 0 and ln == 0:
                pos += left - 7
                continue
            chunk, pos = data[pos : pos + ln], pos + ln
            if typ in (1, 2):
                buf = chunk
            else:
                buf += chunk
            if typ in (1, 4):
                rec = pb.Record()
                rec.ParseFromString(buf)
                if rec.WhichOneof("record_type") == "history":
                    rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return from_dicts(rows)


# -- judgement ------------------------------------------------------------------------------------------------


def g(x: float) -> str:
    return f"{x:.4g}"


def running_median(v: list[float], w: int) -> list[float]:
    """Medians of every full window of w consecutive logs (the whole series when it is shorter)."""
    if len(v) <= w:
        return [statistics.median(v)]
    return [statistics.median(v[i : i + w]) for i in range(len(v) - w + 1)]


def judge(train: Series, ev: Series, gn: Series) -> tuple[list[str], str]:
    verdicts: list[str] = []
    why: list[str] = []
    finite = lambda s: [p for p in s if math.isfinite(p[1])]  # noqa: E731
    bad_loss = [p for p in train + ev if not math.isfinite(p[1])]
    bad_gn = [p for p in gn if not math.isfinite(p[1])]
    tr = finite(train)
    if ev:
        e = finite(ev)
        if len(e) >= 20:  # noisy, frequent evals: compare full-window running medians, not single points
            w_e = max(3, math.ceil(len(e) / 10))
            sm = running_median([v for _, v in e], w_e)
            e = [(e[i + w_e // 2][0], v) for i, v in enumerate(sm)]
            why.append(f"{len(ev)} evals smoothed (running median, w={w_e}):")
        i_min = min(range(len(e)), key=lambda i: e[i][1])
        mn, last = e[i_min][1], e[-1][1]
        mx_after = max(v for _, v in e[i_min:])
        why.append(
            f"{len(ev)} evals: eval_loss {g(e[0][1])}@{g(e[0][0])} -> min {g(mn)}@{g(e[i_min][0])} -> last "
            f"{g(last)}@{g(e[-1][0])} (max after min {mx_after / mn:.3f}x, last {last / mn:.3f}x min)"
        )
        if last >= 1.05 * mn and i_min < len(e) - 1 and tr:
            step_min = e[i_min][0]
            gap = (e[1][0] - e[0][0]) if len(e) > 1 else step_min
            around = [v for s, v in tr if abs(s - step_min) <= gap] or [min(tr, key=lambda p: abs(p[0] - step_min))[1]]
            tail = [v for _, v in tr[-max(1, len(tr) // 5) :]]
            a, t = statistics.median(around), statistics.median(tail)
            falling = t < a
            onset = next(s for s, v in e if v <= 1.01 * mn)
            why.append(
                f"train median around the eval min (|step-{g(step_min)}|<={g(gap)}, {len(around)} logs) {g(a)} "
                f"vs last-20% median {g(t)} ({'still falling' if falling else 'not falling'}); first eval "
                f"within 1% of min at step {g(onset)}"
            )
            if falling:
                verdicts.append("overfitting")
                why.append(f"onset_step {g(onset)}")
    else:
        why.append("No eval_loss in the log.")
    if tr:
        v = [x for _, x in tr]
        n = len(v)
        k = max(1, n // 5)
        first = statistics.median(v[:k])
        lowest = min(statistics.median(v[i : i + k]) for i in range(0, n - k + 1))
        w = max(3, math.ceil(n / 20))
        rm = running_median(v, w)
        why.append(
            f"{n} train logs (steps {g(tr[0][0])}-{g(tr[-1][0])}): loss {g(v[0])} -> {g(v[-1])}; median of "
            f"first 20% {g(first)}, lowest 20%-stretch median {g(lowest)} ({lowest / first:.0%} of start). "
            f"Running median (w={w}): start {g(rm[0])}, min {g(min(rm))}, end {g(rm[-1])} "
            f"({rm[-1] / min(rm):.2f}x min)."
            if min(rm) > 0
            else ""
        )
        if first > 0 and lowest >= 0.95 * first:
            verdicts.append("not-learning")
        best = min(min(rm), first)
        if best > 0 and rm[-1] >= 1.3 * best and rm[-1] - best >= 0.5:
            verdicts.append("diverging")
    else:
        why.append("No train loss in the log.")
    if gn:
        gf = [x for _, x in gn if math.isfinite(x)]
        big = sum(1 for x in gf if x > 100)
        why.append(
            f"grad_norm max {g(max(gf)) if gf else 'n/a'}, {big} logs > 100"
            + (f", {len(bad_gn)} non-finite at steps {[g(s) for s, _ in bad_gn][:8]}" if bad_gn else ", all finite")
        )
        if big >= 3:
            verdicts.append("exploding-gradients")
    else:
        why.append("No grad_norm logged")
    why.append(
        f"{len(bad_loss)} non-finite losses" + (f" at steps {[g(s) for s, _ in bad_loss][:8]}" if bad_loss else "")
    )
    if bad_loss or bad_gn:
        verdicts.append("nonfinite")
    zeros = [s for s, x in tr if x == 0.0]
    if zeros:
        why.append(f"{len(zeros)} train losses exactly 0.0 (first at step {g(zeros[0])})")
    return (verdicts or ["healthy"]), " ".join(x for x in why if x)


def trend(name: str, s: Series) -> str:
    v = [x for _, x in s if math.isfinite(x)]
    if not v:
        return f"{name}: no finite points"
    k = max(1, math.ceil(len(v) / 5))
    return (
        f"{name}: {len(v)} pts, first {g(v[0])}, last {g(v[-1])}, median first 20% {g(statistics.median(v[:k]))}, "
        f"last 20% {g(statistics.median(v[-k:]))}, min {g(min(v))}, max {g(max(v))}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("fmt")
    ap.add_argument("file", type=Path)
    ap.add_argument("--which", type=int, default=-1)
    ap.add_argument("--train", default=None, help="series name of the train loss")
    ap.add_argument("--eval", default=None, help="series name of the eval loss")
    ap.add_argument("--gn", default=None)
    ap.add_argument("--show", action="append", default=[], help="also print the trend of these series")
    a = ap.parse_args()
    s = {
        "state": lambda: read_state(a.file),
        "lf": lambda: read_jsonl(a.file),
        "jsonl": lambda: read_jsonl(a.file),
        "wandb": lambda: read_jsonl(a.file),
        "nbtable": lambda: read_nbtable(a.file, a.which),
        "nbstream": lambda: read_text(nb_text(a.file)),
        "text": lambda: read_text(a.file.read_text(encoding="utf-8", errors="replace")),
        "tb": lambda: read_tb(a.file),
        "wandbfile": lambda: read_wandb_file(a.file),
    }[a.fmt]()
    print("series:", {k: len(v) for k, v in s.items()})

    def pick(name, *cands):
        if name:
            return s.get(name, [])
        for c in cands:
            if c in s:
                return s[c]
        return []

    train = pick(a.train, "loss", "Training Loss", "train/loss", "train_loss")
    ev = pick(a.eval, "eval_loss", "Validation Loss", "eval/loss", "val_loss")
    gn = pick(a.gn, "grad_norm", "train/grad_norm")
    verdicts, why = judge(train, ev, gn)
    for name in a.show:
        print(trend(name, s.get(name, [])))
    print("verdicts:", verdicts)
    print("why:", why)


if __name__ == "__main__":
    sys.exit(main())
