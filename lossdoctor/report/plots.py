"""PlotSpec → SVG text (HTML report) or PNG bytes (Markdown report), byte-for-byte reproducible.

Why no pyplot: pyplot keeps global figure state and picks a GUI backend; building a ``Figure`` and
its Agg/SVG canvas directly needs neither and cannot leak figures. Determinism: a fixed
``svg.hashsalt`` (ids), no Date/Creator metadata in SVG, no Software text chunk in PNG, text kept as
``<text>`` (matplotlib escapes it) so SVGs are small and do not embed glyph outlines.
"""
from __future__ import annotations

import io
import math
import re
from typing import Any

from lossdoctor.report.data import PlotSpec

SEVERITY_COLOURS: dict[str, str] = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
LINE_COLOURS: dict[str, str] = {"train/loss": "#1f77b4", "eval/loss": "#d62728"}
DEFAULT_LINE = "#2ca02c"

_RC: dict[str, Any] = {
    "svg.hashsalt": "lossdoctor",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": True,
    "text.parse_math": False,      # a metric or run named "$x^{" is text, never matplotlib math
}
#: Values beyond this are drawn at it: matplotlib's axis arithmetic (range × margin) overflows near ±1e308.
CLAMP = 1e300


def _figure(spec: PlotSpec):  # noqa: ANN202 - matplotlib Figure
    import numpy as np
    from matplotlib.figure import Figure

    size = (4.2, 2.6) if spec.small else (7.5, 3.4)
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(spec.title)
    ax.set_xlabel("step")
    ax.set_ylabel(spec.ylabel)
    xs_all: list[int] = []
    for ln in spec.lines:
        steps = np.asarray(ln.steps, dtype="float64")
        vals = np.asarray(ln.values, dtype="float64")
        xs_all.extend(ln.steps)
        finite = np.isfinite(vals)
        colour = LINE_COLOURS.get(ln.metric, DEFAULT_LINE)
        shown = np.where(finite, np.clip(vals, -CLAMP, CLAMP), np.nan)
        marker = "o" if len(steps) <= 40 and ln.metric.startswith("eval/") else None
        ax.plot(steps, shown, color=colour, label=ln.label, linewidth=1.4, marker=marker, markersize=3)
        if (~finite).any():   # NaN/inf cannot be drawn: an x at the top edge marks each one
            bad = steps[~finite]
            ax.plot(bad, np.full(bad.shape, 0.97), linestyle="none", marker="x", color="#d62728",
                    markersize=6, transform=ax.get_xaxis_transform(), label=f"{ln.label} non-finite")
    if spec.log_y:
        ax.set_yscale("log")
    lo = min(xs_all) if xs_all else 0
    hi = max(xs_all) if xs_all else 1
    width_min = max((hi - lo) * 0.01, 0.5)   # a one-step finding must still be visible
    for span in spec.spans:
        a, b = float(span.first_step), float(span.last_step)
        if b - a < width_min:
            mid = (a + b) / 2
            a, b = mid - width_min / 2, mid + width_min / 2
        ax.axvspan(a, b, color=SEVERITY_COLOURS.get(span.severity, "#7f7f7f"), alpha=0.18, linewidth=0,
                   gid=span.gid, label=f"{span.rule_id} ({span.severity})")
    if spec.marker is not None and math.isfinite(spec.marker.value):
        m = spec.marker
        ax.axvline(m.step, color="#2ca02c", linestyle="--", linewidth=1.0, gid=m.gid, label=m.label)
        ax.plot([m.step], [max(-CLAMP, min(CLAMP, m.value))], marker="*", markersize=11, color="#2ca02c", linestyle="none")
    if spec.lines:
        ax.legend(loc="best", fontsize=7 if spec.small else 8, framealpha=0.8)
    return fig


_SVG_START = re.compile(r"<svg\b")
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID = re.compile(r'(id=")([^"]+)(")|(href="#)([^"]+)(")|(url\(#)([^)]+)(\))')
_KEEP_ID_PREFIXES = ("finding-", "best-eval-step")


def render_svg(spec: PlotSpec, id_prefix: str = "") -> str:
    """An ``<svg>`` element ready to inline in HTML (no XML prolog, no metadata block).

    matplotlib names clip paths and markers by a hash, so two plots in one page can repeat an id;
    ``id_prefix`` makes them unique per plot, except the ``finding-*`` / ``best-eval-step`` ids,
    which are the report's public anchors.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    with rc_context(_RC):
        fig = _figure(spec)
        FigureCanvasSVG(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None,
                                                 "Type": None})
    text = buf.getvalue()
    start = _SVG_START.search(text)
    text = text[start.start():] if start else text
    text = _METADATA.sub("", text)
    if id_prefix:
        def repl(m: re.Match[str]) -> str:
            for i in (1, 4, 7):
                if m.group(i) is not None:
                    name = m.group(i + 1)
                    if name.startswith(_KEEP_ID_PREFIXES):
                        return m.group(0)
                    return f"{m.group(i)}{id_prefix}{name}{m.group(i + 2)}"
            return m.group(0)
        text = _ID.sub(repl, text)
    return text


def render_png(spec: PlotSpec, dpi: int = 100) -> bytes:
    """PNG bytes with no text chunks (no matplotlib version, no time): same input, same bytes."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with rc_context(_RC):
        fig = _figure(spec)
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
