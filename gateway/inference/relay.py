"""Relaying an upstream SSE stream to the client: events as they complete, the time to first token, a client
that leaves (the upstream is closed, which stops generation), and an upstream failure mid-stream — a broken
connection, a timeout, an event past ``server.max_event_bytes``, or a stream that ends without its own end
(``[DONE]``, a Responses API final event) — reported with an error event, then the end of the stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.errors import to_api_error
from gateway.inference.exchange import Exchange
from gateway.inference.outcome import outcome_for
from gateway.inference.watch import ClientWatch, Watches
from serving.backend import UpstreamStream
from serving.errors import UpstreamError, UpstreamTooLarge, UpstreamTruncated
from wire.errors import error_event
from wire.sse import EventTooLarge, SSEReader

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def relay(
    x: Exchange,
    upstream: UpstreamStream,
    reader: SSEReader,
    track_in_flight: Callable[[str, int], None],
    watches: Watches,
) -> None:
    """Send the stream's events after the response has started; always closes ``upstream``. A client that leaves
    cancels the relay (``ClientWatch``: watched once the stream has lasted ``watches.delay``; a stream relayed
    whole before then needs no watcher task)."""
    send, rec = x.send, x.rec
    watch = ClientWatch(x.receive, watches)
    track_in_flight(rec.backend, 1)
    # Closing ``upstream`` is awaited outside any ``finally``: compiled with mypyc (docs/design.md, the compiled
    # build), an ``await`` in a ``finally`` re-raises an exception this function already handled (a client's
    # cancellation taken back, an upstream timeout turned into an error event).
    try:
        try:
            failure: UpstreamError | None = None
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
                if not reader.finished:
                    failure = UpstreamTruncated(
                        "upstream ended the stream before it was complete", backend=rec.backend
                    )
            except UpstreamError as exc:
                failure = exc
            except EventTooLarge as exc:
                failure = UpstreamTooLarge(
                    f"An upstream event is larger than the gateway accepts (server.max_event_bytes: {exc.limit} bytes).",
                    backend=rec.backend,
                )
            if failure is not None:
                err = to_api_error(failure)
                rec.outcome = outcome_for(err, failure)
                rec.error_type = failure.error_type
                body = error_event(x.call.endpoint, err.message, err.type, err.code, reader.next_sequence)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            if not reader.finished:  # a client that leaves after [DONE] got the whole stream
                rec.outcome = "cancelled"
                rec.status = 499
        except OSError:
            if not reader.finished:
                rec.outcome = "cancelled"
                rec.status = 499
        finally:
            track_in_flight(rec.backend, -1)
            watch.close()
    except BaseException:
        await upstream.aclose()
        raise
    await upstream.aclose()
