"""Pure-ASGI middleware for the non-hot-path app (request ids, admin guard, body size; CORS is ``gateway.cors``,
which the fast path uses too). No BaseHTTPMiddleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request

from gateway.deps import admin_secret, check_admin
from gateway.errors import ApiError, too_deep
from gateway.inference.asgi import (
    ClientGone,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
    refuse_declared_length,
    send_json,
)
from gateway.request_ids import request_id
from gateway.state import GatewayState
from wire.json_object import MAX_DEPTH, nests_within


class RequestIdMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes | None = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                raw = v
                break
        rid = request_id(raw).encode()

        async def send_with_id(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = [*msg.get("headers", []), (b"x-request-id", rid)]
            await send(msg)

        await self.app(scope, receive, send_with_id)


class AdminGuard:
    """Admin authentication first: for ``/admin`` paths the key is checked before anything reads the request
    (size limit, body parsing, routing), so a caller without the admin key gets 401 (403 with a client key)
    whatever it sent, and learns nothing about which admin routes exist. The admin router checks again."""

    def __init__(self, app: Any, state: GatewayState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/admin" or path.startswith("/admin/")):
            try:
                check_admin(self.state, admin_secret(Request(scope)))
            except ApiError as exc:
                await send_json(
                    send, exc.status, exc.body(), [(k.encode(), v.encode()) for k, v in exc.headers.items()]
                )
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """The bounds on a request body for everything off the hot path (admin API, feedback); the inference hot path
    enforces the same ones itself:

    - ``server.max_body_bytes``: a larger body gets 413 before the app reads it (a declared ``content-length`` is
      refused without reading; a chunked body is read only up to the limit);
    - JSON nested deeper than ``wire.json_object.MAX_DEPTH`` levels gets 400 ``nesting_too_deep`` (what the
      gateway stores, it must be able to write again). Bodies that are not JSON are left to the app."""

    def __init__(self, app: Any, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        try:
            refuse_declared_length(
                next((v for k, v in scope["headers"] if k == b"content-length"), None), limit
            )
            body = await read_body(receive, limit)
        except ClientGone:
            return
        except ApiError as exc:
            await self._refuse(send, exc)
            return
        if body[:1] in (b"{", b"[") and not _nests_within_limit(body):
            await self._refuse(send, too_deep())
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Send, exc: ApiError) -> None:
        await send_json(
            send, exc.status, exc.body(), [(k.encode(), v.encode()) for k, v in exc.headers.items()]
        )


def _nests_within_limit(body: bytes) -> bool:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # not JSON (the app answers 400), or past orjson's own 1,024 levels
        return "depth limit" not in str(exc)
    return nests_within(doc, MAX_DEPTH)
