"""The litellm SDK as a client of the gateway (``openai/<model>`` with ``api_base`` pointing at it).

Run as its own process (``python -m tests.clients.litellm_client BASE_URL CLIENT_ID`` prints the results as
JSON): litellm keeps process-wide state (registered models, cached HTTP clients, event loops it never closes)
that must not leak into the test process.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from tests.clients import expected as spec
from tests.clients.matrix import run_all
from tests.clients.openai_python import JSON_SCHEMA, Person, gateway_headers, tool_call
from tests.conftest import CLIENT_KEY

MSG: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": spec.WEATHER_TOOL}]


def error_of(exc: Exception) -> dict[str, Any]:
    """litellm's typed error: its class, the HTTP status and the gateway's message (which litellm prefixes
    with ``litellm.<Class>: <Class>: OpenAIException - ``)."""
    text = str(getattr(exc, "message", exc))
    _, sep, message = text.partition("OpenAIException - ")
    if not sep:
        return {"error": type(exc).__name__, "unparsed": text}
    return {
        "error": type(exc).__name__,
        "status": getattr(exc, "status_code", None),
        "message": message.split(" Original exception:")[0],
    }


def load_litellm() -> Any:
    # The price map shipped with the package: never fetched over the network (as serving/ does).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    lib = importlib.import_module("litellm")
    lib.suppress_debug_info = True
    lib.telemetry = False
    return lib


def drive(base_url: str, client_id: str) -> dict[str, Any]:
    litellm = load_litellm()
    # A model litellm does not know is answered by a non-streamed call replayed as a stream ("fake stream");
    # registering it as natively streaming is what a litellm user does for a gateway's own model names.
    litellm.register_model(
        {
            f"openai/{spec.MID_STREAM_MODEL}": {
                "litellm_provider": "openai",
                "mode": "responses",
                "supports_native_streaming": True,
            }
        }
    )

    def call(**kw: Any) -> Any:
        kw.setdefault("model", f"openai/{spec.MODEL}")
        kw.setdefault("api_key", CLIENT_KEY)
        kw.setdefault("max_retries", 0)
        return litellm.completion(api_base=base_url, messages=kw.pop("messages", MSG), **kw)

    def streamed(**kw: Any) -> Any:
        chunks = list(call(stream=True, **kw))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        usage = next((ch.usage for ch in reversed(chunks) if getattr(ch, "usage", None)), None)
        return {
            "content": text,
            "usage": None if usage is None else [usage.prompt_tokens, usage.completion_tokens],
        }

    def plain() -> Any:
        r = call()
        return {
            "content": r.choices[0].message.content,
            "usage": [r.usage.prompt_tokens, r.usage.completion_tokens],
        }

    def n2() -> Any:
        r = call(n=2)
        return [ch.message.content for ch in sorted(r.choices, key=lambda ch: ch.index)]

    def logprobs() -> Any:
        content = call(logprobs=True, top_logprobs=2).choices[0].logprobs["content"]
        return {
            "text": "".join(t["token"] for t in content),
            "top": [len(t["top_logprobs"]) for t in content],
        }

    def tools() -> Any:
        c = call(tools=TOOLS).choices[0].message.tool_calls[0]
        return tool_call(c.function.name, c.function.arguments)

    def tools_stream() -> Any:
        name, args = "", ""
        for ch in call(tools=TOOLS, stream=True):
            for d in ch.choices[0].delta.tool_calls or [] if ch.choices else []:
                name += d.function.name or ""
                args += d.function.arguments or ""
        return tool_call(name, args)

    def tools_multi_step() -> Any:
        first = call(tools=TOOLS).choices[0].message
        follow = [
            *MSG,
            first.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": spec.TOOL_RESULT},
        ]
        return call(tools=TOOLS, messages=follow).choices[0].message.content

    def structured() -> Any:
        parsed = json.loads(call(response_format=Person).choices[0].message.content)
        assert parsed == json.loads(call(response_format=JSON_SCHEMA).choices[0].message.content)
        return parsed

    def embeddings(**kw: Any) -> Any:
        r = litellm.embedding(
            model=f"openai/{spec.EMBEDDING_MODEL}",
            input=spec.EMBED_INPUTS,
            api_base=base_url,
            api_key=CLIENT_KEY,
            max_retries=0,
            **kw,
        )
        return [d["embedding"] for d in r.data]

    def responses() -> Any:
        r = litellm.responses(model=f"openai/{spec.MODEL}", input="hi", api_base=base_url, api_key=CLIENT_KEY)
        text = "".join(p.text for o in r.output if o.type == "message" for p in o.content)
        return {"text": text, "usage": [r.usage.input_tokens, r.usage.output_tokens]}

    def responses_events(model: str) -> list[Any]:
        return list(
            litellm.responses(
                model=f"openai/{model}", input="hi", api_base=base_url, api_key=CLIENT_KEY, stream=True
            )
        )

    def responses_stream() -> Any:
        events = responses_events(spec.MODEL)
        done = events[-1]
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        return {"text": text, "usage": [done.response.usage.input_tokens, done.response.usage.output_tokens]}

    def responses_failure() -> Any:
        try:
            events = responses_events(spec.MID_STREAM_MODEL)
        except Exception as exc:
            return error_of(exc)
        return {"error": None, "last_event": str(events[-1].type)}

    def chat_stream_failure() -> Any:
        try:
            list(call(model=f"openai/{spec.MID_STREAM_MODEL}", stream=True))
        except Exception as exc:
            return error_of(exc)
        return {"error": None}

    def failing(model: str, key: str = CLIENT_KEY) -> Callable[[], Any]:
        def run() -> Any:
            try:
                call(model=f"openai/{model}", api_key=key)
            except Exception as exc:
                return error_of(exc)
            return {"error": None}

        return run

    def headers() -> Any:
        h = call()._hidden_params["additional_headers"]
        return gateway_headers({k.removeprefix("llm_provider-"): v for k, v in h.items()})

    scenarios: dict[str, Callable[[], Any]] = {
        "chat": plain,
        "chat_stream": streamed,
        "chat_stream_usage": lambda: streamed(stream_options={"include_usage": True}),
        "chat_n2": n2,
        "logprobs": logprobs,
        "tools": tools,
        "tools_stream": tools_stream,
        "tools_multi_step": tools_multi_step,
        "structured": structured,
        "embeddings_float": lambda: embeddings(encoding_format="float"),
        "embeddings_base64": lambda: embeddings(),
        "responses": responses,
        "responses_stream": responses_stream,
        "responses_stream_failure": responses_failure,
        "chat_stream_failure": chat_stream_failure,
        "error_401": failing(spec.MODEL, "sk-wrong-key"),
        "error_403": failing(spec.SCOPED_OUT_MODEL, spec.SCOPED_KEY),
        "error_404": failing(spec.UNKNOWN_MODEL),
        "error_5xx": failing(spec.UPSTREAM_5XX_MODEL),
        "error_429_retry": lambda: {
            "content": call(model=f"openai/{spec.flaky_model(client_id)}", max_retries=2)
            .choices[0]
            .message.content
        },
        "headers": headers,
    }
    return run_all(scenarios)


if __name__ == "__main__":
    print(json.dumps(drive(sys.argv[1], sys.argv[2])))
