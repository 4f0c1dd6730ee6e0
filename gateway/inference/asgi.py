"""Minimal ASGI plumbing for the hot path: typed aliases, bounded body reading, JSON responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.errors import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def read_body(receive: Receive, limit: int) -> bytes:
    msg = await receive()
    body: bytes = msg.get("body", b"")
    if not msg.get("more_body", False):
        if len(body) > limit:
            raise too_large(limit)
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        return body
    parts = [body]
    size = len(body)
    while True:
        if size > limit:
            raise too_large(limit)
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        chunk = msg.get("body", b"")
        parts.append(chunk)
        size += len(chunk)
        if not msg.get("more_body", False):
            break
    if size > limit:
        raise too_large(limit)
    return b"".join(parts)


def refuse_declared_length(declared: bytes | None, limit: int) -> None:
    """413 for a declared ``content-length`` over ``limit``: before any of the body is read, so a client that
    sent ``Expect: 100-continue`` is not invited to upload it, and a short body is not waited for."""
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large(limit)


def too_large(limit: int) -> ApiError:
    """413; the connection is closed after it (the rest of the body is never read)."""
    return ApiError(
        413,
        f"Request body exceeds the limit of {limit} bytes.",
        "invalid_request_error",
        "body_too_large",
        headers={"connection": "close"},
    )


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
