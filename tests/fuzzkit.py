"""A seeded mutation fuzzer over every file reader's real fixtures, through the CLI entry point.

Used by tests/test_fuzz_readers.py (a bounded budget in the normal test run) and bench/fuzz_readers.py (the
long run). Each input is a fixture of one reader, mutated (truncation, byte flips, inserted bytes, numbers
replaced by huge / inf / NaN / 400-digit ones, deep nesting, re-encoding, very long lines and ``\\r`` runs,
control characters, spliced or dropped lines; ``.wandb`` history values rewritten through wandb's own
protobuf so they pass the CRCs), then analysed in-process with ``cli.main`` (SystemExit captured):

* the exit code is 0, 1 or 2;
* nothing on stderr is a traceback or an "internal error" (the CLI's last resort);
* exit 1 only when diagnosis.json holds a finding at or above --fail-on; exit 0 only when it does not;
* no rule check crashed.

Seeds: the committed fixtures under tests/data and tests/corpus, plus files made here by the real tools
(a TensorBoard event file from ``SummaryWriter``, a ``.wandb`` file from the real wandb package offline)
and a nanoGPT log printed with nanoGPT's format strings. Every input is reproducible from
(seed, reader, index): ``python bench/fuzz_readers.py --seed S --only KIND --show N``.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT / "tests"))

USER_FORMAT = (
    "name: mine\npattern: 'it=(?P<it>\\S+) l=(?P<l>\\S+) v=(?P<v>\\S+)'\nstep: it\n"
    "metrics:\n  l: train/loss\n  v: val_loss\n"
)
HOSTILE_NUMBERS = [
    b"1e20",
    b"-1e20",
    b"9" * 20,
    b"-" + b"9" * 20,
    b"9" * 400,
    b"1" + b"0" * 4000,
    b"7" * 5000,
    b"1e400",
    b"-1e400",
    b"1e308",
    b"-1.7976931348623157e308",
    b"4.9e-324",
    b"NaN",
    b"nan",
    b"-nan",
    b"inf",
    b"-inf",
    b"Infinity",
    b"-Infinity",
    b"0",
    b"-0",
    b"-1",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1.5",
    b"0x10",
    b"1_000",
    b"1e",
    b".",
    b"--1",
    b"1e-400",
    b"2e9",
    b"4294967296",
]
CONTROL = [
    b"\x1b[2J",
    b"\x1b]0;owned\x07",
    b"\x07",
    b"\x00",
    b"\r",
    b"\x1b[31m",
    b"\xe2\x80\xae",
    b"\x0c",
    b"$\\alpha$",
    b"$x^{2}$",
    b"\\",
    b"%s%n",
    b"{evidence.value}",
    b"<script>",
]
_NUM = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Seed:
    kind: str  # the reader it belongs to
    name: str
    data: bytes
    suffix: str  # file name the mutated bytes are written as (some readers sniff by name)


# --- seeds -------------------------------------------------------------------------------------------


def _nanogpt_log() -> bytes:
    """nanoGPT's train.py format strings (``iter``/``step`` lines), values from a formula."""
    lines = ["Overriding config with config/train_shakespeare_char.py:", "tokens per iteration will be: 16,384"]
    for it in range(0, 300, 10):
        if it % 50 == 0:
            lines.append(f"step {it}: train loss {4.2 - it / 100:.4f}, val loss {4.3 - it / 120:.4f}")
        lines.append(
            f"iter {it}: loss {4.2 - it / 110:.4f}, time {31.5 + it % 7:.2f}ms, mfu {-100.0 if it < 5 else 12.3:.2f}%"
        )
    return ("\n".join(lines) + "\n").encode()


def _user_format_log() -> bytes:
    return "".join(f"it={s} l={3.0 - s / 100} v={2.5 + s / 1000}\n" for s in range(5, 200, 5)).encode()


def make_seeds(work: Path) -> list[Seed]:
    """Every file reader's fixtures (committed ones plus ones made here by the real tools)."""
    logs, console = DATA / "logs", DATA / "console"
    seeds: list[Seed] = []

    def add(kind: str, path: Path, suffix: str | None = None) -> None:
        seeds.append(Seed(kind, path.name, path.read_bytes(), suffix or path.suffix or ".log"))

    for p in sorted(console.glob("*.log")):
        add("hf-console", p)
    for p in sorted((ROOT / "tests" / "corpus").glob("*/console.log"))[:2]:
        seeds.append(Seed("hf-console", f"{p.parent.name}-console.log", p.read_bytes(), ".log"))
    for p in sorted((ROOT / "tests" / "corpus").glob("*/trainer_state.json"))[:6]:
        seeds.append(Seed("trainer-state", f"{p.parent.name}-trainer_state.json", p.read_bytes(), ".json"))
    for name in ("seed004_ddp.log", "ddp_glued.log", "utf16_powershell.log", "cp949_console.log", "undecodable.log"):
        add("keyvalue-log", logs / name)
    for name in ("torchtune_disk.log", "torchtune_pbar.log"):
        add("torchtune-log", logs / name)
    for name in ("lightning_metrics.csv", "long_metrics.csv"):
        add("csv", logs / name)
    add("jsonl", logs / "metrics.jsonl")
    add("wandb-console", logs / "seed001_wandb_block.log")
    seeds.append(Seed("nanogpt-log", "nanogpt_train.log", _nanogpt_log(), ".log"))
    seeds.append(Seed("user-format", "user_format.out", _user_format_log(), ".out"))
    tb = _tensorboard_file(work)
    if tb is not None:
        seeds.append(Seed("tensorboard", tb.name, tb.read_bytes(), ""))
    wb = _wandb_file(work)
    if wb is not None:
        seeds.append(Seed("wandb-offline", wb.name, wb.read_bytes(), ".wandb"))
    return seeds


def _tensorboard_file(work: Path) -> Path | None:
    try:
        sys.path.insert(0, str(DATA / "logs"))
        import make_logs

        out = work / "tb"
        if not out.exists():
            make_logs.write_tensorboard(out)
        return next(out.glob("events.out.tfevents.*"))
    except Exception:  # noqa: BLE001 - torch/tensorboard not installed: that reader is not fuzzed
        return None


def _wandb_file(work: Path) -> Path | None:
    try:
        import make_wandb_runs as mk

        out = work / "wandb"
        existing = sorted(out.rglob("*.wandb")) if out.exists() else []
        if existing:
            return existing[0]
        run_dir = mk.make_offline_run(out, mk.RunSpec())
        return next(Path(run_dir).glob("*.wandb"))
    except Exception:  # noqa: BLE001 - wandb not installed: that reader is not fuzzed
        return None


# --- mutations ---------------------------------------------------------------------------------------


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)] if data else data


def _flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    blob = rng.choice(
        [
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))),
            rng.choice(CONTROL),
            rng.choice(HOSTILE_NUMBERS),
            b"\n" * rng.randint(1, 5),
            b"\xff\xfe",
            b"\xef\xbb\xbf",
        ]
    )
    return data[:at] + blob + data[at:]


def _number(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _NUM.finditer(data[:200_000])]
    if not spans:
        return _insert(data, rng)
    out = data
    for a, b in sorted(rng.sample(spans, min(len(spans), rng.choice([1, 1, 2, 5, 50]))), reverse=True):
        out = out[:a] + rng.choice(HOSTILE_NUMBERS) + out[b:]
    return out


def _nest(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _NUM.finditer(data[:200_000])]
    depth = rng.choice([50, 1000, 5000, 100_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b"(", b")")])
    blob = opener * depth + b"1" + closer * depth
    if not spans:
        return data + blob
    a, b = rng.choice(spans)
    return data[:a] + blob + data[b:]


def _encode(data: bytes, rng: random.Random) -> bytes:
    text = data.decode("utf-8", errors="replace")
    enc = rng.choice(["utf-16", "utf-16-be", "utf-16-le", "utf-32", "cp1252", "latin-1", "utf-8-sig", "gbk"])
    out = text.encode(enc, errors="replace")
    if rng.random() < 0.3:  # a cut in the middle of a code unit
        out = out[: max(0, len(out) - rng.randint(1, 3))]
    return out


def _long_line(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    unit = rng.choice(
        [
            b"x",
            b"9",
            b"{'loss': 1.0, ",
            b"\r",
            b" 12%|###   | 3/25 [00:01<00:09]\r",
            b"\x1b[A\r",
            b"loss=",
            b",",
            b"\t",
            b"a: 1 ",
        ]
    )
    size = rng.choice([5000, 100_000, 1_000_000, 3_000_000])
    return data[:at] + unit * (size // len(unit)) + data[at:]


def _lines(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    if len(lines) < 2:
        return data + data
    op = rng.randrange(4)
    i = rng.randrange(len(lines))
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(rng.randrange(len(lines)), lines[i])
    elif op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = lines[i] * rng.randint(2, 50)
    return b"\n".join(lines)


def _wandb_values(data: bytes, rng: random.Random) -> bytes:
    """Rewrite history values/steps of a .wandb file through wandb's protobuf, re-framed with valid CRCs,
    so the hostile values reach the decoder instead of being dropped as damage."""
    from lossdoctor.sources._wandb_records import decode, record_class, scan_log

    cls = record_class()
    if cls is None:
        return _flip(data, rng)
    payloads = [p for _, p in scan_log(data).records]
    out = []
    for payload in payloads:
        rec = decode(payload, cls)
        if rec is not None and rec.WhichOneof("record_type") == "history" and rng.random() < 0.2:
            for item in rec.history.item:
                if rng.random() < 0.5:
                    item.value_json = rng.choice(
                        HOSTILE_NUMBERS + [b'"x"', b"[1,2]", b'{"a": 1}', b"null", b"[" * 5000 + b"]" * 5000, b"true"]
                    ).decode()
            if rec.history.HasField("step") and rng.random() < 0.3:
                rec.history.step.num = rng.choice([-1, 2**62, -(2**63), 2**63 - 1])
            payload = rec.SerializeToString()
        elif rec is not None and rec.WhichOneof("record_type") == "run" and rng.random() < 0.3:
            rec.run.start_time.seconds = rng.choice([2**62, -(2**62), 253402300800, -62135596801])
            rec.run.display_name = rng.choice(["\x1b]0;owned\x07", "$x^2$", "a" * 5000, "<b>x</b>"])
            payload = rec.SerializeToString()
        elif rec is not None and rec.WhichOneof("record_type") in ("config", "summary") and rng.random() < 0.3:
            for item in getattr(rec, rec.WhichOneof("record_type")).update:
                item.value_json = rng.choice(HOSTILE_NUMBERS + [b"[" * 3000 + b"]" * 3000]).decode()
            payload = rec.SerializeToString()
        out.append(payload)
    return frame_records(out, data[:7])


def frame_records(payloads: list[bytes], header: bytes) -> bytes:
    """``.wandb`` framing (32 KiB blocks, 7-byte chunk headers, zlib CRC-32 seeded with the type byte)."""
    import struct

    from lossdoctor.sources._wandb_records import BLOCK, chunk_crc

    buf = bytearray(header)
    for payload in payloads:
        first = True
        while True:
            left = BLOCK - len(buf) % BLOCK
            if left < 7:
                buf += b"\0" * left
                left = BLOCK
            room = left - 7
            part, payload = payload[:room], payload[room:]
            last = not payload
            ctype = 1 if first and last else 2 if first else 4 if last else 3
            buf += struct.pack("<IHB", chunk_crc(ctype, part), len(part), ctype) + part
            first = False
            if last:
                break
    return bytes(buf)


TEXT_MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    _truncate,
    _flip,
    _insert,
    _number,
    _number,
    _number,
    _nest,
    _encode,
    _long_line,
    _lines,
    _lines,
]
BINARY_MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [_truncate, _flip, _flip, _insert, _number, _lines]


def mutate(seed: Seed, rng: random.Random) -> bytes:
    data = seed.data
    if seed.kind == "wandb-offline":
        muts = BINARY_MUTATIONS + [_wandb_values] * 4
    elif seed.kind == "tensorboard":
        muts = BINARY_MUTATIONS
    else:
        muts = TEXT_MUTATIONS
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = rng.choice(muts)(data, rng)
    return data[:8_000_000]


# --- running -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float
    fired: bool | None  # a finding at or above --fail-on in diagnosis.json (None: no report written)
    crashed_checks: int


def run_cli(path: Path, out_dir: Path, extra: list[str], debug: bool = False) -> Outcome:
    from lossdoctor import cli

    if out_dir.exists():
        shutil.rmtree(out_dir)
    fmt = [] if "--format" in extra else ["--format", "json"]
    args = (["--debug"] if debug else []) + [
        "analyze",
        str(path),
        *fmt,
        "--out",
        str(out_dir),
        "--fail-on",
        "warning",
        "--no-color",
        *extra,
    ]
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    code: object = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(args)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # noqa: BLE001 - an escape from main is itself a finding
            import traceback

            err.write("Traceback (escaped cli.main)\n" + "".join(traceback.format_exception(exc)))
            code = -1
    seconds = time.perf_counter() - t0
    fired, crashed = None, 0
    report = out_dir / "diagnosis.json"
    if report.is_file():
        diag = json.loads(report.read_text(encoding="utf-8"))
        fired = any(f.get("severity") in ("warning", "error") for f in diag.get("findings", []))
        crashed = len(diag.get("crashed_checks", []))
    return Outcome(code if isinstance(code, int) else -2, out.getvalue(), err.getvalue(), seconds, fired, crashed)


def problems_of(o: Outcome) -> list[str]:
    """What is wrong with one outcome ([] when it keeps the contract)."""
    bad = []
    if o.code not in (0, 1, 2):
        bad.append(f"exit code {o.code}")
    if "Traceback" in o.stderr or "internal error" in o.stderr:
        bad.append("traceback/internal error: " + o.stderr.strip().splitlines()[-1][:300])
    if o.code == 1 and not o.fired:
        bad.append("exit 1 without a finding")
    if o.code == 0 and o.fired:
        bad.append("exit 0 with a finding")
    if o.crashed_checks or "rule check crashed" in o.stderr:
        bad.append("rule check crashed: " + o.stderr.strip()[:300])
    if o.code == 2 and len([ln for ln in o.stderr.splitlines() if ln.strip()]) != 1:
        bad.append("exit 2 without exactly one stderr line: " + o.stderr[:300])
    return bad


@dataclass
class Report:
    inputs: dict[str, int] = field(default_factory=dict)
    codes: dict[str, dict[int, int]] = field(default_factory=dict)
    failures: list[tuple[str, int, str, list[str]]] = field(default_factory=list)  # kind, index, seed, problems
    slowest: tuple[float, str, int] = (0.0, "", -1)
    seconds: float = 0.0
    max_rss_mb: float = 0.0

    @classmethod
    def merge(cls, reports: list[Report]) -> Report:
        out = cls()
        for r in reports:
            for kind, n in r.inputs.items():
                out.inputs[kind] = out.inputs.get(kind, 0) + n
                codes = out.codes.setdefault(kind, {})
                for code, c in r.codes[kind].items():
                    codes[code] = codes.get(code, 0) + c
            out.failures.extend(r.failures)
            out.slowest = max(out.slowest, r.slowest)
            out.max_rss_mb = max(out.max_rss_mb, r.max_rss_mb)
        out.failures.sort(key=lambda f: (f[0], f[1]))
        return out

    def all_codes(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for codes in self.codes.values():
            for code, n in codes.items():
                out[code] = out.get(code, 0) + n
        return out

    def summary(self) -> str:
        total = sum(self.inputs.values())
        lines = [
            f"{total} inputs in {self.seconds:.1f}s ({total / max(self.seconds, 1e-9):.1f}/s), "
            f"{len(self.failures)} failing, slowest {self.slowest[0]:.2f}s ({self.slowest[1]} #{self.slowest[2]}), "
            f"max RSS {self.max_rss_mb:.0f} MB"
        ]
        for kind in sorted(self.inputs):
            codes = ", ".join(f"exit {c}: {n}" for c, n in sorted(self.codes[kind].items()))
            nfail = sum(1 for f in self.failures if f[0] == kind)
            lines.append(f"  {kind:<14} {self.inputs[kind]:>7} inputs  {codes}  failing: {nfail}")
        for kind, index, seed, probs in self.failures[:30]:
            lines.append(f"  FAIL {kind} #{index} ({seed}): {'; '.join(probs)}")
        return "\n".join(lines)


def input_for(
    seeds: list[Seed], kind: str, index: int, seed: int, render_every: int = 40
) -> tuple[Seed, bytes, list[str]]:
    """The index-th fuzz input of a reader (deterministic in (seed, kind, index))."""
    rng = random.Random(f"{seed}:{kind}:{index}")
    mine = [s for s in seeds if s.kind == kind]
    base = rng.choice(mine)
    data = mutate(base, rng)
    extra = ["--source-kind", kind] if kind == "user-format" or rng.random() < 0.5 else []
    if render_every and index % render_every == 0:
        extra += ["--format", "json,md"]  # one in 40 also renders the Markdown report and its plots
    return base, data, extra


def run_one(work: Path, kind: str, base: Seed, data: bytes, extra: list[str], debug: bool = False) -> Outcome:
    """Write one input into ``work/case`` and analyse it (``--log-format`` added for user-format)."""
    if kind == "user-format":
        fmt = work / "user_format.yaml"
        if not fmt.exists():
            fmt.write_text(USER_FORMAT, encoding="utf-8")
        extra = extra + ["--log-format", str(fmt)]
    case = work / "case"
    if case.exists():
        shutil.rmtree(case)
    case.mkdir(parents=True)
    name = "events.out.tfevents.1700000000.host.1.0" if kind == "tensorboard" else f"input{base.suffix}"
    path = case / name
    path.write_bytes(data)
    return run_cli(path, work / "out", extra, debug=debug)


def fuzz(
    work: Path,
    per_kind: int,
    seed: int = 0,
    kinds: list[str] | None = None,
    on_progress: Callable[[Report], None] | None = None,
    seeds: list[Seed] | None = None,
    max_seconds: float | None = None,
    job: int = 0,
    jobs: int = 1,
    render_every: int = 40,
) -> Report:
    """``per_kind`` inputs of each reader (this job's share of them: indices ≡ job mod jobs)."""
    seeds = seeds if seeds is not None else make_seeds(work)
    all_kinds = sorted({s.kind for s in seeds})
    kinds = [k for k in all_kinds if kinds is None or k in kinds]
    report = Report()
    t_start = time.perf_counter()
    for kind in kinds:
        report.inputs[kind] = 0
        report.codes[kind] = {}
    for index in range(job, per_kind, jobs):
        for kind in kinds:
            if max_seconds is not None and time.perf_counter() - t_start > max_seconds:
                break
            base, data, extra = input_for(seeds, kind, index, seed, render_every)
            o = run_one(work, kind, base, data, extra)
            report.inputs[kind] += 1
            report.codes[kind][o.code] = report.codes[kind].get(o.code, 0) + 1
            probs = problems_of(o)
            if o.seconds > 20:
                probs.append(f"slow: {o.seconds:.1f}s")
            if probs:
                report.failures.append((kind, index, base.name, probs))
            if o.seconds > report.slowest[0]:
                report.slowest = (o.seconds, kind, index)
        if on_progress is not None:
            on_progress(report)
    report.seconds = time.perf_counter() - t_start
    report.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report
