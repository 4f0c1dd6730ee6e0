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
while one waits). An idle keep-alive connection is closed after ``server.keep_alive_timeout_s``. On shutdown an
idle connection is closed at once, a busy one after its answer. Selected with ``http="gateway.http_server:
GatewayHttpProtocol"`` (a string, so that ``--workers N`` processes import it too). One request and its answer
(ASGI ``receive`` and ``send``, the answer's head) are a ``gateway.http_cycle.Cycle``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import signal
import threading
import uuid
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any, Final
from urllib.parse import unquote

import httptools

from gateway.config import ServerConfig
from gateway.http_cycle import Cycle
from wire.errors import error_body

PROTOCOL = "gateway.http_server:GatewayHttpProtocol"
LINGER_S = 2.0
"""After a refusal, how long input is still read (and dropped) before the connection closes."""
READ_HIGH_WATER = 64 * 1024
"""Request body bytes held for the application at which reading pauses until it takes them."""
log = logging.getLogger("pointsman")


_ASGI = {"version": "3.0", "spec_version": "2.3"}
_PLAIN_PATH = re.compile(rb"[^?%]*")
_HEAD, _BODY, _IDLE = 1, 2, 3


class Bounds:
    """A connection's bounds, from ``server``'s settings of the same meaning."""

    __slots__ = ("max_head_bytes", "max_header_count", "head_timeout_s", "body_timeout_s")

    max_head_bytes: Final[int]
    """``max_header_bytes``."""
    max_header_count: Final[int]
    head_timeout_s: Final[float]
    """``header_timeout_s``."""
    body_timeout_s: Final[float]

    def __init__(
        self,
        max_head_bytes: int = 64 * 1024,
        max_header_count: int = 100,
        head_timeout_s: float = 30.0,
        body_timeout_s: float = 60.0,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_header_count = max_header_count
        self.head_timeout_s = head_timeout_s
        self.body_timeout_s = body_timeout_s

    @classmethod
    def of(cls, server: ServerConfig) -> Bounds:
        return cls(
            server.max_header_bytes, server.max_header_count, server.header_timeout_s, server.body_timeout_s
        )


_bounds = Bounds()
"""The serving process's bounds (``configure``), for connections made without bounds of their own."""


class GatewayHttpProtocol(asyncio.Protocol):
    """One client connection (see the module's docstring)."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        bounds: Bounds | None = None,
    ) -> None:
        b = _bounds if bounds is None else bounds
        self.max_head_bytes = b.max_head_bytes
        self.max_header_count = b.max_header_count
        self.head_timeout_s = b.head_timeout_s
        self.body_timeout_s = b.body_timeout_s
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
        self.cycle: Cycle | None = None
        """The request being read (the newest)."""
        self.active: Cycle | None = None
        """The request being answered (older than ``cycle`` when requests are pipelined)."""
        self.pipeline: deque[Cycle] = deque()
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
        try:  # (refused while still in the head: the answer is sent, not just the connection closed)
            if url[:1] == b"/" and _PLAIN_PATH.fullmatch(url) is not None:
                path = url.decode("ascii")
                raw_path, query = url, b""
            else:
                # (Any: httptools' stub types ``path`` and ``query`` as bytes, and each is None when absent, which
                # the compiled build would refuse as a type error)
                parsed: Any = httptools.parse_url(url)
                raw_path = parsed.path or b"/"  # (an absolute-form target without a path: ``http://host``)
                path = raw_path.decode("ascii")
                if "%" in path:
                    path = unquote(path)
                query = parsed.query or b""
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            self._refuse(400, "Bad Request", "Invalid request target.", "invalid_http_request")
            return
        self.in_head = False
        self.head_bytes = 0
        parser = self.parser
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
        cycle = Cycle(self, scope, version != "1.0" and parser.should_keep_alive())
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
    def _start(self, cycle: Cycle) -> None:
        self.active = cycle
        task = self.loop.create_task(cycle.run(self.app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def response_complete(self, cycle: Cycle) -> None:
        self.server_state.total_requests += 1
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not cycle.keep_alive:
            if cycle is self.cycle and not self.in_head and not self.refused:
                # Answered (and closing) before its body was read, e.g. a 413 for a declared length: a client
                # that sends its whole body before reading (no ``Expect: 100-continue``) is still sending.
                self.refused = True  # what else arrives is dropped
                self._linger_close(transport)
            else:
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
        self._linger_close(transport)

    def _linger_close(self, transport: asyncio.Transport) -> None:
        """Lingering close: the client may still be sending (the rest of its headers or body). Closing a socket
        with unread input makes the kernel answer with a reset, which can destroy the answer before the client
        reads it; so stop sending, go on reading (and dropping: ``refused``) what arrives for a moment
        (``LINGER_S``), then close."""
        if transport.can_write_eof():
            transport.write_eof()
        self.resume_reading()
        self._linger = self.loop.call_later(LINGER_S, transport.close)


def configure(server: ServerConfig) -> None:
    """Set the bounds (called in the serving process, and in each worker process, before it serves)."""
    global _bounds
    _bounds = Bounds.of(server)


def protocol_for(server: ServerConfig) -> Callable[..., GatewayHttpProtocol]:
    """The protocol with ``server``'s bounds, for a server run in-process beside others (tests): what uvicorn
    calls to make each connection's."""
    return functools.partial(GatewayHttpProtocol, bounds=Bounds.of(server))


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
