"""The answer of a translated call, said in its caller's protocol: a Chat Completions answer or stream from an
OpenAI-compatible backend, as a Messages API ``message`` or event stream (``wire.anthropic``).

The dispatcher and the shadow's candidate call apply it to every call whose ``translation`` is set, so
everything above them (the relay, accounting, shadow comparisons, capture) reads the caller's format only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from serving.backend import Translation, UpstreamResponse, UpstreamStream
from wire.anthropic.from_chat import from_chat_completion
from wire.anthropic.stream import ChatStreamTranslator


class TranslatedStream:
    """A chat SSE stream read as a Messages API stream. ``wire.sse.EventTooLarge`` propagates as the relay
    expects it."""

    __slots__ = ("_inner", "_translator", "endpoint", "headers")

    def __init__(self, inner: UpstreamStream, t: Translation) -> None:
        self._inner = inner
        self._translator = ChatStreamTranslator(t.stop_sequences)
        self.endpoint = inner.endpoint
        self.headers = inner.headers

    async def __aiter__(self) -> AsyncIterator[bytes]:
        tr = self._translator
        async for chunk in self._inner:
            out = tr.feed(chunk)
            if out:
                yield out
        tail = tr.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self._inner.aclose()


def translated_response(res: UpstreamResponse, t: Translation, backend: str) -> UpstreamResponse:
    """A complete chat answer as a ``message`` (with the chat answer's headers)."""
    message = from_chat_completion(res.document(backend), t.stop_sequences)
    return UpstreamResponse(
        res.status, orjson.dumps(message), endpoint=res.endpoint, parsed=message, headers=res.headers
    )


def translated(
    res: UpstreamResponse | UpstreamStream, t: Translation, backend: str
) -> UpstreamResponse | UpstreamStream:
    """The answer ``res`` (complete or a stream) of a call translated by ``t``, in the caller's protocol."""
    if isinstance(res, UpstreamResponse):
        return translated_response(res, t, backend)
    return TranslatedStream(res, t)
