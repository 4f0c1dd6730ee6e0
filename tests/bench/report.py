"""Statistics across rounds, the printed table, the target checks and the JSON document."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.bench import phases
from tests.bench.targets import DIRECT, FEATURE_ROWS, PLAIN, POINTSMAN, feature_name, feature_row

# One round's figures: target name -> metric -> value (cold_start_s is a list of samples).
Figures = dict[str, dict[str, Any]]


FAILURES = "failures"  # a round's notes on a peer's failed phases (strings, not figures)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def aggregate(rounds: Sequence[Figures]) -> Figures:
    """Median of every metric over rounds; list-valued metrics (cold starts) pool their samples."""
    pooled: dict[str, dict[str, list[float]]] = {}
    for figures in rounds:
        for target, metrics in figures.items():
            pooled.setdefault(target, {})
            for key, value in metrics.items():
                if key == FAILURES:
                    continue
                values = value if isinstance(value, list) else [value]
                pooled.setdefault(target, {}).setdefault(key, []).extend(values)
    return {t: {k: statistics.median(v) for k, v in m.items()} for t, m in pooled.items()}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    fmt: str


ROWS = (
    Row("rps", "non-streaming max req/s (wrk, 64 conn)", "{:,.0f}"),
    Row("rps_cpu_us", "  CPU µs per request", "{:,.0f}"),
    Row("sps", "streaming max streams/s (wrk, 64 conn)", "{:,.0f}"),
    Row("sps_cpu_us", "  CPU µs per stream", "{:,.0f}"),
    Row("lat_p50_ms", "latency p50 at fixed rate (ms)", "{:.2f}"),
    Row("lat_p99_ms", "latency p99 at fixed rate (ms)", "{:.2f}"),
    Row("added_p50_ms", "  added p50 vs direct (ms)", "{:.2f}"),
    Row("added_p99_ms", "  added p99 vs direct (ms)", "{:.2f}"),
    Row("lat_send_lag_p99_ms", "  load generator's send lag p99 (ms)", "{:.2f}"),
    Row("ttfb_p50_ms", "stream TTFB p50 at fixed rate (ms)", "{:.2f}"),
    Row("ttfb_p99_ms", "stream TTFB p99 at fixed rate (ms)", "{:.2f}"),
    Row("added_ttfb_p50_ms", "  added TTFB p50 vs direct (ms)", "{:.2f}"),
    Row("added_ttfb_p99_ms", "  added TTFB p99 vs direct (ms)", "{:.2f}"),
    Row("added_stream_p50_ms", "  added full-stream p50 (ms)", "{:.2f}"),
    Row("added_awake_p50_ms", "added latency p50, CPUs kept awake (ms)", "{:.2f}"),
    Row("added_awake_ttfb_p50_ms", "added TTFB p50, CPUs kept awake (ms)", "{:.2f}"),
    Row("cold_start_s", "cold start, spawn -> first 200 (s)", "{:.2f}"),
    Row("rss_mb", "RSS after load (MB)", "{:.1f}"),
    Row("errors", "failed requests (all phases)", "{:.0f}"),
)


@dataclass(frozen=True)
class Check:
    label: str
    key: str
    relative: bool  # compare pointsman/plain instead of pointsman's own figure
    op: str  # ">=" or "<="
    limit: float
    floor: float | None = None  # a value below this is noise (baseline slower than gateway): no verdict


CHECKS = (  # issue #17: pointsman with its default features, one worker on one core, against plain in the same run
    Check("CPU per request <= 0.6x plain", "rps_cpu_us", True, "<=", 0.6),
    Check("non-streaming req/s >= 1.5x plain", "rps", True, ">=", 1.5),
    Check("CPU per stream <= 0.6x plain", "sps_cpu_us", True, "<=", 0.6),
    Check("added latency p50 <= 0.5 ms at 200/s", "added_p50_ms", False, "<=", 0.5, floor=-0.1),
    Check("added latency p99 <= 1.5 ms at 200/s", "added_p99_ms", False, "<=", 1.5, floor=-0.1),
    Check("stream TTFB added p50 <= 0.5 ms", "added_ttfb_p50_ms", False, "<=", 0.5, floor=-0.1),
    Check("cold start <= 0.5 s", "cold_start_s", False, "<=", 0.5),
    Check("RSS after load <= 100 MB", "rss_mb", False, "<=", 100.0),
)


@dataclass(frozen=True)
class Verdict:
    label: str
    value: float | None
    passed: bool | None  # None: not measured, or too noisy to judge
    note: str = ""


def ratios(summary: Figures) -> dict[str, float]:
    """pointsman / plain for every metric both have."""
    mine, base = summary.get(POINTSMAN, {}), summary.get(PLAIN, {})
    return {k: mine[k] / base[k] for k in mine if k in base and base[k]}


def verdicts(summary: Figures) -> list[Verdict]:
    mine, rel = summary.get(POINTSMAN, {}), ratios(summary)
    out = []
    for check in CHECKS:
        value = (rel if check.relative else mine).get(check.key)
        if value is None:
            out.append(Verdict(check.label, None, None, "not measured"))
            continue
        if check.floor is not None and value < check.floor:
            out.append(Verdict(check.label, value, None, "negative: the direct baseline was noisier"))
            continue
        passed = value >= check.limit if check.op == ">=" else value <= check.limit
        out.append(Verdict(check.label, value, passed))
    return out


def table(summary: Figures, rates: tuple[float, float]) -> str:
    targets = [t for t in summary if feature_row(t) is None]
    rel = ratios(summary)
    show_ratio = POINTSMAN in summary and PLAIN in summary
    header = ["metric", *targets] + (["pointsman/plain"] if show_ratio else [])
    lines = [header]
    for row in ROWS:
        if not any(row.key in summary[t] for t in targets):
            continue
        label = row.label.replace("at fixed rate", f"at {rates[1 if 'ttfb' in row.key else 0]:g}/s")
        cells = [label] + [_fmt(row.fmt, summary[t].get(row.key)) for t in targets]
        if show_ratio:
            cells.append(f"{rel[row.key]:.2f}x" if row.key in rel and row.key != "errors" else "")
        lines.append(cells)
    return aligned(lines)


def aligned(lines: Sequence[Sequence[str]]) -> str:
    """A text table: the first column left-aligned, the others right-aligned, a rule under the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rendered = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    rendered.insert(1, "-" * len(rendered[0]))
    return "\n".join(rendered)


FEATURES_LIMIT = 1.25  # all features on: CPU per request at most this times the defaults


def features_text(summary: Figures) -> str:
    """The feature rows: throughput and CPU per request and per stream, each relative to the defaults row and to
    the plain pass-through (medians over rounds of each round's ratio), then the check on all of them."""
    rows = [(row, summary[feature_name(row)]) for row in FEATURE_ROWS if feature_name(row) in summary]
    if not rows:
        return ""
    plain = summary.get(PLAIN, {})
    header = [
        "feature row",
        "req/s",
        "CPU µs/req",
        "x defaults",
        "x plain",
        "streams/s",
        "CPU µs/stream",
        "x defaults",
        "paced req/s",
        "CPU µs/req",
        "x defaults",
    ]
    lines = [header]
    for row, m in rows:
        lines.append(
            [
                FEATURE_ROWS[row],
                _fmt("{:,.0f}", m.get("rps")),
                _fmt("{:,.0f}", m.get("rps_cpu_us")),
                _fmt("{:.2f}x", m.get("rps_cpu_us_x_defaults")),
                _fmt("{:.2f}x", m["rps_cpu_us"] / plain["rps_cpu_us"] if plain.get("rps_cpu_us") else None),
                _fmt("{:,.0f}", m.get("sps")),
                _fmt("{:,.0f}", m.get("sps_cpu_us")),
                _fmt("{:.2f}x", m.get("sps_cpu_us_x_defaults")),
                _fmt("{:,.0f}", m.get("paced")),
                _fmt("{:,.0f}", m.get("paced_cpu_us")),
                _fmt("{:.2f}x", m.get("paced_cpu_us_x_defaults")),
            ]
        )
    text = "feature costs (pointsman variants, each started alone; CPU relative to the defaults row of the same round):\n"
    text += aligned(lines)
    every = summary.get(feature_name("all"), {}).get("rps_cpu_us_x_defaults")
    if every is not None:
        verdict = "PASS" if every <= FEATURES_LIMIT else "FAIL"
        text += (
            f"\n  {verdict}  all features on: CPU per request <= {FEATURES_LIMIT}x defaults  ({every:.2f}x)"
        )
    every_m = summary.get(feature_name("all"), {})
    paced = every_m.get("paced_cpu_us_x_defaults")
    if paced is not None:  # information: the check stays on each row's maximum throughput
        text += (
            f"\n  (at one paced load for every row, {every_m['paced_connections']:.0f} connections pausing "
            f"{every_m['paced_pause_ms']:.0f} ms between requests: {paced:.2f}x)"
        )
    for kind, what in (("prof_rps", "request"), ("prof_sps", "stream")):
        profiled = profile_columns(rows, kind)
        if profiled:
            text += f"\n\nwhere each feature row's CPU goes (µs per {what}, sampled):\n{profiled}"
    return text


def features_markdown(summary: Figures) -> str:
    """The feature rows as a Markdown table (for README figures)."""
    rows = [(row, summary[feature_name(row)]) for row in FEATURE_ROWS if feature_name(row) in summary]
    if not rows:
        return ""
    plain = summary.get(PLAIN, {})
    lines = [
        "| row | req/s | CPU µs/request | × defaults | × plain | streams/s | CPU µs/stream | × defaults "
        "| paced req/s | CPU µs/request | × defaults |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row, m in rows:
        cells = [
            f"`{row}`",
            _fmt("{:,.0f}", m.get("rps")),
            _fmt("{:,.0f}", m.get("rps_cpu_us")),
            _fmt("{:.2f}×", m.get("rps_cpu_us_x_defaults")),
            _fmt("{:.2f}×", m["rps_cpu_us"] / plain["rps_cpu_us"] if plain.get("rps_cpu_us") else None),
            _fmt("{:,.0f}", m.get("sps")),
            _fmt("{:,.0f}", m.get("sps_cpu_us")),
            _fmt("{:.2f}×", m.get("sps_cpu_us_x_defaults")),
            _fmt("{:,.0f}", m.get("paced")),
            _fmt("{:,.0f}", m.get("paced_cpu_us")),
            _fmt("{:.2f}×", m.get("paced_cpu_us_x_defaults")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures_text(rounds: Sequence[Figures], unavailable: dict[str, str] | None = None) -> str:
    """What failed for which target (peers only: pointsman and plain failing stop the run), once per note."""
    lines = [f"  {name}: not measured: {why}" for name, why in (unavailable or {}).items()]
    seen: dict[tuple[str, str], int] = {}
    for figures in rounds:
        for target, metrics in figures.items():
            for note in metrics.get(FAILURES, []):
                seen[(target, note)] = seen.get((target, note), 0) + 1
    lines += [f"  {t}: {note} (in {n} of {len(rounds)} rounds)" for (t, note), n in seen.items()]
    return "failed phases (their figures are missing):\n" + "\n".join(lines) if lines else ""


def profile_text(summary: Figures) -> str:
    """Where a request's CPU goes, per phase, for each profiled target (``phases.py``)."""
    rows = [(t, summary[t]) for t in summary if t != DIRECT and feature_row(t) is None]
    parts = []
    for kind, title in (("prof_rps", "non-streaming request"), ("prof_sps", "stream")):
        text = profile_table(rows, kind)
        if text:
            parts.append(
                f"where a {title}'s CPU goes (sampled under wrk; µs per {title.split()[-1]}, share of the total, "
                "and the part spent on the event loop's thread):\n" + text
            )
    return "\n\n".join(parts)


def checks_text(summary: Figures, quiet: bool = True) -> str:
    results = verdicts(summary)
    if all(v.passed is None for v in results):
        return "targets: pointsman not measured, no checks"
    lines = ["targets (pointsman):" if quiet else "targets (pointsman) -- UNRELIABLE, the machine was busy:"]
    for check, v in zip(CHECKS, results, strict=True):
        relative = check.relative
        status = "n/a " if v.passed is None else ("PASS" if v.passed else "FAIL")
        value = "" if v.value is None else f"  ({_short(v.value, relative)})"
        note = f"  {v.note}" if v.value is not None and v.note else ""
        lines.append(f"  {status}  {v.label}{value}{note}")
    return "\n".join(lines)


QUIET_CORES = 0.05  # other processes' CPU during a round above which figures are unreliable


def noise_text(
    cores_per_round: Sequence[float],
    summary: Figures,
    cores_limit: float = QUIET_CORES,
    lag_limit_ms: float = 1.0,
) -> str:
    """How quiet the machine was, and whether the load generator kept its schedule."""
    worst = max(cores_per_round)
    lines = [f"other processes on this machine used up to {worst:.2f} cores during a round"]
    if worst > cores_limit:
        lines[0] += ": the machine was not quiet, figures are unreliable (run again when it is)"
    lag = max((m.get("lat_send_lag_p99_ms", 0.0) for m in summary.values()), default=0.0)
    if lag > lag_limit_ms:
        lines.append(
            f"the load generator sent up to {lag:.1f} ms late at p99 (it was descheduled): "
            "latency percentiles include that stall"
        )
    return "\n".join(lines)


def _short(value: float, relative: bool) -> str:
    if relative:
        return f"{value:.2f}x"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def _fmt(fmt: str, value: float | None) -> str:
    return "—" if value is None else fmt.format(value)


def write_json(path: Path, meta: dict[str, Any], rounds: Sequence[Figures], summary: Figures) -> None:
    doc = {
        "meta": meta,
        "rounds": list(rounds),
        "summary": summary,
        "pointsman_over_plain": ratios(summary),
        "checks": [asdict(v) for v in verdicts(summary)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    """NaN/inf (a percentile of nothing) as null, so the JSON stays standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def profile_table(rows: Iterable[tuple[str, Mapping[str, float]]], kind: str) -> str:
    """The per-phase profile of one or more targets: ``rows`` are (target, round figures) pairs; ``kind`` is
    ``prof_rps`` or ``prof_sps``."""
    rows = [(name, m) for name, m in rows if f"{kind}_cpu_us" in m]
    if not rows:
        return ""
    what = "request" if kind == "prof_rps" else "stream"
    header = ["phase"] + [f"{name} µs/{what}  share  loop" for name, _ in rows]
    lines = [header]
    for phase in phases.PHASES:
        if not any(m.get(f"{kind}_us.{phase.key}") for _, m in rows):
            continue
        cells = [phase.label]
        for _, m in rows:
            us = m.get(f"{kind}_us.{phase.key}")
            if us is None:
                cells.append("—")
                continue
            share = m.get(f"{kind}_share.{phase.key}", 0.0)
            loop = m.get(f"{kind}_loop_us.{phase.key}", 0.0)
            cells.append(f"{us:7.1f}  {share:5.1%}  {loop:6.1f}")
        lines.append(cells)
    total = ["total (profiled run)"] + [f"{m[f'{kind}_cpu_us']:7.1f}  100.0%" + " " * 8 for _, m in rows]
    lines.append(total)
    return aligned(lines)


def profile_columns(rows: Iterable[tuple[str, Mapping[str, float]]], kind: str) -> str:
    """µs per request (or stream) of each phase, one column per target: for comparing many (feature rows)."""
    rows = [(name, m) for name, m in rows if f"{kind}_cpu_us" in m]
    if not rows:
        return ""
    lines = [["phase", *(name for name, _ in rows)]]
    for phase in phases.PHASES:
        if any(m.get(f"{kind}_us.{phase.key}") for _, m in rows):
            lines.append([phase.key, *(f"{m.get(f'{kind}_us.{phase.key}', 0.0):.1f}" for _, m in rows)])
    lines.append(["total", *(f"{m[f'{kind}_cpu_us']:.1f}" for _, m in rows)])
    return aligned(lines)


def profile_markdown(rows: Iterable[tuple[str, Mapping[str, float]]], kind: str) -> str:
    """``profile_table`` as a Markdown table: per target, µs per request (or stream) and share of each phase."""
    rows = [(name, m) for name, m in rows if f"{kind}_cpu_us" in m]
    if not rows:
        return ""
    what = "request" if kind == "prof_rps" else "stream"
    lines = [
        "| phase | " + " | ".join(f"{name} µs/{what} | share" for name, _ in rows) + " |",
        "|---|" + "---:|---:|" * len(rows),
    ]
    for phase in phases.PHASES:
        if not any(m.get(f"{kind}_us.{phase.key}") for _, m in rows):
            continue
        cells = []
        for _, m in rows:
            us = m.get(f"{kind}_us.{phase.key}")
            share = m.get(f"{kind}_share.{phase.key}", 0.0)
            cells += ["—", "—"] if us is None else [f"{us:.1f}", f"{share:.1%}"]
        lines.append(f"| {phase.key} | " + " | ".join(cells) + " |")
    lines.append(
        "| **total** | " + " | ".join(f"**{m[f'{kind}_cpu_us']:.0f}** | 100%" for _, m in rows) + " |"
    )
    return "\n".join(lines)


# -- Markdown (the README's performance section) ------------------------------------------------------------------
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"
TARGET_LABELS = {
    PLAIN: "plain pass-through",
    POINTSMAN: "pointsman",
    "litellm": "LiteLLM proxy",
    "portkey": "Portkey gateway",
}


@dataclass(frozen=True)
class MdRow:
    label: str
    keys: tuple[str, ...]  # one figure, or p50 / p99
    fmt: str
    ratio: bool  # show × plain


MD_ROWS = (
    MdRow("non-streaming max req/s", ("rps",), "{:,.0f}", True),
    MdRow("CPU µs per request", ("rps_cpu_us",), "{:,.0f}", True),
    MdRow("streaming max streams/s", ("sps",), "{:,.0f}", True),
    MdRow("CPU µs per stream", ("sps_cpu_us",), "{:,.0f}", True),
    MdRow("added latency p50 / p99 (ms)", ("added_p50_ms", "added_p99_ms"), "{:.2f}", False),
    MdRow(
        "stream time to first byte added, p50 / p99 (ms)",
        ("added_ttfb_p50_ms", "added_ttfb_p99_ms"),
        "{:.2f}",
        False,
    ),
    MdRow(
        "CPUs kept awake: added latency p50 / added TTFB p50 (ms)",
        ("added_awake_p50_ms", "added_awake_ttfb_p50_ms"),
        "{:.2f}",
        False,
    ),
    MdRow("cold start, spawn to first 200 (s)", ("cold_start_s",), "{:.2f}", True),
    MdRow("RSS after load (MB)", ("rss_mb",), "{:.0f}", True),
)


def markdown(meta: Mapping[str, Any], rounds: Sequence[Figures], summary: Figures) -> str:
    """The run as Markdown: how it was made and how quiet the machine was, the targets side by side with ratios to
    the plain pass-through, what failed, where pointsman's CPU goes, the feature rows and the scrape check."""
    names = [t for t in summary if t != DIRECT and feature_row(t) is None]
    plain = summary.get(PLAIN, {})
    cores = meta.get("background_cores_per_round") or [0.0]
    loads = meta.get("load_avg_per_round") or []
    quiet = max(cores) <= QUIET_CORES
    git = meta.get("git", {})
    code_changed = [f for f in git.get("changed", []) if not f.endswith(".md")]  # the README being rewritten
    dirty = " plus uncommitted changes" if code_changed else ""
    argv = [str(a) for a in meta.get("argv", [])]
    shown = [a for i, a in enumerate(argv) if a != "--json" and (i == 0 or argv[i - 1] != "--json")]
    command = "python -m tests.bench.run " + " ".join(shown)
    out = [
        f"`{command.strip()}`: one worker pinned to one core, nginx as the upstream, a plain FastAPI + uvicorn + "
        "aiohttp pass-through measured in the same run as the baseline; every ratio is to it, in this run. "
        f"Run of {str(meta.get('date', ''))[:10]} on a {meta.get('cpus')}-CPU machine, `{str(git.get('head', ''))[:7]}`"
        f"{dirty}, {meta.get('rounds')} round(s); pointsman from {meta.get('build', 'Python sources')}"
        + (
            " (its per-phase profiles sample the Python sources: a compiled function has no frame to sample)."
            if str(meta.get("build", "")).startswith("compiled")
            else "."
        ),
        "",
        f"Quietness: other processes used up to {max(cores):.2f} cores during a round"
        + (f" (1-minute load average {min(loads):.1f}–{max(loads):.1f})" if loads else "")
        + (
            ": quiet."
            if quiet
            else ": the machine was busy, read the ratios rather than the absolute figures."
        ),
        "",
    ]
    versions = meta.get("peers") or {}
    labels = [f"{TARGET_LABELS.get(n, n)} {versions.get(n, '')}".strip() for n in names]
    header = "| | " + " | ".join(labels) + " |"
    out += [header, "|---|" + "---|" * len(names)]
    for row in MD_ROWS:
        cells = []
        for name in names:
            m = summary[name]
            values = [m.get(k) for k in row.keys]
            if all(v is None for v in values):
                cells.append("—")
                continue
            text = " / ".join(_fmt(row.fmt, v) for v in values)
            base = plain.get(row.keys[0])
            if row.ratio and name != PLAIN and base and values[0] is not None:
                text += f" ({values[0] / base:.2f}×)"
            cells.append(text)
        out.append(f"| {row.label} | " + " | ".join(cells) + " |")
    settings = meta.get("settings", {})
    rate, stream_rate = float(settings.get("rate", 0)), float(settings.get("stream_rate", 0))
    notes = [
        f"Latency: open loop, evenly spaced, {rate:g} requests/s and {stream_rate:g} streams/s, from the scheduled "
        'send to the end of the response (to the first byte for streams), minus nginx direct. "CPUs kept awake": '
        "the same phases again (not for the peers) with an idle-priority busy loop on each CPU, so that no CPU halts "
        "between requests: in a virtual machine each wake-up of a halted CPU costs tens to hundreds of "
        "microseconds, and a request through a gateway wakes CPUs more often than one sent directly "
        "(tests/bench/README.md).",
        *(f"{n}." for n in rate_notes(summary, rate, stream_rate)),
    ]
    failures = failures_text(rounds, meta.get("unavailable"))
    for line in failures.splitlines()[1:]:
        target, _, said = line.strip().partition(": ")
        notes.append(f"{TARGET_LABELS.get(target, target)} failed: {said}")
    out += ["", *(f"- {n}" for n in notes)]
    point = summary.get(POINTSMAN, {})
    shares = sorted(
        ((k.split(".", 1)[1], v) for k, v in point.items() if k.startswith("prof_rps_share.")),
        key=lambda kv: -kv[1],
    )
    if shares:
        top = ", ".join(f"{k} {v:.0%}" for k, v in shares[:6])
        out += ["", f"Where a pointsman request's CPU goes (sampled; `tests/bench/README.md`): {top}."]
    feats = features_markdown(summary)
    if feats:
        out += [
            "",
            "What each feature costs (`--features`; CPU relative to the defaults row of the same round):",
            "",
            feats,
        ]
        paced = next((m for m in summary.values() if "paced_pause_ms" in m), None)
        if paced is not None:
            out += [
                "",
                f"The paced columns: every row at one load (wrk's {paced['paced_connections']:.0f} connections "
                f"pausing {paced['paced_pause_ms']:.0f} ms between requests), so each row's CPU per request is "
                "compared at the same load rather than at its own maximum (`tests/bench/README.md`, "
                '"Feature rows").',
            ]
    scrape = meta.get("scrape")
    if scrape:
        out += [
            "",
            f"`/metrics` with {scrape['workers']} workers and {scrape['series']:,} series: "
            f"p50 {scrape['scrape_p50_ms']:.0f} ms, max {scrape['scrape_max_ms']:.0f} ms.",
        ]
    workers = meta.get("scaling")
    if workers:
        out += ["", scaling_markdown(workers)]
    return "\n".join(out) + "\n"


def rate_notes(summary: Figures, rate: float, stream_rate: float) -> list[str]:
    """Targets whose latency or time to first byte was measured at rates of their own (a slow peer)."""
    notes = []
    for name, m in summary.items():
        lat, ttfb = m.get("lat_rate"), m.get("ttfb_rate")
        if (lat and lat != rate) or (ttfb and ttfb != stream_rate):
            notes.append(
                f"{TARGET_LABELS.get(name, name)}: latency at {lat or rate:g} requests/s and time to first byte at "
                f"{ttfb or stream_rate:g} streams/s (its throughput is below the standard rates)"
            )
    return notes


def write_markdown(path: Path, text: str) -> None:
    """``text`` into ``path``: between the bench markers when the file has them (README.md), else the whole file."""
    if path.exists():
        current = path.read_text()
        if MARK_START in current and MARK_END in current:
            before, rest = current.split(MARK_START, 1)
            _, after = rest.split(MARK_END, 1)
            path.write_text(f"{before}{MARK_START}\n{text}{MARK_END}{after}")
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def scaling_text(scaling: dict[str, Any]) -> str:
    workers: dict[int, dict[str, float]] = scaling["workers"]
    if not workers:
        return ""
    base = workers[min(workers)]["rps"]
    lines = [
        f"worker scaling (non-streaming, unpinned, on a {scaling['cores']}-core machine shared with the load):"
    ]
    for n, m in sorted(workers.items()):
        lines.append(
            f"  {n} worker(s): {m['rps']:>9,.0f} req/s ({m['rps'] / base:.2f}x), {m['rps_cpu_us']:.0f} µs CPU/request"
        )
    return "\n".join(lines)


def scaling_markdown(scaling: dict[str, Any]) -> str:
    workers: dict[int, dict[str, float]] = scaling["workers"]
    if not workers:
        return ""
    base = workers[min(workers)]["rps"]
    cells = ", ".join(
        f"{n} worker{'s' if n > 1 else ''} {m['rps']:,.0f} req/s ({m['rps'] / base:.2f}×)"
        for n, m in sorted(workers.items())
    )
    return (
        f"Worker scaling (`--scale-workers`, non-streaming, unpinned, {scaling['cores']} cores shared with the load "
        f"generator and nginx): {cells}."
    )
