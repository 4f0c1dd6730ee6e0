"""Wire models for the OpenAI endpoints, for the OpenAPI schema only.

Bodies on the hot path are never validated with these (they are parsed with orjson and forwarded); the
models are lenient (``extra="allow"``) and document what clients send.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wire.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Lenient):
    role: str
    content: Any = None


class ChatCompletionRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    max_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    n: int | None = Field(default=None, ge=1, le=128)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    metadata: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None


class CompletionRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    prompt: str | list[Any]
    stream: bool | None = None
    max_tokens: int | None = Field(default=None, ge=0, le=10_000_000)


class EmbeddingRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[Any]


class ResponsesRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[Any]
    stream: bool | None = None


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorInfo


DOCUMENTED = {
    CHAT: (ChatCompletionRequest, "Create a chat completion (streaming with stream=true)"),
    COMPLETIONS: (CompletionRequest, "Create a completion"),
    EMBEDDINGS: (EmbeddingRequest, "Create embeddings"),
    RESPONSES: (ResponsesRequest, "Create a model response (Responses API)"),
}
