"""The per-request object of the inference path: what every step after routing needs, in one place."""

from __future__ import annotations

from collections.abc import Sequence

from accounting.record import RequestRecord
from gateway.inference.asgi import Receive, Send
from routing.policy import Decision
from routing.shadow.ticket import Ticket
from routing.upstream_call import CallSpec


class Exchange:
    """One routed inference request: the client connection, the decision, and the record being filled in."""

    __slots__ = ("send", "receive", "call", "decision", "rec", "headers", "t0", "ticket", "events")

    send: Send
    receive: Receive
    call: CallSpec
    """What upstream calls are built from (endpoint, the client's document, route defaults, stream, id)."""
    decision: Decision
    rec: RequestRecord
    headers: list[tuple[bytes, bytes]]
    """Headers every response to this request carries (``x-request-id``)."""
    t0: float
    """``perf_counter`` when the request arrived."""
    ticket: Ticket | None
    """The shadow pair this request is part of, when sampled."""
    events: Sequence[bytes] | None
    """A stream's events read so far (its reader's list, from when the stream opened): what a request cut off
    by shutdown had generated."""

    def __init__(
        self,
        send: Send,
        receive: Receive,
        call: CallSpec,
        decision: Decision,
        rec: RequestRecord,
        headers: list[tuple[bytes, bytes]],
        t0: float,
        ticket: Ticket | None,
        events: Sequence[bytes] | None = None,
    ) -> None:
        self.send = send
        self.receive = receive
        self.call = call
        self.decision = decision
        self.rec = rec
        self.headers = headers
        self.t0 = t0
        self.ticket = ticket
        self.events = events
