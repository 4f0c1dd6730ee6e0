"""The FastAPI app for everything off the inference hot path: the public endpoints, feedback, the admin API, the
console and the OpenAPI schema of all endpoints, behind the request-id, admin-guard and body-limit middleware.

Built on the first request that needs it (``gateway.app.GatewayApp``), not at start: importing FastAPI, the
admin routers and the console and building their routes costs more than the rest of a start, and a gateway that
only serves inference never pays it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.admin import build_admin_router
from gateway.console import consent_pages as console_consent
from gateway.console import pages as console_pages
from gateway.console import routes_pages as console_routes
from gateway.console import shadow_pages as console_shadow
from gateway.cors import CORSMiddleware
from gateway.errors import ApiError
from gateway.feedback import router as feedback_router
from gateway.inference.protocol import DOCUMENTED, AnthropicErrorResponse, ErrorResponse
from gateway.middleware import AdminGuard, BodyLimitMiddleware, RequestIdMiddleware
from gateway.public import router as public_router
from gateway.state import GatewayState
from gateway.stored_responses import router as stored_responses_router
from wire.endpoints import ANTHROPIC
from wire.errors import error_body

log = logging.getLogger("pointsman")


def build_slow_path(state: GatewayState) -> Any:
    """The ASGI app for every request the fast path does not answer."""
    api = build_fastapi(state)
    inner: Any = RequestIdMiddleware(
        AdminGuard(BodyLimitMiddleware(api, lambda: state.runtime.config.server.max_body_bytes), state)
    )
    if state.config.server.cors_origins:
        inner = CORSMiddleware(inner, state.config.server.cors_origins)
    return inner


def _error_response(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(message, type_, code, param),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def build_fastapi(state: GatewayState) -> FastAPI:
    api = FastAPI(
        title="pointsman",
        version="0.1.0",
        description="OpenAI-compatible inference gateway.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}},
        redirect_slashes=False,  # (Starlette's redirect names the client's Host header: see _http)
    )
    api.state.gateway = state

    @api.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        resp = Response(
            exc.body(), status_code=exc.status, media_type="application/json", headers=exc.headers
        )
        return resp

    @api.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = tuple(first.get("loc", ()))
        if where and where[0] in ("body", "query", "path", "header"):
            where = where[1:]  # the request part FastAPI names first (a member may be called "body" too)
        loc = ".".join(str(p) for p in where)
        msg = str(first.get("msg", "Invalid request"))
        if first.get("type") == "json_invalid":
            return _error_response(
                400, "The request body is not valid JSON.", "invalid_request_error", "invalid_json"
            )
        return _error_response(
            400, f"{loc}: {msg}" if loc else msg, "invalid_request_error", "invalid_value", loc or None
        )

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        msg = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            path = request.url.path
            if path.startswith("/console/") and path.endswith("/") and request.method in ("GET", "HEAD"):
                return Response(status_code=307, headers={"location": path.rstrip("/")})  # a browser's slash
            msg = f"Unknown path {path}."
        elif exc.status_code == 400 and msg == "There was an error parsing the body":  # FastAPI's own words
            code, msg = "invalid_json", "The request body is not valid JSON."
        return _error_response(exc.status_code, msg, "invalid_request_error", code, headers=exc.headers)

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return _error_response(500, "Internal gateway error.", "server_error", "internal_error")

    api.include_router(public_router)
    api.include_router(feedback_router)
    api.include_router(stored_responses_router)
    _document_inference(api)
    api.include_router(build_admin_router(state))
    api.include_router(console_pages.build_router())
    api.include_router(console_routes.build_router())
    api.include_router(console_shadow.build_router())
    api.include_router(console_consent.build_router())
    return api


def _document_inference(api: FastAPI) -> None:
    """Put the hot-path endpoints in the OpenAPI schema (requests never reach these handlers)."""
    for ep, (model, summary) in DOCUMENTED.items():
        error: type[BaseModel] = AnthropicErrorResponse if ep in ANTHROPIC else ErrorResponse

        async def documented(
            body: Any = Body(...),
        ) -> JSONResponse:  # pragma: no cover - served by the fast path
            raise ApiError(500, "unreachable", "server_error")

        documented.__annotations__["body"] = model
        api.add_api_route(
            f"/v1/{ep}",
            documented,
            methods=["POST"],
            summary=summary,
            tags=["inference"],
            responses={
                200: {"description": "The answer, or text/event-stream when stream=true"},
                400: {"model": error},
                401: {"model": error},
                404: {"model": error},
                413: {"model": error},
                429: {"model": error},
                502: {"model": error},
                504: {"model": error},
            },
            name=f"create_{ep.replace('/', '_')}",
        )
