"""Statistics across rounds, the printed tables, the target checks and the JSON document (the Markdown: readme.py)."""

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
        cells = [label] + [fmt(row.fmt, summary[t].get(row.key)) for t in targets]
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


def feature_cells(m: Mapping[str, Any], plain: Mapping[str, Any], times: str) -> list[str]:
    """A feature row's figures, for the printed table and README's (``times``: how "times" is written)."""
    return [
        fmt("{:,.0f}", m.get("rps")),
        fmt("{:,.0f}", m.get("rps_cpu_us")),
        fmt("{:.2f}" + times, m.get("rps_cpu_us_x_defaults")),
        fmt("{:.2f}" + times, m["rps_cpu_us"] / plain["rps_cpu_us"] if plain.get("rps_cpu_us") else None),
        fmt("{:,.0f}", m.get("sps")),
        fmt("{:,.0f}", m.get("sps_cpu_us")),
        fmt("{:.2f}" + times, m.get("sps_cpu_us_x_defaults")),
        fmt("{:,.0f}", m.get("paced")),
        fmt("{:,.0f}", m.get("paced_cpu_us")),
        fmt("{:.2f}" + times, m.get("paced_cpu_us_x_defaults")),
    ]


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
    lines += [[FEATURE_ROWS[row], *feature_cells(m, plain, "x")] for row, m in rows]
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


def machine_quiet(
    cores_per_round: Sequence[float], steal_per_round: Sequence[float] = (), limit: float = QUIET_CORES
) -> bool:
    """Whether neither other processes nor the hypervisor (steal time) took more than ``limit`` cores in a
    round."""
    return max(cores_per_round, default=0.0) <= limit and max(steal_per_round, default=0.0) <= limit


def noise_text(
    cores_per_round: Sequence[float],
    summary: Figures,
    steal_per_round: Sequence[float] = (),
    cores_limit: float = QUIET_CORES,
    lag_limit_ms: float = 1.0,
) -> str:
    """How quiet the machine was (other processes, the hypervisor's steal time), and whether the load generator
    kept its schedule."""
    worst = max(cores_per_round)
    lines = [f"other processes on this machine used up to {worst:.2f} cores during a round"]
    if steal_per_round:
        lines[0] += f", the hypervisor took up to {max(steal_per_round):.2f} (steal time)"
    if not machine_quiet(cores_per_round, steal_per_round, cores_limit):
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


def fmt(fmt: str, value: float | None) -> str:
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


TARGET_LABELS = {
    PLAIN: "plain pass-through",
    POINTSMAN: "pointsman",
    "litellm": "LiteLLM proxy",
    "portkey": "Portkey gateway",
}


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
