"""The HTML report in a real headless Chromium: curves drawn, finding regions visible, no script ran.

Needs Debian's Chromium (``apt-get install -y chromium``) and the ``playwright`` Python package; the
browser bundled by ``playwright install`` is not used. A missing browser FAILS this test (with the
install line) instead of skipping it, so CI cannot pass without having looked at the page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from report_samples import XSS_NAME, healthy_diagnosis, hostile_diagnosis, nonfinite_diagnosis, overfit_diagnosis

from lossdoctor.report import write_reports

ROOT = Path(__file__).resolve().parents[1]
#: screenshots of the layout tests land here (not committed) for a person to look at
SHOTS = ROOT / "tests" / "actual" / "screenshots"

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install it with: apt-get update && apt-get install -y chromium && "
    "pip install playwright   (do not run `playwright install`)"
)


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium not found at {CHROMIUM}; {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright package is missing; {INSTALL_HINT}")
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _open(browser, diagnosis, tmp_path: Path, height: int = 1000):  # noqa: ANN001, ANN202
    (html,) = write_reports(diagnosis, ("html",), tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": height})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    return page, dialogs, requests


def _width(page, selector: str) -> float:  # noqa: ANN001
    return page.evaluate(
        "s => { const e = document.querySelector(s); return e ? e.getBoundingClientRect().width : -1; }", selector
    )


def test_curves_and_finding_regions_render(browser, tmp_path: Path) -> None:  # noqa: ANN001
    page, dialogs, requests = _open(browser, overfit_diagnosis(), tmp_path)
    try:
        # every request is the report file itself: nothing external, nothing else local
        assert all(u.startswith("file://") and u.endswith("report.html") for u in requests), requests
        for plot in ("loss", "learning_rate", "grad_norm"):
            box = page.evaluate(f"document.querySelector('#plot-{plot} svg').getBoundingClientRect().width")
            assert box > 300, plot
        # the curves: one path per metric; the train/eval curves span most of the plot's width
        widths = page.evaluate("""Array.from(document.querySelectorAll('#plot-loss svg g.line path'))
                                  .map(p => p.getBoundingClientRect().width)""")
        assert len(widths) == 2 and all(w > 800 for w in widths), widths
        # plots use the page's width (not 40% of it)
        assert _width(page, "#plot-loss svg") > 0.9 * _width(page, "#findings")
        overfit = _width(page, "#finding-overfitting")
        explode = _width(page, "#finding-grad-norm-explosion")
        assert overfit > 0 and explode > 0
        # steps 20-100 of a 5-100 axis vs steps 60-70: the shaded widths keep that ratio (80 : 10)
        assert 6.0 < overfit / explode < 10.0
        assert _width(page, "#best-eval-step") >= 0
        assert dialogs == []
    finally:
        page.close()


def test_one_step_finding_still_visible(browser, tmp_path: Path) -> None:  # noqa: ANN001
    page, dialogs, _ = _open(browser, nonfinite_diagnosis(), tmp_path)
    try:
        assert _width(page, "#finding-loss-spike") > 0  # first_step == last_step == 50
        assert _width(page, "#finding-nonfinite-loss") > 0
        assert "division by zero" in page.inner_text("#crashed")
    finally:
        page.close()


def test_script_in_run_strings_does_not_execute(browser, tmp_path: Path) -> None:  # noqa: ANN001
    page, dialogs, requests = _open(browser, hostile_diagnosis(), tmp_path)
    try:
        assert dialogs == []
        assert page.evaluate("document.querySelectorAll('script, iframe, img').length") == 0
        assert page.inner_text("#run-name") == f"lossdoctor: {XSS_NAME}"  # shown as text
        assert "<img src=x onerror=alert(3)>" in page.inner_text("#config")
        assert page.title() == f"lossdoctor: {XSS_NAME}"
        assert not [u for u in requests if not u.endswith("report.html")], requests
    finally:
        page.close()


def _box(page, selector: str) -> dict:  # noqa: ANN001
    return page.evaluate(
        "s => { const r = document.querySelector(s).getBoundingClientRect(); "
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; }",
        selector,
    )


@pytest.mark.parametrize(
    "name,make", [("overfit", overfit_diagnosis), ("nonfinite", nonfinite_diagnosis), ("healthy", healthy_diagnosis)]
)
def test_first_screen_shows_verdict_and_first_finding(browser, tmp_path: Path, name: str, make) -> None:  # noqa: ANN001
    """At 1280x800 the verdict, the facts and the first finding with what to do are on the first screen,
    before any plot; the timeline comes before the curves. A screenshot is kept for review."""
    page, dialogs, _ = _open(browser, make(), tmp_path, height=800)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}-first-screen.png"))
        page.screenshot(path=str(SHOTS / f"{name}-full.png"), full_page=True)
        verdict = _box(page, "#verdict")
        assert 0 <= verdict["top"] and verdict["bottom"] <= 200
        assert _box(page, "#facts")["bottom"] <= 800
        first_plot = _box(page, "#plots figure")
        findings = page.query_selector_all("article.finding")
        if findings:
            first = _box(page, "article.finding")
            assert first["bottom"] <= 800, first  # the whole first finding, what to do included
            assert (
                page.query_selector("article.finding .todo") is None
                or _box(page, "article.finding .todo")["bottom"] <= 800
            )
            assert first["bottom"] <= _box(page, "#timeline")["top"] <= first_plot["top"]
        else:
            assert "No rule fired" in page.inner_text("#findings")
        # evidence is short: the folded table is hidden until opened
        for details in page.query_selector_all("article.finding details"):
            assert not details.evaluate("d => d.open")
        assert dialogs == []
    finally:
        page.close()


def test_timeline_rows_follow_where_findings_hold(browser, tmp_path: Path) -> None:  # noqa: ANN001
    page, _, _ = _open(browser, overfit_diagnosis(), tmp_path)
    try:
        # overfitting holds over steps 20-100 and the explosion over 60-70 of a 5-100 axis: 80 : 10
        over = page.evaluate("document.querySelector('#strip-overfitting rect.holds').getBoundingClientRect().width")
        expl = page.evaluate(
            "document.querySelector('#strip-grad-norm-explosion rect.holds').getBoundingClientRect().width"
        )
        assert 6.0 < over / expl < 10.0
    finally:
        page.close()
