"""The shadow report as one self-contained HTML page: tables plus inline SVG charts drawn on the server (no
scripts, no external assets, so it works offline and behind strict CSPs). The report JSON is embedded in a
``<script type="application/json" id="shadow-report">`` block for anyone who wants to script against the page.

Charts per route: latency distributions (total and time to first token) of both sides side by side, comparator
scores over time, and cost per 1,000 requests with the projected monthly saving.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape
from typing import Any

import orjson

from routing.shadow.report import JUDGE_COLUMNS, judge_cells, window_note

PRIMARY = "#4c78a8"
CANDIDATE = "#f58518"
PALETTE = ("#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b")
W, H = 560, 220
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 14, 36


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return "–"
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return escape(str(v))


def _ms(v: Any) -> str:
    return "–" if v is None else f"{float(v) * 1000:.1f} ms"


def _ci(ci: Sequence[Any] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _axes(ymax: float, ylabel: str) -> list[str]:
    out = [
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#888"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#888"/>',
    ]
    for i in range(5):
        y = H - PAD_B - (H - PAD_T - PAD_B) * i / 4
        out.append(f'<line x1="{PAD_L - 3}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{PAD_L - 5}" y="{y + 3:.1f}" text-anchor="end" font-size="9">{_fmt(ymax * i / 4, 2)}'
            "</text>"
        )
    out.append(f'<text x="10" y="{PAD_T + 4}" font-size="9" fill="#555">{escape(ylabel)}</text>')
    return out


def _legend(items: Sequence[tuple[str, str]]) -> str:
    parts = []
    x = PAD_L + 8
    for label, color in items:
        parts.append(
            f'<rect x="{x}" y="{PAD_T}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{PAD_T + 9}" font-size="10">{escape(label)}</text>'
        )
        x += 18 + 7 * len(label)
    return "".join(parts)


def histogram_svg(hist: dict[str, Any], title: str) -> str:
    """Two distributions on the same log-spaced bins, bars side by side."""
    edges: list[float] = hist.get("edges") or []
    prim: list[int] = hist.get("primary") or []
    cand: list[int] = hist.get("candidate") or []
    if not edges or not (sum(prim) + sum(cand)):
        return f'<figure><figcaption>{escape(title)}</figcaption><p class="muted">no data</p></figure>'
    ymax = max(max(prim, default=0), max(cand, default=0), 1)
    bins = len(prim)
    pw = (W - PAD_L - PAD_R) / bins
    ph = H - PAD_T - PAD_B
    out = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">']
    out += _axes(float(ymax), "pairs")
    for i in range(bins):
        x = PAD_L + i * pw
        for j, (v, color) in enumerate(((prim[i], PRIMARY), (cand[i], CANDIDATE))):
            h = ph * v / ymax
            out.append(
                f'<rect x="{x + 1 + j * (pw - 2) / 2:.1f}" y="{H - PAD_B - h:.1f}" width="{(pw - 2) / 2:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{v} pairs, {edges[i] * 1000:.1f}–'
                f"{edges[i + 1] * 1000:.1f} ms</title></rect>"
            )
    for i in range(0, bins + 1, max(1, bins // 6)):
        x = PAD_L + i * pw
        out.append(
            f'<text x="{x:.1f}" y="{H - PAD_B + 12}" text-anchor="middle" font-size="9">'
            f"{edges[i] * 1000:.3g}</text>"
        )
    out.append(
        f'<text x="{(W + PAD_L) / 2}" y="{H - 6}" text-anchor="middle" font-size="10">milliseconds '
        "(log scale)</text>"
    )
    out.append(_legend((("primary", PRIMARY), ("candidate", CANDIDATE))))
    out.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(out)}</figure>"


def series_svg(series: dict[str, Any], title: str) -> str:
    """Each comparator's mean per time bucket, as lines on 0..1."""
    ts: list[float] = series.get("t") or []
    scores: dict[str, list[float | None]] = series.get("scores") or {}
    lines = {k: v for k, v in scores.items() if any(x is not None for x in v)}
    if not ts or not lines:
        return f'<figure><figcaption>{escape(title)}</figcaption><p class="muted">no scores yet</p></figure>'
    t0, t1 = ts[0], ts[-1] if ts[-1] > ts[0] else ts[0] + 1
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def xy(t: float, v: float) -> tuple[float, float]:
        return PAD_L + pw * (t - t0) / (t1 - t0), H - PAD_B - ph * max(0.0, min(1.0, v))

    out = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">']
    out += _axes(1.0, "score")
    legend = []
    for n, (name, vals) in enumerate(sorted(lines.items())):
        color = PALETTE[n % len(PALETTE)]
        pts = [xy(t, v) for t, v in zip(ts, vals, strict=False) if v is not None]
        if len(pts) > 1:
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                + '"/>'
            )
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
        legend.append((name, color))
    for frac in (0.0, 0.5, 1.0):
        t = t0 + (t1 - t0) * frac
        out.append(
            f'<text x="{PAD_L + pw * frac:.1f}" y="{H - PAD_B + 12}" text-anchor="middle" font-size="9">'
            f"{time.strftime('%m-%d %H:%M:%S', time.gmtime(t))}</text>"
        )
    out.append(_legend(legend))
    out.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(out)}</figure>"


def cost_svg(cost: dict[str, Any], title: str) -> str:
    p, c = cost.get("primary_per_1k_usd"), cost.get("candidate_per_1k_usd")
    if p is None or c is None:
        return f'<figure><figcaption>{escape(title)}</figcaption><p class="muted">no data</p></figure>'
    vals = [("primary", float(p), PRIMARY), ("candidate", float(c), CANDIDATE)]
    vmax = max(v for _, v, _ in vals) or 1.0
    w, h = 360, 180
    out = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{escape(title)}">']
    for i, (label, v, color) in enumerate(vals):
        bw = (w - 150) * v / vmax
        y = 30 + i * 60
        out.append(f'<text x="4" y="{y + 22}" font-size="11">{label}</text>')
        out.append(f'<rect x="80" y="{y}" width="{bw:.1f}" height="34" fill="{color}"/>')
        out.append(f'<text x="{84 + bw:.1f}" y="{y + 22}" font-size="11">${v:.4g}</text>')
    out.append('<text x="4" y="14" font-size="10" fill="#555">USD per 1,000 requests</text>')
    out.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(out)}</figure>"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _anytime(c: dict[str, Any]) -> str:
    a = c.get("anytime") or {}
    bounds = [f"{k} {_fmt(a[k])}" for k in ("lower", "upper") if a.get(k) is not None]
    if a.get("e_value") is not None:
        bounds.append(f"e {a['e_value']:.3g} / {a.get('threshold', 0):.3g}")
    return escape(", ".join(bounds)) if bounds else "–"


def _verdict(v: dict[str, Any]) -> str:
    kind = v.get("verdict", "insufficient_data")
    extra = ""
    if kind == "judge_unreliable" and v.get("reason"):
        extra = " — " + escape(v["reason"])
    elif v.get("failing"):
        extra = " — failing: " + ", ".join(escape(f) for f in v["failing"])
    elif kind == "insufficient_data" and v.get("pairs_needed") is not None:
        extra = f" — about {int(v['pairs_needed'])} more pairs needed"
    how = ""
    if v.get("decide_on") == "anytime":
        how = (
            f'<p class="muted">Decided with anytime-valid tests at alpha {_fmt(v.get("alpha"))}: the chance this '
            "verdict is ever wrongly ready, however often it is looked at, is at most alpha. The 95% intervals "
            "are fixed-horizon snapshots, for reading only.</p>"
        )
    crit = (
        _table(
            ("criterion", "status", "value", "threshold", "anytime-valid", "snapshot 95% CI", "detail"),
            [
                (
                    escape(c["name"]),
                    f'<span class="st-{escape(c["status"])}">{escape(c["status"])}</span>',
                    _fmt(c.get("value")),
                    escape(orjson.dumps(c.get("threshold")).decode()),
                    _anytime(c),
                    _ci(c.get("snapshot_ci95")),
                    escape(str(c.get("detail") or ""))
                    + (f" (~{int(c['pairs_needed'])} more pairs)" if c.get("pairs_needed") else ""),
                )
                for c in v.get("criteria", [])
            ],
        )
        if v.get("criteria")
        else f'<p class="muted">{escape(v.get("note", ""))}</p>'
    )
    return f'<p class="verdict v-{escape(kind)}">Verdict: <b>{escape(kind)}</b>{extra}</p>{how}{crit}'


def _judges(comparators: dict[str, Any]) -> str:
    rows = [[escape(c) for c in row] for row in judge_cells(comparators, "–")]
    return "<h3>Judges</h3>" + _table(JUDGE_COLUMNS, rows) if rows else ""


def _paired(r: dict[str, Any]) -> str:
    rows = []
    for name, s in r["comparators"].items():
        pd = s.get("paired")
        if pd is not None:
            rows.append(
                (
                    escape(name),
                    str(pd["n"]),
                    _fmt(pd["difference"]),
                    _ci(pd["ci95"]),
                    f"both {pd['both']}, primary only {pd['primary_only']}, candidate only "
                    f"{pd['candidate_only']}, neither {pd['neither']} (Newcombe)",
                )
            )
    for kind, label in (("total", "latency (s)"), ("ttft", "time to first token (s)")):
        d = r["latency"][kind].get("paired_difference_s") or {}
        if d.get("n"):
            rows.append(
                (label, str(d["n"]), _fmt(d["mean"]), _ci(d["ci95"]), "mean per-request difference (t)")
            )
    cd = r["cost"].get("paired_difference_per_1k_usd") or {}
    if cd.get("n"):
        lo, hi = cd["ci95"]
        rows.append(
            (
                "cost per 1k (USD)",
                str(cd["n"]),
                escape(str(cd["mean"])),
                escape(f"[{lo}, {hi}]") if lo is not None else "–",
                "mean per-request difference (t)",
            )
        )
    if not rows:
        return ""
    return "<h3>Candidate minus primary, on the same requests</h3>" + _table(
        ("what", "pairs", "difference", "95% CI", "how"), rows
    )


def route_section(r: dict[str, Any]) -> str:
    """One route's part of the report (verdict and reasons, figures, charts); the console shows it too."""
    c = r["counts"]
    parts = [
        f"<section><h2>Route <code>{escape(r['route'])}</code></h2>",
        f"<p>candidate <code>{escape(str(r.get('candidate')))}</code> vs baseline "
        f"<code>{escape(', '.join(r.get('baseline') or []))}</code>; sample rate {_fmt(r.get('sample_rate'))}</p>",
        _verdict(r["verdict"]),
    ]
    note = window_note(r)
    if note is not None:
        parts.append(f"<p class=window-note>The report {escape(note)}.</p>")
    promo = r.get("promotion")
    if promo:
        parts.append(
            f"<p>Promotion: <b>{escape(str(promo.get('status')))}</b>, step {int(promo.get('step', 0)) + 1}"
            f" of {len(promo.get('steps') or [])} ({_fmt(promo.get('percent'))}%)"
            + (f" — {escape(str(promo['reason']))}" if promo.get("reason") else "")
            + "</p>"
        )
    parts.append(
        "<h3>Pairs</h3>"
        + _table(
            (
                "sampled",
                "paired",
                "candidate failed",
                "primary failed (excluded)",
                "dropped",
                "streamed",
                "reverse",
            ),
            [
                (
                    str(c["sampled"]),
                    str(c["paired"]),
                    str(c["candidate_failed"]),
                    str(c["primary_failed"]),
                    str(c["dropped"])
                    + (" " + escape(orjson.dumps(c["dropped_by_reason"]).decode()) if c["dropped"] else ""),
                    str(c["streamed"]),
                    str(c["reverse"]),
                )
            ],
        )
    )
    rows = []
    for name, s in r["comparators"].items():
        if s["kind"] == "pass":
            est, base = _fmt(s.get("pass_rate")), _fmt((s.get("baseline") or {}).get("pass_rate"))
        elif s["kind"] == "judge":
            est = (
                f"{s.get('win', 0)}/{s.get('tie', 0)}/{s.get('loss', 0)} (score {_fmt(s.get('score'))}, "
                f"non-inferior: {s.get('non_inferior')})"
            )
            base = "–"
        else:
            est, base = _fmt(s.get("mean")), "–"
        rows.append((escape(name), escape(s["kind"]), str(s["n"]), est, _ci(s.get("ci95")), base))
    parts.append(
        "<h3>Comparators</h3>"
        + (
            _table(("comparator", "kind", "n", "candidate", "95% CI", "primary"), rows)
            if rows
            else '<p class="muted">none configured</p>'
        )
    )
    parts.append(_judges(r["comparators"]) + _paired(r))
    lat = r["latency"]
    lrows = []
    for kind, label in (("total", "total"), ("ttft", "time to first token")):
        b = lat[kind]
        for side in ("primary", "candidate"):
            s = b[side]
            lrows.append((label, side, str(s["n"]), _ms(s["p50"]), _ms(s["p95"]), _ms(s["p99"])))
        pr = b["paired_ratio"]
        lrows.append(
            (
                label,
                "candidate / primary (paired)",
                str(pr["n"]),
                f"median {_fmt(pr['median'])}",
                f"geomean {_fmt(pr['geomean'])}",
                _ci(pr["ci95"]),
            )
        )
    parts.append("<h3>Latency</h3>" + _table(("", "side", "n", "p50", "p95", "p99"), lrows))
    e = r["errors"]
    parts.append(
        "<h3>Errors</h3>"
        + _table(
            ("", "rate", "95% CI", "n"),
            [
                (
                    "candidate",
                    _fmt(e["candidate_error_rate"]["estimate"]),
                    _ci(e["candidate_error_rate"]["ci95"]),
                    str(e["candidate_error_rate"]["n"]),
                ),
                (
                    "primary",
                    _fmt(e["primary_error_rate"]["estimate"]),
                    _ci(e["primary_error_rate"]["ci95"]),
                    str(e["primary_error_rate"]["n"]),
                ),
            ],
        )
    )
    co = r["cost"]
    parts.append(
        "<h3>Cost</h3>"
        + _table(
            (
                "primary per 1k",
                "candidate per 1k",
                "saving per 1k",
                "requests seen",
                "monthly volume",
                "projected monthly saving",
                "shadow spend",
            ),
            [
                (
                    f"${escape(str(co['primary_per_1k_usd']))}",
                    f"${escape(str(co['candidate_per_1k_usd']))}",
                    f"${escape(str(co['saving_per_1k_usd']))}",
                    str(co["requests_seen"]),
                    _fmt(co["monthly_volume"]),
                    f"${escape(str(co['projected_monthly_saving_usd']))}",
                    f"${escape(str(co['shadow_spend_usd']))}",
                )
            ],
        )
    )
    hist = r.get("latency_histogram") or {}
    parts.append(
        '<div class="charts">'
        + histogram_svg(hist.get("total") or {}, "Total latency distribution")
        + histogram_svg(hist.get("ttft") or {}, "Time to first token distribution")
        + series_svg(r.get("series") or {}, "Comparator scores over time")
        + cost_svg(co, "Cost per 1,000 requests")
        + "</div>"
    )
    tasks = r.get("tasks") or []
    if tasks:
        parts.append(
            "<h3>By task</h3>"
            + _table(
                ("task", "pairs", "paired", "candidate failed", "verdict"),
                [
                    (
                        escape(str(t["task"])),
                        str(t["counts"]["sampled"]),
                        str(t["counts"]["paired"]),
                        str(t["counts"]["candidate_failed"]),
                        escape(t["verdict"]["verdict"]),
                    )
                    for t in tasks
                ],
            )
        )
    parts.append("</section>")
    return "".join(parts)


SECTION_CSS = """
.verdict{font-size:16px}.v-ready b{color:#2a7a2a}.v-not_ready b{color:#b02020}.v-insufficient_data b{color:#a66a00}
.v-judge_unreliable b{color:#8a2be2}
.st-pass{color:#2a7a2a}.st-fail{color:#b02020}.st-undecided{color:#a66a00}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}
"""
"""The classes a route section uses (verdict colours, criterion states, the chart row)."""
_CSS = (
    """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-top:1px solid #ddd;padding-top:16px}h3{font-size:15px}
table{border-collapse:collapse;margin:6px 0 12px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
font-variant-numeric:tabular-nums}th{background:#f5f5f5}.muted{color:#888}"""
    + SECTION_CSS
)


def render_report(doc: dict[str, Any]) -> str:
    w = doc.get("window") or {}
    routes = doc.get("routes") or []
    data = orjson.dumps(doc).decode().replace("</", "<\\/")
    body = (
        "".join(route_section(r) for r in routes)
        or '<p class="muted">No shadowed routes and no pairs in this window.</p>'
    )
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(doc.get("generated_at", time.time())))
    span = (
        (
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(w['from']))} – "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(w['to']))} UTC"
        )
        if w.get("from") and w.get("to")
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>pointsman shadow report</title><style>{_CSS}</style></head><body>"
        f"<h1>Shadow tests</h1><p class=muted>Generated {when}. Window {escape(span)}.</p>{body}"
        f'<script type="application/json" id="shadow-report">{data}</script></body></html>'
    )
