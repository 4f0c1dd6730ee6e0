"""FastAPI dependencies: handlers receive the lifespan-owned state, never module globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.errors import ApiError
from gateway.keys import ClientKey, admin_ok, presented_key
from gateway.state import GatewayState


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]
"""The lifespan-owned state, as an admin handler parameter."""


def client_secret(request: Request) -> str | None:
    """The client key presented on a request (``gateway.keys.presented_key``)."""
    h = request.headers
    return presented_key(h.get("authorization"), h.get("api-key"), h.get("x-api-key"))


def admin_secret(request: Request) -> str | None:
    """The admin key presented on a request: as a client key is, or in ``x-admin-key``."""
    return client_secret(request) or request.headers.get("x-admin-key")


def require_client(request: Request) -> ClientKey:
    state = get_state(request)
    secret = client_secret(request)
    if not secret:
        raise ApiError(401, "Missing API key.", "authentication_error", "invalid_api_key")
    key = state.runtime.keys.lookup(secret)
    if key is None:
        raise ApiError(401, "Incorrect API key provided.", "authentication_error", "invalid_api_key")
    return key


def require_admin(request: Request) -> str:
    """Admin endpoints accept only the admin key; client keys get 403, missing/wrong keys 401."""
    return check_admin(get_state(request), admin_secret(request))


def check_admin(state: GatewayState, secret: str | None) -> str:
    """``require_admin`` on a presented key (also run by ``AdminGuard`` before the admin app reads anything)."""
    expected = state.runtime.admin_key
    if not expected:
        raise ApiError(
            403,
            "The admin API is disabled: no admin key is configured.",
            "permission_error",
            "admin_disabled",
        )
    if not secret:
        raise ApiError(401, "Missing admin key.", "authentication_error", "invalid_api_key")
    if admin_ok(expected, secret):
        return "admin"
    if state.runtime.keys.lookup(secret) is not None:
        raise ApiError(403, "Client keys may not use the admin API.", "permission_error", "forbidden")
    raise ApiError(401, "Incorrect admin key.", "authentication_error", "invalid_api_key")
