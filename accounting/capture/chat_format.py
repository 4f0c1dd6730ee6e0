"""Captured exchanges in the chat format OpenAI fine-tuning takes: requests of any endpoint (chat, completions,
Responses, Anthropic Messages) as ``messages`` and ``tools``, the answer as one assistant message, and the check that a conversation
is one fine-tuning accepts."""

from __future__ import annotations

from typing import Any

from wire.anthropic.to_chat import answer_message as answer_to_chat
from wire.anthropic.to_chat import to_chat_request
from wire.anthropic.untranslatable import Untranslatable
from wire.endpoints import CHAT, COMPLETIONS, MESSAGES, RESPONSES

VALID_ROLES = frozenset({"system", "user", "assistant", "tool"})


def _text_of(content: Any) -> Any:
    """Content parts that are all text become one string; other parts (images) are kept."""
    if (
        isinstance(content, list)
        and content
        and all(
            isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text") for p in content
        )
    ):
        return "".join(str(p.get("text") or "") for p in content)
    return content


def clean_message(m: dict[str, Any]) -> dict[str, Any]:
    role = m.get("role")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role}
    if "content" in m:
        out["content"] = _text_of(m["content"])
    for k in ("name", "tool_call_id"):
        if isinstance(m.get(k), str):
            out[k] = m[k]
    if m.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": tc.get("id"),
                "type": "function",
                "function": {
                    "name": (tc.get("function") or {}).get("name"),
                    "arguments": (tc.get("function") or {}).get("arguments") or "{}",
                },
            }
            for tc in m["tool_calls"]
            if isinstance(tc, dict)
        ]
        if out.get("content") == "":
            out["content"] = None
    return out


def _chat_tools(tools: Any) -> list[dict[str, Any]] | None:
    if not isinstance(tools, list):
        return None
    out: list[dict[str, Any]] = []
    for t in tools:
        if not isinstance(t, dict) or t.get("type") != "function":
            continue
        nested = t.get("function")
        fn: dict[str, Any] = (
            nested
            if isinstance(nested, dict)
            else {k: t[k] for k in ("name", "description", "parameters", "strict") if k in t}
        )
        if fn.get("name"):
            out.append({"type": "function", "function": fn})
    return out or None


def to_chat(
    endpoint: str, request: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, bool | None] | None:
    """(messages, tools, parallel_tool_calls) of a captured request in the chat format, or None."""
    parallel = request.get("parallel_tool_calls")
    parallel = parallel if isinstance(parallel, bool) else None
    tools = _chat_tools(request.get("tools"))
    if endpoint == CHAT:
        msgs = request.get("messages")
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            return None
        return [clean_message(m) for m in msgs], tools, parallel
    if endpoint == COMPLETIONS:
        prompt = request.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            return None
        return [{"role": "user", "content": prompt}], None, None
    if endpoint == MESSAGES:
        try:
            chat = to_chat_request(request)
        except Untranslatable:
            return None
        p = chat.get("parallel_tool_calls")
        msgs = [clean_message(m) for m in chat["messages"]]
        return msgs, _chat_tools(chat.get("tools")), p if isinstance(p, bool) else None
    if endpoint == RESPONSES:
        out: list[dict[str, Any]] = []
        if isinstance(request.get("instructions"), str):
            out.append({"role": "system", "content": request["instructions"]})
        inp = request.get("input")
        if isinstance(inp, str):
            out.append({"role": "user", "content": inp})
        elif isinstance(inp, list):
            for item in inp:
                if not isinstance(item, dict):
                    return None
                kind = item.get("type", "message")
                if kind == "message" and item.get("role") in ("system", "developer", "user", "assistant"):
                    out.append(clean_message({"role": item["role"], "content": item.get("content")}))
                elif kind == "function_call":
                    out.append(
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": item.get("call_id"),
                                    "type": "function",
                                    "function": {
                                        "name": item.get("name"),
                                        "arguments": item.get("arguments") or "{}",
                                    },
                                }
                            ],
                        }
                    )
                elif kind == "function_call_output":
                    out.append(
                        {
                            "role": "tool",
                            "tool_call_id": item.get("call_id"),
                            "content": str(item.get("output") or ""),
                        }
                    )
                else:
                    return None
        else:
            return None
        return out, tools, parallel
    return None


def answer_message(endpoint: str, output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first choice of a stored answer as one assistant message, or None."""
    if not output:
        return None
    if endpoint == CHAT:
        msg = output[0].get("message")
        if not isinstance(msg, dict):
            return None
        m = clean_message({**msg, "role": "assistant"})
        return m if (m.get("content") or m.get("tool_calls")) else None
    if endpoint == MESSAGES:
        said = answer_to_chat(output[0])
        return clean_message(said) if said is not None else None
    if endpoint == COMPLETIONS:
        text = output[0].get("text")
        return {"role": "assistant", "content": text} if isinstance(text, str) and text else None
    if endpoint == RESPONSES:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for item in output:
            if item.get("type") == "message":
                texts.append(str(_text_of(item.get("content")) or ""))
            elif item.get("type") == "function_call":
                calls.append(
                    {
                        "id": item.get("call_id"),
                        "type": "function",
                        "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
                    }
                )
        r: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            r["tool_calls"] = calls
        return r if (r["content"] or calls) else None
    return None


def validate_messages(messages: list[dict[str, Any]]) -> str | None:
    """None when ``messages`` is a valid fine-tuning conversation, else what is wrong."""
    if not messages or messages[-1].get("role") != "assistant":
        return "the conversation must end with an assistant message"
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in VALID_ROLES:
            return f"messages[{i}]: invalid role {role!r}"
        content = m.get("content")
        if role == "assistant":
            if not content and not m.get("tool_calls"):
                return f"messages[{i}]: an assistant message needs content or tool_calls"
        elif role == "tool":
            if not m.get("tool_call_id"):
                return f"messages[{i}]: a tool message needs tool_call_id"
        elif not content:
            return f"messages[{i}]: empty content"
        if content is not None and not isinstance(content, str | list):
            return f"messages[{i}]: content must be a string or content parts"
    return None
