"""What the fake model answers, decided from the request the way a real model's answer is shaped by it.

- Tools offered (and ``tool_choice`` not ``none``) and the conversation does not end with a tool result: call
  the chosen tool (the named one, else the first function tool) with arguments sampled from its parameters.
- The conversation ends with a tool result: answer text that quotes it (so multi-step tool loops end).
- ``response_format`` / ``text.format`` with a JSON schema: the text is a JSON value that conforms to it;
  ``json_object``: a JSON object.
Chat Completions and the Responses API spell tools, tool choice, tool results and formats differently; both
are read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fakes.json_sample import sample


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Answer:
    text: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def _function_tools(tools: Any) -> list[tuple[str, Any]]:
    """(name, parameters) of each function tool, in either API's spelling."""
    out: list[tuple[str, Any]] = []
    for t in tools if isinstance(tools, list) else []:
        if not isinstance(t, dict) or t.get("type", "function") != "function":
            continue
        fn = t.get("function") if isinstance(t.get("function"), dict) else t
        if isinstance(fn.get("name"), str):
            out.append((fn["name"], fn.get("parameters") or {"type": "object", "properties": {}}))
    return out


def _chosen(tool_choice: Any, tools: list[tuple[str, Any]]) -> tuple[str, Any] | None:
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function") if isinstance(tool_choice.get("function"), dict) else tool_choice
        for name, params in tools:
            if name == fn.get("name"):
                return name, params
    return tools[0]


def _last_tool_result(body: dict[str, Any]) -> str | None:
    """The content of the tool result that ends the conversation, if it does."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        last = messages[-1]
        return _text_of(last.get("content")) if last.get("role") == "tool" else None
    items = body.get("input")
    if isinstance(items, list) and items and isinstance(items[-1], dict):
        last = items[-1]
        return _text_of(last.get("output")) if last.get("type") == "function_call_output" else None
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return orjson.dumps(content).decode()


def _format(body: dict[str, Any]) -> tuple[str, Any] | None:
    """('json_schema', schema) or ('json_object', None) when the request asks for JSON."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt.get("json_schema"), dict) else fmt
        return "json_schema", spec.get("schema") or {}
    if fmt.get("type") == "json_object":
        return "json_object", None
    return None


def decide(body: dict[str, Any], text: str, choice: int = 0) -> Answer:
    """The answer to ``body`` for choice number ``choice``; ``text`` is the plain text the fake would say."""
    result = _last_tool_result(body)
    if result is None:
        tool = _chosen(body.get("tool_choice"), _function_tools(body.get("tools")))
        if tool is not None:
            name, params = tool
            args = orjson.dumps(sample(params)).decode()
            return Answer(None, [ToolCall(f"call_fake_{choice}_{name}"[:40], name, args)])
    else:
        text = f"The tool said: {result}"
    fmt = _format(body)
    if fmt is not None:
        kind, schema = fmt
        value = sample(schema) if kind == "json_schema" else {"answer": text}
        return Answer(orjson.dumps(value).decode())
    return Answer(text if choice == 0 else f"{text} (choice {choice})")
