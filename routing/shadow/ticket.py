"""One sampled request's shadow: what the request path hands over, and what the hub and pairing read back.

A ``Ticket`` is created by the hub for a sampled (or promotion-observed) request. The request path gives it the
primary's output (``primary_body`` / ``primary_events``) and finally its record (``finish``); none of these
raise or wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from accounting.record import RequestRecord
from routing.eligibility import Eligibility
from routing.models import ResolvedModel
from routing.shadow.config import ShadowConfig
from routing.shadow.extract import Output
from routing.shadow.record import Side
from wire.json_object import JsonObject

log = logging.getLogger("pointsman.shadow")


def sample_fraction(route: str, request_id: str) -> float:
    """A uniform number in [0, 1) from the request id: the same request is always sampled the same way
    (BLAKE2b-64 of ``route``, a NUL and the id; the route's part is hashed once and copied)."""
    base = _ROUTE_HASHES.get(route)
    if base is None:
        if len(_ROUTE_HASHES) >= 4096:
            _ROUTE_HASHES.clear()
        base = _ROUTE_HASHES[route] = hashlib.blake2b(f"{route}\x00".encode(), digest_size=8)
    h = base.copy()
    h.update(request_id.encode())
    return int.from_bytes(h.digest(), "big") / 2**64


_ROUTE_HASHES: dict[str, Any] = {}


class ActivePromotion:
    """What the request path needs to know about a promotion in progress (or completed) on a route."""

    __slots__ = ("candidate", "baseline", "reverse_rate", "ramping")

    candidate: str
    baseline: str
    """The baseline model reverse shadows go to."""
    reverse_rate: float
    ramping: bool

    def __init__(self, candidate: str, baseline: str, reverse_rate: float, ramping: bool) -> None:
        self.candidate = candidate
        self.baseline = baseline
        self.reverse_rate = reverse_rate
        self.ramping = ramping


class ShadowResult:
    """What the shadow call gave: its side of the pair, its output and its accounting record."""

    __slots__ = ("side", "output", "record")

    side: Side
    output: Output | None
    record: RequestRecord | None
    """The shadow call's accounting record (its cost is final once the accountant priced it)."""

    def __init__(
        self,
        side: Side,
        output: Output | None,
        record: RequestRecord | None = None,
    ) -> None:
        self.side = side
        self.output = output
        self.record = record


class Ticket:
    """One sampled request's shadow: the request, the primary's output, and the shadow call's state."""

    __slots__ = (
        "on_finish",
        "route",
        "cfg",
        "rule_timeout_s",
        "endpoint",
        "body",
        "rec",
        "defaults",
        "served",
        "shadow_model",
        "direction",
        "sampled",
        "observe",
        "capture",
        "consent",
        "state",
        "reason",
        "queued_at",
        "primary_parsed",
        "primary_stream",
        "finished",
        "primary_done",
        "result",
        "primary_out",
        "candidate_out",
        "task",
    )

    on_finish: Callable[[Ticket], None]
    """The hub's continuation once the primary is done."""
    route: str
    cfg: ShadowConfig
    rule_timeout_s: float | None
    endpoint: str
    body: JsonObject
    """The client's request (forwarded to the shadow as it was to the primary)."""
    rec: RequestRecord
    defaults: Mapping[str, Any]
    served: ResolvedModel
    shadow_model: ResolvedModel | None
    direction: str
    sampled: bool
    observe: bool
    capture: bool
    consent: Eligibility | None
    """The in-house constraint of a team without third-party consent: the shadow, judge and embedding calls
    made about this request obey it (None: no constraint)."""
    state: str
    """new, queued, running, dropped."""
    reason: str | None
    queued_at: float
    primary_parsed: Any
    primary_stream: Sequence[bytes] | None
    finished: bool
    primary_done: asyncio.Event
    result: ShadowResult | None
    primary_out: Output | None
    candidate_out: Output | None
    task: asyncio.Task[None] | None

    def __init__(
        self,
        on_finish: Callable[[Ticket], None],
        route: str,
        cfg: ShadowConfig,
        rule_timeout_s: float | None,
        endpoint: str,
        body: JsonObject,
        rec: RequestRecord,
        defaults: Mapping[str, Any],
        served: ResolvedModel,
        shadow_model: ResolvedModel | None,
        direction: str,
        sampled: bool,
        observe: bool,
        capture: bool,
        consent: Eligibility | None = None,
        state: str = "new",
        reason: str | None = None,
        queued_at: float = 0.0,
        primary_parsed: Any = None,
        primary_stream: Sequence[bytes] | None = None,
        finished: bool = False,
        primary_done: asyncio.Event | None = None,
        result: ShadowResult | None = None,
        primary_out: Output | None = None,
        candidate_out: Output | None = None,
        task: asyncio.Task[None] | None = None,
    ) -> None:
        self.on_finish = on_finish
        self.route = route
        self.cfg = cfg
        self.rule_timeout_s = rule_timeout_s
        self.endpoint = endpoint
        self.body = body
        self.rec = rec
        self.defaults = defaults
        self.served = served
        self.shadow_model = shadow_model
        self.direction = direction
        self.sampled = sampled
        self.observe = observe
        self.capture = capture
        self.consent = consent
        self.state = state
        self.reason = reason
        self.queued_at = queued_at
        self.primary_parsed = primary_parsed
        self.primary_stream = primary_stream
        self.finished = finished
        self.primary_done = asyncio.Event() if primary_done is None else primary_done
        self.result = result
        self.primary_out = primary_out
        self.candidate_out = candidate_out
        self.task = task

    @property
    def doc(self) -> dict[str, Any]:
        """The client's request document, parsed."""
        return self.body.doc

    # -- called from the request path (never raise, never wait) ----------------------------------------------
    def primary_body(self, parsed: Any) -> None:
        self.primary_parsed = parsed

    def primary_events(self, events: Sequence[bytes]) -> None:
        self.primary_stream = events

    def finish(self, rec: RequestRecord) -> None:
        """The primary is done (served, failed or cancelled); ``rec`` is its final record."""
        if self.finished:
            return
        self.finished = True
        try:
            self.rec = rec
            self.on_finish(self)
        except Exception:
            log.exception("shadow: finishing pair %s failed", rec.request_id)
