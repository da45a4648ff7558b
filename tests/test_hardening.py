"""Never a traceback, never unbounded (issue 15): the CLI's last resort, steps and numbers at the edges,
rendering of hostile names and values, terminal escapes, memory on long \\r runs, temp files and stale plots."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossdoctor import cli
from lossdoctor.sources._readkit import json_number, load_json, to_step


def run_cli(*args: str) -> tuple[int, str, str]:
    """In-process ``cli.main``: (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- the last resort -------------------------------------------------------------------------------------


def test_unexpected_exception_is_one_line_exit_2_and_debug_shows_the_traceback(tmp_path: Path, monkeypatch) -> None:
    from lossdoctor.sources import registry

    log = write_jsonl(tmp_path / "m.jsonl", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}])
    source = registry()["jsonl"]

    def broken(target, options):  # noqa: ANN001, ANN202
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(type(source), "read", staticmethod(broken))
    code, out, err = run_cli("analyze", str(log), "--out", str(tmp_path / "out"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == (
        f"lossdoctor: internal error: ZeroDivisionError: division by zero (while reading {log}); please report"
    )
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli("--debug", "analyze", str(log), "--out", str(tmp_path / "out"))
    assert code == 2 and "Traceback" in err and "ZeroDivisionError" in err
    assert err.strip().splitlines()[-1].startswith("lossdoctor: internal error: ZeroDivisionError")


def test_crash_while_rendering_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    import lossdoctor.report.formats.markdown as md

    a = write_jsonl(tmp_path / "a.jsonl", [{"step": s, "loss": 3 - s / 10} for s in range(1, 20)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"step": s, "loss": 3 - s / 10} for s in range(1, 20)])
    calls = {"n": 0}
    real = md.MarkdownRenderer.render

    def second_fails(self, diagnosis, data):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyError("boom")
        return real(self, diagnosis, data)

    monkeypatch.setattr(md.MarkdownRenderer, "render", second_fails)
    code, _, err = run_cli("analyze", str(a), str(b), "--format", "md", "--out", str(tmp_path / "out"))
    assert code == 2 and "internal error: KeyError" in err and "while rendering the report of" in err
    assert not (tmp_path / "out").exists()  # run a's report was not written either


# --- numbers and steps at the edges ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        (10, 10),
        ("10", 10),
        (10.0, 10),
        ("1e3", 1000),
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (2**63, None),
        ("9" * 20, None),
        ("1" + "0" * 19, None),
        (1e20, None),
        ("9" * 5000, None),
        (math.inf, None),
        (math.nan, None),
        ("nan", None),
        ("-inf", None),
        (1.5, None),
        (True, None),
        (None, None),
        ("x", None),
        ([1], None),
    ],
)
def test_to_step(value, expected) -> None:
    assert to_step(value) == expected


def test_json_number_and_load_json_bounds() -> None:
    assert json_number(10**400) == math.inf and json_number(-(10**400)) == -math.inf
    assert json_number("2.5") == 2.5 and json_number(True) is None
    with pytest.raises(ValueError, match="nested too deeply"):
        load_json("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("step", ["1e20", "99999999999999999999", "Infinity", "NaN", "9" * 5000])
def test_out_of_range_steps_are_dropped_and_counted(tmp_path: Path, step: str) -> None:
    path = tmp_path / "m.jsonl"
    rows = [json.dumps({"step": s, "loss": 3 - s / 10}) for s in range(1, 20)]
    rows.insert(5, f'{{"step": {step}, "loss": 1.0}}')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, _, err = run_cli("analyze", str(path), "--format", "json", "--out", str(tmp_path / "out"))
    assert code in (0, 1) and "internal error" not in err, err
    diag = json.loads((tmp_path / "out" / "diagnosis.json").read_text())
    assert diag["facts"]["last_step"] == 19


def test_trainer_state_with_inf_steps_and_max_steps(tmp_path: Path) -> None:
    state = {
        "global_step": float("inf"),
        "max_steps": float("nan"),
        "epoch": 1e308,
        "log_history": [{"step": s, "loss": 2 - s / 100, "epoch": 1e300} for s in range(1, 30)]
        + [{"step": float("inf"), "loss": 1.0}, {"step": 10**30, "loss": 1.0}],
    }
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state), encoding="utf-8")
    code, _, err = run_cli("analyze", str(path), "--format", "json", "--out", str(tmp_path / "out"))
    assert code in (0, 1) and "internal error" not in err, err
    assert "2 point(s) dropped: step not a finite integer within int64" in err  # the tidy table's note


def test_nonfinite_message_without_a_finite_value_before(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"step": s, "loss": "NaN"} for s in range(1, 5)])
    path.write_text(path.read_text().replace('"NaN"', "NaN"))
    code, out, _ = run_cli("analyze", str(path), "--format", "json", "--out", str(tmp_path / "out"))
    diag = json.loads((tmp_path / "out" / "diagnosis.json").read_text())
    messages = [f["message"] for f in diag["findings"] if f["rule_id"] == "nonfinite-loss"]
    assert code == 1 and messages and "no finite value before it" in messages[0], messages
    assert "step -1" not in out and "value nan at" not in out


# --- rendering of hostile names and values --------------------------------------------------------------


def test_math_text_names_and_extreme_values_render(tmp_path: Path) -> None:
    rows = [
        {
            "step": s,
            "loss": 1e308 if s % 2 else -1.7e308,
            "eval_loss": 2.0 + s,
            "$\\frac{a}{$": 1.0,
            "$x^{2}$ loss": 1.0 * s,
            "grad_norm": 1e300 * s,
        }
        for s in range(1, 30)
    ]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    code, _, err = run_cli("analyze", str(path), "--format", "html,md", "--out", str(tmp_path / "out"))
    assert code in (0, 1) and "internal error" not in err, err
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "x^{2}" in html  # drawn as text: SVG plots, no math-text parser
    assert "1e+308" not in (tmp_path / "out" / "report.md").read_text(encoding="utf-8").split("|")[0]


# --- terminal and report escapes -----------------------------------------------------------------------


def test_control_characters_never_reach_the_terminal_or_report_md(tmp_path: Path) -> None:
    evil = tmp_path / "run\x1b]0;owned\x07\x1b[2J.jsonl"
    write_jsonl(evil, [{"step": s, "loss": 3 - s / 10, "eval_loss": 2 + s / 10} for s in range(1, 30)])
    code, out, err = run_cli("analyze", str(evil), "--format", "md", "--out", str(tmp_path / "out"))
    assert code in (0, 1), err
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert "]0;owned" in out  # the name is shown, its escapes are not
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "\x1b" not in md and "\x07" not in md
    code, _, err = run_cli("analyze", str(tmp_path / "nope\x1b[31m.log"))
    assert code == 2 and "\x1b" not in err and "\\x1b[31m" in err


# --- memory on long \r runs ------------------------------------------------------------------------------


def _peak_rss_mb(args: list[str]) -> float:
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) size across exec
    code = (
        "import sys\nfrom lossdoctor import cli\ntry:\n    cli.main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\n"
        "print(next(int(ln.split()[1]) / 1024 for ln in open('/proc/self/status') if ln.startswith('VmHWM:')),"
        " file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    return float(proc.stderr.strip().splitlines()[-1])


def test_long_carriage_return_runs_cost_linear_memory(tmp_path: Path) -> None:
    head = "{'loss': 2.5, 'grad_norm': 1.0, 'learning_rate': 0.0001, 'epoch': 0.1}\n"
    tail = "\n{'loss': 2.0, 'grad_norm': 1.0, 'learning_rate': 0.0001, 'epoch': 0.2}\n"
    small, big = tmp_path / "small.log", tmp_path / "big.log"
    small.write_text(head + "\r" * 1000 + tail)
    big.write_text(head + "\r" * 8_000_000 + tail)
    base = _peak_rss_mb(["analyze", str(small), "--format", "json", "--out", str(tmp_path / "o1"), "-q"])
    peak = _peak_rss_mb(["analyze", str(big), "--format", "json", "--out", str(tmp_path / "o2"), "-q"])
    assert peak - base < 100, (base, peak)  # was ~1.3 GB for 8 MB


# --- files on disk ---------------------------------------------------------------------------------------


def test_temp_files_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    from lossdoctor.atomic import atomic_write_bytes

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".report.md.{dead}.abc123.tmp"
    live = tmp_path / f".report.md.{os.getpid()}.def456.tmp"
    other = tmp_path / ".notes.txt.tmp"
    for p in (stale, live, other):
        p.write_text("half")
    atomic_write_bytes(tmp_path / "report.md", b"whole")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "report.md").read_bytes() == b"whole"


def test_stale_plots_are_removed(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl", [{"step": s, "loss": 3 - s / 10, "eval_loss": 2 + s / 10} for s in range(1, 30)]
    )
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    # a report written by an earlier lossdoctor: report.md linking its PNG plots (today's Markdown has none)
    (out / "report.md").write_text("## old\n\n![loss](plots/old-metric.png)\n")
    (out / "plots" / "old-metric.png").write_bytes(b"stale")
    (out / "plots" / "keep.txt").write_text("not ours")
    code, _, err = run_cli("analyze", str(path), "--format", "md", "--out", str(out))
    assert code in (0, 1), err
    assert not (out / "plots" / "old-metric.png").exists() and (out / "plots" / "keep.txt").exists()
    assert "plots/" not in (out / "report.md").read_text()


def test_poisoned_cache_entries_are_not_hits(tmp_path: Path) -> None:
    import pandas as pd

    from lossdoctor.model import Provenance, Run, make_metrics
    from lossdoctor.sources._wandb_cache import RunCache
    from lossdoctor.sources._wandb_url import RunRef

    ref = RunRef("https://api.example.com", "e", "p", "r1")
    cache = RunCache(tmp_path)
    run = Run(
        name="r",
        provenance=Provenance("wandb-api", "x", "_step", ()),
        metrics=make_metrics([1, 2], ["loss", "loss"], [2.0, 1.0]),
        config={},
        summary={},
        state="finished",
    )
    cache.store(ref, run)
    assert cache.load(ref, "x") is not None
    table, meta = cache.paths(ref)
    pd.DataFrame({"step": [], "metric": [], "value": [], "raw_name": []}).to_parquet(table)
    assert cache.load(ref, "x") is None  # an empty table (an older version's poisoned entry)
    cache.store(ref, run)
    data = json.loads(meta.read_text())
    data["points"] = 5
    meta.write_text(json.dumps(data))
    assert cache.load(ref, "x") is None  # table and sidecar disagree
    empty = Run(
        name="r", provenance=run.provenance, metrics=make_metrics([], [], []), config={}, summary={}, state="finished"
    )
    table.unlink()
    meta.unlink()
    cache.store(ref, empty)
    assert not table.exists()


@pytest.mark.parametrize(
    "body,needle",
    [
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", "nesting depth"),
        ("name: x\x00\npattern: a\n", "a NUL byte"),
    ],
)
def test_hostile_log_format_files_are_one_located_line(tmp_path: Path, body: str, needle: str) -> None:
    fmt = tmp_path / "fmt.yaml"
    fmt.write_text(body, encoding="utf-8")
    log = tmp_path / "x.log"
    log.write_text("it=1 l=2\n", encoding="utf-8")
    code, _, err = run_cli("analyze", str(log), "--log-format", str(fmt))
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err and str(fmt) in err, err


def test_wandb_run_line_with_a_long_blank_name_is_linear(tmp_path: Path) -> None:
    """A 'View run' line padded with 100,000 tabs (fuzzer find: 90 s in a lazy regex) reads in seconds."""
    import time

    block = Path(__file__).parent / "data" / "logs" / "seed001_wandb_block.log"
    text = block.read_text(encoding="utf-8", errors="replace")
    text += "wandb: View run my-run" + "\t" * 100_000 + " at: https://wandb.ai/e/p/runs/x\n"  # the last one counts
    log = tmp_path / "w.log"
    log.write_text(text, encoding="utf-8")
    t0 = time.monotonic()
    code, out, err = run_cli(
        "analyze", str(log), "--source-kind", "wandb-console", "--format", "json", "--out", str(tmp_path / "out"), "-q"
    )
    assert time.monotonic() - t0 < 10 and code in (0, 1), err
    assert out.startswith("my-run: ")


def test_hf_console_dict_with_a_megabyte_key_is_not_a_template(tmp_path: Path) -> None:
    """A 3 MB key glued into a train dict (fuzzer find: its layout became a 3 MB regex, 430 MB and 27 s)."""
    import time

    lines = [
        f"{{'loss': {3 - s / 10}, 'grad_norm': 1.5, 'learning_rate': 0.0001, 'epoch': {s / 10}}}" for s in range(1, 20)
    ]
    lines[0] = lines[0].replace("'epoch'", "'epoch" + "9" * 3_000_000 + "'")
    log = tmp_path / "console.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t0 = time.monotonic()
    code, _, err = run_cli("analyze", str(log), "--format", "json", "--out", str(tmp_path / "out"), "-q")
    assert time.monotonic() - t0 < 15 and code in (0, 1), err
    diag = json.loads((tmp_path / "out" / "diagnosis.json").read_text())
    assert diag["facts"]["last_step"] >= 18


def test_config_number_beyond_a_float_is_no_setting(tmp_path: Path) -> None:
    """max_steps of 4,000 digits in trainer_state.json (fuzzer find: the lr-schedule check crashed)."""
    state = {
        "global_step": 30,
        "max_steps": int("1" + "0" * 3999),
        "logging_steps": 1,
        "log_history": [{"step": s, "loss": 2 - s / 100, "learning_rate": 1e-4, "epoch": s / 30} for s in range(1, 30)],
    }
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state), encoding="utf-8")
    code, _, err = run_cli("analyze", str(path), "--format", "json", "--out", str(tmp_path / "out"))
    assert code in (0, 1) and "crashed" not in err and "internal error" not in err, err
