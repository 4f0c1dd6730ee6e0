"""Inline SVG charts for the console (no script, no library): horizontal bars with their values."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from gateway.admin.shadow_html import PALETTE


def bars_svg(items: Sequence[tuple[str, float]], title: str, unit: str = "$") -> str:
    """One bar per (label, value), longest first as given; values printed at the bar's end."""
    if not items:
        return f'<figure><figcaption>{escape(title)}</figcaption><p class="muted">no data</p></figure>'
    vmax = max(v for _, v in items) or 1.0
    w, row = 640, 26
    h = 20 + row * len(items)
    out = [f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{escape(title)}">']
    for i, (label, v) in enumerate(items):
        y = 10 + i * row
        bw = (w - 330) * v / vmax
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<text x="4" y="{y + 15}" font-size="12">{escape(label[:40])}</text>')
        out.append(f'<rect x="230" y="{y}" width="{bw:.1f}" height="{row - 6}" fill="{color}"/>')
        shown = f"{unit}{v:.6g}" if unit == "$" else f"{v:.6g}{unit}"
        out.append(f'<text x="{236 + bw:.1f}" y="{y + 15}" font-size="12">{escape(shown)}</text>')
    out.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(out)}</figure>"
