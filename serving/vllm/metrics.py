"""vLLM's Prometheus ``/metrics``: a small text-format parser and the throughput arithmetic over a window.

Pure functions and plain objects, no I/O: the background scraper (``serving.vllm.fleet``) feeds them, and
nothing here runs on the request path.

vLLM counters of interest (one series per ``model_name``/``engine``; LoRA requests count under the base
model): ``vllm:generation_tokens_total``, ``vllm:prompt_tokens_total``; gauges ``vllm:num_requests_running``,
``vllm:num_requests_waiting``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

GENERATION_TOKENS = "vllm:generation_tokens_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"

Labels = tuple[tuple[str, str], ...]


def _parse_labels(s: str) -> Labels:
    """``a="x",b="y\\"z"`` -> (("a", "x"), ("b", 'y"z')). Tolerates a trailing comma."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i] in " ,":
            i += 1
        if i >= n:
            break
        eq = s.index("=", i)
        key = s[i:eq].strip()
        i = eq + 1
        if i >= n or s[i] != '"':
            raise ValueError(f"bad label value at {s[i : i + 20]!r}")
        i += 1
        buf: list[str] = []
        while i < n and s[i] != '"':
            c = s[i]
            if c == "\\" and i + 1 < n:
                nxt = s[i + 1]
                buf.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            buf.append(c)
            i += 1
        if i >= n:
            raise ValueError("unterminated label value")
        i += 1  # closing quote
        out.append((key, "".join(buf)))
    return tuple(out)


def parse_samples(text: str, names: Iterable[str]) -> dict[str, dict[Labels, float]]:
    """Samples of the wanted series names from a Prometheus text exposition: name -> labels -> value.

    Lines that are comments, of other series, or malformed are skipped (a scrape never fails on one odd line).
    """
    wanted = frozenset(names)
    out: dict[str, dict[Labels, float]] = {n: {} for n in wanted}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        space = line.find(" ")
        if space < 0:
            continue
        if 0 <= brace < space:
            name = line[:brace]
            if name not in wanted:
                continue
            close = line.rfind("}")
            if close < brace:
                continue
            try:
                labels = _parse_labels(line[brace + 1 : close])
            except ValueError:
                continue
            rest = line[close + 1 :].split()
        else:
            name = line[:space]
            if name not in wanted:
                continue
            labels = ()
            rest = line[space + 1 :].split()
        if not rest:
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        out[name][labels] = value
    return out


def total(samples: dict[Labels, float], **match: str) -> float:
    """Sum of the series whose labels include every ``match`` pair."""
    acc = 0.0
    for labels, v in samples.items():
        if match:
            d = dict(labels)
            if any(d.get(k) != want for k, want in match.items()):
                continue
        acc += v
    return acc


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One endpoint's scrape, reduced to what pointsman uses (sums over engines and served models)."""

    t: float
    """Monotonic time of the scrape."""
    generation_tokens: float
    prompt_tokens: float
    running: float
    waiting: float
    by_model: dict[str, float]
    """Generation tokens counter per ``model_name``."""


def snapshot(text: str, t: float) -> Snapshot:
    s = parse_samples(text, (GENERATION_TOKENS, PROMPT_TOKENS, RUNNING, WAITING))
    by_model: dict[str, float] = {}
    for labels, v in s[GENERATION_TOKENS].items():
        m = dict(labels).get("model_name", "")
        by_model[m] = by_model.get(m, 0.0) + v
    return Snapshot(
        t=t,
        generation_tokens=total(s[GENERATION_TOKENS]),
        prompt_tokens=total(s[PROMPT_TOKENS]),
        running=total(s[RUNNING]),
        waiting=total(s[WAITING]),
        by_model=by_model,
    )


class CounterWindow:
    """A monotonic counter sampled over time; its increase and rate over a trailing window.

    A counter that goes down means the server restarted: the new value counts as increase from zero (the
    usual Prometheus ``rate()`` reset rule), so a restart never yields a negative or inflated rate.
    """

    __slots__ = ("window_s", "_samples", "_acc", "_last")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()
        """(t, cumulative increase since this window object was created)."""
        self._acc = 0.0
        self._last: float | None = None

    def observe(self, t: float, value: float) -> None:
        if self._last is not None:
            self._acc += value - self._last if value >= self._last else value
        self._last = value
        self._samples.append((t, self._acc))
        # keep one sample older than the window so the window is always fully covered
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.window_s:
            self._samples.popleft()

    def reset_gap(self) -> None:
        """The endpoint could not be scraped: the next value starts a new run (no increase across the gap)."""
        self._last = None
        self._samples.clear()

    @property
    def last_t(self) -> float | None:
        return self._samples[-1][0] if self._samples else None

    def increase(self) -> tuple[float, float]:
        """(increase, seconds covered) over the retained samples; (0, 0) with fewer than two."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        t0, v0 = self._samples[0]
        t1, v1 = self._samples[-1]
        return v1 - v0, t1 - t0

    def rate(self) -> float | None:
        inc, span = self.increase()
        return inc / span if span > 0 else None
