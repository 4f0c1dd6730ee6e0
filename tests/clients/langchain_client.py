"""LangChain (``langchain-openai``: ``ChatOpenAI``, ``OpenAIEmbeddings``) as a client of the gateway."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import openai
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.clients import expected as spec
from tests.clients.matrix import run_all
from tests.clients.openai_python import Person, gateway_headers, status_error, stream_failure
from tests.conftest import CLIENT_KEY

TOOL = {"type": "function", "function": spec.WEATHER_TOOL}
PROMPT = [HumanMessage("hi")]


def usage_of(m: Any) -> list[int] | None:
    u = getattr(m, "usage_metadata", None)
    return None if u is None else [u["input_tokens"], u["output_tokens"]]


def joined(chunks: Iterable[BaseMessage]) -> AIMessageChunk:
    total: AIMessageChunk | None = None
    for ch in chunks:
        assert isinstance(ch, AIMessageChunk)
        total = ch if total is None else total + ch
    assert total is not None
    return total


def first_tool_call(m: Any) -> dict[str, Any]:
    call = m.tool_calls[0]
    return {"name": call["name"], "arguments": call["args"]}


def drive(base_url: str, client_id: str) -> dict[str, Any]:
    def chat(**kw: Any) -> ChatOpenAI:
        return ChatOpenAI(
            model=kw.pop("model", spec.MODEL),
            base_url=base_url,
            api_key=kw.pop("api_key", CLIENT_KEY),  # type: ignore[arg-type]
            max_retries=kw.pop("max_retries", 0),
            **kw,
        )

    llm = chat()
    responses_llm = chat(use_responses_api=True)

    def failing(model: str, key: str = CLIENT_KEY) -> Callable[[], Any]:
        def run() -> Any:
            try:
                chat(model=model, api_key=key).invoke(PROMPT)
            except openai.APIStatusError as exc:
                return status_error(exc)
            return {"error": None}

        return run

    def multi_step(model: ChatOpenAI) -> Any:
        bound = model.bind_tools([TOOL])
        first = bound.invoke(PROMPT)
        call = first.tool_calls[0]
        return bound.invoke([*PROMPT, first, ToolMessage(spec.TOOL_RESULT, tool_call_id=call["id"])]).text

    def structured_stream() -> Any:
        with warnings.catch_warnings():
            # langchain-openai dumps the SDK's parsed chunk with pydantic, which warns about the ``parsed``
            # field (third-party; the same against the real API).
            warnings.filterwarnings("ignore", "Pydantic serializer warnings", UserWarning)
            parts = list(llm.with_structured_output(Person, method="json_schema").stream(PROMPT))
        last = parts[-1]
        return last.model_dump() if isinstance(last, Person) else last

    def responses_failure() -> Any:
        try:
            chunks = list(chat(model=spec.MID_STREAM_MODEL, use_responses_api=True).stream(PROMPT))
        except (
            ValueError
        ) as exc:  # langchain-openai raises the Responses ``error`` event as "<code>: <message>"
            return {"error": type(exc).__name__, "message": str(exc)}
        return {"error": None, "text": joined(chunks).text}

    def embeddings(**kw: Any) -> Any:
        emb = OpenAIEmbeddings(
            model=spec.EMBEDDING_MODEL,
            base_url=base_url,
            api_key=CLIENT_KEY,  # type: ignore[arg-type]
            check_embedding_ctx_length=False,
            max_retries=0,
            **kw,
        )
        return emb.embed_documents(spec.EMBED_INPUTS)

    scenarios: dict[str, Callable[[], Any]] = {
        "chat": lambda: (lambda m: {"content": m.text, "usage": usage_of(m)})(llm.invoke(PROMPT)),
        "chat_stream": lambda: (lambda m: {"content": m.text, "usage": usage_of(m)})(
            joined(chat(stream_usage=False).stream(PROMPT))
        ),
        "chat_stream_usage": lambda: (lambda m: {"content": m.text, "usage": usage_of(m)})(
            joined(chat(stream_usage=True).stream(PROMPT))
        ),
        "batch": lambda: [m.text for m in llm.batch([PROMPT, PROMPT])],
        "tools": lambda: first_tool_call(llm.bind_tools([TOOL]).invoke(PROMPT)),
        "tools_stream": lambda: first_tool_call(joined(llm.bind_tools([TOOL]).stream(PROMPT))),
        "tools_multi_step": lambda: multi_step(llm),
        "structured": lambda: (
            llm.with_structured_output(Person, method="json_schema").invoke(PROMPT).model_dump()
        ),  # type: ignore[union-attr]
        "structured_function_calling": lambda: (
            llm.with_structured_output(Person, method="function_calling").invoke(PROMPT).model_dump()
        ),  # type: ignore[union-attr]
        "structured_json_mode": lambda: llm.with_structured_output(
            spec.PERSON_SCHEMA, method="json_mode"
        ).invoke(PROMPT),
        "structured_stream": structured_stream,
        "embeddings_float": lambda: embeddings(model_kwargs={"encoding_format": "float"}),
        "embeddings_base64": lambda: embeddings(),
        "responses": lambda: (lambda m: {"text": m.text, "usage": usage_of(m)})(responses_llm.invoke(PROMPT)),
        "responses_stream": lambda: (lambda m: {"text": m.text, "usage": usage_of(m)})(
            joined(responses_llm.stream(PROMPT))
        ),
        "responses_tools": lambda: first_tool_call(responses_llm.bind_tools([TOOL]).invoke(PROMPT)),
        "responses_tools_multi_step": lambda: multi_step(responses_llm),
        "responses_structured": lambda: (
            responses_llm.with_structured_output(Person, method="json_schema").invoke(PROMPT).model_dump()
        ),  # type: ignore[union-attr]
        "responses_stream_failure": responses_failure,
        "chat_stream_failure": lambda: stream_failure(chat(model=spec.MID_STREAM_MODEL).stream(PROMPT)),
        "error_401": failing(spec.MODEL, "sk-wrong-key"),
        "error_403": failing(spec.SCOPED_OUT_MODEL, spec.SCOPED_KEY),
        "error_404": failing(spec.UNKNOWN_MODEL),
        "error_5xx": failing(spec.UPSTREAM_5XX_MODEL),
        "error_429_retry": lambda: {
            "content": chat(model=spec.flaky_model(client_id), max_retries=2).invoke(PROMPT).text
        },
        "headers": lambda: gateway_headers(
            chat(include_response_headers=True).invoke(PROMPT).response_metadata["headers"]
        ),
    }
    return run_all(scenarios)
