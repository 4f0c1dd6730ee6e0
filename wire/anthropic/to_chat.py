"""A Messages API request said as an OpenAI Chat Completions request (for OpenAI-compatible and vLLM backends).

What maps: ``system`` (a string or text blocks) to a system message; ``messages`` with text, image (base64 or
URL), text and PDF documents, ``tool_use`` (assistant ``tool_calls``, ``input`` as the JSON ``arguments``) and
``tool_result`` (``tool`` messages, in order, before the rest of the user turn); ``tools`` to functions (the
``input_schema`` as ``parameters``); ``tool_choice`` (auto, any as required, tool as a named function, none;
``disable_parallel_tool_use`` as ``parallel_tool_calls: false``); ``stop_sequences`` to ``stop``; ``max_tokens``
to ``max_completion_tokens``; ``temperature``, ``top_p`` and ``top_k`` (vLLM honours it; OpenAI refuses it
itself), ``stream``; ``metadata.user_id`` to ``user`` and the other ``metadata`` members (the gateway's tags)
to ``metadata``. ``cache_control`` is a caching hint with no effect on the answer: it has no Chat Completions
form and is left out. ``thinking: {type: disabled}`` is the Chat default.

Everything else raises ``Untranslatable`` naming the field: extended thinking, thinking blocks, server tools,
a tool result marked ``is_error`` or holding images, documents from URLs or files, citations, and any member
this module does not know.
"""

from __future__ import annotations

from typing import Any

import orjson

from wire.anthropic.untranslatable import Untranslatable

_PASSED = ("model", "temperature", "top_p", "top_k", "stream")
_KNOWN = frozenset(
    {
        *_PASSED,
        "max_tokens",
        "system",
        "messages",
        "tools",
        "tool_choice",
        "stop_sequences",
        "metadata",
        "thinking",
        "service_tier",
    }
)


def to_chat_request(doc: dict[str, Any]) -> dict[str, Any]:
    """The Chat Completions request for Messages request ``doc`` (a validated Messages body)."""
    for k in doc:
        if k not in _KNOWN:
            raise Untranslatable(k, "has no Chat Completions equivalent")
    out: dict[str, Any] = {}
    for k in _PASSED:
        if k in doc:
            out[k] = doc[k]
    messages: list[dict[str, Any]] = []
    system = doc.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _system_text(system)})
    msgs = doc.get("messages")
    if not isinstance(msgs, list):
        raise Untranslatable("messages", "must be an array")
    for i, m in enumerate(msgs):
        messages.extend(_message(m, f"messages[{i}]"))
    out["messages"] = messages
    if "max_tokens" in doc:
        out["max_completion_tokens"] = doc["max_tokens"]
    stops = doc.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise Untranslatable("stop_sequences", "must be an array of strings")
        if stops:
            out["stop"] = list(stops)
    tools = doc.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise Untranslatable("tools", "must be an array")
        if tools:
            out["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    if doc.get("tool_choice") is not None:
        _tool_choice(doc["tool_choice"], out)
    _metadata(doc.get("metadata"), out)
    thinking = doc.get("thinking")
    if thinking is not None and not (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        raise Untranslatable("thinking", "extended thinking has no Chat Completions equivalent")
    tier = doc.get("service_tier")
    if tier is not None and tier != "auto":
        raise Untranslatable("service_tier", f"{tier!r} has no Chat Completions equivalent")
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise Untranslatable("system", "must be a string or an array of text blocks")
    texts: list[str] = []
    for i, b in enumerate(system):
        if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
            raise Untranslatable(f"system[{i}]", "only text blocks have a Chat Completions equivalent")
        _only(b, f"system[{i}]", ("type", "text", "cache_control"))
        texts.append(b["text"])
    return "\n\n".join(texts)


def _only(block: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    for k in block:
        if k not in allowed:
            raise Untranslatable(f"{where}.{k}", "has no Chat Completions equivalent")


def _message(m: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(m, dict):
        raise Untranslatable(where, "must be an object")
    _only(m, where, ("role", "content"))
    role = m.get("role")
    if role not in ("user", "assistant"):
        raise Untranslatable(f"{where}.role", f"{role!r} is neither user nor assistant")
    content = m.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise Untranslatable(f"{where}.content", "must be a string or an array of blocks")
    if role == "assistant":
        return [_assistant(content, where)]
    return _user(content, where)


def _assistant(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, b in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            _only(b, at, ("type", "text", "cache_control"))
            texts.append(str(b.get("text", "")))
        elif kind == "tool_use":
            _only(b, at, ("type", "id", "name", "input", "cache_control"))
            calls.append(
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input")).decode()},
                }
            )
        else:
            raise Untranslatable(
                at, f"a {kind!r} block in an assistant turn has no Chat Completions equivalent"
            )
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _user(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, b in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "tool_result":
            results.append(_tool_result(b, at))
        elif kind in ("text", "image", "document"):
            parts.append(_part(b, at))
        else:
            raise Untranslatable(at, f"a {kind!r} block has no Chat Completions equivalent")
    out = results
    if parts or not results:
        out.append({"role": "user", "content": parts})
    return out


def _part(b: dict[str, Any], at: str) -> dict[str, Any]:
    kind = b["type"]
    if kind == "text":
        _only(b, at, ("type", "text", "cache_control"))
        return {"type": "text", "text": str(b.get("text", ""))}
    src = b.get("source")
    if not isinstance(src, dict):
        raise Untranslatable(f"{at}.source", "must be an object")
    st = src.get("type")
    if kind == "image":
        _only(b, at, ("type", "source", "cache_control"))
        if st == "base64":
            url = f"data:{src.get('media_type')};base64,{src.get('data')}"
        elif st == "url":
            url = str(src.get("url"))
        else:
            raise Untranslatable(
                f"{at}.source.type", f"an image from {st!r} has no Chat Completions equivalent"
            )
        return {"type": "image_url", "image_url": {"url": url}}
    _only(b, at, ("type", "source", "cache_control"))
    if st == "text" and isinstance(src.get("data"), str):
        return {"type": "text", "text": src["data"]}
    if st == "base64" and src.get("media_type") == "application/pdf":
        return {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{src.get('data')}"}}
    raise Untranslatable(f"{at}.source.type", f"a document from {st!r} has no Chat Completions equivalent")


def _tool_result(b: dict[str, Any], at: str) -> dict[str, Any]:
    _only(b, at, ("type", "tool_use_id", "content", "is_error", "cache_control"))
    if b.get("is_error"):
        raise Untranslatable(f"{at}.is_error", "a failed tool result has no Chat Completions equivalent")
    content = b.get("content")
    text: str | list[dict[str, Any]]
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = []
        for k, p in enumerate(content):
            if not isinstance(p, dict) or p.get("type") != "text":
                raise Untranslatable(
                    f"{at}.content[{k}]", "a tool result can only hold text in Chat Completions"
                )
            _only(p, f"{at}.content[{k}]", ("type", "text", "cache_control"))
            text.append({"type": "text", "text": str(p.get("text", ""))})
    else:
        raise Untranslatable(f"{at}.content", "must be a string or an array of blocks")
    return {"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": text}


def _tool(t: Any, at: str) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise Untranslatable(at, "must be an object")
    if t.get("type") not in (None, "custom"):
        raise Untranslatable(
            f"{at}.type", f"the server tool {t.get('type')!r} has no Chat Completions equivalent"
        )
    _only(t, at, ("type", "name", "description", "input_schema", "cache_control"))
    fn: dict[str, Any] = {"name": t.get("name")}
    if "description" in t:
        fn["description"] = t["description"]
    fn["parameters"] = t.get("input_schema")
    return {"type": "function", "function": fn}


def _tool_choice(tc: Any, out: dict[str, Any]) -> None:
    kind = tc.get("type") if isinstance(tc, dict) else None
    if kind == "auto":
        choice: Any = "auto"
    elif kind == "any":
        choice = "required"
    elif kind == "none":
        choice = "none"
    elif kind == "tool" and isinstance(tc.get("name"), str):
        choice = {"type": "function", "function": {"name": tc["name"]}}
    else:
        raise Untranslatable("tool_choice", "must be auto, any, none or a named tool")
    assert isinstance(tc, dict)
    _only(tc, "tool_choice", ("type", "name", "disable_parallel_tool_use"))
    out["tool_choice"] = choice
    if tc.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _metadata(md: Any, out: dict[str, Any]) -> None:
    if not isinstance(md, dict):
        return
    rest = {k: v for k, v in md.items() if k != "user_id"}
    if isinstance(md.get("user_id"), str):
        out["user"] = md["user_id"]
    if rest:
        out["metadata"] = rest


def answer_message(message: dict[str, Any]) -> dict[str, Any] | None:
    """A Messages API answer as one Chat assistant message (its text and tool calls; thinking is not part of
    a Chat answer), or None when it says neither."""
    content = message.get("content")
    if not isinstance(content, list):
        return None
    keep = ("type", "text", "id", "name", "input")
    blocks = [
        {k: b[k] for k in keep if k in b}
        for b in content
        if isinstance(b, dict) and b.get("type") in ("text", "tool_use")
    ]
    if not blocks:
        return None
    return _assistant(blocks, "content")
