"""Where a request's CPU goes: the phases of the request path, which code belongs to each, and the attribution of
a profile taken by ``tests/bench/sampler.py`` to them.

A sample is one thread's Python stack. It belongs to the phase of its innermost frame that a rule names: a
frame in aiohttp is the upstream client whoever called it, a frame in the standard library (``asyncio``,
``enum``, a dataclass's ``__init__``) is left to its caller. Rules naming a function come before rules naming its
module; ``SKIP`` hands a helper to its caller (``accounting.money.usd`` formats the cost for the ledger row and
for the response headers alike). A thread's CPU time is spread over its non-idle samples; the main thread runs
the event loop, so its samples whose only named frames are the loop's own (``asyncio.runners``, uvicorn's
``Server.run``) are the loop's C work between callbacks.

When the request path moves (a new server layer, a new upstream client), add its modules here: what no rule
names shows up as ``other`` in the bench's profile, with its top functions in the JSON.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SKIP = "-"  # not a phase: the frame's caller decides
IDLE = "idle"  # a thread waiting (no CPU)
PROFILER = "profiler"  # the sampler's own handler (its time is measured and left out)
OTHER = "other"


@dataclass(frozen=True)
class Phase:
    key: str
    label: str


PHASES = (
    Phase("server", "server: HTTP parsing, ASGI server, app entry"),
    Phase("framework", "web framework (FastAPI/Starlette routing)"),
    Phase("handler", "request handler's own code"),
    Phase("auth", "auth: key lookup, scope checks"),
    Phase("body", "body: read, parse, validate, re-serialise"),
    Phase("routing", "routing: decide, dispatch, health"),
    Phase("upstream", "upstream client: call, response read"),
    Phase("accounting", "accounting: pricing, limits, finish"),
    Phase("metrics", "metrics (Prometheus)"),
    Phase("ledger", "ledger: row, writer thread"),
    Phase("logs_traces", "request logs, traces"),
    Phase("shadow_capture", "shadow, capture"),
    Phase("send", "response send (headers, body, stream relay)"),
    Phase("loop", "event loop and I/O between callbacks"),
    Phase(OTHER, "other (unattributed)"),
)
PHASE_KEYS = tuple(p.key for p in PHASES)


@dataclass(frozen=True)
class Rule:
    module: str  # a dotted module, or a package (matches its submodules)
    function: str | None  # a qualified name (``Class.method``); None: the whole module
    phase: str


def _rules(phase: str, *modules: str) -> list[Rule]:
    return [Rule(m, None, phase) for m in modules]


def _functions(phase: str, module: str, *functions: str) -> list[Rule]:
    return [Rule(module, f, phase) for f in functions]


def _idle_rules() -> list[Rule]:
    """Innermost frames of a thread that waits: blocked on a lock, a queue, a selector."""
    return [
        *_functions(
            IDLE, "threading", "Condition.wait", "Event.wait", "Thread.join", "Thread._wait_for_tstate_lock"
        ),
        *_functions(IDLE, "concurrent.futures.thread", "_worker"),
        *_functions(IDLE, "queue", "Queue.get", "SimpleQueue.get"),
        *_functions(
            IDLE, "selectors", "EpollSelector.select", "SelectSelector.select", "PollSelector.select"
        ),
    ]


_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl"
_H11 = "uvicorn.protocols.http.h11_impl"

RULES: tuple[Rule, ...] = (
    # -- function rules first -------------------------------------------------------------------------------------
    *_functions(PROFILER, "tests.bench.sampler", "Sampler._sample"),
    *_functions("send", _HTTPTOOLS, "RequestResponseCycle.send"),
    *_functions("send", _H11, "RequestResponseCycle.send"),
    *_functions(SKIP, _HTTPTOOLS, "HttpToolsProtocol.on_response_complete"),
    *_functions("loop", "uvicorn.server", "Server.run", "Server.serve", "Server._serve", "Server.main_loop"),
    *_functions("body", "gateway.inference.asgi", "read_body", "refuse_declared_length"),
    *_functions("send", "gateway.inference.asgi", "send_json"),
    *_functions("auth", "gateway.inference.handler", "_authenticate"),
    *_functions(
        "metrics",
        "accounting.accountant",
        "Accountant._observe",
        "Accountant._series",
        "Accountant.track_in_flight",
        "Accountant._publish_gauges",
        "Accountant.metrics_payload",
    ),
    *_rules(SKIP, "accounting.money"),
    *_idle_rules(),
    # -- modules --------------------------------------------------------------------------------------------------
    *_rules("loop", "tests.bench.sampler", "asyncio.runners", "uvicorn.main", "uvicorn._compat", "uvloop"),
    *_rules("loop", "gateway.cli", "runpy"),
    *_rules(
        "server",
        "uvicorn",
        "httptools",
        "h11",
        "gateway.http_server",
        "gateway.http_cycle",
        "gateway.app",
        "gateway.middleware",
    ),
    *_rules("framework", "fastapi", "starlette", "pydantic", "anyio"),
    *_rules("auth", "gateway.keys"),
    *_rules(
        "body", "gateway.inference.validation", "wire.json_object", "wire.endpoints", "routing.upstream_call"
    ),
    *_rules("routing", "routing.policy", "routing.eligibility", "routing.tags", "routing.dispatch"),
    *_rules("routing", "routing.health", "routing.models", "routing.config", "routing.store"),
    *_rules("upstream", "serving", "aiohttp", "yarl", "multidict", "propcache", "frozenlist", "aiosignal"),
    *_rules("upstream", "aiohappyeyeballs", "async_timeout", "httpx", "httpcore", "h2"),
    *_rules("metrics", "prometheus_client", "accounting.metrics", "accounting.series"),
    *_rules("ledger", "accounting.ledger", "accounting.shared_ledger", "accounting.pg_ledger", "sqlite3"),
    *_rules("logs_traces", "accounting.export", "logging", "wire.traceparent", "opentelemetry"),
    *_rules(
        "shadow_capture", "routing.shadow", "gateway.capture", "accounting.capture", "accounting.approvals"
    ),
    *_rules("accounting", "accounting", "wire.usage", "redis"),
    *_rules("send", "gateway.inference.relay", "wire.sse"),
    *_rules("handler", "gateway", "wire", "plain_proxy"),
)


THREAD_PHASES = {
    "pointsman-ledger": "ledger",
    "pointsman-capture": "shadow_capture",
    "shadow-store": "shadow_capture",
}
"""A thread whose samples were all idle but which used CPU: its phase by name (prefix)."""


def _matches(rule: Rule, module: str, function: str) -> bool:
    if module != rule.module and not module.startswith(rule.module + "."):
        return False
    return rule.function is None or function == rule.function


_CACHE: dict[tuple[str, str], str | None] = {}


def phase_of_frame(module: str, function: str) -> str | None:
    """The phase a frame's rule names (``SKIP`` and no rule: None), or ``IDLE``/``PROFILER``."""
    key = (module, function)
    if key not in _CACHE:
        found: str | None = None
        for rule in RULES:
            if _matches(rule, module, function):
                found = rule.phase
                break
        _CACHE[key] = None if found == SKIP else found
    return _CACHE[key]


def phase_of_stack(stack: Sequence[Sequence[str]], main: bool) -> str:
    """A stack's phase, innermost frame first. Idle rules apply to the innermost frame only, and never to the main
    thread (its samples are taken when the process used CPU)."""
    for depth, (module, function) in enumerate(stack):
        phase = phase_of_frame(module, function)
        if phase == IDLE:
            if depth == 0 and not main:
                return IDLE
            continue
        if phase is not None:
            return phase
    return OTHER


@dataclass(frozen=True)
class Profile:
    requests: int
    cpu_s: float  # the process's CPU time in the window, the sampler's own left out
    phase_s: dict[str, float]  # CPU seconds per phase, all threads
    loop_s: dict[str, float]  # of which on the main thread (the event loop)
    samples: int
    top_other: list[tuple[str, int]]  # unattributed innermost frames, most sampled first

    def per_request_us(self) -> dict[str, float]:
        return {k: v / self.requests * 1e6 for k, v in self.phase_s.items()} if self.requests else {}

    def shares(self) -> dict[str, float]:
        total = sum(self.phase_s.values())
        return {k: v / total for k, v in self.phase_s.items()} if total else {}

    def figures(self, prefix: str) -> dict[str, float]:
        """Flat figures for a bench round: ``{prefix}_us.{phase}``, ``{prefix}_loop_us.{phase}``, ``{prefix}_share.{phase}``."""
        out: dict[str, float] = {f"{prefix}_samples": float(self.samples)}
        if not self.requests:
            return out
        for k, us in self.per_request_us().items():
            out[f"{prefix}_us.{k}"] = us
        for k, s in self.loop_s.items():
            out[f"{prefix}_loop_us.{k}"] = s / self.requests * 1e6
        for k, share in self.shares().items():
            out[f"{prefix}_share.{k}"] = share
        out[f"{prefix}_cpu_us"] = self.cpu_s / self.requests * 1e6
        return out


def attribute(doc: Mapping[str, Any], requests: int) -> Profile:
    """Spread each thread's CPU time over its phases (``doc``: what ``sampler.py`` wrote)."""
    phase_s: defaultdict[str, float] = defaultdict(float)
    loop_s: defaultdict[str, float] = defaultdict(float)
    others: Counter[str] = Counter()
    sampler_s = float(doc.get("sampler_cpu_s", 0.0))
    threads_s = 0.0
    for thread in doc["threads"]:
        main = bool(thread["main"])
        cpu = float(thread["cpu_s"])
        threads_s += cpu
        if main:
            cpu = max(0.0, cpu - sampler_s)
        counts: Counter[str] = Counter()
        for n, stack in thread.get("stacks", []):
            phase = phase_of_stack(stack, main)
            if phase in (IDLE, PROFILER):
                continue
            counts[phase] += n
            if phase == OTHER and stack:
                others[f"{stack[0][0]}:{stack[0][1]}"] += n
        total = sum(counts.values())
        if not total:
            name = str(thread["name"])
            phase = next((p for prefix, p in THREAD_PHASES.items() if name.startswith(prefix)), OTHER)
            counts = Counter({phase: 1})
            total = 1
        for phase, n in counts.items():
            phase_s[phase] += cpu * n / total
            if main:
                loop_s[phase] += cpu * n / total
    rest = (
        float(doc["process_cpu_s"]) - threads_s
    )  # threads that ended during the window; clock-tick rounding
    if rest > 0:
        phase_s[OTHER] += rest
    ordered = {k: phase_s[k] for k in PHASE_KEYS if phase_s.get(k)}
    return Profile(
        requests=requests,
        cpu_s=sum(ordered.values()),
        phase_s=ordered,
        loop_s={k: loop_s[k] for k in PHASE_KEYS if loop_s.get(k)},
        samples=int(doc.get("samples", 0)),
        top_other=others.most_common(10),
    )
