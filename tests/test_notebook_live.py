"""Notebooks for real: a kernel that trains (nbclient + ipykernel), and the inline diagnosis in headless Chromium.

- A fresh execution of ``live_callback`` from ``tests/data/notebooks/make_notebooks.py``: today's transformers
  draws its progress table, which the reader must read; ``LossDoctorCallback`` must leave exactly one inline
  display (updated in place, no printed notices) holding the final verdict; ``lossdoctor.diagnose(trainer)`` on
  the real Trainer must show itself as HTML.
- The inline HTML of a diagnosis whose run carries a hostile column name, opened in Chromium: nothing runs,
  nothing is fetched, the name is shown as text, the plots are drawn; a screenshot is kept in tests/actual/.
"""

from __future__ import annotations

import html
import json
import shutil
import sys
from pathlib import Path

import pytest
from test_notebook import HOSTILE, _overfit_notebook

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "data" / "notebooks"))
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


def test_live_callback_and_diagnose_in_a_real_kernel(tmp_path: Path) -> None:
    import make_notebooks

    cells = make_notebooks.LIVE + [("code", "import lossdoctor\nlossdoctor.diagnose(trainer)")]
    nb = make_notebooks.execute(cells, tmp_path)
    train_cell = nb.cells[1]
    outputs = train_cell.outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    # the reader reads what this transformers wrote: 40 steps, eval every 10
    path = tmp_path / "live.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    from lossdoctor.sources import read_runs

    (run,) = read_runs(str(path))
    assert run.name == "live.ipynb#cell-2"
    assert list(run.series("eval/loss").index) == [10, 20, 30, 40]
    assert run.summary["max_steps"] == 40 and run.state == "finished"
    # one inline display from the callback, holding the final diagnosis; no printed notices
    ours = [
        o
        for o in outputs
        if o.output_type == "display_data" and "lossdoctor-inline" in "".join(o.get("data", {}).get("text/html", ""))
    ]
    assert len(ours) == 1, [o.output_type for o in outputs]
    html = "".join(ours[0].data["text/html"])
    assert "Verdict:" in html and "lossdoctor-live" not in html  # the final view replaced the live one
    streams = "".join("".join(o.get("text", "")) for o in outputs if o.output_type == "stream")
    assert "[lossdoctor]" not in streams
    verdict = "".join(nb.cells[2].outputs[0].data["text/plain"]).strip("'\"")
    assert verdict in html
    # lossdoctor.diagnose(trainer) on the real Trainer shows itself as HTML
    shown = nb.cells[3].outputs[0]
    assert shown.output_type == "execute_result" and "text/html" in shown.data
    assert "Verdict:" in "".join(shown.data["text/html"])


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if exe is None:
        pytest.fail("Chromium not found; install it with: apt-get install -y chromium && pip install playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_inline_html_in_chromium_with_a_hostile_column(browser, tmp_path: Path) -> None:  # noqa: ANN001
    import lossdoctor

    d = lossdoctor.diagnose(_overfit_notebook(tmp_path, name=f"{HOSTILE}.ipynb", column=html.escape(HOSTILE)))
    page_file = tmp_path / "inline.html"
    # the way a notebook front-end embeds it: the fragment inside a page of its own
    page_file.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{d._repr_html_()}</body></html>",
        encoding="utf-8",
    )
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda dlg: (dialogs.append(dlg.message), dlg.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        page.click(".ld-details summary")
        assert dialogs == []
        assert requests == [page_file.as_uri()]
        assert page.evaluate("document.querySelectorAll('script, img, iframe, link, style').length") == 0
        assert HOSTILE in page.inner_text(".ld-run")
        assert f"eval_{HOSTILE.replace(' ', '_')}" in page.inner_text(".ld-metrics")
        assert "overfitting" in page.inner_text(".ld-verdict-text")
        # findings first: the verdict box is above the finding, the finding above the plots
        top = {
            sel: page.evaluate(f"document.querySelector('{sel}').getBoundingClientRect().top")
            for sel in (".ld-verdict", '.ld-finding[data-rule="overfitting"]', ".ld-plots", ".ld-facts")
        }
        assert top[".ld-verdict"] < top['.ld-finding[data-rule="overfitting"]'] < top[".ld-plots"] < top[".ld-facts"]
        width = page.evaluate("document.querySelector('#ld-plot-loss svg').getBoundingClientRect().width")
        assert 300 < width <= 420
        # the loss curves are drawn, and the overfitting span is shaded on them
        assert page.evaluate("document.querySelector('#ld-plot-loss #finding-overfitting').getBBox().width") > 50
        shot = ROOT / "tests" / "actual" / "notebook_inline.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        page.close()
