"""PlotSpec / Timeline → inline SVG text, written directly (no matplotlib): pure, fast, byte-for-byte stable.

Why not matplotlib: importing it and drawing ten figures cost about a second per report, most of the time
of a small analysis; a line chart with shaded ranges is a few hundred bytes of SVG per series. Every string
from the run (metric names, rule ids) goes through ``esc`` (XML-escaped), and text is plain ``<text>``
(no TeX-like ``$...$`` interpretation), so a metric name cannot inject markup or break the layout. Values
of any magnitude (±1e308) are scaled without overflow: coordinates are computed from halves of the range.

Public ids (tests and readers look them up): ``finding-<rule id>`` (a ``<g>`` holding the shaded ranges of
one finding on one plot), ``best-eval-step`` (the best eval marker) and ``strip-<rule id>`` (a row of the
timeline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

from lossdoctor.report.data import PlotSpec, Timeline, fmt_steps, span_gid

SEVERITY_COLOURS: dict[str, str] = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
LINE_COLOURS: dict[str, str] = {"train/loss": "#1f77b4", "eval/loss": "#d62728"}
PALETTE: tuple[str, ...] = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
BEST_COLOUR = "#2ca02c"

WIDTH = 1100
LEFT, RIGHT, TOP, BOTTOM = 70, 18, 30, 34
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'
CHAR_PX = 6.4  # rough width of one 11 px character (legend layout)


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def _f(x: float) -> str:
    """A coordinate with one decimal, no trailing zeros (small, stable output)."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        mant, exp = f"{v:.2e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{mant}e{int(exp)}"
    return f"{v:.4g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values inside [lo, hi] (1, 2, 5 × 10^k steps); never overflows."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = hi / n - lo / n
    if raw <= 0 or not math.isfinite(raw):
        return [lo, hi]
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), 10 * mag)
    if not math.isfinite(step) or step <= 0:
        return [lo, hi]
    start = math.ceil(lo / step)
    out: list[float] = []
    k = start
    while len(out) < 50:
        v = k * step
        if not math.isfinite(v) or v > hi * (1 + 1e-12) + (1e-300 if hi == 0 else 0):
            break
        out.append(0.0 if abs(v) < step * 1e-9 else v)
        k += 1
    return out


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values (not logs) for a log axis over [10**lo, 10**hi]: decades, plus 2× and 5× when the axis
    spans fewer than two decades."""
    first, last = math.floor(lo), math.ceil(hi)
    mults = (1, 2, 5) if last - first <= 2 else (1,)
    out = []
    for e in range(first, last + 1):
        for m in mults:
            v = m * 10.0**e
            if lo - 1e-9 <= math.log10(v) <= hi + 1e-9:
                out.append(v)
    if len(out) > 12:
        out = out[:: math.ceil(len(out) / 12)]
    return out


class _Scale:
    """Linear map of [lo, hi] onto [a, b] pixels, overflow-safe for values near ±1.8e308."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.hi, self.a, self.b = lo, hi, a, b
        self.half = hi / 2 - lo / 2
        if not (self.half > 0) or not math.isfinite(self.half):
            self.half = 0.5

    def __call__(self, v: float) -> float:
        return self.a + (v / 2 - self.lo / 2) / self.half * (self.b - self.a)


def _y_range(values: Iterable[float], log: bool) -> tuple[float, float] | None:
    vals = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not vals:
        return None
    if log:
        vals = [math.log10(v) for v in vals]
    lo, hi = min(vals), max(vals)
    if hi == lo:
        pad = abs(lo) * 0.05 if lo else 1.0
        return lo - pad, hi + pad
    pad = (hi / 2 - lo / 2) * 0.1
    plo, phi = lo - pad, hi + pad
    return (plo if math.isfinite(plo) else lo), (phi if math.isfinite(phi) else hi)


def _legend(items: Sequence[tuple[str, str, str]], x0: float, y: float) -> list[str]:
    """(kind, colour, label) items in one row: kind "line" | "dash" | "box" | "cross"."""
    out, x = [], x0
    for kind, colour, label in items:
        label = label if len(label) <= 48 else label[:47] + "…"
        if kind == "box":
            out.append(
                f'<rect x="{_f(x)}" y="{_f(y - 8)}" width="14" height="10" fill="{colour}" '
                f'fill-opacity="0.25" stroke="{colour}" stroke-opacity="0.6"/>'
            )
        elif kind == "cross":
            out.append(f'<path d="M{_f(x + 3)},{_f(y - 8)} l8,8 m0,-8 l-8,8" stroke="{colour}" stroke-width="1.6"/>')
        else:
            dash = ' stroke-dasharray="4,3"' if kind == "dash" else ""
            out.append(
                f'<line x1="{_f(x)}" y1="{_f(y - 3)}" x2="{_f(x + 16)}" y2="{_f(y - 3)}" stroke="{colour}" '
                f'stroke-width="2"{dash}/>'
            )
        out.append(f'<text x="{_f(x + 20)}" y="{_f(y)}" font-size="11" fill="#333">{esc(label)}</text>')
        x += 34 + CHAR_PX * len(label)
    return out


def plot_svg(spec: PlotSpec, width: int = WIDTH) -> str:
    """One chart: the lines (gaps at NaN/inf, a cross at the top edge for each), the ranges where each
    finding holds shaded in its severity colour, the best eval point, axes with round ticks."""
    height = 210 if spec.small else 300
    x0, x1, y0, y1 = LEFT, width - RIGHT, TOP, height - BOTTOM
    steps = [s for ln in spec.lines for s in ln.steps]
    steps += [v for sp in spec.spans for r in sp.ranges for v in r]
    if spec.marker is not None:
        steps.append(spec.marker.step)
    xlo: float
    xhi: float
    xlo, xhi = (min(steps), max(steps)) if steps else (0, 1)
    if xhi == xlo:
        xlo, xhi = xlo - 0.5, xhi + 0.5
    xs = _Scale(float(xlo), float(xhi), x0, x1)
    log = spec.log_y
    yr = _y_range((v for ln in spec.lines for v in ln.values), log)
    if yr is None:
        yr = (0.0, 1.0)
    ys = _Scale(yr[0], yr[1], y1, y0)

    def ymap(v: float) -> float:
        return ys(math.log10(v) if log else v)

    label = f"{spec.title}: " + ", ".join(ln.label for ln in spec.lines)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{esc(label)}" {FONT}>'
    ]
    out.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="#fff" stroke="#ccc"/>')
    # shaded ranges first, so the curves stay on top
    span_w = max((x1 - x0) / 300.0, 3.0)
    for sp in spec.spans:
        colour = sp.colour or SEVERITY_COLOURS.get(sp.severity, "#7f7f7f")
        ranges = sp.ranges or ((sp.first_step, sp.last_step),)
        where = ", ".join(fmt_steps(a, b) for a, b in ranges[:6]) + (" …" if len(ranges) > 6 else "")
        out.append(
            f'<g id="{esc(sp.gid)}" class="span {esc(sp.severity)}"><title>{esc(sp.rule_id)} '
            f"({esc(sp.severity)}) holds at steps {esc(where)}</title>"
        )
        for a, b in ranges:
            xa, xb = xs(a), xs(b)
            if xb - xa < span_w:
                mid = (xa + xb) / 2
                xa, xb = mid - span_w / 2, mid + span_w / 2
            out.append(
                f'<rect x="{_f(xa)}" y="{y0}" width="{_f(xb - xa)}" height="{y1 - y0}" fill="{colour}" '
                f'fill-opacity="0.16"/>'
            )
        out.append("</g>")
    # grid and ticks
    yticks = [math.log10(v) for v in log_ticks(*yr)] if log else nice_ticks(*yr)
    for t in yticks:
        y = ys(t)
        if y0 - 0.5 <= y <= y1 + 0.5:
            out.append(f'<line x1="{x0}" y1="{_f(y)}" x2="{x1}" y2="{_f(y)}" stroke="#eee"/>')
            text = fmt_tick(10**t if log else t)
            out.append(f'<text x="{x0 - 6}" y="{_f(y + 4)}" font-size="11" fill="#555" text-anchor="end">{text}</text>')
    for t in nice_ticks(float(xlo), float(xhi), 8):
        x = xs(t)
        out.append(f'<line x1="{_f(x)}" y1="{y1}" x2="{_f(x)}" y2="{y1 + 4}" stroke="#999"/>')
        out.append(
            f'<text x="{_f(x)}" y="{y1 + 16}" font-size="11" fill="#555" text-anchor="middle">{fmt_tick(t)}</text>'
        )
    out.append(f'<text x="{x1}" y="{height - 4}" font-size="11" fill="#555" text-anchor="end">step</text>')
    out.append(
        f'<text x="14" y="{_f((y0 + y1) / 2)}" font-size="11" fill="#555" text-anchor="middle" '
        f'transform="rotate(-90 14 {_f((y0 + y1) / 2)})">{esc(spec.ylabel)}{" (log)" if log else ""}</text>'
    )
    # lines
    legend: list[tuple[str, str, str]] = []
    extra = 0
    for ln in spec.lines:
        line_colour = ln.colour or LINE_COLOURS.get(ln.metric)
        if line_colour is None:
            line_colour = PALETTE[extra % len(PALETTE)]
            extra += 1
        colour = line_colour
        segs: list[list[str]] = []
        cur: list[str] = []
        bad: list[int] = []
        for s, v in zip(ln.steps, ln.values):
            ok = math.isfinite(v) and (v > 0 or not log)
            if not math.isfinite(v):
                bad.append(s)
            if ok:
                cur.append(f"{_f(xs(s))},{_f(ymap(v))}")
            elif cur:
                segs.append(cur)
                cur = []
        if cur:
            segs.append(cur)
        d = " ".join("M" + " L".join(seg) for seg in segs)
        out.append(
            f'<g class="line" data-metric="{esc(ln.metric)}"><path d="{d}" fill="none" stroke="{colour}" '
            f'stroke-width="1.6" stroke-linejoin="round"/>'
        )
        if len(ln.steps) <= 60 and ln.metric.startswith("eval/"):
            for seg in segs:
                for pt in seg:
                    cx, cy = pt.split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2.6" fill="{colour}"/>')
        out.append("</g>")
        legend.append(("line", colour, ln.label))
        if bad:
            for s in bad:
                x = xs(s)
                out.append(
                    f'<path class="nonfinite" d="M{_f(x - 4)},{y0 + 2} l8,8 m0,-8 l-8,8" stroke="#d62728" '
                    f'stroke-width="1.8"><title>{esc(ln.label)} non-finite at step {s}</title></path>'
                )
            legend.append(("cross", "#d62728", f"{ln.label} non-finite"))
    if spec.marker is not None and math.isfinite(spec.marker.value) and (spec.marker.value > 0 or not log):
        m = spec.marker
        x, y = xs(m.step), ymap(m.value)
        out.append(
            f'<g id="{esc(m.gid)}"><title>{esc(m.label)}</title>'
            f'<line x1="{_f(x)}" y1="{y0}" x2="{_f(x)}" y2="{y1}" stroke="{BEST_COLOUR}" stroke-width="1.2" '
            f'stroke-dasharray="5,4"/><circle cx="{_f(x)}" cy="{_f(y)}" r="5" fill="none" '
            f'stroke="{BEST_COLOUR}" stroke-width="2"/></g>'
        )
        legend.append(("dash", BEST_COLOUR, m.label))
    for sp in spec.spans:
        legend.append(
            (
                "box",
                sp.colour or SEVERITY_COLOURS.get(sp.severity, "#7f7f7f"),
                sp.label or f"{sp.rule_id} ({sp.severity})",
            )
        )
    out.extend(_legend(legend, x0 + 4, 16))
    out.append("</svg>")
    return "".join(out)


def timeline_svg(timeline: Timeline, width: int = WIDTH) -> str:
    """The health strip: one row per finding, shaded where it holds, over the run's whole step axis."""
    label_w = 210
    row_h = 22
    x0, x1 = label_w, width - RIGHT
    top = 6
    height = top + row_h * max(1, len(timeline.rows)) + 26
    lo, hi = float(timeline.first_step), float(timeline.last_step)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    xs = _Scale(lo, hi, x0, x1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="where each finding holds, over steps {timeline.first_step}-{timeline.last_step}" {FONT}>'
    ]
    min_w = 3.0
    for i, row in enumerate(timeline.rows):
        y = top + i * row_h
        colour = SEVERITY_COLOURS.get(row.severity, "#7f7f7f")
        name = row.rule_id if len(row.rule_id) <= 30 else row.rule_id[:29] + "…"
        where = ", ".join(fmt_steps(a, b) for a, b in row.ranges[:6]) + (" …" if len(row.ranges) > 6 else "")
        out.append(
            f'<g id="strip-{esc(span_gid(row.rule_id)[len("finding-") :])}" class="strip {esc(row.severity)}">'
            f"<title>{esc(row.rule_id)} ({esc(row.severity)}): {esc(row.title)}; steps {esc(where)}</title>"
        )
        out.append(
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" fill="{colour}" text-anchor="end" '
            f'font-weight="600">{esc(name)}</text>'
        )
        out.append(f'<rect x="{x0}" y="{y + 4}" width="{x1 - x0}" height="{row_h - 8}" fill="#f1f1f1"/>')
        for a, b in row.ranges:
            xa, xb = xs(a), xs(b)
            if xb - xa < min_w:
                mid = (xa + xb) / 2
                xa, xb = mid - min_w / 2, mid + min_w / 2
            out.append(
                f'<rect class="holds" x="{_f(xa)}" y="{y + 4}" width="{_f(xb - xa)}" height="{row_h - 8}" '
                f'fill="{colour}" fill-opacity="0.85"/>'
            )
        out.append("</g>")
    if not timeline.rows:
        out.append(
            f'<rect x="{x0}" y="{top + 4}" width="{x1 - x0}" height="{row_h - 8}" fill="#2ca02c" '
            f'fill-opacity="0.35"/><text x="{label_w - 8}" y="{top + 15}" font-size="12" fill="#2ca02c" '
            f'text-anchor="end" font-weight="600">no finding</text>'
        )
    base = top + row_h * max(1, len(timeline.rows))
    best_eval_step = timeline.best_eval_step
    if best_eval_step is not None and lo <= best_eval_step <= hi:
        x = xs(best_eval_step)
        out.append(
            f'<g class="best-eval"><title>best eval loss at step {best_eval_step}</title>'
            f'<line x1="{_f(x)}" y1="{top}" x2="{_f(x)}" y2="{base}" stroke="{BEST_COLOUR}" '
            f'stroke-width="1.5" stroke-dasharray="4,3"/></g>'
        )
    for t in nice_ticks(lo, hi, 8):
        x = xs(t)
        out.append(f'<line x1="{_f(x)}" y1="{base}" x2="{_f(x)}" y2="{base + 4}" stroke="#999"/>')
        out.append(
            f'<text x="{_f(x)}" y="{base + 16}" font-size="11" fill="#555" text-anchor="middle">{fmt_tick(t)}</text>'
        )
    out.append(f'<text x="{label_w - 8}" y="{base + 16}" font-size="11" fill="#555" text-anchor="end">step</text>')
    out.append("</svg>")
    return "".join(out)
