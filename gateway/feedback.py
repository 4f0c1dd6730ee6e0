"""``POST /v1/feedback``: a client's reward signal for one of its requests (not on the inference hot path)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from accounting.capture.feedback import FeedbackError
from gateway.deps import get_state, require_client
from gateway.errors import to_api_error
from gateway.inference.protocol import ErrorResponse
from gateway.keys import ClientKey
from gateway.state import GatewayState

router = APIRouter()


class FeedbackRequest(BaseModel):
    """Feedback on one request, identified by the ``x-request-id`` the gateway returned."""

    model_config = ConfigDict(extra="allow")

    request_id: str = Field(min_length=1, max_length=128)
    """The request's id (``x-request-id`` response header)."""
    metric: str = Field(min_length=1, max_length=64)
    """What is measured, e.g. ``thumbs_up``, ``score``, ``correction``."""
    value: bool | float | str | list[dict[str, Any]] | dict[str, Any]
    """A boolean, a number, or a corrected answer (a string, or chat messages) as a demonstration."""
    comment: str | None = Field(default=None, max_length=4000)
    """Free text (redacted before it is stored)."""


class FeedbackResponse(BaseModel):
    object: str = "feedback"
    id: int
    request_id: str
    metric: str
    kind: str
    """``boolean``, ``number`` or ``demonstration``."""
    created_at: float
    joined: dict[str, bool]
    """Whether the request's captured trace and its ledger record were found."""


@router.post(
    "/v1/feedback",
    tags=["feedback"],
    summary="Send feedback on a request",
    response_model=FeedbackResponse,
    responses={
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
    },
)
async def create_feedback(
    body: FeedbackRequest,
    key: Annotated[ClientKey, Depends(require_client)],
    state: Annotated[GatewayState, Depends(get_state)],
) -> dict[str, Any]:
    try:
        return await state.capture.feedback.submit(
            key=key.name,
            team=key.team,
            request_id=body.request_id,
            metric=body.metric,
            value=body.value,
            comment=body.comment,
        )
    except FeedbackError as exc:
        raise to_api_error(exc) from None
