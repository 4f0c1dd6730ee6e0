"""Wire models for the OpenAI endpoints and Anthropic's Messages API, for the OpenAPI schema only.

Bodies on the hot path are never validated with these (they are parsed with orjson and forwarded); the
models are lenient (``extra="allow"``) and document what clients send.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wire.endpoints import CHAT, COMPLETIONS, COUNT_TOKENS, EMBEDDINGS, MESSAGES, RESPONSES


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


class AnthropicMessage(_Lenient):
    role: str
    content: str | list[Any]


class MessagesRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    messages: list[AnthropicMessage] = Field(min_length=1)
    max_tokens: int = Field(ge=1, le=10_000_000)
    system: str | list[Any] | None = None
    stream: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    metadata: dict[str, Any] | None = None


class CountTokensRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[Any] | None = None


class AnthropicErrorInfo(BaseModel):
    type: str
    message: str


class AnthropicErrorResponse(BaseModel):
    type: str
    error: AnthropicErrorInfo


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
    MESSAGES: (MessagesRequest, "Create a message (Anthropic's Messages API; streaming with stream=true)"),
    COUNT_TOKENS: (CountTokensRequest, "Count the tokens of a Messages API request"),
}
