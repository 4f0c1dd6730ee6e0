"""The run as Markdown, for the README's performance section (between its bench markers): the targets side by
side with ratios to the plain pass-through, the feature rows, the scrape check and worker scaling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.report import (
    TARGET_LABELS,
    Figures,
    failures_text,
    feature_cells,
    fmt,
    machine_quiet,
    rate_notes,
)
from tests.bench.targets import DIRECT, FEATURE_ROWS, PLAIN, POINTSMAN, feature_name, feature_row

MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


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
    steal = meta.get("steal_cores_per_round") or []
    loads = meta.get("load_avg_per_round") or []
    calm = machine_quiet(cores, steal)
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
        f"{dirty}, {meta.get('rounds')} round(s)"
        + (f"; the Python targets on {meta['interpreter']}" if meta.get("interpreter") else "")
        + f"; pointsman from {meta.get('build', 'Python sources')}"
        + (
            " (its per-phase profiles sample the Python sources: a compiled function has no frame to sample)."
            if str(meta.get("build", "")).startswith("compiled")
            else "."
        ),
        "",
        f"Quietness: other processes used up to {max(cores):.2f} cores during a round"
        + (f" (1-minute load average {min(loads):.1f}–{max(loads):.1f})" if loads else "")
        + (f", the hypervisor took up to {max(steal):.2f} (steal time)" if steal else "")
        + (
            ": quiet."
            if calm
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
            text = " / ".join(fmt(row.fmt, v) for v in values)
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
    lines += ["| " + " | ".join([f"`{row}`", *feature_cells(m, plain, "×")]) + " |" for row, m in rows]
    return "\n".join(lines)


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
