"""The HTTP/1.1 protocol ``pointsman serve`` runs: uvicorn's httptools protocol with bounds on what a client can
make the server hold before its request is read.

httptools (llhttp) puts no limit on the request line and headers, and re-joins a header value on every read:
one client sending a multi-megabyte header holds memory and burns CPU (quadratically) on the event loop that
serves everyone; thousands of tiny header fields cost a Python call each, here and in every layer that walks
them; a client sending a byte every few seconds holds a connection forever (uvicorn's keep-alive timer stops at
the first byte), in the head or in the body. This protocol answers, in the OpenAI error shape, and closes the
connection:

- ``431`` when the request line and headers pass ``server.max_header_bytes``, or the header fields
  ``server.max_header_count``;
- ``408`` when the headers have not all arrived ``server.header_timeout_s`` after their first byte, or the body
  ``server.body_timeout_s`` after the headers (the application then sees the client as gone);
- ``400`` (instead of uvicorn's plain-text answer) when the request is not valid HTTP/1.1.

A declared ``Content-Length`` over ``server.max_body_bytes`` is refused by the application before it reads
anything (``gateway.inference.asgi.refuse_declared_length``), so no ``100 Continue`` is sent for it.

Everything else is uvicorn's ``HttpToolsProtocol`` unchanged. Selected with ``http="gateway.http_server:
BoundedHttpToolsProtocol"`` (a string, so that ``--workers N`` processes import it too).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import ServerConfig
from wire.errors import error_body

PROTOCOL = "gateway.http_server:BoundedHttpToolsProtocol"
LINGER_S = 2.0
"""After a refusal, how long input is still read (and dropped) before the connection closes."""
log = logging.getLogger("pointsman")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = 64 * 1024
    max_header_count = 100
    head_timeout_s = 30.0
    body_timeout_s = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: whatever else arrives is dropped
        if self._in_head:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_expired)
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused:
            return
        if self._in_head:
            if self._head_bytes > self.max_head_bytes:  # still no end of head in sight
                self._refuse_head()
        elif self._body_timer is None:  # the head is in, the body is not (yet): it has body_timeout_s
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_expired)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        if len(self.headers) >= self.max_header_count:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"The request has more than {self.max_header_count} header fields.",
                "headers_too_large",
            )
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._cancel_head_timer()
        size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
        if size > self.max_head_bytes:  # a whole oversized head arrived in one read
            self._refuse_head()
            return
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_body_timer()
        super().on_message_complete()
        self._in_head = True  # what arrives next is the head of the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_expired(self) -> None:
        self._body_timer = None
        if not self._in_head and not self._refused:
            self._refuse(
                408,
                "Request Timeout",
                f"The request body did not arrive within {self.body_timeout_s:g} s.",
                "request_timeout",
            )

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._in_head and self._head_bytes:
            self._refuse(
                408,
                "Request Timeout",
                f"The request headers did not arrive within {self.head_timeout_s:g} s.",
                "request_timeout",
            )

    def send_400_response(self, msg: str) -> None:
        """httptools rejected the request's framing (request line, header syntax, chunked encoding): answered in
        the OpenAI error shape like everything else (uvicorn's own answer is plain text)."""
        self._refuse(400, "Bad Request", msg or "Invalid HTTP request received.", "invalid_http_request")

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
        in_body = not self._in_head
        self._refused = True
        self._in_head = False
        self._cancel_head_timer()
        self._cancel_body_timer()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = self.cycle
        if in_body and cycle is not None and not cycle.response_started:
            # The application may be waiting for this body: it sees the client as gone, and what it sends
            # later is dropped; this answer is the response.
            cycle.disconnected = True
            cycle.message_event.set()
        elif cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # uvicorn closes the connection when that response is complete
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
    BoundedHttpToolsProtocol.max_head_bytes = server.max_header_bytes
    BoundedHttpToolsProtocol.max_header_count = server.max_header_count
    BoundedHttpToolsProtocol.head_timeout_s = server.header_timeout_s
    BoundedHttpToolsProtocol.body_timeout_s = server.body_timeout_s


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
