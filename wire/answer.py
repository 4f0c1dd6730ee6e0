"""One answer out of a stream: the events of a chat, completions or Responses API stream put back together
into the body the same request would have got without ``stream``.

Chat and completions: one choice per ``index``, its content, refusal and reasoning deltas concatenated and
its tool-call deltas merged by their own ``index`` (id, type, name, arguments). Responses API: the
``response`` of ``response.completed`` / ``response.incomplete``; a stream cut off before either is rebuilt
from its output-item and delta events. Error events are noted, not merged. Anthropic's Messages API: the ``message`` (``wire.anthropic.answer``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wire.anthropic.answer import assemble_message
from wire.endpoints import COMPLETIONS, MESSAGES, RESPONSES
from wire.errors import event_error
from wire.sse import json_events
from wire.usage import parse_usage

_FINAL = ("response.completed", "response.incomplete")
_MESSAGE_TEXTS = ("content", "refusal", "reasoning_content", "reasoning")
"""Chat message fields that stream as text deltas (reasoning ones as vLLM and others send them)."""


class Answer:
    """An answer assembled from a stream's events: the body it would have had unstreamed."""

    __slots__ = ("body", "usage", "error")

    body: dict[str, Any]
    """``{"choices": [...]}`` (chat, completions), the Responses API ``response`` (``{"output": [...]}``) or the
    Messages API ``message`` (``{"content": [...]}``)."""
    usage: dict[str, Any] | None
    """The last ``usage`` object the stream reported."""
    error: str | None
    """The message of an error event (the answer is incomplete)."""

    def __init__(
        self,
        body: dict[str, Any],
        usage: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        self.body = body
        self.usage = usage
        self.error = error


class _Choice:
    """One choice of a streamed chat or completions answer, as its deltas arrive."""

    __slots__ = ("index", "finish_reason", "role", "texts", "tools")

    index: int
    finish_reason: str | None
    role: str
    texts: dict[str, list[str]]
    tools: dict[int, dict[str, Any]]

    def __init__(
        self,
        index: int,
        finish_reason: str | None = None,
        role: str = "assistant",
        texts: dict[str, list[str]] | None = None,
        tools: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.index = index
        self.finish_reason = finish_reason
        self.role = role
        self.texts = {} if texts is None else texts
        self.tools = {} if tools is None else tools

    def add(self, key: str, value: Any) -> None:
        if isinstance(value, str):
            self.texts.setdefault(key, []).append(value)

    def as_completion(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "finish_reason": self.finish_reason,
            "text": "".join(self.texts.get("text", ())),
        }

    def as_chat(self) -> dict[str, Any]:
        content = self.texts.get("content")
        msg: dict[str, Any] = {"role": self.role, "content": "".join(content) if content else None}
        if "refusal" in self.texts:
            msg["refusal"] = "".join(self.texts["refusal"])
        if self.tools:
            msg["tool_calls"] = [self.tools[i] for i in sorted(self.tools)]
        for key in ("reasoning_content", "reasoning"):
            if key in self.texts:
                msg[key] = "".join(self.texts[key])
        return {"index": self.index, "finish_reason": self.finish_reason, "message": msg}


def assemble(endpoint: str, blocks: Iterable[bytes]) -> Answer:
    """The answer in a stream's SSE event blocks (as relayed: one block may hold several events)."""
    if endpoint == MESSAGES:
        message, usage, error = assemble_message(json_events(blocks))
        return Answer(message, usage, error)
    answer = Answer({})
    choices: dict[int, _Choice] = {}
    items: dict[int, dict[str, Any]] = {}
    final: dict[str, Any] | None = None
    for name, doc in json_events(blocks):
        if not isinstance(doc, dict):
            continue
        usage = _usage(doc)
        if usage is not None:
            answer.usage = usage
        err = event_error(doc)
        if err is not None:
            answer.error = err
            continue
        if endpoint == RESPONSES:
            kind = doc.get("type")
            kind = kind if isinstance(kind, str) else name
            if kind in _FINAL and isinstance(doc.get("response"), dict):
                final = doc["response"]
            elif kind:
                _responses_event(items, kind, doc)
            continue
        for c in doc.get("choices") or ():
            if isinstance(c, dict):
                _choice_delta(choices, endpoint, c)
    if endpoint == RESPONSES:
        answer.body = (
            final
            if final is not None
            else {"object": "response", "output": [items[i] for i in sorted(items)]}
        )
    else:
        ordered = [choices[i] for i in sorted(choices)]
        answer.body = {
            "choices": [c.as_completion() if endpoint == COMPLETIONS else c.as_chat() for c in ordered]
        }
    return answer


def _usage(doc: dict[str, Any]) -> dict[str, Any] | None:
    u = doc.get("usage")
    if u is None and isinstance(doc.get("response"), dict):  # Responses API: in the response of the event
        u = doc["response"].get("usage")
    return u if isinstance(u, dict) and parse_usage(u) is not None else None


def _index(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _choice_delta(choices: dict[int, _Choice], endpoint: str, c: dict[str, Any]) -> None:
    idx = _index(c.get("index", 0), 0)
    acc = choices.get(idx)
    if acc is None:
        acc = choices[idx] = _Choice(idx)
    fr = c.get("finish_reason")
    if isinstance(fr, str) and fr:
        acc.finish_reason = fr
    if endpoint == COMPLETIONS:
        acc.add("text", c.get("text"))
        return
    delta = c.get("delta")
    if not isinstance(delta, dict):
        return
    if isinstance(delta.get("role"), str):
        acc.role = delta["role"]
    for key in _MESSAGE_TEXTS:
        acc.add(key, delta.get(key))
    for tc in delta.get("tool_calls") or ():
        if isinstance(tc, dict):
            _merge_tool_call(acc.tools, tc)


def _merge_tool_call(tools: dict[int, dict[str, Any]], tc: dict[str, Any]) -> None:
    idx = _index(tc.get("index", len(tools)), len(tools))
    cur = tools.setdefault(idx, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if isinstance(tc.get("id"), str):
        cur["id"] = tc["id"]
    if isinstance(tc.get("type"), str):
        cur["type"] = tc["type"]
    fn = tc.get("function")
    if isinstance(fn, dict):
        for key in ("name", "arguments"):
            if isinstance(fn.get(key), str):
                cur["function"][key] += fn[key]


# Responses API delta events: (output item it creates when none was announced, list it appends to or None for
# the item itself, the part it creates, the field its text goes to).
_DELTAS: dict[str, tuple[dict[str, Any], str | None, dict[str, Any], str]] = {
    "response.output_text.delta": (
        {"type": "message", "role": "assistant", "content": []},
        "content",
        {"type": "output_text", "text": ""},
        "text",
    ),
    "response.refusal.delta": (
        {"type": "message", "role": "assistant", "content": []},
        "content",
        {"type": "refusal", "refusal": ""},
        "refusal",
    ),
    "response.function_call_arguments.delta": (
        {"type": "function_call", "name": "", "arguments": ""},
        None,
        {},
        "arguments",
    ),
    "response.reasoning_summary_text.delta": (
        {"type": "reasoning", "summary": []},
        "summary",
        {"type": "summary_text", "text": ""},
        "text",
    ),
    "response.reasoning_text.delta": (
        {"type": "reasoning", "summary": [], "content": []},
        "content",
        {"type": "reasoning_text", "text": ""},
        "text",
    ),
}


def _responses_event(items: dict[int, dict[str, Any]], kind: str, doc: dict[str, Any]) -> None:
    idx = _index(doc.get("output_index"), 0)
    if kind in ("response.output_item.added", "response.output_item.done"):
        if isinstance(doc.get("item"), dict):
            items[idx] = doc["item"]  # done: the complete item replaces what the deltas built
        return
    spec = _DELTAS.get(kind)
    delta = doc.get("delta")
    if spec is None or not isinstance(delta, str):
        return
    new_item, list_key, new_part, text_key = spec
    target = items.get(idx)
    if target is None:
        target = items[idx] = {k: (list(v) if isinstance(v, list) else v) for k, v in new_item.items()}
    if list_key is not None:
        parts = target.get(list_key)
        if not isinstance(parts, list):
            parts = target[list_key] = []
        at = _index(doc.get("summary_index" if list_key == "summary" else "content_index"), len(parts) - 1)
        at = max(at, 0)
        while len(parts) <= at:
            parts.append(dict(new_part))
        if not isinstance(parts[at], dict):
            parts[at] = dict(new_part)
        target = parts[at]
    prev = target.get(text_key)
    target[text_key] = (prev if isinstance(prev, str) else "") + delta


def stored_response_id(request: dict[str, Any], response: Any) -> str | None:
    """The id of a Responses API ``response`` object the provider keeps (``store`` not false in the request, nor
    in the answer where it says), else None."""
    if request.get("store") is False or not isinstance(response, dict) or response.get("store") is False:
        return None
    rid = response.get("id")
    return rid if isinstance(rid, str) and rid else None


def item_ids(items: Any) -> list[str]:
    """The ``id`` of each item of a Responses API item list (a response's ``output``, a request's ``input``, an
    ``/input_items`` page's ``data``) that has one."""
    if not isinstance(items, list):
        return []
    return [i for item in items if isinstance(item, dict) and isinstance(i := item.get("id"), str) and i]


def conversation_id(request: dict[str, Any]) -> str | None:
    """The conversation a Responses API request belongs to (``conversation``: its id, or ``{"id": ...}``), else
    None. The provider prepends that conversation's items to the request's input and adds the answer's to it."""
    c = request.get("conversation")
    if isinstance(c, dict):
        c = c.get("id")
    return c if isinstance(c, str) and c else None


def stored_ids(request: dict[str, Any], response: Any) -> list[str]:
    """What the provider keeps of a Responses API ``response`` that a later request may cite: its id
    (``previous_response_id``) and its output items' (an input item's ``id``: an ``item_reference``, a replayed
    reasoning item), none when it is not stored; and the conversation it was added to (``conversation``), stored or
    not."""
    rid = stored_response_id(request, response)
    ids = [] if rid is None else [rid, *item_ids(response.get("output"))]
    conv = conversation_id(request)
    return ids if conv is None else [*ids, conv]


def streamed_stored_ids(request: dict[str, Any], blocks: list[bytes]) -> list[str]:
    """``stored_ids`` of a Responses API stream: the ``response`` it announces first (``response.created``), and the
    items of its answer (``assemble``); none when the provider announced no response."""
    for _, doc in json_events(blocks):
        if isinstance(doc, dict) and isinstance(doc.get("response"), dict):
            rid = stored_response_id(request, doc["response"])
            ids = [] if rid is None else [rid, *item_ids(assemble(RESPONSES, blocks).body.get("output"))]
            conv = conversation_id(request)
            return ids if conv is None else [*ids, conv]
    return []
