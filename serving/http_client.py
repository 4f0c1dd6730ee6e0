"""The upstream HTTP/1.1 client: pooled keep-alive connections on asyncio, responses parsed by httptools (llhttp).

Chosen by measurement over aiohttp's ``ClientSession`` (tests/bench, callgrind): a pooled POST and its JSON answer
cost ~28 k instructions here against ~390 k through aiohttp, whose request and response objects, payload
registry, tracing hooks, cookie jar and timers are most of a proxied request's CPU; importing aiohttp is also
a fifth of a start. It does what an upstream call needs and nothing else: one request at a time per connection,
a bounded pool per host, the request written in one piece, the answer's body handed over as it arrives (reading
paused past ``HIGH_WATER`` bytes not yet taken), timeouts for the connection, between reads and for the whole call,
and every failure raised as the ``serving.errors`` class that says what happened:

- the connection cannot be opened (refused, DNS, TLS): ``UpstreamConnectError`` "upstream unreachable";
- it was reset before the answer began: ``UpstreamConnectError`` "upstream connection failed";
- it was closed before the answer began, or closed or reset while the answer came: ``UpstreamDisconnected``;
- no connection within ``connect_timeout_s``, no bytes within the read timeout, or the call past its total:
  ``UpstreamTimeout``;
- what came back is not HTTP/1.x: ``UpstreamProtocolError`` "invalid upstream response".

No proxies, cookies, redirects or environment settings; TLS with the system's default verification.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any, Final

import httptools

from serving.errors import UpstreamConnectError, UpstreamDisconnected, UpstreamProtocolError, UpstreamTimeout
from serving.http_request import Target

HIGH_WATER = 256 * 1024
"""Body bytes received but not yet taken by the reader at which the connection stops reading."""
KEEPALIVE_S = 15.0
"""An idle pooled connection older than this is closed instead of reused (servers drop idle ones; a backend's
``idle_timeout_s``)."""
_USER_AGENT = b"pointsman"


class _Conn(asyncio.Protocol):
    """One connection; serves one request at a time."""

    __slots__ = (
        "loop",
        "host",
        "transport",
        "parser",
        "waiter",
        "status",
        "headers",
        "chunks",
        "buffered",
        "headers_done",
        "complete",
        "framed",
        "failure",
        "closed",
        "reset",
        "paused",
        "busy",
        "idle_since",
        "requests",
        "keep_alive",
        "due",
        "timer",
        "timer_at",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, host: _Host) -> None:
        self.loop = loop
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.framed = False
        self.failure: str | None = None
        """Why the exchange failed: "parse" (not HTTP), "lost" (closed or reset)."""
        self.closed = False
        self.reset = False
        self.paused = False
        self.busy = False
        self.idle_since = 0.0
        self.requests = 0
        self.keep_alive = False
        self.due = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:  # nothing was asked: a server talking out of turn is not reused
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.failure = "parse"
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost says the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.busy and not self.complete and self.failure is None:
            if self.headers_done and not self.framed and exc is None:
                self.complete = True  # a body delimited by the end of the connection
            else:
                self.failure = "lost"
                self.reset = exc is not None
        if not self.busy:
            self.host.forget(self)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:  # a second answer to one request: the connection is not reused
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        for name, value in self.headers:
            if name == b"content-length" or (
                name == b"transfer-encoding" and value.lower().find(b"chunked") >= 0
            ):
                self.framed = True
                break
        else:
            self.framed = status in (204, 304)

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True
            self.keep_alive = (
                self.parser.should_keep_alive()
            )  # read now: the parser forgets it after this call

    # -- for the client ---------------------------------------------------------------------------------------
    def begin(self) -> None:
        self.status = 0
        self.headers = []
        self.chunks = []
        self.buffered = 0
        self.headers_done = self.complete = self.framed = self.keep_alive = False
        self.failure = None
        self.busy = True
        self.requests += 1

    async def wait(self, deadline: float, read_timeout: float) -> None:
        """Until something happens on the connection (bytes, its end); ``TimeoutError`` past the read timeout or
        the deadline. The connection keeps one timer, re-armed only when it fires before the wait it serves is
        due (a timer per wait costs more than the rest of a pooled call's bookkeeping)."""
        loop = self.loop
        now = loop.time()
        due = min(now + read_timeout, deadline)
        if due <= now:
            raise TimeoutError
        waiter = self.waiter = loop.create_future()
        self.due = due
        if self.timer is None or due < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = loop.call_at(due, self._on_timer)
            self.timer_at = due
        try:
            await waiter
        finally:
            self.waiter = None

    def _on_timer(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # nothing is waiting: the next wait arms it again
        if self.loop.time() >= self.due:
            waiter.set_exception(TimeoutError())
            return
        self.timer = self.loop.call_at(self.due, self._on_timer)
        self.timer_at = self.due

    def take(self) -> bytes:
        """The body bytes received and not yet taken."""
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self.paused and not self.closed and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.closed
            and self.failure is None
            and self.keep_alive
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:  # (a call waiting for a pooled connection)
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Host:
    """The connections to one (host, port, TLS)."""

    __slots__ = ("idle", "active")

    def __init__(self) -> None:
        self.idle: list[_Conn] = []
        self.active = 0
        """Connections handed out or being opened."""

    def forget(self, conn: _Conn) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass


class Timeouts:
    """A call's time limits, in seconds."""

    __slots__ = ("total", "connect", "read")

    total: Final[float]
    """The whole call: waiting for a connection, sending, the answer's head and all of its body."""
    connect: Final[float]
    """Opening a connection."""
    read: Final[float]
    """Between two reads of the answer, while waiting for it."""

    def __init__(self, total: float, connect: float, read: float) -> None:
        self.total = total
        self.connect = connect
        self.read = read


class Response:
    """An answer whose status and headers have arrived; its body is read with ``read`` until it returns b"".
    Always end it with ``release`` (the body was read to the end: the connection is pooled again) or ``close``
    (it was not, or should not be: the connection is closed, which tells a model server to stop)."""

    __slots__ = (
        "_conn",
        "_client",
        "_deadline",
        "_timeouts",
        "_done",
        "status",
        "headers",
        "_where",
        "_name",
    )

    def __init__(
        self, conn: _Conn, client: HttpClient, deadline: float, timeouts: Timeouts, where: str, name: str
    ) -> None:
        self._conn = conn
        self._client = client
        self._deadline = deadline
        self._timeouts = timeouts
        self._done = False
        self._where = where
        self._name = name
        self.status = conn.status
        self.headers = conn.headers
        """(lowercased name, value) pairs as received."""

    def header(self, name: bytes) -> str | None:
        """The first value of ``name`` (lowercase), decoded as latin-1."""
        for k, v in self.headers:
            if k == name:
                return v.decode("latin-1")
        return None

    @property
    def content_length(self) -> int | None:
        v = self.header(b"content-length")
        return int(v) if v is not None and v.strip().isdigit() else None

    @property
    def at_eof(self) -> bool:
        conn = self._conn
        return conn.complete and not conn.chunks

    def arrived_whole(self) -> bytes | None:
        """The whole body when all of it has arrived and none was read yet (the answer of a small request, as
        a rule), else None: then ``read`` it."""
        conn = self._conn
        if not conn.complete or conn.failure is not None:
            return None
        return conn.take()

    async def read(self) -> bytes:
        """The body bytes that have arrived since the last read (waiting for some if none have); b"" at its end.
        Raises ``UpstreamDisconnected`` or ``UpstreamTimeout``."""
        conn = self._conn
        while True:
            if conn.chunks:
                return conn.take()
            if conn.complete:
                return b""
            if conn.failure is not None or conn.closed:
                raise UpstreamDisconnected(
                    "upstream closed the connection", backend=self._name, endpoint=self._where
                )
            try:
                await conn.wait(self._deadline, self._timeouts.read)
            except TimeoutError:
                raise UpstreamTimeout(
                    "upstream timed out", backend=self._name, endpoint=self._where
                ) from None

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        self._client._release(self._conn, self._conn.reusable() and not self._conn.chunks)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._conn.close()
        self._client._release(self._conn, False)


class HttpClient:
    """Pooled connections for one backend: at most ``per_host`` to each (host, port), ``total`` in all; a call
    over the limits waits for a connection (within its total timeout)."""

    def __init__(self, name: str, per_host: int, total: int, keepalive_s: float = KEEPALIVE_S) -> None:
        self.name = name
        self.per_host = per_host
        self.total = total
        self.keepalive_s = keepalive_s
        self._hosts: dict[tuple[str, int, bool], _Host] = {}
        self._active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl: ssl.SSLContext | None = None
        self._targets: dict[str, Target] = {}
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        """The event loop of the last call (read once: ``asyncio.get_running_loop`` makes a system call)."""

    def target(self, url: str) -> Target:
        t = self._targets.get(url)
        if t is None:
            if len(self._targets) > 4096:
                self._targets.clear()
            t = self._targets[url] = Target(url)
        return t

    async def request(
        self,
        method: bytes,
        url: str,
        headers: bytes,
        body: bytes | None,
        timeouts: Timeouts,
        where: str = "",
    ) -> Response:
        """Send one request (``headers``: ``header_lines`` of everything but host and content-length) and wait
        for its answer's status and headers. ``where`` names the endpoint in errors (default: ``url``)."""
        target = self.target(url)
        where = where or url
        loop = self._loop
        if loop is None or loop.is_closed():  # asyncio.get_running_loop() costs a getpid() call per use
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        conn = await self._acquire(target, deadline, timeouts, where)
        try:
            conn.begin()
            assert conn.transport is not None
            head = b"%s %s HTTP/1.1\r\nhost: %s\r\nuser-agent: %s\r\n%s" % (
                method,
                target.path,
                target.host_header,
                _USER_AGENT,
                headers,
            )
            if body is None:
                conn.transport.write(head + b"\r\n")
            else:
                conn.transport.write(b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body))
            while not conn.headers_done:
                if conn.failure == "parse":
                    raise UpstreamProtocolError(
                        "invalid upstream response", backend=self.name, endpoint=where
                    )
                if conn.failure is not None or conn.closed:
                    if conn.reset:
                        raise UpstreamConnectError(
                            "upstream connection failed", backend=self.name, endpoint=where
                        )
                    raise UpstreamDisconnected(
                        "upstream closed the connection", backend=self.name, endpoint=where
                    )
                try:
                    await conn.wait(deadline, timeouts.read)
                except TimeoutError:
                    raise UpstreamTimeout("upstream timed out", backend=self.name, endpoint=where) from None
        except BaseException:
            conn.close()
            self._release(conn, False)
            raise
        return Response(conn, self, deadline, timeouts, where, self.name)

    async def _acquire(self, target: Target, deadline: float, timeouts: Timeouts, where: str) -> _Conn:
        if self._closed:
            raise UpstreamConnectError("backend not started", backend=self.name, endpoint=where)
        host = self._hosts.get(target.key)
        if host is None:
            host = self._hosts[target.key] = _Host()
        loop = self._loop or asyncio.get_running_loop()
        while True:
            now = loop.time()
            while host.idle:
                conn = host.idle.pop()
                if conn.closed or now - conn.idle_since > self.keepalive_s:
                    conn.close()
                    continue
                host.active += 1
                self._active += 1
                return conn
            if host.active < self.per_host and self._active < self.total:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(max(0.0, deadline - now), _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                self._discard_waiter(waiter)
                raise UpstreamTimeout("upstream timed out", backend=self.name, endpoint=where) from None
            except BaseException:  # cancelled: a connection freed for this call goes to the next one
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._wake()
                else:
                    self._discard_waiter(waiter)
                raise
            finally:
                timer.cancel()
        host.active += 1
        self._active += 1
        try:
            return await self._connect(target, host, deadline, timeouts, where)
        except BaseException:
            host.active -= 1
            self._active -= 1
            self._wake()
            raise

    async def _connect(
        self, target: Target, host: _Host, deadline: float, timeouts: Timeouts, where: str
    ) -> _Conn:
        loop = asyncio.get_running_loop()
        timeout = min(timeouts.connect, deadline - loop.time())
        tls: Any = None
        if target.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            if timeout <= 0:
                raise TimeoutError
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Conn(loop, host),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls is not None else None,
                ),
                timeout,
            )
        except TimeoutError:
            raise UpstreamTimeout("upstream timed out", backend=self.name, endpoint=where) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS
            raise UpstreamConnectError("upstream unreachable", backend=self.name, endpoint=where) from exc
        return conn

    def _release(self, conn: _Conn, reuse: bool) -> None:
        conn.busy = False
        host = conn.host
        host.active -= 1
        self._active -= 1
        if reuse and not self._closed:
            conn.idle_since = conn.loop.time()
            host.idle.append(conn)
        else:
            conn.close()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _discard_waiter(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    @property
    def connections(self) -> int:
        """Open connections (in use and idle)."""
        return self._active + sum(len(h.idle) for h in self._hosts.values())

    async def close(self) -> None:
        self._closed = True
        for host in self._hosts.values():
            for conn in host.idle:
                conn.close()
            host.idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
