"""One request on a client connection and its answer, as ASGI sees them: ``receive`` hands the body over as it
arrives, ``send`` writes the answer (``gateway.http_server`` parses requests and owns the connection).

The answer's head is built once per answer from its header list (names checked as HTTP tokens, values for line
breaks, framing read from ``content-length``, ``transfer-encoding`` and ``connection``). A head with a
``content-length`` is written together with the body (one write, one system call); a stream's head, and the chunks
sent in the same event-loop turn, are held until the end of that turn and written at once (``Cycle.flush``).
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from typing import TYPE_CHECKING, Any

from wire.errors import error_body

if TYPE_CHECKING:
    from gateway.http_server import GatewayHttpProtocol

log = logging.getLogger("pointsman")


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# (Regular expressions, not ``b"x" in value``: in CPython 3.11 a bytes ``in`` test first tries its operand as an
# integer and raises, then catches, a TypeError with a formatted message: ~2 k instructions per test.)
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_CLOSE = re.compile(rb"(?:^|,)[ \t]*close[ \t]*(?:,|$)", re.IGNORECASE)
_FRAMING = {b"content-length": 1, b"transfer-encoding": 2, b"connection": 3}
_NAMES: set[bytes] = set()
"""Answer header names already checked (lowercase HTTP tokens): most answers repeat the same few."""


def _checked_name(name: bytes) -> bytes:
    lower = name.lower()
    if _TOKEN.fullmatch(lower) is None:
        raise RuntimeError("Invalid HTTP header name.")
    if lower == name and len(_NAMES) < 1024:
        _NAMES.add(name)
    return lower


"""What a connection's deadline is for: its request head arriving, its request body arriving, the next request."""


class _DefaultHeaders:
    """The server's default answer headers (those configured; ``pointsman serve`` sends no ``date``) as head
    lines: uvicorn's server replaces its list once a second, and the lines are made once per list, not once per
    answer."""

    __slots__ = ("_list", "_lines")

    def __init__(self) -> None:
        self._list: Any = None
        self._lines = b""

    def lines(self, server_state: Any) -> bytes:
        current = server_state.default_headers
        if current is not self._list:
            self._lines = b"".join([b"%s: %s\r\n" % (name, value) for name, value in current])
            self._list = current
        return self._lines


_DEFAULT_HEADS = _DefaultHeaders()


class Cycle:
    """One request and its answer."""

    __slots__ = (
        "conn",
        "scope",
        "body",
        "body_size",
        "more_body",
        "handed_all",
        "disconnected",
        "started",
        "complete",
        "keep_alive",
        "chunked",
        "length",
        "expect_continue",
        "head_only",
        "head",
        "flush_due",
        "waiters",
    )

    def __init__(self, conn: GatewayHttpProtocol, scope: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.body: list[bytes] = []
        self.body_size = 0
        self.more_body = True
        self.handed_all = False
        self.disconnected = False
        self.started = False
        self.complete = False
        self.keep_alive = keep_alive
        self.chunked = False
        self.length: int | None = None
        self.expect_continue = False
        self.head_only = scope["method"] == "HEAD"
        self.head = b""
        """What is written but not sent yet: an answer's head until its body comes when the body has a known
        length; a stream's head and chunks until the end of the event-loop turn (``flush``)."""
        self.flush_due = False
        self.waiters: list[asyncio.Future[None]] = []

    def wake(self) -> None:
        waiters = self.waiters
        if waiters:
            self.waiters = []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def run(self, app: Any) -> None:
        conn = self.conn
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.error("Exception in ASGI application", exc_info=exc)
            if not self.started and not self.disconnected:
                body = error_body("Internal gateway error.", "server_error", "internal_error")
                self.keep_alive = False
                await self.send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body)),
                        ],
                    }
                )
                await self.send({"type": "http.response.body", "body": body})
            elif not self.complete:
                conn.close_now()
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if not self.started and not self.disconnected:
                log.error("ASGI callable returned without starting response.")
                conn.close_now()
            elif not self.complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                conn.close_now()

    # -- ASGI ---------------------------------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not self.started and conn.transport is not None and not conn.transport.is_closing():
                conn.transport.write(_CONTINUE)
        while True:
            if self.disconnected or self.complete:
                return {"type": "http.disconnect"}
            if self.body or (not self.more_body and not self.handed_all):
                break
            # Nothing to hand over: more of the body is awaited, or all of it was handed over and only the
            # client leaving (or the answer completing) is left to report.
            conn.resume_reading()
            waiter = conn.loop.create_future()
            self.waiters.append(waiter)
            await waiter
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        self.body_size = 0
        more = self.more_body
        if not more:
            self.handed_all = True
        conn.resume_reading()
        return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn.write_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            return
        typ = message["type"]
        if not self.started:
            if typ != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{typ}'.")
            self.started = True
            self.expect_continue = False
            self._start(message["status"], message.get("headers", ()))
            return
        if self.complete:
            raise RuntimeError(f"Unexpected ASGI message '{typ}' sent, after response already completed.")
        if typ != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{typ}'.")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        transport = conn.transport
        assert transport is not None
        if self.head_only:
            out = self.head
            self.length = 0
        elif self.chunked:
            out = self.head
            if body:
                out += b"%x\r\n%s\r\n" % (len(body), body)
            if more:  # held until the end of this turn: events relayed together go in one write
                self.head = out
                if out and not self.flush_due:
                    self.flush_due = True
                    conn.loop.call_soon(self.flush)
                return
            out += b"0\r\n\r\n"
        else:
            assert self.length is not None
            if len(body) > self.length:
                raise RuntimeError("Response content longer than Content-Length")
            self.length -= len(body)
            out = self.head + body if self.head else body
        self.head = b""
        if out:
            transport.write(out)
        if not more:
            if self.length:
                raise RuntimeError("Response content shorter than Content-Length")
            self.complete = True
            self.wake()
            conn.response_complete(self)

    def _start(self, status: int, headers: Any) -> None:
        conn = self.conn
        parts = [_STATUS_LINES.get(status) or _status_line(status), _DEFAULT_HEADS.lines(conn.server_state)]
        close_sent = False
        values = []
        for name, value in headers:
            if name not in _NAMES:
                name = _checked_name(name)
            values.append(value)
            special = _FRAMING.get(name)
            if special is not None:
                if special == 1:  # content-length
                    if self.length is None and not self.chunked:
                        self.length = int(value)
                elif special == 2:  # transfer-encoding
                    if value.lower() == b"chunked":
                        self.chunked = True
                        self.length = None
                elif _CLOSE.search(value) is not None:  # connection: close
                    self.keep_alive = False
                    close_sent = True
            parts += (name, b": ", value, b"\r\n")
        if _BAD_VALUE.search(b"".join(values)) is not None:  # one search for all values
            raise RuntimeError("Invalid HTTP header value.")
        if not self.keep_alive and not close_sent:
            parts.append(b"connection: close\r\n")
        if self.length is None and not self.chunked and not self.head_only and status not in (204, 304):
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        elif self.length is None:
            self.length = 0
        parts.append(b"\r\n")
        self.head = b"".join(parts)
        if self.chunked:  # a stream: its head goes at the end of this turn, with the events relayed by then
            self.flush_due = True
            conn.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what a stream held during the turn (one write for its head and the events that came with it)."""
        self.flush_due = False
        out, self.head = self.head, b""
        transport = self.conn.transport
        if out and not self.disconnected and transport is not None and not transport.is_closing():
            transport.write(out)
