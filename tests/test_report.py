"""Reports: format registry, gold files (md/json/html), escaping, determinism, atomic writes, terminal."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from report_samples import (
    XSS_NAME,
    _eval_loss,
    _train_loss,
    healthy_diagnosis,
    hostile_diagnosis,
    nonfinite_diagnosis,
    overfit_diagnosis,
)

import lossdoctor
from lossdoctor.errors import UsageError
from lossdoctor.report import available_formats, render, render_terminal, write_reports
from lossdoctor.report.data import build_report_data
from lossdoctor.report.formats import registry

GOLD = Path(__file__).parent / "gold"
ACTUAL = Path(__file__).parent / "actual"
UPDATE = os.environ.get("LOSSDOCTOR_UPDATE_GOLD") == "1"


# --------------------------------------------------------------------------- gold-file machinery

_SVG = re.compile(r"<svg\b.*?</svg>", re.S)
_KEPT_ID = re.compile(r'id="((?:finding-|best-eval-step|strip-)[^"]*)"')


def _scrub_svg(match: re.Match[str]) -> str:
    """Plots are checked for determinism, by their own tests and by the browser test; the gold keeps only
    their public ids, so a change of a plot's drawing does not churn every HTML gold file."""
    ids = " ".join(_KEPT_ID.findall(match.group(0)))
    return f"<svg>[plot; ids: {ids}]</svg>"


def scrub(text: str, tmp: Path | None = None) -> str:
    text = text.replace(lossdoctor.__version__, "VERSION")
    if tmp is not None:
        from lossdoctor.report.formats.markdown import md_escape

        text = text.replace(str(tmp), "TMP").replace(md_escape(str(tmp)), "TMP")
    return _SVG.sub(_scrub_svg, text)


def compare_gold(name: str, actual: str) -> None:
    """coverage.py goldtest style: on a mismatch the actual output goes to tests/actual/<name>."""
    gold = GOLD / name
    if UPDATE:
        gold.parent.mkdir(parents=True, exist_ok=True)
        gold.write_text(actual, encoding="utf-8")
        return
    expected = gold.read_text(encoding="utf-8") if gold.exists() else None
    if expected != actual:
        out = ACTUAL / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(actual, encoding="utf-8")
        pytest.fail(
            f"{name} differs from tests/gold/{name}; actual output written to {out}. "
            f"Review with `diff -u tests/gold/{name} tests/actual/{name}`; accept with "
            f"LOSSDOCTOR_UPDATE_GOLD=1 pytest tests/test_report.py (see tests/gold/README.md)"
        )


@pytest.mark.parametrize(
    "sample,fmt,file",
    [
        ("overfit", "md", "report.md"),
        ("overfit", "json", "diagnosis.json"),
        ("overfit", "html", "report.html"),
        ("overfit", "sarif", "report.sarif"),
        ("overfit", "junit", "junit.xml"),
        ("overfit", "github", "github-annotations.txt"),
        ("healthy", "md", "report.md"),
        ("healthy", "json", "diagnosis.json"),
        ("healthy", "html", "report.html"),
        ("nonfinite", "md", "report.md"),
        ("nonfinite", "html", "report.html"),
    ],
)
def test_gold(sample: str, fmt: str, file: str, tmp_path: Path) -> None:
    if sample == "overfit":
        diag = overfit_diagnosis(location=str(tmp_path / "trainer_state.json"))
    else:
        diag = {"healthy": healthy_diagnosis, "nonfinite": nonfinite_diagnosis}[sample]()
    out = scrub(render(diag, fmt)[file].decode("utf-8"), tmp_path)
    # the Markdown (PR comments, job summaries) never shows a local absolute path; the others keep it
    assert ("TMP/trainer" in out) == (sample == "overfit" and fmt != "md")
    assert ("…/trainer\\_state.json" in out) == (sample == "overfit" and fmt == "md")
    assert "VERSION" in out or fmt in ("github", "junit")
    compare_gold(f"{sample}/{file}", out)


# --------------------------------------------------------------------------- registry / API


def test_formats_and_aliases() -> None:
    names = available_formats()
    for name in ("html", "md", "markdown", "json", "terminal"):
        assert name in names
    assert registry()["md"] is registry()["markdown"]
    assert list(names) == sorted(names)


def test_every_formats_module_with_renderer_is_registered() -> None:
    """Adding a format is adding a file: the registry is exactly the modules that define RENDERER."""
    import importlib
    import pkgutil

    import lossdoctor.report.formats as pkg

    expected = set()
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"lossdoctor.report.formats.{info.name}")
        if hasattr(module, "RENDERER"):
            expected.add(module.RENDERER.name)
    assert (
        {r.name for r in registry().values()}
        == expected
        == {"html", "markdown", "json", "terminal", "sarif", "junit", "github"}
    )


def test_unknown_format_is_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown report format 'pdf'.*html"):
        render(overfit_diagnosis(), "pdf")


def test_render_file_sets() -> None:
    diag = overfit_diagnosis()
    assert set(render(diag, "html")) == {"report.html"}
    assert set(render(diag, "json")) == {"diagnosis.json"}
    # the Markdown is self-contained: no image files, no links to any
    md = render(diag, "md")
    assert set(md) == {"report.md"}
    text = md["report.md"].decode()
    assert "](" not in text and "<img" not in text and ".png" not in text


# --------------------------------------------------------------------------- report data


def test_report_data_is_frozen_and_pure() -> None:
    diag = overfit_diagnosis()
    a, b = build_report_data(diag), build_report_data(diag)
    assert a == b
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.verdict = "x"  # type: ignore[misc]
    # the most telling first: the plot with the error, then the one with the warning, then the rest
    assert [p.key for p in a.plots] == ["grad_norm", "loss", "learning_rate", "metric-train_mean_token_accuracy"]
    loss = a.plots[1]
    assert [s.gid for s in loss.spans] == ["finding-overfitting"]
    assert loss.marker is not None and (loss.marker.step, loss.marker.value) == (20, 1.0)
    assert [s.gid for s in a.plots[0].spans] == ["finding-grad-norm-explosion"]
    assert a.plots[2].spans == ()  # the LR plot: no finding names train/learning_rate
    assert a.level == "error" and a.counts == (("error", 1), ("warning", 1), ("info", 0))


def test_caveats_for_incomplete_runs() -> None:
    data = build_report_data(healthy_diagnosis())
    text = " ".join(data.caveats)
    assert "still running" in text and "confidence 0.80" in text and "epoch x steps-per-epoch" in text
    assert ("Eval loss", "not logged: overfitting cannot be judged") in data.facts
    crashed = build_report_data(nonfinite_diagnosis())
    assert crashed.level == "incomplete"
    assert "Analysis incomplete: 1 rule check(s) crashed" in crashed.caveats[0]
    assert any("crashed" in c for c in crashed.caveats[1:])  # the run's own state


def test_facts_follow_the_formula() -> None:
    facts = dict(build_report_data(overfit_diagnosis()).facts)
    final = 1 + 5e-5 * 80**2
    assert facts["Best eval loss"] == "1.0 at step 20"
    assert facts["Final eval loss"] == f"{final:.4g} at step 100"
    assert facts["Final vs best eval loss"] == f"+{(final - 1) * 100:.1f}%"
    assert facts["Early stopping would have helped"].startswith("yes: stop at step 20")


# --------------------------------------------------------------------------- HTML


def test_html_is_self_contained_and_shades_findings() -> None:
    html = render(overfit_diagnosis(), "html")["report.html"].decode()
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    # the only http URLs are SVG namespace names, which are never fetched
    assert set(re.findall(r'(\S*)"https?://', html)) <= {"xmlns=", "xmlns:xlink="}
    assert html.count('id="finding-overfitting"') == 1
    assert html.count('id="finding-grad-norm-explosion"') == 1
    assert 'id="best-eval-step"' in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "ids must be unique across the inlined SVGs"
    for word in (
        "trainer-state",
        "optimizer steps as logged by the trainer",
        "lora.target_modules",
        "rules/default.yaml:73",
        "load_best_model_at_end",
    ):
        assert word in html


def test_html_escapes_every_run_string() -> None:
    html = render(hostile_diagnosis(), "html")["report.html"].decode()
    assert XSS_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for raw in (
        "<img src=x",
        "<iframe",
        "<b>key</b>",
        "<b>this</b>",
        "<svg onload",
        "<script>alert(6)",
        "<k>",
        "<v>",
        "<script>x</script>",
    ):
        assert raw not in html, raw
    assert "&lt;b&gt;key&lt;/b&gt;" in html and "&lt;iframe" in html
    assert "&lt;svg_onload=alert(4)&gt;</text>" in html  # the metric name as SVG text, escaped by matplotlib
    assert "<script" not in html


def test_nonfinite_points_are_marked_and_json_safe() -> None:
    diag = nonfinite_diagnosis()
    html = render(diag, "html")["report.html"].decode()
    assert "train/loss non-finite" in html
    assert 'id="finding-loss-spike"' in html and 'id="finding-nonfinite-loss"' in html
    assert "loss-plateau: ZeroDivisionError: division by zero" in html


# --------------------------------------------------------------------------- Markdown


def _table_rows(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if ln.startswith("|")]


def test_markdown_escapes_tables_and_markup() -> None:
    md = render(hostile_diagnosis(), "md")["report.md"].decode()
    assert "<img" not in md and "<script" not in md and "<iframe" not in md and "<b>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert r"pipe\|key" in md and r"a\|b \*c\* \[l\](u)" in md
    assert r"\*bold\* \_it\_ \`code\`" in md
    # every table row keeps its column count: unescaped pipes per row == header's
    rows = _table_rows(md)
    by_table: list[list[str]] = []
    for ln in md.splitlines():
        if ln.startswith("|"):
            if not by_table or not by_table[-1]:
                by_table.append([])
            by_table[-1].append(ln)
        elif by_table and by_table[-1]:
            by_table.append([])
    assert rows
    for table in filter(None, by_table):
        counts = {len(re.findall(r"(?<!\\)\|", ln)) for ln in table}
        assert len(counts) == 1, table


def test_markdown_run_name_cannot_break_heading() -> None:
    md = render(overfit_diagnosis(), "md")["report.md"].decode()
    assert md.splitlines()[0] == r"## 🔴 lossdoctor: sft\|lora \*demo\*"


# --------------------------------------------------------------------------- JSON


def _strict_loads(data: bytes) -> dict:
    def bad(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(data, parse_constant=bad)


def test_json_schema_and_values() -> None:
    doc = _strict_loads(render(overfit_diagnosis(), "json")["diagnosis.json"])
    assert doc["schema"] == "lossdoctor.diagnosis" and doc["schema_version"] == 1
    assert doc["lossdoctor_version"] == lossdoctor.__version__
    assert [f["rule_id"] for f in doc["findings"]] == ["grad-norm-explosion", "overfitting"]
    assert doc["facts"]["best_eval_step"] == 20 and doc["facts"]["early_stopping_would_help"] is True
    assert doc["run"]["provenance"]["step_source"] == "logged"
    assert doc["run"]["summary"]["total_flos"] == "nan"
    metrics = {m["name"]: m for m in doc["run"]["metrics"]}
    ev = metrics["eval/loss"]
    assert ev["steps"] == list(range(10, 101, 10))
    assert np.allclose(ev["values"], _eval_loss(np.arange(10, 101, 10, dtype=float)))
    assert np.allclose(metrics["train/loss"]["values"], _train_loss(np.arange(5, 101, 5, dtype=float)))
    assert metrics["train/loss"]["raw_names"] == ["loss"]
    assert list(doc) == sorted(doc)


def test_json_nonfinite_as_strings() -> None:
    raw = render(nonfinite_diagnosis(), "json")["diagnosis.json"]
    doc = _strict_loads(raw)  # raises on the NaN / Infinity tokens json.dumps would write by default
    ev = doc["findings"][0]["evidence"]
    assert (ev["first_value"], ev["peak"], ev["low"]) == ("nan", "inf", "-inf")
    loss = next(m for m in doc["run"]["metrics"] if m["name"] == "train/loss")
    assert loss["values"][2:4] == ["nan", "inf"] and loss["nonfinite"] == 2
    assert math.isnan(float(loss["values"][2]))  # documented: float() maps them back
    assert doc["crashed_checks"] == ["loss-plateau: ZeroDivisionError: division by zero"]


# --------------------------------------------------------------------------- determinism


def test_output_is_deterministic() -> None:
    for fmt in ("html", "md", "json", "sarif", "junit", "github", "terminal"):
        assert render(overfit_diagnosis(), fmt) == render(overfit_diagnosis(), fmt), fmt
    html = render(overfit_diagnosis(), "html")["report.html"].decode()
    assert "<metadata" not in html and "<dc:date" not in html


# --------------------------------------------------------------------------- writing


def test_write_reports_writes_all_and_returns_primaries(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "run"
    written = write_reports(overfit_diagnosis(), ("html", "md", "markdown", "json"), out)
    assert written == [out / "report.html", out / "report.md", out / "diagnosis.json"]
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # and no temp files left; .lossdoctor-files lists what this report owns (for the next run in the dir)
    assert names == sorted(["report.html", "report.md", "diagnosis.json", ".lossdoctor-files"])
    assert (out / ".lossdoctor-files").read_text().split() == ["diagnosis.json", "report.html", "report.md"]
    assert (out / "report.md").read_bytes() == render(overfit_diagnosis(), "md")["report.md"]


def test_failed_render_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    html = registry()["html"]

    def boom(*args: object, **kwargs: object) -> dict[str, bytes]:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(html, "render", boom)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="renderer bug"):
        write_reports(overfit_diagnosis(), ("md", "html"), out)  # md renders fine first
    assert not out.exists()
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "report.md").write_text("previous")
    with pytest.raises(RuntimeError):
        write_reports(overfit_diagnosis(), ("md", "html"), existing)
    assert (existing / "report.md").read_text() == "previous"


def test_unwritable_out_dir_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot write report") as info:
        write_reports(overfit_diagnosis(), ("json",), blocker)
    assert str(blocker) in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- terminal


def test_terminal_summary() -> None:
    diag = overfit_diagnosis()
    plain = render_terminal(diag, color=False)
    lines = plain.splitlines()
    assert lines[0] == f"sft|lora *demo*: {diag.verdict}"
    assert "\x1b" not in plain
    finding_lines = [ln for ln in lines if ln.lstrip().startswith(("ERROR", "WARNING", "INFO"))]
    assert [ln.split()[1] for ln in finding_lines] == ["grad-norm-explosion", "overfitting"]
    assert "best eval loss: 1.0 at step 20" in plain
    coloured = render_terminal(diag, color=True)
    assert "\x1b[31mERROR" in coloured and "\x1b[33mWARNING" in coloured
    assert render(diag, "terminal")["summary.txt"].decode() == plain + "\n"


def test_terminal_strips_control_sequences() -> None:
    diag = overfit_diagnosis()
    evil = dataclasses.replace(diag, run=dataclasses.replace(diag.run, name="a\x1b[2Jb\rc\nd"))
    text = render_terminal(evil, color=False)
    assert "\x1b" not in text and "\r" not in text
    assert text.splitlines()[0].startswith("a [2Jb c d:")


# --------------------------------------------------------------------------- where findings hold, plots


def test_findings_shaded_exactly_where_they_hold() -> None:
    """Real rules on a real generated run: overfitting from the best eval on; lr-too-high wherever the lr is
    at or over its limit (not only at the peak step the rule reports)."""
    import json as _json

    from lossdoctor.diagnosis import diagnose
    from lossdoctor.rules.packs import load_rules
    from lossdoctor.sources import read_runs

    path = Path(__file__).parent / "corpus" / "gen-overfit-lr-1" / "trainer_state.json"
    diag = diagnose(read_runs(str(path))[0], load_rules(()))
    views = {f.rule_id: f for f in build_report_data(diag).findings}
    hist = _json.loads(path.read_text())["log_history"]
    evals = [(r["step"], r["eval_loss"]) for r in hist if "eval_loss" in r]
    best_step = min(evals, key=lambda sv: sv[1])[0]
    assert views["overfitting"].holds == ((best_step, evals[-1][0]),)
    over = [r["step"] for r in hist if r.get("learning_rate", 0) >= 0.01]
    assert over and views["lr-too-high"].holds == ((over[0], over[-1]),)
    assert diag.findings[[f.rule_id for f in diag.findings].index("lr-too-high")].first_step == over[0]
    lr_plot = next(p for p in build_report_data(diag).plots if p.key == "learning_rate")
    assert lr_plot.spans[0].ranges == ((over[0], over[-1]),)


def test_loss_plot_goes_log_when_it_spans_more_than_10x() -> None:
    data = build_report_data(overfit_diagnosis())  # train loss 2.94 -> 0.51: under 10x
    assert not next(p for p in data.plots if p.key == "loss").log_y
    import dataclasses

    from lossdoctor.model import make_metrics

    diag = overfit_diagnosis()
    s = np.arange(1, 101, dtype=float)
    frame = make_metrics(s, ["loss"] * 100, 8.0 * np.exp(-s / 20.0) + 0.05)  # 7.7 -> 0.10: 75x
    run = dataclasses.replace(diag.run, metrics=frame)
    loss = next(p for p in build_report_data(dataclasses.replace(diag, run=run)).plots if p.key == "loss")
    assert loss.log_y
    from lossdoctor.report.svg import plot_svg

    assert "loss (log)" in plot_svg(loss)


def test_svg_survives_extreme_values_and_markup_in_names() -> None:
    import dataclasses

    from lossdoctor.model import make_metrics
    from lossdoctor.report.svg import plot_svg

    diag = overfit_diagnosis()
    s = np.arange(1, 11, dtype=float)
    vals = np.array([1e308, -1e308, 1.7976931348623157e308, 0.0, np.nan, np.inf, -np.inf, 1.0, -5e307, 3.0])
    frame = make_metrics(s, ["$\\alpha$ <b>&"] * 10, vals)
    run = dataclasses.replace(diag.run, metrics=frame)
    data = build_report_data(dataclasses.replace(diag, run=run, findings=()))
    (plot,) = data.plots
    svg = plot_svg(plot)
    coords = re.findall(r'\b(?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]+)"', svg)
    coords += re.findall(r"-?\d+(?:\.\d+)?", " ".join(re.findall(r' d="([^"]+)"', svg)))
    coords = [c for c in coords if c != "100%"]  # the <svg width="100%">
    assert coords and all(math.isfinite(float(c)) for c in coords)
    assert "$\\alpha$_&lt;b&gt;&amp;</text>" in svg and "<b>" not in svg  # literal, no math text
    assert svg.count('class="nonfinite"') == 3
