"""The HTTP/1.1 server protocol ``pointsman serve`` runs: the gateway's own, on httptools (llhttp), speaking ASGI
(``http`` scopes) to the app, under uvicorn's ``Server`` (sockets, ``--workers N``, signals, lifespan, graceful
shutdown).

Chosen over uvicorn's own httptools protocol and granian (ASGI and RSGI) by measurement (tests/bench,
callgrind, a fixed answer to a POST on keep-alive connections): ~30 k instructions per request for a bare
asyncio protocol on httptools, 64 k for granian's RSGI, 109 k for granian's ASGI, 139 k for uvicorn's. What a
request costs here is what HTTP/1.1 and ASGI need: no per-request timers (one timer per connection, re-armed only
when it fires, serves keep-alive, head and body deadlines), no per-request event objects, the head of an answer
with a ``content-length`` written together with its body (one write, one syscall), ``x-forwarded-*`` left alone
(the gateway does not read the client's address).

Bounds on what a client can make the server hold before its request is read: httptools (llhttp) puts no limit
on the request line and headers, and re-joins a header value on every read: one client sending a multi-megabyte
header holds memory and burns CPU on the event loop that serves everyone; thousands of tiny header fields cost a
Python call each, here and in every layer that walks them; a client sending a byte every few seconds holds a
connection forever. This protocol answers, in the OpenAI error shape, and closes the connection:

- ``431`` when the request line and headers pass ``server.max_header_bytes``, or the header fields
  ``server.max_header_count``;
- ``408`` when the headers have not all arrived ``server.header_timeout_s`` after their first byte, or the body
  ``server.body_timeout_s`` after the headers (the application then sees the client as gone);
- ``400`` when the request is not valid HTTP/1.1.

A declared ``Content-Length`` over ``server.max_body_bytes`` is refused by the application before it reads
anything (``gateway.inference.asgi.refuse_declared_length``), so no ``100 Continue`` is sent for it (it is sent
on the application's first ``receive``). Pipelined requests are answered in order, one at a time (reading pauses
while one waits). An idle keep-alive connection is closed after uvicorn's ``timeout_keep_alive``. On shutdown an
idle connection is closed at once, a busy one after its answer. Selected with ``http="gateway.http_server:
GatewayHttpProtocol"`` (a string, so that ``--workers N`` processes import it too).
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import signal
import threading
import uuid
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any
from urllib.parse import unquote

import httptools

from gateway.config import ServerConfig
from wire.errors import error_body

PROTOCOL = "gateway.http_server:GatewayHttpProtocol"
LINGER_S = 2.0
"""After a refusal, how long input is still read (and dropped) before the connection closes."""
READ_HIGH_WATER = 64 * 1024
"""Request body bytes held for the application at which reading pauses until it takes them."""
log = logging.getLogger("pointsman")


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# (Regular expressions, not ``b"x" in value``: in CPython 3.11 a bytes ``in`` test first tries its operand as an
# integer and raises, then catches, a TypeError with a formatted message: ~2 k instructions per test.)
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_PLAIN_PATH = re.compile(rb"[^?%]*")
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


_HEAD, _BODY, _IDLE = 1, 2, 3
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


class _Cycle:
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


class GatewayHttpProtocol(asyncio.Protocol):
    """One client connection (see the module's docstring)."""

    max_head_bytes = 64 * 1024
    max_header_count = 100
    head_timeout_s = 30.0
    body_timeout_s = 60.0

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_running_loop()
        self.keepalive_s = float(config.timeout_keep_alive)
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.app_state = app_state
        self.parser = httptools.HttpRequestParser(self)
        try:  # answer the first of pipelined requests after a "Connection: close" one (httptools >= 0.6.3)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # pragma: no cover
            pass
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.cycle: _Cycle | None = None
        """The request being read (the newest)."""
        self.active: _Cycle | None = None
        """The request being answered (older than ``cycle`` when requests are pipelined)."""
        self.pipeline: deque[_Cycle] = deque()
        # The request being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_continue = False
        self.in_head = True
        self.head_bytes = 0
        self.refused = False
        # Flow control
        self.read_paused = False
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        # One timer for the connection's deadline (head, body, idle keep-alive), re-armed only when it fires
        self._deadline = 0.0
        self._deadline_kind = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._linger: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            self.server = (str(sockname[0]), int(sockname[1]))
        if isinstance(peername, tuple) and len(peername) >= 2:
            self.client = (str(peername[0]), int(peername[1]))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self._set_deadline(_IDLE, self.keepalive_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        for cycle in (self.active, self.cycle, *self.pipeline):
            if cycle is not None:
                if not cycle.complete:
                    cycle.disconnected = True
                cycle.wake()
        self.pipeline.clear()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.write_paused = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._linger is not None:
            self._linger.cancel()
        if exc is None and self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        return None

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # answered and closing: whatever else arrives is dropped
        if self.in_head:
            if self._deadline_kind != _HEAD:
                self._set_deadline(_HEAD, self.head_timeout_s)
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades: the request was handed to the application as it is
        except httptools.HttpParserError:
            if not self.refused:
                self._refuse(400, "Bad Request", "Invalid HTTP request received.", "invalid_http_request")
            return
        if self.refused:
            return
        if self.in_head and self.head_bytes > self.max_head_bytes:  # still no end of head in sight
            self._refuse_head()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    async def drain(self) -> None:
        if self._drain is None:
            self._drain = self.loop.create_future()
        await asyncio.shield(self._drain)

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    # -- httptools callbacks --------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect_continue = False
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.refused:
            return
        if len(self.headers) >= self.max_header_count:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"The request has more than {self.max_header_count} header fields.",
                "headers_too_large",
            )
            return
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which is not part of the value
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        url = self.url
        if self.head_bytes > self.max_head_bytes:  # past the bound in one read: was it the head, or its body?
            size = len(url)
            for k, v in self.headers:
                size += len(k) + len(v) + 4
            if size > self.max_head_bytes:  # a whole oversized head arrived in one read
                self._refuse_head()
                return
        self.in_head = False
        self.head_bytes = 0
        parser = self.parser
        try:
            if url[:1] == b"/" and _PLAIN_PATH.fullmatch(url) is not None:
                path = url.decode("ascii")
                raw_path, query = url, b""
            else:
                parsed = httptools.parse_url(url)
                raw_path = parsed.path
                path = raw_path.decode("ascii")
                if "%" in path:
                    path = unquote(path)
                query = parsed.query or b""
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            self._refuse(400, "Bad Request", "Invalid request target.", "invalid_http_request")
            return
        version = parser.get_http_version()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": self.headers,
        }
        if self.app_state:
            scope["state"] = self.app_state.copy()
        cycle = _Cycle(self, scope, version != "1.0" and parser.should_keep_alive())
        cycle.expect_continue = self.expect_continue
        self.cycle = cycle
        active = self.active
        if active is None or active.complete:
            self._start(cycle)
        else:  # pipelined: answered after the one before
            self.pause_reading()
            self.pipeline.appendleft(cycle)
        self._set_deadline(_BODY, self.body_timeout_s)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if self.refused or cycle is None or cycle.complete:
            return
        cycle.body.append(body)
        cycle.body_size += len(body)
        if cycle.body_size > READ_HIGH_WATER:
            self.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if self.refused or cycle is None:
            return
        self.in_head = True  # what arrives next is the head of the next request on this connection
        self._deadline_kind = 0
        if cycle.complete:  # answered before its body was read: the connection is idle from now on
            if not self.pipeline:
                self._set_deadline(_IDLE, self.keepalive_s)
            return
        cycle.more_body = False
        cycle.wake()

    # -- requests and answers -------------------------------------------------------------------------------------
    def _start(self, cycle: _Cycle) -> None:
        self.active = cycle
        task = self.loop.create_task(cycle.run(self.app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def response_complete(self, cycle: _Cycle) -> None:
        self.server_state.total_requests += 1
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not cycle.keep_alive:
            transport.close()
            return
        self.resume_reading()  # (an answer given before its request's body came: the rest is read and dropped)
        if self.pipeline:
            self._start(self.pipeline.pop())
        elif self.in_head and not self.head_bytes:
            self._set_deadline(_IDLE, self.keepalive_s)

    def shutdown(self) -> None:
        """The server is shutting down: close now when idle, else once the answer under way is complete."""
        cycle = self.active
        self.pipeline.clear()  # requests not yet started are not answered
        if cycle is None or cycle.complete:
            if self.transport is not None:
                self.transport.close()
        else:
            cycle.keep_alive = False

    def close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- the connection's deadline ----------------------------------------------------------------------------------
    def _set_deadline(self, kind: int, seconds: float) -> None:
        at = self.loop.time() + seconds
        self._deadline, self._deadline_kind = at, kind
        if self._timer is None or at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(at, self._on_timer)
            self._timer_at = at

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._deadline_kind
        if not kind or self.refused:
            return
        now = self.loop.time()
        if now < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            self._timer_at = self._deadline
            return
        self._deadline_kind = 0
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if kind == _IDLE:
            cycle = self.active
            if (cycle is None or cycle.complete) and self.in_head and not self.head_bytes:
                transport.close()
        elif kind == _HEAD:
            if self.in_head and self.head_bytes:
                self._refuse(
                    408,
                    "Request Timeout",
                    f"The request headers did not arrive within {self.head_timeout_s:g} s.",
                    "request_timeout",
                )
        elif not self.in_head:  # _BODY
            self._refuse(
                408,
                "Request Timeout",
                f"The request body did not arrive within {self.body_timeout_s:g} s.",
                "request_timeout",
            )

    # -- refusals -----------------------------------------------------------------------------------------------------
    def _refuse_head(self) -> None:
        self._refuse(
            431,
            "Request Header Fields Too Large",
            f"The request line and headers exceed {self.max_head_bytes} bytes.",
            "headers_too_large",
        )

    def _refuse(self, status: int, reason: str, message: str, code: str) -> None:
        """Answer ``status`` and close the connection; nothing more is read from it. A response under way (to
        the request before, or to this one) is not cut: it finishes with ``connection: close`` instead."""
        in_body = not self.in_head
        self.refused = True
        self.in_head = False
        self._deadline_kind = 0
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = self.cycle
        if in_body and cycle is not None and not cycle.started:
            # The application may be waiting for this body: it sees the client as gone, and what it sends
            # later is dropped; this answer is the response.
            cycle.disconnected = True
            cycle.wake()
        elif cycle is not None and not cycle.complete:
            cycle.keep_alive = False  # the connection closes when that response is complete
            return
        elif in_body:  # this request was answered already (refused before its body was read)
            transport.close()
            return
        body = error_body(message, "invalid_request_error", code)
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-request-id: %s\r\nconnection: close\r\n\r\n"
            % (status, reason.encode(), len(body), uuid.uuid4().hex.encode())
            + body
        )
        # Lingering close: the client may still be sending (the rest of its headers or body). Closing a socket
        # with unread input makes the kernel answer with a reset, which can destroy this answer before the
        # client reads it; so stop sending, go on reading (and dropping) what arrives for a moment, then close.
        if transport.can_write_eof():
            transport.write_eof()
        self._linger = self.loop.call_later(LINGER_S, transport.close)


def configure(server: ServerConfig) -> None:
    """Set the bounds (called in the serving process, and in each worker process, before it serves)."""
    GatewayHttpProtocol.max_head_bytes = server.max_header_bytes
    GatewayHttpProtocol.max_header_count = server.max_header_count
    GatewayHttpProtocol.head_timeout_s = server.header_timeout_s
    GatewayHttpProtocol.body_timeout_s = server.body_timeout_s


def protocol_for(server: ServerConfig) -> type[GatewayHttpProtocol]:
    """The protocol with ``server``'s bounds, for a server run in-process beside others (tests)."""
    return type(
        "GatewayHttpProtocol",
        (GatewayHttpProtocol,),
        {
            "max_head_bytes": server.max_header_bytes,
            "max_header_count": server.max_header_count,
            "head_timeout_s": server.header_timeout_s,
            "body_timeout_s": server.body_timeout_s,
        },
    )


def install_drain(mark_draining: Callable[[], None], delay_s: float) -> bool:
    """Put a drain phase in front of uvicorn's graceful shutdown (call from the lifespan startup).

    On SIGTERM/SIGINT, ``mark_draining`` runs at once (``/readyz`` answers 503), the server keeps serving for
    ``delay_s`` (``server.drain_delay_s``) so that load balancers take it out of rotation, then uvicorn's own
    shutdown starts: the listening socket closes (new connections are refused) and in-flight requests get
    ``server.graceful_timeout_s``. A second signal skips the rest of the delay. Only in the main thread of a
    process run by uvicorn (whose handlers are in place by then); returns whether it was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    loop = asyncio.get_running_loop()
    previous = {int(sig): signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if not all(callable(h) for h in previous.values()):
        return False
    started = False

    def begin(handler: Callable[[int, FrameType | None], Any], sig: int) -> None:
        log.info("draining: /readyz answers 503; graceful shutdown starts in %g s", delay_s)
        loop.call_later(delay_s, handler, sig, None)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        nonlocal started
        handler = previous[sig]
        assert callable(handler)
        mark_draining()
        if started or delay_s <= 0:
            handler(sig, frame)  # no delay, or a second signal: uvicorn's shutdown starts now
            return
        started = True
        loop.call_soon_threadsafe(begin, handler, sig)  # signal context: hand over to the event loop

    for sig in previous:
        signal.signal(sig, on_signal)
    return True
