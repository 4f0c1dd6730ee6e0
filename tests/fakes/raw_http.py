"""A loopback HTTP/1.1 server that answers every request with bytes the test chose, for framings and connection
behaviours a web framework will not produce: no ``content-length`` (a body ended by closing the connection), an
interim ``100 Continue`` before the answer, ``connection: close``, idle connections dropped after a while, header
lines of any name, repeated or not, and error bodies exactly as given, of any content type (``error_answer``).

Runs in a background thread on its own event loop; counts the connections it accepted and the requests it read.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from tests.fakes.server import free_port

CHAT = (
    b'{"id":"chatcmpl-raw","object":"chat.completion","created":1,"model":"raw","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"raw answer"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
)


def answer(
    body: bytes = CHAT,
    *,
    length: bool = True,
    close: bool = False,
    interim: bool = False,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A 200 JSON answer: with or without ``content-length``, ``connection: close``, a ``100 Continue`` first,
    extra ``headers`` lines."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    if length:
        head += b"content-length: %d\r\n" % len(body)
    if close:
        head += b"connection: close\r\n"
    head += b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers)
    return (b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b"") + head + b"\r\n" + body


def error_answer(
    status: int,
    body: bytes,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    content_type: bytes = b"application/json",
) -> bytes:
    """An error answer with ``status``, a ``body`` (JSON unless ``content_type`` says) exactly as given and extra
    ``headers``."""
    head = b"HTTP/1.1 %d Error\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (
        status,
        content_type,
        len(body),
    )
    head += b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers)
    return head + b"\r\n" + body


@dataclass
class RawUpstream:
    reply: bytes = field(default_factory=answer)
    close_after_reply: bool = False
    """Close the connection once the reply is written (with ``answer(length=False)``: the body's end)."""
    idle_close_s: float | None = None
    """Close a connection that has sent nothing for this long after a reply."""
    answered: int | None = None
    """Answer only this many requests; later ones are read and never answered."""
    port: int = field(default_factory=free_port)
    connections: int = 0
    requests: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> RawUpstream:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("raw upstream did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve(ready))
        self._loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._conn, "127.0.0.1", self.port)
        ready.set()
        await self._stopping.wait()
        server.close()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await server.wait_closed()
        await asyncio.sleep(0.01)  # the closed transports let go of their sockets

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_close_s)
                except (TimeoutError, asyncio.IncompleteReadError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                if self.answered is not None and self.requests > self.answered:
                    await asyncio.Event().wait()  # never answered (cancelled when the server stops)
                writer.write(self.reply)
                await writer.drain()
                if self.close_after_reply:
                    return
        finally:
            writer.close()
