"""A lean Redis client for the shared state the request path touches: RESP2 over one pipelined asyncio connection.

Chosen by measurement over redis-py's asyncio client (``tests/bench``, the ``redis`` feature row): an admission
script call costs ~64 µs of CPU through redis-py (50 µs with hiredis) and a few µs here, where the connection
pool, command objects, response callbacks and a timer per command are most of the cost. Limits, budgets,
reservations and the shared ledger's stream use it; the stores written at admin rates (routing policy, shadow
pairs, capture queue, approvals) keep redis-py.

What it does:

- one connection per client, shared by all callers: the commands of one turn of the event loop go out in one
  write at its end and replies are matched to callers in order, so concurrent admissions share system calls;
- ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs with a user, password and database (``/N`` or ``?db=N``);
- every reply within ``timeout_s`` of its command, watched by one timer per connection: past it the connection
  is closed and every caller waiting on it gets ``RespTimeout`` (a frozen Redis costs one timeout, not one per
  pending command);
- a connection the server closed is noticed when it closes, and the next command opens a new one (after a Redis
  restart nothing fails twice); a command already written when the connection is lost fails with
  ``RespConnectionError`` and is not resent (it may have run);
- scripts by SHA1 (``EVALSHA``), loaded on ``NOSCRIPT``.

Replies: bulk and simple strings as ``bytes``, integers as ``int``, nil as ``None``, arrays as lists; an error
reply raises ``RespError`` (inside an array it is the ``RespError`` value).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from accounting.resp_errors import RespConnectionError as RespConnectionError
from accounting.resp_errors import RespError as RespError
from accounting.resp_errors import RespTimeout as RespTimeout

Arg = bytes | str | int | float


class _Incomplete(Exception):
    """The buffer ends inside a reply. Raised as a new instance each time: one instance raised again and again
    would keep every traceback it was raised through (each raise adds its frames to the instance's
    ``__traceback__``), and with them the frames' buffers: memory that grew with every split reply."""


def encode(args: Sequence[Arg]) -> bytes:
    """One command in RESP: an array of bulk strings (text as UTF-8, numbers as their ``repr``)."""
    out = [f"*{len(args)}\r\n"]
    for a in args:
        t = type(a)
        if t is str:
            s = cast(str, a)
            out.append(f"${len(s) if s.isascii() else len(s.encode())}\r\n{s}\r\n")
        elif t is int or t is float:
            s = repr(a)
            out.append(f"${len(s)}\r\n{s}\r\n")
        elif t is bytes:
            return _encode_with_bytes(args)
        else:
            raise TypeError(f"not a Redis argument: {t.__name__}")
    return "".join(out).encode()


def _encode_with_bytes(args: Sequence[Arg]) -> bytes:
    """``encode`` for a command with raw bytes among its arguments."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        t = type(a)
        if t is bytes:
            b = cast(bytes, a)
        elif t is str:
            b = cast(str, a).encode()
        elif t is int or t is float:
            b = repr(a).encode()
        else:
            raise TypeError(f"not a Redis argument: {t.__name__}")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """The reply starting at ``pos`` and where the next one starts; ``_Incomplete`` when it is not all there."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        stop = end + 2 + n
        if len(buf) < stop + 2:
            raise _Incomplete
        return bytes(buf[end + 2 : stop]), stop + 2
    if kind == 42:  # * array
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        items = []
        p = end + 2
        for _ in range(n):
            v, p = parse(buf, p)
            items.append(v)
        return items, p
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 43:  # + simple string
        return bytes(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        return RespError(bytes(buf[pos + 1 : end]).decode("utf-8", "replace")), end + 2
    raise RespConnectionError(f"not a RESP reply (first byte {kind!r})")


class _Conn(asyncio.Protocol):
    __slots__ = ("transport", "buf", "waiting", "timeout_s", "timer", "lost", "loop", "out")

    def __init__(self, timeout_s: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.timeout_s = timeout_s
        self.timer: asyncio.TimerHandle | None = None
        self.lost = False
        self.loop = asyncio.get_running_loop()
        self.out: list[bytes] = []
        """Commands written in this turn of the event loop, sent together at its end (``_flush``)."""

    # -- asyncio.Protocol --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                value, pos = parse(buf, pos)
                if not self.waiting:
                    raise RespConnectionError("a reply no command asked for")
                fut, _ = self.waiting.popleft()
                if not fut.done():
                    if isinstance(value, RespError):
                        fut.set_exception(value)
                    else:
                        fut.set_result(value)
        except _Incomplete:
            pass
        except (RespConnectionError, ValueError) as exc:
            self._fail(RespConnectionError(f"invalid reply from Redis: {exc}"))
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RespConnectionError(f"connection to Redis lost{f': {exc}' if exc else ''}"))

    # -- commands ----------------------------------------------------------------------------------------
    def send(self, data: bytes, replies: int) -> list[asyncio.Future[Any]]:
        assert self.transport is not None
        deadline = self.loop.time() + self.timeout_s
        futs = [self.loop.create_future() for _ in range(replies)]
        self.waiting.extend((f, deadline) for f in futs)
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(data)
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self._check)
        return futs

    def _flush(self) -> None:
        """One write (one system call, one wake-up of Redis) for every command of this loop turn."""
        out, self.out = self.out, []
        if self.transport is not None and not self.lost:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _check(self) -> None:
        """The one timer: the oldest command past its deadline fails the connection; else wait for it."""
        self.timer = None
        if not self.waiting or self.lost:
            return
        deadline = self.waiting[0][1]
        if self.loop.time() >= deadline:
            self._fail(RespTimeout(f"no reply from Redis within {self.timeout_s:g} s"))
        else:
            self.timer = self.loop.call_at(deadline, self._check)

    def _fail(self, exc: Exception) -> None:
        first, self.lost = not self.lost, True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.waiting:
            fut, _ = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if first and self.transport is not None:
            self.transport.abort()


class RespClient:
    """Commands to one Redis over one pipelined connection, opened on first use and after a loss."""

    def __init__(self, url: str, timeout_s: float = 0.5, connect_timeout_s: float = 0.5) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a redis://, rediss:// or unix:// URL: {parts.scheme}://…")
        query = parse_qs(parts.query)
        self.tls = parts.scheme == "rediss"
        self.path = parts.path if parts.scheme == "unix" else None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        db = query.get("db", [""])[0] or (parts.path.lstrip("/") if parts.scheme != "unix" else "")
        self.db = int(db) if db else 0
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._conn: _Conn | None = None
        self._connecting: asyncio.Future[_Conn] | None = None
        self._closed = False

    def __repr__(self) -> str:  # never the password
        where = self.path or f"{self.host}:{self.port}"
        return f"RespClient({'rediss' if self.tls else 'redis'}://{where}/{self.db})"

    async def execute(self, *args: Arg) -> Any:
        """One command; its reply (an error reply raises ``RespError``)."""
        conn = self._conn
        if conn is None or conn.lost:
            conn = await self._connect()
        return await conn.send(encode(args), 1)[0]

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Several commands in one write; their replies in order (the first error reply raises)."""
        if not commands:
            return []
        conn = self._conn
        if conn is None or conn.lost:
            conn = await self._connect()
        futs = conn.send(b"".join(encode(c) for c in commands), len(commands))
        results: list[Any] = []
        first: BaseException | None = None
        for f in futs:
            try:
                results.append(await f)
            except RespError as exc:
                first = first or exc
                results.append(exc)
        if first is not None:
            raise first
        return results

    async def ping(self) -> bool:
        return bool(await self.execute("PING") == b"PONG")

    def script(self, lua: str) -> Script:
        return Script(self, lua)

    async def aclose(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None and not conn.lost:
            conn.lost = True
            conn.transport.close()

    async def _connect(self) -> _Conn:
        if self._closed:
            raise RespConnectionError("client closed")
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_future()
            try:
                conn = await self._open()
            except BaseException as exc:
                self._connecting.set_exception(exc)
                self._connecting.exception()  # retrieved: a caller that is not waiting does not log it
                self._connecting = None
                raise
            self._conn = conn
            self._connecting.set_result(conn)
            self._connecting = None
            return conn
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        conn = _Conn(self.timeout_s)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if self.path is not None:
                    await loop.create_unix_connection(lambda: conn, self.path)
                else:
                    ctx = ssl.create_default_context() if self.tls else None
                    await loop.create_connection(lambda: conn, self.host, self.port, ssl=ctx)
        except TimeoutError:
            raise RespTimeout(f"no connection to Redis within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise RespConnectionError(f"cannot connect to Redis: {exc.strerror or exc}") from None
        hello: list[list[Arg]] = []
        if self.password is not None:
            hello.append(
                ["AUTH", self.password] if self.username is None else ["AUTH", self.username, self.password]
            )
        if self.db:
            hello.append(["SELECT", self.db])
        if hello:
            futs = conn.send(b"".join(encode(c) for c in hello), len(hello))
            try:
                for f in futs:
                    await f
            except RespError as exc:
                conn._fail(RespConnectionError(f"Redis refused the connection: {exc}"))
                raise RespConnectionError(f"Redis refused the connection: {exc}") from None
        return conn


class Script:
    """A Lua script run by its SHA1 (``EVALSHA``), sent whole once when Redis does not have it."""

    __slots__ = ("client", "lua", "sha")

    def __init__(self, client: RespClient, lua: str) -> None:
        self.client = client
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()

    async def __call__(self, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> Any:
        try:
            return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.client.execute("EVAL", self.lua, len(keys), *keys, *args)
