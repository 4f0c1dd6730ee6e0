"""Relaying an upstream SSE stream to the client: events as they complete, the time to first token, a client
that leaves (the upstream is closed, which stops generation), and an upstream failure mid-stream (an error
event, then the end of the stream)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.errors import to_api_error
from gateway.inference.exchange import Exchange
from serving.backend import UpstreamStream
from serving.errors import UpstreamError, UpstreamTimeout
from wire.errors import error_event
from wire.sse import SSEReader

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def relay(
    x: Exchange, upstream: UpstreamStream, reader: SSEReader, track_in_flight: Callable[[str, int], None]
) -> None:
    """Send the stream's events after the response has started; always closes ``upstream``."""
    receive, send, rec = x.receive, x.send, x.rec
    task = asyncio.current_task()
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                disconnected = True
                if task is not None:
                    task.cancel()
                return

    watcher = asyncio.get_running_loop().create_task(watch())
    track_in_flight(rec.backend, 1)
    try:
        try:
            async for chunk in upstream:
                out = reader.feed(chunk)
                if out:
                    if rec.ttft_s is None:
                        rec.ttft_s = time.perf_counter() - x.t0
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            tail = reader.flush()
            if tail:
                await send({"type": "http.response.body", "body": tail, "more_body": True})
        except UpstreamError as exc:
            rec.outcome = "timeout" if isinstance(exc, UpstreamTimeout) else "upstream_error"
            rec.error_type = exc.error_type
            await send(
                {
                    "type": "http.response.body",
                    "body": stream_error(x.call.endpoint, exc, reader.next_sequence),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not disconnected:
            raise
        if task is not None:
            task.uncancel()
        if not reader.saw_done:  # a client that leaves after [DONE] got the whole stream
            rec.outcome = "cancelled"
            rec.status = 499
    except OSError:
        if not reader.saw_done:
            rec.outcome = "cancelled"
            rec.status = 499
    finally:
        track_in_flight(rec.backend, -1)
        watcher.cancel()
        await upstream.aclose()


def stream_error(endpoint: str, exc: UpstreamError, sequence_number: int) -> bytes:
    """The event that ends a stream which failed upstream after it started, in the endpoint's own shape
    (a Responses API error event takes the stream's next sequence number)."""
    err = to_api_error(exc)
    return error_event(endpoint, err.message, err.type, err.code, sequence_number)
