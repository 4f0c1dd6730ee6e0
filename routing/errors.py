"""Routing errors. Each declares its HTTP face through ``api_error()``; the gateway renders it."""

from __future__ import annotations


class RoutingError(Exception):
    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def api_error(self) -> tuple[int, str, str, str | None, dict[str, str]]:
        return self.status, self.message, self.type, self.code, self.headers


class ModelNotFound(RoutingError):
    status = 404
    code = "model_not_found"


class NoHealthyTarget(RoutingError):
    """Every candidate's circuit is open (or none is usable)."""

    status = 503
    type = "upstream_error"
    code = "no_healthy_backend"
