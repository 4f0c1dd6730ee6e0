"""The official OpenAI Python SDK as a client of the gateway: every scenario, sync and async."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import openai
from pydantic import BaseModel

from tests.clients import expected as spec
from tests.clients.matrix import run_all, run_all_async
from tests.conftest import CLIENT_KEY

MSG: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS: list[Any] = [{"type": "function", "function": spec.WEATHER_TOOL}]
RESPONSES_TOOLS: list[Any] = [{"type": "function", **spec.WEATHER_TOOL}]
JSON_SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": spec.PERSON_SCHEMA, "strict": True},
}


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


def status_error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message")
    assert isinstance(message, str) and message in str(exc), (message, str(exc))
    return {"error": type(exc).__name__, "status": exc.status_code, "message": message}


def usage_of(u: Any) -> list[int] | None:
    if u is None:
        return None
    if hasattr(u, "input_tokens"):
        return [u.input_tokens, u.output_tokens]
    return [u.prompt_tokens, u.completion_tokens]


def decode_base64(vec: str) -> list[float]:
    raw = base64.b64decode(vec)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def gateway_headers(headers: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: headers.get(k) for k in ("x-pointsman-route", "x-pointsman-backend", "x-pointsman-model")
    }
    out["cost"] = headers.get("x-pointsman-cost-usd") is not None
    return out


def tool_call(name: str, arguments: str) -> dict[str, Any]:
    return {"name": name, "arguments": json.loads(arguments)}


def stream_failure(chunks: Any) -> dict[str, Any]:
    try:
        for _ in chunks:
            pass
    except openai.APIError as exc:
        return {"error": type(exc).__name__, "message": exc.message}
    return {"error": None}


def responses_failure(events: list[Any]) -> dict[str, Any]:
    """A Responses stream that failed mid-way ends with an ``error`` event whose sequence number continues."""
    last = events[-1]
    if last.type != "error":
        return {"event": last.type}
    follows = len(events) > 1 and last.sequence_number == events[-2].sequence_number + 1
    return {"event": "error", "message": last.message, "sequence_number_follows": follows}


ASYNC_COVERS = frozenset(
    {
        "chat",
        "chat_stream_usage",
        "tools_stream",
        "embeddings_base64",
        "responses_stream",
        "responses_stream_failure",
        "chat_stream_failure",
        "error_401",
        "error_429_retry",
        "headers",
    }
)
"""The async client's own code paths (async streams, retries, errors); the rest is shared with the sync one."""


def drive_sync(base_url: str, client_id: str) -> dict[str, Any]:
    with (
        openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as c,
        openai.OpenAI(base_url=base_url, api_key="sk-wrong-key", max_retries=0) as wrong,
        openai.OpenAI(base_url=base_url, api_key=spec.SCOPED_KEY, max_retries=0) as scoped,
    ):
        return run_all(sync_scenarios(c, wrong, scoped, client_id))


async def drive_async(base_url: str, client_id: str) -> dict[str, Any]:
    async with (
        openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as c,
        openai.AsyncOpenAI(base_url=base_url, api_key="sk-wrong-key", max_retries=0) as wrong,
    ):
        return await run_all_async(async_scenarios(c, wrong, client_id))


def sync_scenarios(
    c: openai.OpenAI, wrong: openai.OpenAI, scoped: openai.OpenAI, client_id: str
) -> dict[str, Callable[[], Any]]:
    chat = c.chat.completions

    def plain() -> Any:
        r = chat.create(model=spec.MODEL, messages=MSG)
        return {"content": r.choices[0].message.content, "usage": usage_of(r.usage)}

    def streamed(**kw: Any) -> Any:
        chunks = list(chat.create(model=spec.MODEL, messages=MSG, stream=True, **kw))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        return {"content": text, "usage": next((usage_of(ch.usage) for ch in chunks if ch.usage), None)}

    def n2() -> Any:
        r = chat.create(model=spec.MODEL, messages=MSG, n=2)
        return [ch.message.content for ch in sorted(r.choices, key=lambda ch: ch.index)]

    def logprobs() -> Any:
        r = chat.create(model=spec.MODEL, messages=MSG, logprobs=True, top_logprobs=2)
        content = r.choices[0].logprobs.content if r.choices[0].logprobs else None
        return {
            "text": "".join(t.token for t in content or []),
            "top": [len(t.top_logprobs) for t in content or []],
        }

    def tools() -> Any:
        r = chat.create(model=spec.MODEL, messages=MSG, tools=TOOLS)
        call = (r.choices[0].message.tool_calls or [])[0]
        assert call.type == "function"
        return tool_call(call.function.name, call.function.arguments)

    def tools_stream() -> Any:
        name, args = "", ""
        for ch in chat.create(model=spec.MODEL, messages=MSG, tools=TOOLS, stream=True):
            for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                name += (d.function.name or "") if d.function else ""
                args += (d.function.arguments or "") if d.function else ""
        return tool_call(name, args)

    def tools_multi_step() -> Any:
        first = chat.create(model=spec.MODEL, messages=MSG, tools=TOOLS).choices[0].message
        call = (first.tool_calls or [])[0]
        follow = [
            *MSG,
            first.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": spec.TOOL_RESULT},
        ]
        return chat.create(model=spec.MODEL, messages=follow, tools=TOOLS).choices[0].message.content

    def structured() -> Any:
        parsed = (
            c.chat.completions.parse(model=spec.MODEL, messages=MSG, response_format=Person)
            .choices[0]
            .message.parsed
        )
        raw = (
            chat.create(model=spec.MODEL, messages=MSG, response_format=JSON_SCHEMA)
            .choices[0]
            .message.content
        )
        assert parsed is not None and json.loads(raw or "") == parsed.model_dump()
        return parsed.model_dump()

    def embeddings_float() -> Any:
        r = c.embeddings.create(model=spec.EMBEDDING_MODEL, input=spec.EMBED_INPUTS, encoding_format="float")
        return [d.embedding for d in r.data]

    def embeddings_base64() -> Any:
        default = [
            d.embedding for d in c.embeddings.create(model=spec.EMBEDDING_MODEL, input=spec.EMBED_INPUTS).data
        ]
        raw = c.embeddings.create(
            model=spec.EMBEDDING_MODEL, input=spec.EMBED_INPUTS, encoding_format="base64"
        ).data
        assert [decode_base64(d.embedding) for d in raw] == default  # type: ignore[arg-type]
        return default

    def responses() -> Any:
        r = c.responses.create(model=spec.MODEL, input="hi")
        return {"text": r.output_text, "usage": usage_of(r.usage)}

    def responses_stream() -> Any:
        events = list(c.responses.create(model=spec.MODEL, input="hi", stream=True))
        assert [e.sequence_number for e in events] == list(range(len(events)))
        done = events[-1]
        assert done.type == "response.completed"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        return {"text": text, "usage": usage_of(done.response.usage)}

    def responses_tools() -> Any:
        out = c.responses.create(model=spec.MODEL, input="hi", tools=RESPONSES_TOOLS).output
        call = next(o for o in out if o.type == "function_call")
        return tool_call(call.name, call.arguments)

    def responses_tools_stream() -> Any:
        events = list(c.responses.create(model=spec.MODEL, input="hi", tools=RESPONSES_TOOLS, stream=True))
        added = next(e.item for e in events if e.type == "response.output_item.added")
        assert added.type == "function_call"
        args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        return tool_call(added.name, args)

    def responses_tools_multi_step() -> Any:
        first = c.responses.create(model=spec.MODEL, input="hi", tools=RESPONSES_TOOLS)
        call = next(o for o in first.output if o.type == "function_call")
        follow: Any = [
            {"role": "user", "content": "hi"},
            *[o.model_dump(exclude_none=True) for o in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": spec.TOOL_RESULT},
        ]
        return c.responses.create(model=spec.MODEL, input=follow, tools=RESPONSES_TOOLS).output_text

    def responses_structured() -> Any:
        r = c.responses.parse(model=spec.MODEL, input="hi", text_format=Person)
        assert r.output_parsed is not None
        return r.output_parsed.model_dump()

    def responses_stream_failure() -> Any:
        return responses_failure(
            list(c.responses.create(model=spec.MID_STREAM_MODEL, input="hi", stream=True))
        )

    def chat_stream_failure() -> Any:
        return stream_failure(chat.create(model=spec.MID_STREAM_MODEL, messages=MSG, stream=True))

    def failing(client: openai.OpenAI, model: str) -> Callable[[], Any]:
        def run() -> Any:
            try:
                client.chat.completions.create(model=model, messages=MSG)
            except openai.APIStatusError as exc:
                return status_error(exc)
            return {"error": None}

        return run

    def retried() -> Any:
        r = c.with_options(max_retries=2).chat.completions.create(
            model=spec.flaky_model(client_id), messages=MSG
        )
        return {"content": r.choices[0].message.content}

    def headers() -> Any:
        return gateway_headers(chat.with_raw_response.create(model=spec.MODEL, messages=MSG).headers)

    return {
        "chat": plain,
        "chat_stream": streamed,
        "chat_stream_usage": lambda: streamed(stream_options={"include_usage": True}),
        "chat_n2": n2,
        "logprobs": logprobs,
        "tools": tools,
        "tools_stream": tools_stream,
        "tools_multi_step": tools_multi_step,
        "structured": structured,
        "embeddings_float": embeddings_float,
        "embeddings_base64": embeddings_base64,
        "responses": responses,
        "responses_stream": responses_stream,
        "responses_tools": responses_tools,
        "responses_tools_stream": responses_tools_stream,
        "responses_tools_multi_step": responses_tools_multi_step,
        "responses_structured": responses_structured,
        "responses_stream_failure": responses_stream_failure,
        "chat_stream_failure": chat_stream_failure,
        "error_401": failing(wrong, spec.MODEL),
        "error_403": failing(scoped, spec.SCOPED_OUT_MODEL),
        "error_404": failing(c, spec.UNKNOWN_MODEL),
        "error_5xx": failing(c, spec.UPSTREAM_5XX_MODEL),
        "error_429_retry": retried,
        "headers": headers,
        "models": lambda: sorted(m.id for m in c.models.list()),
    }


def async_scenarios(
    c: openai.AsyncOpenAI, wrong: openai.AsyncOpenAI, client_id: str
) -> dict[str, Callable[[], Awaitable[Any]]]:
    """The async client's own code paths: async streams, async retries, async errors."""
    chat = c.chat.completions

    async def plain() -> Any:
        r = await chat.create(model=spec.MODEL, messages=MSG)
        return {"content": r.choices[0].message.content, "usage": usage_of(r.usage)}

    async def streamed_usage() -> Any:
        stream = await chat.create(
            model=spec.MODEL, messages=MSG, stream=True, stream_options={"include_usage": True}
        )
        chunks = [ch async for ch in stream]
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        return {"content": text, "usage": next((usage_of(ch.usage) for ch in chunks if ch.usage), None)}

    async def tools_stream() -> Any:
        name, args = "", ""
        async for ch in await chat.create(model=spec.MODEL, messages=MSG, tools=TOOLS, stream=True):
            for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                name += (d.function.name or "") if d.function else ""
                args += (d.function.arguments or "") if d.function else ""
        return tool_call(name, args)

    async def embeddings_base64() -> Any:
        return [
            d.embedding
            for d in (await c.embeddings.create(model=spec.EMBEDDING_MODEL, input=spec.EMBED_INPUTS)).data
        ]

    async def responses_stream() -> Any:
        events = [e async for e in await c.responses.create(model=spec.MODEL, input="hi", stream=True)]
        done = events[-1]
        assert done.type == "response.completed"
        return {
            "text": "".join(e.delta for e in events if e.type == "response.output_text.delta"),
            "usage": usage_of(done.response.usage),
        }

    async def responses_stream_failure() -> Any:
        stream = await c.responses.create(model=spec.MID_STREAM_MODEL, input="hi", stream=True)
        return responses_failure([e async for e in stream])

    async def chat_stream_failure() -> Any:
        try:
            async for _ in await chat.create(model=spec.MID_STREAM_MODEL, messages=MSG, stream=True):
                pass
        except openai.APIError as exc:
            return {"error": type(exc).__name__, "message": exc.message}
        return {"error": None}

    async def error_401() -> Any:
        try:
            await wrong.chat.completions.create(model=spec.MODEL, messages=MSG)
        except openai.APIStatusError as exc:
            return status_error(exc)
        return {"error": None}

    async def retried() -> Any:
        r = await c.with_options(max_retries=2).chat.completions.create(
            model=spec.flaky_model(client_id), messages=MSG
        )
        return {"content": r.choices[0].message.content}

    async def headers() -> Any:
        raw = await chat.with_raw_response.create(model=spec.MODEL, messages=MSG)
        return gateway_headers(raw.headers)

    return {
        "chat": plain,
        "chat_stream_usage": streamed_usage,
        "tools_stream": tools_stream,
        "embeddings_base64": embeddings_base64,
        "responses_stream": responses_stream,
        "responses_stream_failure": responses_stream_failure,
        "chat_stream_failure": chat_stream_failure,
        "error_401": error_401,
        "error_429_retry": retried,
        "headers": headers,
    }
