"""Inline SVG charts for the self-contained cost review report (no JavaScript, no CDN, no extra package).

Each builder returns one ``<svg>`` element as a string with a ``<title>`` for screen readers; values are
drawn to scale from zero. Units are whatever the caller passes (the report passes USD and fractions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _fmt_usd(v: float) -> str:
    return f"{v:,.0f}"


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" {FONT}><title>{escape(title)}</title>'
            f'<text x="4" y="14" font-weight="bold" font-size="13">{escape(title)}</text>' + "".join(body) + "</svg>")


def hbars(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, *,
          fmt: Callable[[float], str] = _fmt_usd, width: int = 760, vmax: float | None = None) -> str:
    """Horizontal bars, one group per label and one bar per series (legend when several)."""
    n_series = max(len(series), 1)
    bar_h = 14
    group_h = bar_h * n_series + 8
    left, right, top = 190, 110, 24 + (16 if n_series > 1 else 0)
    plot_w = width - left - right
    values = [v for vals in series.values() for v in vals]
    top_value = vmax if vmax is not None else max([v for v in values if v == v] + [1e-9])
    height = top + group_h * len(labels) + 8
    body: list[str] = []
    if n_series > 1:
        for k, name in enumerate(series):
            x = left + k * 150
            body.append(f'<rect x="{x}" y="22" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                        f'<text x="{x + 14}" y="31">{escape(name)}</text>')
    for i, label in enumerate(labels):
        y0 = top + i * group_h
        body.append(f'<text x="{left - 6}" y="{y0 + group_h / 2 + 3:.1f}" '
                    f'text-anchor="end">{escape(str(label))}</text>')
        for k, vals in enumerate(series.values()):
            v = float(vals[i])
            w = 0.0 if v != v or top_value <= 0 else max(v, 0.0) / top_value * plot_w
            y = y0 + k * bar_h
            body.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                        f'fill="{PALETTE[k % len(PALETTE)]}"/>'
                        f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 4}">'
                        f'{"n/a" if v != v else escape(fmt(v))}</text>')
    return _svg(width, height, title, body)


def budget_bars(rows: Sequence[dict], title: str, *, width: int = 760) -> str:
    """Forecast vs budget: per row a light bar for the projected spend with its p10-p90 whisker, a dark bar
    for the actual spend to date and a red tick at the budget. Rows need ``label, budget, actual, projected,
    p10, p90``."""
    left, right, top, row_h = 190, 120, 40, 22
    plot_w = width - left - right
    vmax = max([max(r["budget"], r["p90"], r["projected"]) for r in rows] + [1e-9])
    height = top + row_h * len(rows) + 8
    sx = plot_w / vmax
    body = [f'<rect x="{left}" y="22" width="10" height="10" fill="#c6dbef"/><text x="{left + 14}" y="31">projected '
            f'(p10-p90)</text><rect x="{left + 130}" y="22" width="10" height="10" fill="#4c78a8"/>'
            f'<text x="{left + 144}" y="31">actual to date</text><rect x="{left + 250}" y="21" width="3" height="12" '
            f'fill="#d62728"/><text x="{left + 258}" y="31">budget</text>']
    for i, r in enumerate(rows):
        y = top + i * row_h
        color = "#d62728" if r.get("fired") else "#222"
        pct = f'{r["projected"] / r["budget"]:.0%} of budget' if r["budget"] > 0 else "no budget"
        body.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" fill="{color}">{escape(r["label"])}</text>'
                    f'<rect x="{left}" y="{y + 2}" width="{r["projected"] * sx:.1f}" height="14" fill="#c6dbef"/>'
                    f'<rect x="{left}" y="{y + 5}" width="{r["actual"] * sx:.1f}" height="8" fill="#4c78a8"/>'
                    f'<line x1="{left + r["p10"] * sx:.1f}" x2="{left + r["p90"] * sx:.1f}" y1="{y + 9}" y2="{y + 9}" '
                    f'stroke="#08519c" stroke-width="1.5"/>'
                    f'<rect x="{left + r["budget"] * sx - 1:.1f}" y="{y}" width="3" height="18" fill="#d62728"/>'
                    f'<text x="{left + max(r["budget"], r["p90"]) * sx + 6:.1f}" y="{y + 13}">'
                    f'{pct}</text>')
    return _svg(width, height, title, body)


def lines(series: dict[str, Sequence[tuple[str, float]]], title: str, *, width: int = 760, height: int = 260,
          fmt: Callable[[float], str] = lambda v: f"{v:,.0f}") -> str:
    """Line chart over shared category x labels (e.g. months); one line per series, legend below the title."""
    xs = sorted({x for pts in series.values() for x, _ in pts})
    left, right, top, bottom = 60, 20, 30 + 14 * ((len(series) + 2) // 3), 30
    plot_w, plot_h = width - left - right, height - top - bottom
    vals = [v for pts in series.values() for _, v in pts if v == v]
    vmax = max(vals + [1e-9]) * 1.05
    body: list[str] = []
    for k, name in enumerate(series):
        lx, ly = 4 + (k % 3) * 250, 26 + 14 * (k // 3)
        body.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                    f'<text x="{lx + 14}" y="{ly}">{escape(name)}</text>')
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                    f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{escape(fmt(vmax * frac))}</text>')
    step = plot_w / max(len(xs) - 1, 1)
    for i, x in enumerate(xs):
        body.append(f'<text x="{left + i * step:.1f}" y="{height - 10}" text-anchor="middle">{escape(x)}</text>')
    for k, pts in enumerate(series.values()):
        coords = [(left + xs.index(x) * step, top + plot_h * (1 - v / vmax)) for x, v in pts if v == v]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        color = PALETTE[k % len(PALETTE)]
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        body.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in coords)
    return _svg(width, height, title, body)
