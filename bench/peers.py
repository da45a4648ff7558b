"""lossdoctor side by side with the diagnosis tools on PyPI (the peers), on the same inputs, in one run.

    bash bench/peers_setup.sh                                   # once: the peers into bench/.peers (own venv)
    .venv/bin/python bench/peers.py speed [--repeats 3] [--only NAME] [--big] [--also NAME=BIN]
    .venv/bin/python bench/peers.py verdicts [CORPUS_DIR ...] [--json OUT]

``speed`` generates the inputs of issue 13 (a 1,000-step trainer_state.json; with ``--big`` also a 200,000-step
one, a TensorBoard logdir of 800,000 scalar events and a 1M-dict console log), then runs every tool that reads
each input, interleaved (tool order rotates each repeat), each in its own process, and prints the median wall
time and peak RSS (``wait4``, or the sum over a tool's worker processes: bench/proctree.py) and lossdoctor's
ratio to the fastest peer (and to the leanest peer's RSS), among the peers that read the input
(one whose verdict is ``unread`` is listed but not compared with). lossdoctor runs as
``lossdoctor analyze INPUT --format json`` (and once more with ``html,md``); each peer with its JSON output.
``--also main=/work/main/.venv/bin/lossdoctor`` adds another lossdoctor build (e.g. before a change) to the
same interleaved rotation, printed as ``lossdoctor@main``.

``verdicts`` runs every tool over labelled corpus directories (``tests/corpus`` style: one dir per run with a
``label.yaml``) and prints, per run, the label and each tool's verdict normalised to ``healthy`` / ``problem``
(a finding at warning level or above) / ``unread`` (the tool could not read it), then agreement counts: healthy
runs kept healthy, problem runs flagged, unread. This is a coarse comparison (a tool that flags every run gets
every problem run right): the false-alarm column is the one to read next to it.

Nothing here is a unit test; the peers are never imported, only run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS_BIN = ROOT / "bench" / ".peers" / "bin"
OURS = Path(sys.executable).parent / "lossdoctor"
sys.path.insert(0, str(ROOT / "bench"))


# -- tools ---------------------------------------------------------------------------------------------------


def _load_json(text: str) -> Any:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        return None


def _sev_problem(severities: list[str]) -> bool:
    return any(str(s).lower() in {"warning", "warn", "error", "critical", "fail", "high"} for s in severities)


def _v_trainproof(rc: int, out: str) -> str:
    data = _load_json(out)
    if not isinstance(data, dict) or not data.get("reports"):
        return "unread"
    verdicts = [str(r.get("verdict", "")).upper() for r in data["reports"]]
    if all(v in ("", "UNREADABLE", "NO_DATA", "ERROR") for v in verdicts):
        return "unread"
    return "problem" if any(v in ("FAIL", "WARN") for v in verdicts) else "healthy"


def _v_losslint(rc: int, out: str) -> str:
    data = _load_json(out)
    if not isinstance(data, dict) or not data.get("runs"):
        return "unread"
    if all(int(r.get("points", 0) or 0) == 0 for r in data["runs"]):
        return "unread"
    s = data.get("summary", {})
    return "problem" if (s.get("error", 0) or s.get("warning", 0)) else "healthy"


def _v_trainspotter(rc: int, out: str) -> str:
    data = _load_json(out)
    if not isinstance(data, dict) or "findings" not in data:
        return "unread"
    return "problem" if _sev_problem([f.get("severity") for f in data["findings"]]) else "healthy"


def _v_runmedic(rc: int, out: str) -> str:
    data = _load_json(out)
    if not isinstance(data, list) or not data:
        return "unread"
    if not any(r.get("series") for r in data):
        return "unread"
    return "problem" if _sev_problem([f.get("severity") for r in data for f in r.get("findings", [])]) else "healthy"


def _v_ftdoctor(rc: int, out: str) -> str:
    data = _load_json(out)
    if not isinstance(data, dict) or "worst" not in data:
        return "unread"
    return "problem" if _sev_problem([data.get("worst")]) else "healthy"


def _v_lossdoctor(rc: int, out: str) -> str:
    if rc == 2:
        return "unread"
    return "problem" if rc == 1 else "healthy"


@dataclass(frozen=True)
class Tool:
    name: str
    argv: Callable[[str, str], list[str]]  # (input path, scratch dir) -> argv
    verdict: Callable[[int, str], str]  # (exit code, stdout) -> healthy | problem | unread
    reads: tuple[str, ...] = ("state", "tb", "console")

    def available(self) -> bool:
        return Path(self.argv("x", "y")[0]).exists()


TOOLS: tuple[Tool, ...] = (
    Tool(
        "lossdoctor",
        lambda p, d: [str(OURS), "analyze", p, "--format", "json", "--out", d, "--fail-on", "warning", "-q"],
        _v_lossdoctor,
    ),
    Tool("trainproof", lambda p, d: [str(PEERS_BIN / "trainproof"), "doctor", p, "--json"], _v_trainproof),
    Tool("losslint", lambda p, d: [str(PEERS_BIN / "losslint"), "check", p, "--format", "json"], _v_losslint),
    Tool(
        "trainspotter",
        lambda p, d: [str(PEERS_BIN / "trainspotter"), "analyze", p, "--output", "json"],
        _v_trainspotter,
    ),
    Tool("runmedic", lambda p, d: [str(PEERS_BIN / "runmedic"), "diagnose", p, "--json"], _v_runmedic),
    Tool(
        "finetune-doctor",
        lambda p, d: [str(PEERS_BIN / "finetune-doctor"), "diagnose", p, "-f", "json"],
        _v_ftdoctor,
        reads=("state",),
    ),
)


def run_measured(argv: list[str], timeout: float = 600.0) -> tuple[int, str, float, float]:
    """(exit code, stdout, wall seconds, peak RSS in MB) of one child process. The peak is the larger of
    wait4's (the child's own) and the sampled sum over the child and its worker processes (bench/proctree.py:
    lossdoctor scans a big console log in several processes)."""
    from proctree import TreeRSS

    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out_f:
        proc = subprocess.Popen(
            argv,
            stdout=out_f,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=dict(os.environ, NO_COLOR="1", HF_HUB_OFFLINE="1"),
        )
        rc, rss = -9, float("nan")
        with TreeRSS(proc.pid) as tree:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    rc = os.waitstatus_to_exitcode(status)
                    rss = max(usage.ru_maxrss / 1024.0, tree.peak_mb)
                    proc.returncode = rc
                    break
                if time.perf_counter() - t0 > timeout:
                    proc.kill()
                    continue
                time.sleep(0.005)
        wall = time.perf_counter() - t0
        out_f.seek(0)
        out = out_f.read().decode("utf-8", "replace")
    return rc, out, wall, rss


# -- inputs --------------------------------------------------------------------------------------------------


def make_inputs(tmp: Path, big: bool, small: bool = True) -> list[tuple[str, str, Path]]:
    """(label, kind, path) of the generated inputs; an input already in ``tmp`` (``--keep DIR``) is reused
    (the generators are deterministic)."""
    from bench_rules import make_state

    inputs: list[tuple[str, str, Path]] = []
    if small:
        state = tmp / "small" / "trainer_state.json"
        if not state.exists():
            state.parent.mkdir(parents=True, exist_ok=True)
            make_state(int(1000 * (3 + 1 / 10 + 1 / 3)), state)
        inputs.append(("trainer_state 1k steps", "state", state))
    if big:
        large = tmp / "large" / "trainer_state.json"
        if not large.exists():
            large.parent.mkdir(exist_ok=True)
            make_state(int(200_000 * (3 + 1 / 10 + 1 / 3)), large)
        inputs.append(("trainer_state 200k steps", "state", large))
        logdir = tmp / "tb"
        if not logdir.exists():
            _make_tb(logdir, 800_000)
        inputs.append(("TensorBoard 800k events", "tb", logdir))
        console = tmp / "console_1m.log"
        if not console.exists():
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "gen_console_log.py"), "1000000", str(console)], check=True
            )
        inputs.append(("HF console 1M dicts", "console", console))
    return inputs


def _make_tb(logdir: Path, events: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(logdir))
    steps = events // 4
    for step in range(1, steps + 1):
        writer.add_scalar("train/loss", 2.0 / (1 + step / 1000) + 0.3, step)
        writer.add_scalar("train/learning_rate", 2e-4 * (1 - step / steps), step)
        writer.add_scalar("train/grad_norm", 1.0 + (step % 7) / 10, step)
        writer.add_scalar("train/epoch", step / 10000, step)
    writer.close()


# -- commands ------------------------------------------------------------------------------------------------


def _other_build(spec: str) -> Tool:
    """``NAME=BIN``: another lossdoctor executable measured like lossdoctor (``lossdoctor@NAME``)."""
    name, _, binary = spec.partition("=")
    return Tool(
        f"lossdoctor@{name}",
        lambda p, d, b=binary: [b, "analyze", p, "--format", "json", "--out", d, "--fail-on", "warning", "-q"],
        _v_lossdoctor,
    )


def cmd_speed(args: argparse.Namespace) -> None:
    tools = [t for t in TOOLS if t.available() and (not args.only or t.name in args.only)]
    tools += [_other_build(spec) for spec in args.also or ()]
    missing = [t.name for t in TOOLS if not t.available()]
    if missing:
        print(f"not installed (bash bench/peers_setup.sh): {', '.join(missing)}", file=sys.stderr)
    # byte-code for lossdoctor as an installed package has it (the peers' were compiled by pip)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "lossdoctor")], check=True)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        # made in a child process: a timed child forked from a parent that has just built a 400 MB input starts
        # with its pages, and wait4's peak RSS counts them (every tool then "peaked" at the parent's size)
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1) as maker:
            inputs = maker.submit(make_inputs, Path(args.keep) if args.keep else tmp, args.big, args.small).result()
        if args.input:
            inputs = [i for i in inputs if any(w.lower() in i[0].lower() for w in args.input)]
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}, median of {args.repeats}")
        print(f"{'input':26} {'tool':24} {'wall s':>8} {'RSS MB':>8} {'rc':>3}  verdict")
        for label, kind, path in inputs:
            rows: dict[str, list[tuple[float, float, int, str]]] = {}
            variants = [(t, False) for t in tools if kind in t.reads]
            variants += [(t, True) for t, _ in list(variants) if t.name.startswith("lossdoctor")]
            for rep in range(args.repeats):
                order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
                for tool, html in order:
                    scratch = tmp / f"out-{tool.name}-{rep}"
                    argv = tool.argv(str(path), str(scratch))
                    name = tool.name
                    if html:
                        argv[argv.index("json")] = "html,md"
                        name = f"{tool.name} html,md"
                    rc, out, wall, rss = run_measured(argv)
                    rows.setdefault(name, []).append((wall, rss, rc, tool.verdict(rc, out)))
            # a peer that could not read the input did not do the work: it is listed, not compared with
            readers = {n: r for n, r in rows.items() if not n.startswith("lossdoctor") and r[-1][3] != "unread"}
            peers = {n: statistics.median(w for w, *_ in r) for n, r in readers.items()}
            peer_rss = {n: statistics.median(m for _, m, *_ in r) for n, r in readers.items()}
            fastest = min(peers.values()) if peers else float("nan")
            for name, r in rows.items():
                wall = statistics.median(w for w, *_ in r)
                rss = statistics.median(m for _, m, *_ in r)
                ratio = ""
                if name.startswith("lossdoctor") and peers:
                    ratio = (
                        f"  {wall / fastest:.2f}x the fastest peer's wall, "
                        f"{rss / min(peer_rss.values()):.2f}x the leanest peer's RSS"
                    )
                print(f"{label:26} {name:24} {wall:8.3f} {rss:8.0f} {r[-1][2]:>3}  {r[-1][3]}{ratio}")
            print(f"  (load average {os.getloadavg()[0]:.1f})")
            sys.stdout.flush()


def _label_problem(label_file: Path) -> str:
    import yaml

    data = yaml.safe_load(label_file.read_text(encoding="utf-8")) or {}
    verdicts = data.get("verdicts") or []
    return "healthy" if verdicts == ["healthy"] else "problem"


def _run_input(run_dir: Path) -> Path | None:
    """What a user would point the tools at: trainer_state.json first, else the one log file (a notebook, a
    trainer_log.jsonl, a console log, an llm.c main.log, ...), else the one folder (a W&B run dir, a TensorBoard
    logdir), as the case holds it."""
    for name in ("trainer_state.json",):
        if (run_dir / name).exists():
            return run_dir / name
    files = [
        p
        for p in sorted(run_dir.iterdir())
        if p.is_file() and p.name != "label.yaml" and not p.name.endswith((".md", ".yaml", ".yml"))
    ]
    if files:
        return files[0]
    dirs = [p for p in sorted(run_dir.iterdir()) if p.is_dir() and not p.name.startswith((".", "__"))]
    return dirs[0] if len(dirs) == 1 else None


def cmd_verdicts(args: argparse.Namespace) -> None:
    tools = [t for t in TOOLS if t.available()]
    corpora = [Path(c) for c in (args.corpus or ["tests/corpus"])]
    runs = sorted(d for c in corpora for d in c.rglob("*") if d.is_dir() and (d / "label.yaml").exists())
    table: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run_dir in runs:
            path = _run_input(run_dir)
            if path is None:
                continue
            row = {"run": run_dir.name, "label": _label_problem(run_dir / "label.yaml")}
            for tool in tools:
                rc, out, _, _ = run_measured(tool.argv(str(path), str(Path(tmp) / run_dir.name)), timeout=300)
                row[tool.name] = tool.verdict(rc, out)
            table.append(row)
            print("  ".join(f"{row[k]:>{w}}" for k, w in [("run", 28), ("label", 8)] + [(t.name, 15) for t in tools]))
            sys.stdout.flush()
    print()
    print(
        f"{'tool':16} {'agree':>7} {'false alarms':>13} {'missed':>7} {'unread':>7}   (of {len(table)} runs, "
        f"{sum(r['label'] == 'healthy' for r in table)} healthy)"
    )
    for tool in tools:
        agree = sum(r[tool.name] == r["label"] for r in table)
        fa = sum(r["label"] == "healthy" and r[tool.name] == "problem" for r in table)
        missed = sum(r["label"] == "problem" and r[tool.name] == "healthy" for r in table)
        unread = sum(r[tool.name] == "unread" for r in table)
        print(f"{tool.name:16} {agree:>7} {fa:>13} {missed:>7} {unread:>7}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--only", action="append")
    sp.add_argument("--big", action="store_true", help="also the 200k / 800k / 1M inputs (minutes)")
    sp.add_argument(
        "--small",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the 1,000-step input (--no-small: only the big ones)",
    )
    sp.add_argument(
        "--also",
        action="append",
        metavar="NAME=BIN",
        help="another lossdoctor executable in the same rotation (e.g. main=/work/main/.venv/bin/lossdoctor)",
    )
    sp.add_argument(
        "--input",
        action="append",
        metavar="WORD",
        help="only the inputs whose label holds WORD (e.g. 200k, TensorBoard, console)",
    )
    sp.add_argument("--keep", metavar="DIR", help="generate the inputs into DIR and reuse them if present")
    vp = sub.add_parser("verdicts")
    vp.add_argument("corpus", nargs="*")
    vp.add_argument("--json")
    args = parser.parse_args()
    {"speed": cmd_speed, "verdicts": cmd_verdicts}[args.cmd](args)


if __name__ == "__main__":
    main()
