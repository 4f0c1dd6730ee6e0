"""The Responses API's stored-response endpoints, for the team that made the response: ``GET`` and ``DELETE
/v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``, ``POST /v1/responses/{id}/cancel``.

Each is relayed to where the response is stored — the backend and endpoint that answered it, from its record
(``routing.response_owners``) — with the backend's credentials, the query string as the client sent it, and the
provider's answer (status, body, its request id and rate-limit headers) relayed back. A response another team made,
or one the gateway never relayed (no record: nothing says whose it is, nor where it is), gets the provider's own
404. The input items a listing shows are recorded as the response's owner's (another team citing one by id gets
the provider's 404, as for its output items). Nothing is generated, so nothing is priced or recorded in the ledger.
Off the hot path (FastAPI)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Request, Response

from gateway.deps import get_state, require_client
from gateway.errors import bad_request, to_api_error
from gateway.keys import ClientKey
from gateway.state import GatewayState
from gateway.upstream_headers import relayed
from serving.errors import UpstreamError
from serving.http_backend import OpenAIHTTPBackend
from wire.answer import item_ids

router = APIRouter(tags=["inference"])
Key = Annotated[ClientKey, Depends(require_client)]
State = Annotated[GatewayState, Depends(get_state)]


async def _relay(
    state: GatewayState, key: ClientKey, request: Request, response_id: str, part: str = ""
) -> Response:
    """``request`` about the stored response ``response_id`` (``part``: what of it, after its path), relayed."""
    stored = await state.inference.owners.owned(response_id, key.name, key.team)
    if "stream=true" in request.url.query.lower():
        raise bad_request(
            "Streaming a stored response again is not supported through pointsman (it is for background "
            "responses, which are not either).",
            "stream",
            "unsupported_parameter",
        )
    backend = state.registry.get(stored.backend)
    if not isinstance(backend, OpenAIHTTPBackend):
        raise to_api_error(
            UpstreamError(f"the backend {stored.backend!r} that stored it is not configured now", backend="")
        )
    try:
        answer = await backend.stored_request(
            request.method,
            stored.endpoint,
            f"responses/{quote(response_id, safe='')}{part}",
            request.url.query,
            state.runtime.config.server.request_timeout_s,
        )
    except UpstreamError as exc:
        raise to_api_error(exc) from None
    if part == "/input_items" and answer.status == 200:
        try:
            listed = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            listed = None
        if isinstance(listed, dict):
            state.inference.owners.record_soon(item_ids(listed.get("data")), stored)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in relayed(answer.headers)}
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type, headers=headers)


@router.get("/v1/responses/{response_id}", summary="Retrieve a stored response (its team's)")
async def retrieve(response_id: str, request: Request, key: Key, state: State) -> Response:
    return await _relay(state, key, request, response_id)


@router.delete("/v1/responses/{response_id}", summary="Delete a stored response (its team's)")
async def delete(response_id: str, request: Request, key: Key, state: State) -> Response:
    return await _relay(state, key, request, response_id)


@router.get("/v1/responses/{response_id}/input_items", summary="List a stored response's input items")
async def input_items(response_id: str, request: Request, key: Key, state: State) -> Response:
    return await _relay(state, key, request, response_id, "/input_items")


@router.post("/v1/responses/{response_id}/cancel", summary="Cancel a stored response (its team's)")
async def cancel(response_id: str, request: Request, key: Key, state: State) -> Response:
    return await _relay(state, key, request, response_id, "/cancel")
